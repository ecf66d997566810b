"""Exact decision of a BaB domain where every ReLU is decided, by one LP.

When every ReLU neuron of a domain is stable under its bounds or split, the
network is affine on the domain: the outputs are ``R x + r0`` and each split
``s_j z_j >= 0`` is a linear constraint ``s_j (G_j x + g0_j) >= 0``, both
read off by back-substitution (exact here). Whether a disjunct (rows ``R_i
x + r0_i <= 0``, all ``i``) holds somewhere in the domain is then one LP
(HiGHS): ``min t`` subject to ``R_i x + r0_i <= t``, the splits and the box (and the region's
L_1 ball, when it has one).

Soundness does not rest on the solver's tolerances: a proof is the
Lagrangian bound ``min over the box of sum_i lam_i (R_i x + r0_i) -
sum_j mu_j s_j (G_j x + g0_j)``, valid for any ``lam`` in the simplex and
``mu >= 0`` (HiGHS's duals are only the choice), evaluated in float64 with a
rounding margin; an infeasible domain needs ``mu`` with ``max over the box
of sum_j mu_j s_j (G_j x + g0_j) < 0`` (from HiGHS's dual ray). A refutation
is the LP's minimizer, re-checked on the network by the caller.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from keras_ndsru.verify.bounds import crown
from keras_ndsru.verify.bounds.optimize import domain_bounds


def all_decided(graph, bounds: list) -> bool:
    """Whether every ReLU-like neuron is stable under ``bounds``."""
    for r in graph.splittable():
        lower, upper = bounds[graph.nodes[r].inputs[0]]
        if ((lower < 0) & (upper > 0)).any():
            return False
    return True


def supported(graph) -> bool:
    """Whether the network is affine once its ReLUs are decided, and HiGHS
    (the `verify` extra's highspy) is installed."""
    import importlib.util

    if importlib.util.find_spec("highspy") is None:
        return False
    return all(node.op.affine or node.op.splittable for node in graph.nodes)


def decide_leaf(problem, splits: dict, disjuncts) -> tuple[dict, np.ndarray | None]:
    """LP decision of one domain (``splits``: one row per ReLU node).

    Args:
        problem: a `bab.Problem` (its float64 box and bounds are used).
        splits: the domain's split sides, ``(1, *shape)`` per ReLU node.
        disjuncts: indices of the disjuncts to decide.

    Returns:
        ``(lower, x)``: a sound lower bound of each disjunct's margin over
        the domain (``> 0``: excluded; ``inf``: the domain is empty), and
        the minimizer of the first disjunct not excluded (a candidate
        counterexample, flat), or None.
    """
    graph, spec, box = problem.graph, problem.spec, problem.box64
    bounds = domain_bounds(graph, problem.bounds64, splits)
    like = box.lower
    C, offset = crown.output_rows(graph, spec.mat, spec.rhs, 1, like)
    with torch.no_grad():
        A, bias = crown.linear_bound(graph, graph.output, C, bounds, box)
    rows = A.reshape(spec.rows, -1).cpu().numpy()
    r0 = (bias + offset).reshape(-1).cpu().numpy()
    G, g0 = _split_constraints(graph, bounds, box, splits)
    inputs = _Inputs.of(box)
    if G.shape[0] and _certified_empty(G, g0, inputs):
        return {d: np.inf for d in disjuncts}, None
    found, candidate = {}, None
    for d in disjuncts:
        mine = spec.owner == d
        value, x = _solve(rows[mine], r0[mine], G, g0, inputs)
        found[d] = value
        if value <= 0 and candidate is None and x is not None:
            candidate = x
    return found, candidate


def _split_constraints(graph, bounds, box, splits):
    """``(G, g0)`` with rows ``s_j (G_j x + g0_j) >= 0``, one per split."""
    Gs, g0s = [], []
    for r, s in splits.items():
        flat = s.reshape(-1)
        index = torch.nonzero(flat).flatten()
        if not index.numel():
            continue
        p = graph.nodes[r].inputs[0]
        C = crown.unit_rows(index, graph.nodes[p].shape, 1, box.lower)[
            :, : index.numel()
        ]
        with torch.no_grad():
            A, bias = crown.linear_bound(graph, p, C, bounds, box)
        sign = flat[index].to(A.dtype)
        Gs.append((A.reshape(index.numel(), -1) * sign[:, None]).cpu().numpy())
        g0s.append((bias.reshape(-1) * sign).cpu().numpy())
    if not Gs:
        n = box.lower.numel()
        return np.zeros((0, n)), np.zeros(0)
    return np.concatenate(Gs), np.concatenate(g0s)


@dataclasses.dataclass
class _Inputs:
    """The domain's inputs: the float64 `crown.Box` (with its L_1 ball, if
    any) and, for the LP's rows, its bounds and ball as NumPy arrays."""

    box: crown.Box
    lower: np.ndarray
    upper: np.ndarray
    center: np.ndarray | None = None
    radius: float = 0.0
    mask: np.ndarray | None = None

    @classmethod
    def of(cls, box) -> _Inputs:
        lower = box.lower.reshape(-1).cpu().numpy()
        upper = box.upper.reshape(-1).cpu().numpy()
        if box.ball is None:
            return cls(box, lower, upper)
        ball = box.ball
        return cls(
            box,
            lower,
            upper,
            ball.center.reshape(-1).cpu().numpy().astype(np.float64),
            float(ball.radius),
            ball.mask.reshape(-1).cpu().numpy(),
        )

    def minimum(self, coef) -> float:
        """``min coef @ x`` over the inputs (`crown.concretize`: the box, and
        the ball's exact knapsack), rounded down by a margin."""
        A = torch.as_tensor(
            coef, dtype=self.box.lower.dtype, device=self.box.lower.device
        )
        value = float(crown.concretize(A.reshape(1, 1, -1), self.box)[0, 0])
        terms = np.minimum(coef * self.lower, coef * self.upper)
        return value - 1e-9 * (1.0 + np.abs(terms).sum())


def _certified_empty(G, g0, inputs: _Inputs) -> bool:
    """Solve feasibility of ``G x + g0 >= 0`` in the box; True only with a
    checked certificate of emptiness (over the box and the ball)."""
    highs = _highs()
    n = G.shape[1]
    _pass(
        highs,
        np.zeros(n),
        inputs.lower,
        inputs.upper,
        G,
        -g0,
        np.full(len(g0), np.inf),
    )
    highs.run()
    if highs.getModelStatus() != _status("kInfeasible"):
        return False
    *_, has_ray, ray = highs.getDualRay()  # (status,) has_ray, values
    if not has_ray:
        return False
    for mu in (np.maximum(np.asarray(ray), 0), np.maximum(-np.asarray(ray), 0)):
        # max over the inputs of mu @ (G x + g0) < 0 proves the domain empty.
        top = -inputs.minimum(-(mu @ G)) + float(mu @ g0)
        if mu.any() and top + 1e-9 * (1 + abs(top)) < 0:
            return True
    return False


def _solve(R, r0, G, g0, inputs: _Inputs):
    """``min t`` s.t. ``R x + r0 <= t``, ``G x + g0 >= 0``, the box (and the
    ball: ``u >= |x - center|``, ``sum u <= radius``): a sound lower bound
    of the optimum and the minimizer (or None)."""
    n, k = R.shape[1], R.shape[0]
    lower, upper = inputs.lower, inputs.upper
    highs = _highs()
    ball = inputs.center is not None
    extra = n if ball else 0
    # variables: x (n), t (1), u (extra); rows: R x - t <= -r0; G x >= -g0
    rows = k + G.shape[0] + (2 * n + 1 if ball else 0)
    matrix = np.zeros((rows, n + 1 + extra))
    matrix[:k, :n], matrix[:k, n] = R, -1.0
    matrix[k : k + G.shape[0], :n] = G
    row_lower = [np.full(k, -np.inf), -g0]
    row_upper = [-r0, np.full(len(g0), np.inf)]
    col_lower, col_upper = np.append(lower, -np.inf), np.append(upper, np.inf)
    if ball:
        top = k + G.shape[0]
        eye = np.diag(inputs.mask.astype(np.float64))
        matrix[top : top + n, :n] = -eye  # u - x >= -c
        matrix[top : top + n, n + 1 :] = np.eye(n)
        matrix[top + n : top + 2 * n, :n] = eye  # u + x >= c
        matrix[top + n : top + 2 * n, n + 1 :] = np.eye(n)
        matrix[top + 2 * n, n + 1 :] = inputs.mask
        c = np.where(inputs.mask, inputs.center, 0.0)
        row_lower += [-c, c, [-np.inf]]
        row_upper += [np.full(2 * n, np.inf), [inputs.radius]]
        col_lower = np.append(col_lower, np.zeros(n))
        col_upper = np.append(col_upper, np.full(n, np.inf))
    cost = np.zeros(n + 1 + extra)
    cost[n] = 1.0
    _pass(
        highs,
        cost,
        col_lower,
        col_upper,
        matrix,
        np.concatenate(row_lower),
        np.concatenate(row_upper),
    )
    highs.run()
    solution = highs.getSolution()
    x = np.asarray(solution.col_value[:n]) if solution.value_valid else None
    bound = -np.inf
    if solution.dual_valid:
        dual = np.asarray(solution.row_dual)
        lam = np.maximum(-dual[:k], 0.0)
        mu = np.maximum(dual[k : k + G.shape[0]], 0.0)
        if lam.sum() > 0:
            lam = lam / lam.sum()
            coef = lam @ R - mu @ G
            constant = float(lam @ r0 - mu @ g0)
            bound = inputs.minimum(coef) + constant
            bound -= 1e-9 * (1 + abs(constant))
    if x is not None:
        x = np.clip(x, lower, upper)
    return bound, x


def _highs():
    import highspy

    from keras_ndsru.verify.search.milp import _new_highs

    del highspy
    return _new_highs()


def _status(name):
    import highspy

    return getattr(highspy.HighsModelStatus, name)


def _pass(highs, cost, col_lower, col_upper, matrix, row_lower, row_upper):
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.col_cost_ = cost
    lp.col_lower_, lp.col_upper_ = col_lower, col_upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    # column-wise sparse storage
    cols = [np.nonzero(matrix[:, j])[0] for j in range(matrix.shape[1])]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate(
        [[0], np.cumsum([len(c) for c in cols])]
    ).astype(np.int32)
    lp.a_matrix_.index_ = (
        np.concatenate(cols).astype(np.int32) if cols else np.zeros(0, np.int32)
    )
    lp.a_matrix_.value_ = (
        np.concatenate([matrix[c, j] for j, c in enumerate(cols)])
        if cols
        else np.zeros(0)
    )
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = matrix.shape[1], matrix.shape[0]
    highs.passModel(lp)
