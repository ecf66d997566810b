"""CROWN's last step over a box intersected with an L_1 ball (a masked one
too) against the LP of the same minimum (scipy/HiGHS)."""

import numpy as np
import torch
from scipy.optimize import linprog

from keras_ndsru.verify.bounds.crown import Ball, Box, concretize


def _lp_min(a, lower, upper, center, radius, mask):
    """min a @ x over the box and sum |x - c|[mask] <= r: variables x, p, q
    with x - c = p - q on the masked coordinates."""
    n, idx = len(a), np.flatnonzero(mask)
    m = len(idx)
    a_eq = np.zeros((m, n + 2 * m))
    for j, i in enumerate(idx):
        a_eq[j, i], a_eq[j, n + j], a_eq[j, n + m + j] = 1.0, -1.0, 1.0
    res = linprog(
        np.concatenate([a, np.zeros(2 * m)]),
        A_ub=np.concatenate([np.zeros(n), np.ones(2 * m)])[None],
        b_ub=[radius],
        A_eq=a_eq if m else None,
        b_eq=center[idx] if m else None,
        bounds=[*zip(lower, upper), *[(0, None)] * (2 * m)],
        method="highs",
    )
    assert res.status == 0
    return res.fun


def test_knapsack_equals_the_lp():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = 6
        lower = rng.uniform(-1, 0, n)
        upper = lower + rng.uniform(0, 2, n)
        center = rng.uniform(lower, upper)
        radius = rng.uniform(0, 2)
        mask = rng.random(n) < 0.7
        A = rng.normal(size=(1, 3, n))
        box = Box(
            torch.as_tensor(lower)[None],
            torch.as_tensor(upper)[None],
            Ball(torch.as_tensor(center), radius, torch.as_tensor(mask)),
        )
        got = concretize(torch.as_tensor(A), box)[0].numpy()
        for row in range(3):
            expected = _lp_min(A[0, row], lower, upper, center, radius, mask)
            assert abs(got[row] - expected) < 1e-7, (got[row], expected)
