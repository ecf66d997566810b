"""Brute-force oracle for the verifier tests: exact minima by activation patterns.

Independent of keras_ndsru.verify: plain interval arithmetic fixes the stable
ReLUs, every pattern of the others is enumerated, and each pattern's linear
piece is minimised exactly with scipy's LP solver.
"""

import itertools

import numpy as np
from scipy.optimize import linprog


def forward(weights, biases, x):
    h = np.atleast_2d(np.asarray(x, float))
    for k, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w.T + b
        if k < len(weights) - 1:
            h = np.maximum(h, 0)
    return h


def random_net(rng, sizes, scale=1.0):
    weights = [
        rng.normal(size=(o, i)) * scale / np.sqrt(i) for i, o in zip(sizes, sizes[1:])
    ]
    biases = [rng.normal(size=o) * 0.3 for o in sizes[1:]]
    return weights, biases


def _interval_phases(weights, biases, lower, upper):
    """Per hidden neuron: +1 always active, -1 always inactive, 0 unknown."""
    phases = []
    lo, hi = lower, upper
    for w, b in zip(weights[:-1], biases[:-1]):
        pos, neg = np.maximum(w, 0), np.minimum(w, 0)
        zl, zh = pos @ lo + neg @ hi + b, pos @ hi + neg @ lo + b
        phases.append(np.where(zl >= 0, 1, np.where(zh <= 0, -1, 0)))
        lo, hi = np.maximum(zl, 0), np.maximum(zh, 0)
    return phases


def _lp(cost, rows, rhs, lower, upper, x0=None, delta=None):
    """min cost . x s.t. rows x <= rhs, box, and ||x - x0||_1 <= delta if given."""
    n = len(lower)
    a_ub = [np.concatenate([r, np.zeros(n)]) for r in rows]
    b_ub = list(rhs)
    if x0 is not None:
        for i in range(n):  # t_i >= |x_i - x0_i|
            e = np.zeros(2 * n)
            e[i], e[n + i] = 1, -1
            a_ub.append(e.copy())
            b_ub.append(x0[i])
            e[i] = -1
            a_ub.append(e)
            b_ub.append(-x0[i])
        a_ub.append(np.concatenate([np.zeros(n), np.ones(n)]))
        b_ub.append(delta)
    res = linprog(
        np.concatenate([cost, np.zeros(n)]),
        A_ub=np.array(a_ub) if a_ub else None,
        b_ub=np.array(b_ub) if b_ub else None,
        bounds=[(lo, hi) for lo, hi in zip(lower, upper)] + [(0, None)] * n,
        method="highs",
    )
    return res.fun if res.status == 0 else None, res.x


def _pieces(weights, biases, lower, upper, x0=None, delta=None):
    """Linear pieces (rows x <= rhs, out map M, m) of the network on the region.

    Depth-first over layers: each layer's undecided ReLUs are enumerated and a
    partial pattern whose region is empty (an LP) is pruned.
    """
    phases = _interval_phases(weights, biases, lower, upper)
    n = weights[0].shape[1]
    out = []

    def visit(k, a_map, c_map, rows, rhs):
        if k == len(weights) - 1:
            out.append(
                (rows, rhs, weights[-1] @ a_map, weights[-1] @ c_map + biases[-1])
            )
            return
        z_map, z_c = weights[k] @ a_map, weights[k] @ c_map + biases[k]
        free = np.nonzero(phases[k] == 0)[0]
        for bits in itertools.product([0, 1], repeat=len(free)):
            active = phases[k] == 1
            new_rows, new_rhs = list(rows), list(rhs)
            for i, bit in zip(free, bits):
                active[i] = bool(bit)
                sign = -1.0 if bit else 1.0  # active: z >= 0, inactive: z <= 0
                new_rows.append(sign * z_map[i])
                new_rhs.append(-sign * z_c[i])
            if (
                len(free)
                and _lp(np.zeros(n), new_rows, new_rhs, lower, upper, x0, delta)[0]
                is None
            ):
                continue
            mask = active.astype(float)
            visit(k + 1, mask[:, None] * z_map, mask * z_c, new_rows, new_rhs)

    visit(0, np.eye(n), np.zeros(n), [], [])
    return out


def exact_min_margin(weights, biases, region, disjunct):
    """min over a box region (and its ``a_ub x <= b_ub``, if any) of the
    margin max_i (mat_i y - rhs_i) of ``disjunct``, piece by piece (LPs)."""
    best = np.inf
    n = region.n
    for rows, rhs, out_map, out_c in _pieces(
        weights, biases, region.lower, region.upper
    ):
        # variables (x, t): min t, t >= mat_i (M x + m) - rhs_i
        a_ub = [np.concatenate([r, [0.0]]) for r in rows]
        b_ub = list(rhs)
        for row, bound in zip(disjunct.mat, disjunct.rhs):
            a_ub.append(np.concatenate([row @ out_map, [-1.0]]))
            b_ub.append(bound - row @ out_c)
        if region.a_ub is not None:
            for row, bound in zip(region.a_ub, region.b_ub):
                a_ub.append(np.concatenate([row, [0.0]]))
                b_ub.append(bound)
        res = linprog(
            np.concatenate([np.zeros(n), [1.0]]),
            A_ub=np.array(a_ub),
            b_ub=np.array(b_ub),
            bounds=[*zip(region.lower, region.upper), (None, None)],
            method="highs",
        )
        if res.status == 0:
            best = min(best, res.fun)
    return best


def min_local(weights, biases, x0, delta, norm, objectives, domain=None):
    """Exact min over ``||x - x0|| <= delta`` (in domain) of the smallest
    ``coef . N(x) + const`` over ``objectives`` (a list of (coef, const))."""
    lower, upper = x0 - delta, x0 + delta
    if domain is not None:
        lower, upper = np.maximum(lower, domain[0]), np.minimum(upper, domain[1])
    l1 = (x0, delta) if norm == "1" else (None, None)
    best = np.inf
    for rows, rhs, out_map, out_c in _pieces(weights, biases, lower, upper, *l1):
        for coef, const in objectives:
            value, _ = _lp(coef @ out_map, rows, rhs, lower, upper, *l1)
            if value is not None:
                best = min(best, value + coef @ out_c + const)
    return best


def min_global(weights, biases, lower, upper, delta, norm, j):
    """Exact min over x1, x2 in the box with ||x1-x2|| <= delta of
    -(y_j(x1) - y_j(x2)) (so eps + that is the Def. 2 margin)."""
    n = len(lower)
    pieces = _pieces(weights, biases, lower, upper)
    best = np.inf
    for (r1, c1, m1, o1), (r2, c2, m2, o2) in itertools.product(pieces, pieces):
        cost = np.concatenate([-m1[j], m2[j], np.zeros(n)])
        offset = -o1[j] + o2[j]
        a_ub = [np.concatenate([r, np.zeros(2 * n)]) for r in r1]
        a_ub += [np.concatenate([np.zeros(n), r, np.zeros(n)]) for r in r2]
        b_ub = list(c1) + list(c2)
        for i in range(n):
            e = np.zeros(3 * n)
            e[i], e[n + i], e[2 * n + i] = 1, -1, -1
            a_ub.append(e.copy())  # x1 - x2 <= t
            b_ub.append(0)
            e[i], e[n + i] = -1, 1
            a_ub.append(e)  # x2 - x1 <= t
            b_ub.append(0)
        t_bound = (0, delta) if norm == "inf" else (0, None)
        if norm == "1":
            a_ub.append(np.concatenate([np.zeros(2 * n), np.ones(n)]))
            b_ub.append(delta)
        bounds = [(lo, hi) for lo, hi in zip(lower, upper)] * 2 + [t_bound] * n
        res = linprog(
            cost,
            A_ub=np.array(a_ub),
            b_ub=np.array(b_ub),
            bounds=bounds,
            method="highs",
        )
        if res.status == 0:
            best = min(best, res.fun + offset)
    return best


def def1_min_margin(weights, biases, x0, delta, norm, argmin=False, domain=None):
    y0 = forward(weights, biases, x0)[0]
    label = int(np.argmin(y0) if argmin else np.argmax(y0))
    objectives = []
    for j in range(len(y0)):
        if j != label:
            coef = np.zeros(len(y0))
            coef[label], coef[j] = (-1, 1) if argmin else (1, -1)
            objectives.append((coef, 0.0))
    return min_local(weights, biases, x0, delta, norm, objectives, domain)


def def3_min_margin(weights, biases, x0, delta, norm, eps):
    y0 = forward(weights, biases, x0)[0]
    objectives = []
    for j in range(len(y0)):
        for sign in (1, -1):
            coef = np.zeros(len(y0))
            coef[j] = -sign
            objectives.append((coef, eps + sign * y0[j]))
    return min_local(weights, biases, x0, delta, norm, objectives)
