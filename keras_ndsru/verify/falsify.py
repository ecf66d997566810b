"""Cheap counterexample search before any proof is attempted.

The Reluplex paper (arXiv 1709.02802, Sec. 4) notes that most non-robust
points are refuted quickly when likely counterexamples are tried first. Here:
the centre, random points, box corners, the vertices that minimise the
symbolic margin bound, and projected (sign-)gradient descent on the smallest
margin of all disjuncts at once.
"""

from __future__ import annotations

import itertools

import numpy as np

from keras_ndsru.verify.network import forward, input_gradient


def project_l1(v: np.ndarray, radius: float) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the L_1 ball (Duchi et al.)."""
    v = np.atleast_2d(v)
    out = v.copy()
    norms = np.abs(v).sum(1)
    for i in np.nonzero(norms > radius)[0]:
        u = np.sort(np.abs(v[i]))[::-1]
        css = np.cumsum(u)
        k = np.arange(1, u.size + 1)
        rho = np.nonzero(u * k > css - radius)[0][-1]
        theta = (css[rho] - radius) / (rho + 1.0)
        out[i] = np.sign(v[i]) * np.maximum(np.abs(v[i]) - theta, 0.0)
    # Rounding may leave the sum a hair above the radius: shrink onto it.
    sums = np.abs(out).sum(1)
    over = sums > radius
    out[over] *= (radius / sums[over] * (1 - 1e-12))[:, None]
    return out


def project(problem, x: np.ndarray) -> np.ndarray:
    """Maps a batch ``(batch, copies, n)`` into the disjunct's input region."""
    x = np.clip(x, problem.lower, problem.upper)
    if problem.copies == 1:
        if problem.norm == "1":
            diff = project_l1(x[:, 0] - problem.center, problem.delta)
            x[:, 0] = np.clip(problem.center + diff, problem.lower, problem.upper)
        return x
    if problem.norm == "inf":
        lo = np.maximum(x[:, 0] - problem.delta, problem.lower)
        hi = np.minimum(x[:, 0] + problem.delta, problem.upper)
        x[:, 1] = np.clip(x[:, 1], lo, hi)
    else:
        diff = project_l1(x[:, 1] - x[:, 0], problem.delta)
        x[:, 1] = np.clip(x[:, 0] + diff, problem.lower, problem.upper)
    return x


def in_region(problem, x: np.ndarray) -> bool:
    """Exact membership test of one point ``(copies, n)``."""
    if np.any(x < problem.lower) or np.any(x > problem.upper):
        return False
    if problem.copies == 1:
        if problem.center is None:
            return True
        diff = np.abs(x[0] - problem.center)
        return bool(
            (diff.sum() if problem.norm == "1" else diff.max()) <= problem.delta
        )
    diff = np.abs(x[1] - x[0])
    bound = diff.max() if problem.norm == "inf" else diff.sum()
    return bool(bound <= problem.delta)


def margins(disjuncts, x: np.ndarray) -> np.ndarray:
    """Margins of every disjunct at a batch ``(batch, copies, n)``: (batch, D)."""
    first = disjuncts[0]
    coef = np.stack([d.out_coef for d in disjuncts])  # (D, copies, n_out)
    const = np.array([d.const for d in disjuncts])
    total = np.broadcast_to(const, (x.shape[0], len(disjuncts))).copy()
    for k in range(first.copies):
        out = forward(first.weights, first.biases, x[:, k])
        total += out @ coef[:, k].T
    return total


def _random_points(problem, rng, count):
    n = problem.lower.shape[0]
    if problem.copies == 1 and problem.norm == "1":
        direction = rng.laplace(size=(count, n))
        direction /= np.abs(direction).sum(1, keepdims=True)
        radius = problem.delta * rng.uniform(size=(count, 1)) ** (1.0 / n)
        x = (problem.center + radius * direction)[:, None]
        vertices = problem.center + problem.delta * np.concatenate(
            [np.eye(n), -np.eye(n)]
        )
        x = np.concatenate([x, vertices[:, None]])
    else:
        x = rng.uniform(problem.lower, problem.upper, size=(count, 1, n))
        if problem.copies == 1 and n <= 10:
            corners = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
        else:
            corners = rng.integers(0, 2, size=(min(count, 1024), n)).astype(float)
        if problem.copies == 1:
            corner_pts = problem.lower + corners * (problem.upper - problem.lower)
            x = np.concatenate([x, corner_pts[:, None]])
    if problem.copies == 2:
        if problem.norm == "inf":
            step = problem.delta * rng.choice([-1.0, 1.0], size=x[:, 0].shape)
        else:
            step = rng.laplace(size=x[:, 0].shape)
            step *= problem.delta / np.abs(step).sum(1, keepdims=True)
        x = np.concatenate([x, (x[:, 0] + step)[:, None]], axis=1)
    return project(problem, x)


def falsify(disjuncts, rng=None, samples=512, restarts=16, steps=40, seeds=()):
    """Searches a point with a non-positive margin for any disjunct.

    All disjuncts must share one input region. Returns ``(x, margin, index)``
    for the smallest margin found: ``x`` of shape (copies, n).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    problem = disjuncts[0]
    n = problem.lower.shape[0]
    pools = [_random_points(problem, rng, samples)]
    if problem.center is not None and problem.copies == 1:
        pools.append(problem.center[None, None, :])
    for seed in seeds:
        pools.append(project(problem, np.asarray(seed, float).reshape(1, -1, n)))
    x = np.concatenate(pools)
    m = margins(disjuncts, x)
    best = np.unravel_index(np.argmin(m), m.shape)
    if m[best] <= 0 or steps == 0:
        return x[best[0]], float(m[best]), int(best[1])
    # Projected descent from the most promising starts.
    start = np.argsort(m.min(1))[:restarts]
    x = x[start].copy()
    width = np.maximum(problem.upper - problem.lower, 0.0)
    scale = problem.delta if problem.delta is not None else width.max()
    coef = np.stack([d.out_coef for d in disjuncts])
    best_x, best_m, best_i = x[0].copy(), float(m[best]), int(best[1])
    for step in range(steps):
        m = margins(disjuncts, x)
        which = np.argmin(m, axis=1)
        low = m[np.arange(len(x)), which]
        i = int(np.argmin(low))
        if low[i] < best_m:
            best_x, best_m, best_i = x[i].copy(), float(low[i]), int(which[i])
        if best_m <= 0:
            break
        size = scale * 0.5 * (1.0 - step / steps) + 1e-3 * scale
        for k in range(problem.copies):
            g = input_gradient(problem.weights, problem.biases, x[:, k], coef[which, k])
            if problem.norm == "1" and (problem.copies == 2 or k == 0):
                norm = np.linalg.norm(g, axis=1, keepdims=True) + 1e-30
                x[:, k] = x[:, k] - size * g / norm
            else:
                x[:, k] = x[:, k] - size * np.sign(g)
        x = project(problem, x)
    return best_x, best_m, best_i
