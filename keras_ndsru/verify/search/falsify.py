"""Cheap counterexample search before any proof is attempted.

The Reluplex paper (arXiv 1709.02802, Sec. 4) notes that most non-robust
points are refuted quickly when likely counterexamples are tried first. Here:
the centre, random points, box corners, given seeds (e.g. the vertices that
minimise the symbolic margin bound), and projected (sign-)gradient descent on
the smallest margin of all disjuncts of a `spec.Property` at once.
"""

from __future__ import annotations

import time

import numpy as np


def falsify(
    network,
    prop,
    region=None,
    disjuncts=None,
    rng=None,
    samples=512,
    restarts=16,
    steps=40,
    seeds=(),
    deadline=None,
):
    """Searches a point with a non-positive margin for any disjunct.

    Args:
        network: a `ReluNetwork`.
        prop: a `spec.Property`.
        region: a sub-region of ``prop.region`` to search. Defaults to
            ``prop.region``.
        disjuncts: indices of the disjuncts to search. Defaults to all.
        rng: a `numpy.random.Generator`. Defaults to one seeded with 0.
        samples, restarts, steps: random points, descent starts and steps.
        seeds: extra starting points ``(copies, n)``.
        deadline: a `time.time()` value ending the descent, or None.

    Returns:
        ``(x, margin, index)`` for the smallest margin found: ``x`` of shape
        ``(copies, n)``, ``index`` the disjunct's index in ``prop``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    region = prop.region if region is None else region
    chosen = np.arange(len(prop.disjuncts)) if disjuncts is None else disjuncts
    chosen = np.asarray(chosen)
    copies, n = region.copies, region.n

    rows, rhs, owner = prop.rows()
    starts = prop.row_starts()

    def evaluate(x):
        """Margins of the chosen disjuncts and every row's value, one pass."""
        values = prop.outputs(network, x) @ rows.T - rhs
        return np.maximum.reduceat(values, starts, axis=1)[:, chosen], values

    pools = [region.sample(rng, samples)] if samples else []
    if region.center is not None and copies == 1:
        pools.append(region.center[None, None, :])
    for seed in seeds:
        pools.append(region.project(np.asarray(seed, float).reshape(1, copies, n)))
    x = np.concatenate(pools)
    m, _ = evaluate(x)
    best = np.unravel_index(np.argmin(m), m.shape)
    if m[best] <= 0 or steps == 0:
        return x[best[0]], float(m[best]), int(chosen[best[1]])
    # Projected descent from the most promising starts.
    start = np.argsort(m.min(1))[:restarts]
    x = x[start].copy()
    width = np.maximum(region.upper - region.lower, 0.0)
    scale = region.radius if region.radius is not None else width.max()
    best_x, best_m, best_i = x[0].copy(), float(m[best]), int(best[1])
    n_out = network.n_outputs
    for step in range(steps):
        m, values = evaluate(x)
        which = np.argmin(m, axis=1)
        low = m[np.arange(len(x)), which]
        i = int(np.argmin(low))
        if low[i] < best_m:
            best_x, best_m, best_i = x[i].copy(), float(low[i]), int(which[i])
        if best_m <= 0 or (deadline is not None and time.time() > deadline):
            break
        size = scale * 0.5 * (1.0 - step / steps) + 1e-3 * scale
        # Descend on the row attaining each point's margin (the max).
        mine = owner[None, :] == chosen[which][:, None]
        coef = rows[np.argmax(np.where(mine, values, -np.inf), axis=1)]
        for k in range(copies):
            block = coef[:, k * n_out : (k + 1) * n_out]
            g = network.input_gradient(x[:, k], block)
            if region.norm == "1" and (copies == 2 or k == 0):
                norm = np.linalg.norm(g, axis=1, keepdims=True) + 1e-30
                x[:, k] = x[:, k] - size * g / norm
            else:
                x[:, k] = x[:, k] - size * np.sign(g)
        x = region.project(x)
    return best_x, best_m, int(chosen[best_i])
