"""Chains with pass-through neurons (residual, LeakyReLU, max-pooling):
the lowering computes the graph, and the verifier's verdicts on them match
an exact brute-force oracle that enumerates the ReLU patterns."""

import itertools
import math

import numpy as np
import pytest
from verify_brute import _lp

from keras_ndsru.verify import local_robustness
from keras_ndsru.verify.graph.lowering import Chain, Values

AMBIGUOUS = 1e-5


def build(kind, rng):
    """A tiny lowered network and a NumPy reference of the same function."""
    n = 4
    w1, b1 = rng.normal(size=(n, 4)), rng.normal(size=4) * 0.3
    w2, b2 = rng.normal(size=(4, 4)) * 0.7, rng.normal(size=4) * 0.3
    w3, b3 = rng.normal(size=(4, 3)) * 0.7, rng.normal(size=3) * 0.3
    chain = Chain((n,))
    values = Values(chain, {"x": 0, "h": 2, "out": math.inf})
    x = chain.input()
    a = x.map(lambda t: t @ w1, b1)
    if kind == "residual":
        values["h"] = values.relu(0, a)  # h is read again at step 2
        h = values["h"]
        c = h.map(lambda t: t @ w2, b2) + h
        out = values.relu(1, c).map(lambda t: t @ w3, b3)

        def reference(v):
            h = np.maximum(v @ w1 + b1, 0)
            return np.maximum(h @ w2 + b2 + h, 0) @ w3 + b3

    elif kind == "leaky":
        h = values.leaky_relu(0, a, 0.2)
        out = values.leaky_relu(1, h.map(lambda t: t @ w2, b2), 0.5)
        out = out.map(lambda t: t @ w3, b3)

        def reference(v):
            def leaky(z, s):
                return np.where(z > 0, z, s * z)

            return leaky(leaky(v @ w1 + b1, 0.2) @ w2 + b2, 0.5) @ w3 + b3

    else:  # max over windows of 3 and 1 (an odd window and a single one)
        windows = np.array([[0, 1, 2], [3, -1, -1]])
        m = values.max_over(0, a, windows, (2,))
        out = m.map(lambda t: t @ w3[:2], b3)

        def reference(v):
            z = v @ w1 + b1
            return np.stack([z[:, :3].max(1), z[:, 3]], 1) @ w3[:2] + b3

    return chain.finish(out), reference


def exact_min(net, lower, upper, objectives):
    """Exact min over the box of min_k (coef_k . N(x) + const_k), by patterns."""
    weights, biases, through = net.weights, net.biases, net.passthrough
    phases, lo, hi = [], lower, upper
    for w, b, p in zip(weights[:-1], biases[:-1], through):
        p = np.zeros(b.size, bool) if p is None else p
        pos, neg = np.maximum(w, 0), np.minimum(w, 0)
        zl, zh = pos @ lo + neg @ hi + b, pos @ hi + neg @ lo + b
        phases.append(np.where(p, 2, np.where(zl >= 0, 1, np.where(zh <= 0, -1, 0))))
        lo = np.where(p, zl, np.maximum(zl, 0))
        hi = np.where(p, zh, np.maximum(zh, 0))
    n, best = net.n_inputs, [np.inf]

    def visit(k, a_map, c_map, rows, rhs):
        if k == len(weights) - 1:
            out_map, out_c = weights[-1] @ a_map, weights[-1] @ c_map + biases[-1]
            for coef, const in objectives:
                value, _ = _lp(coef @ out_map, rows, rhs, lower, upper)
                if value is not None:
                    best[0] = min(best[0], value + coef @ out_c + const)
            return
        z_map, z_c = weights[k] @ a_map, weights[k] @ c_map + biases[k]
        free = np.nonzero(phases[k] == 0)[0]
        for bits in itertools.product([0, 1], repeat=len(free)):
            active = phases[k] >= 1
            new_rows, new_rhs = list(rows), list(rhs)
            for i, bit in zip(free, bits):
                active[i] = bool(bit)
                sign = -1.0 if bit else 1.0
                new_rows.append(sign * z_map[i])
                new_rhs.append(-sign * z_c[i])
            if (
                len(free)
                and _lp(np.zeros(n), new_rows, new_rhs, lower, upper)[0] is None
            ):
                continue
            mask = active.astype(float)
            visit(k + 1, mask[:, None] * z_map, mask * z_c, new_rows, new_rhs)

    visit(0, np.eye(n), np.zeros(n), [], [])
    return best[0]


@pytest.mark.parametrize("kind", ["residual", "leaky", "max"])
def test_lowered_network_computes_the_graph(kind):
    rng = np.random.default_rng(1)
    net, reference = build(kind, rng)
    x = rng.normal(size=(50, 4))
    np.testing.assert_allclose(net(x), reference(x), rtol=1e-12, atol=1e-12)
    assert any(p is not None for p in net.passthrough)


@pytest.mark.parametrize("kind", ["residual", "leaky", "max"])
def test_verdicts_match_the_exact_oracle(kind):
    rng = np.random.default_rng({"residual": 2, "leaky": 3, "max": 4}[kind])
    verdicts = []
    for _ in range(3):
        net, _ = build(kind, rng)
        x0 = rng.uniform(-1, 1, 4)
        y0 = net(x0)
        label = int(np.argmax(y0))
        for delta in (0.05, 0.3, 0.8):
            lower, upper = x0 - delta, x0 + delta
            def1 = []
            for j in range(3):
                if j != label:
                    coef = np.zeros(3)
                    coef[label], coef[j] = 1.0, -1.0
                    def1.append((coef, 0.0))
            exact1 = exact_min(net, lower, upper, def1)
            eps = 0.3
            def3 = []
            for j in range(3):
                for sign in (1.0, -1.0):
                    coef = np.zeros(3)
                    coef[j] = -sign
                    def3.append((coef, eps + sign * y0[j]))
            exact3 = exact_min(net, lower, upper, def3)
            for method, first in (("milp", True), ("split", True), ("milp", False)):
                kwargs = dict(workers=1, method=method, falsify_first=first)
                res1 = local_robustness(net, x0, delta, **kwargs)
                res3 = local_robustness(net, x0, delta, eps=eps, **kwargs)
                for exact, res in ((exact1, res1), (exact3, res3)):
                    if abs(exact) < AMBIGUOUS:
                        continue
                    assert res.robust == (exact > 0), (kind, method, delta, exact)
                    verdicts.append(res.robust)
                    if res.robust is False:
                        assert np.abs(res.counterexample - x0).max() <= delta
    assert {True, False} <= set(verdicts)
