"""Mixed-integer encoding of a ReLU network, solved with HiGHS.

Each ReLU ``a = max(z, 0)`` with pre-activation bounds ``[l, u]`` is encoded as
linear (``a = z``) when ``l >= 0``, removed (``a = 0``) when ``u <= 0``, and
otherwise with one binary ``d``: ``a >= 0, a >= z, a <= z - l (1 - d),
a <= u d``. The solver *minimises* the margin of one disjunct of the negated
property and stops as soon as its sign is decided: a solution with margin
``<= 0`` (``objective_target``) or a proof that none below ``+tol`` exists
(``objective_bound`` as a cutoff).
"""

from __future__ import annotations

import os
import sys

import numpy as np

_QUIET = False


def _new_highs():
    """A silent `highspy.Highs` (HiGHS prints a banner on its first creation)."""
    global _QUIET
    import highspy

    if _QUIET:
        highs = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 1)
                highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _QUIET = True
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", 1)
    return highs


class _Builder:
    def __init__(self):
        self.lower, self.upper, self.integer = [], [], []
        self.rows, self.cols, self.vals = [], [], []
        self.row_lower, self.row_upper = [], []

    def var(self, lower, upper, integer=False) -> int:
        self.lower.append(float(lower))
        self.upper.append(float(upper))
        self.integer.append(integer)
        return len(self.lower) - 1

    def vars(self, lower, upper) -> np.ndarray:
        start = len(self.lower)
        self.lower.extend(np.asarray(lower, float).tolist())
        self.upper.extend(np.asarray(upper, float).tolist())
        self.integer.extend([False] * len(lower))
        return np.arange(start, len(self.lower))

    def row(self, cols, vals, lower, upper):
        r = len(self.row_lower)
        self.rows.extend([r] * len(cols))
        self.cols.extend(cols)
        self.vals.extend(vals)
        self.row_lower.append(lower)
        self.row_upper.append(upper)


def _encode_copy(builder, weights, biases, bounds, x_vars):
    """Adds one network copy; returns (last-layer var indices, their weights mask)."""
    inf = np.inf
    prev = x_vars  # -1 marks a neuron fixed at 0
    for (w, b), (lower, upper) in zip(zip(weights[:-1], biases[:-1]), bounds):
        live = prev >= 0
        prev_cols = prev[live].tolist()
        w_live = w[:, live]
        current = np.full(w.shape[0], -1)
        for j in range(w.shape[0]):
            lo, hi = float(lower[j]), float(upper[j])
            if hi <= 0:
                continue
            nz = np.nonzero(w_live[j])[0]
            cols = [prev_cols[i] for i in nz]
            neg_w = (-w_live[j, nz]).tolist()
            a = builder.var(max(lo, 0.0), hi)
            current[j] = a
            if lo >= 0:  # a = z
                builder.row([a, *cols], [1.0, *neg_w], b[j], b[j])
            else:
                d = builder.var(0, 1, integer=True)
                builder.row([a, *cols], [1.0, *neg_w], b[j], inf)  # a >= z
                # a <= z - l (1 - d)
                builder.row([a, *cols, d], [1.0, *neg_w, -lo], -inf, b[j] - lo)
                builder.row([a, d], [1.0, -hi], -inf, 0.0)  # a <= u d
        prev = current
    return prev


def solve_milp(problem, bounds_per_copy, time_limit=None, tol=1e-6):
    """Minimises the margin of ``problem`` (a `search.Disjunct`) with HiGHS.

    Returns a dict with ``status`` ("robust", "candidate", "unknown"),
    ``lower`` (a proven lower bound of the margin, or -inf), ``x`` (the best
    input found, flattened, stacked per copy; or None), ``nodes`` and
    ``binaries``.
    """
    import highspy

    builder = _Builder()
    n = problem.lower.shape[0]
    copies = []
    for _ in range(problem.copies):
        copies.append(builder.vars(problem.lower, problem.upper))
    if problem.delta is not None:
        _encode_neighbourhood(builder, problem, copies)
    cost = {}
    offset = float(problem.const)
    last_layer = []
    for k, x_vars in enumerate(copies):
        last = _encode_copy(
            builder, problem.weights, problem.biases, bounds_per_copy[k], x_vars
        )
        last_layer.append(last)
        coef = problem.out_coef[k] @ problem.weights[-1]
        offset += float(problem.out_coef[k] @ problem.biases[-1])
        for j, var in enumerate(last):
            if var >= 0 and coef[j] != 0.0:
                cost[int(var)] = cost.get(int(var), 0.0) + float(coef[j])

    lp, binaries = _assemble(builder, cost, offset)

    highs = _new_highs()
    highs.setOptionValue("random_seed", 0)
    highs.setOptionValue("mip_feasibility_tolerance", 1e-8)
    highs.setOptionValue("primal_feasibility_tolerance", 1e-9)
    highs.setOptionValue("mip_rel_gap", 0.0)
    highs.setOptionValue("mip_abs_gap", 0.0)
    if binaries:
        # Stop on any solution with margin <= 0; prune everything above +tol.
        highs.setOptionValue("objective_target", 0.0)
        highs.setOptionValue("objective_bound", float(tol))
    if time_limit is not None:
        highs.setOptionValue("time_limit", max(float(time_limit), 0.01))
    highs.passModel(lp)
    highs.run()
    model_status = highs.getModelStatus()
    info = highs.getInfo()
    statuses = highspy.HighsModelStatus
    result = {"lower": -np.inf, "x": None, "binaries": binaries}
    result["nodes"] = int(getattr(info, "mip_node_count", 0) or 0)
    if info.primal_solution_status == highspy.kSolutionStatusFeasible:
        values = np.asarray(highs.getSolution().col_value)
        result["x"] = np.stack([values[c] for c in copies]).reshape(problem.copies, n)
        result["objective"] = float(info.objective_function_value)
    if model_status in (statuses.kInfeasible, statuses.kObjectiveBound):
        # Nothing below the +tol cutoff: the margin is at least tol.
        result["lower"] = float(tol)
        result["cutoff"] = True
    elif model_status == statuses.kOptimal:
        if binaries:
            result["lower"] = float(info.mip_dual_bound)
        elif highs.getSolution().dual_valid:
            # A pure LP (every ReLU fixed): certify the optimum by weak duality.
            result["lower"] = offset + _dual_bound(
                builder, np.asarray(lp.col_cost_), highs.getSolution().row_dual
            )
    elif binaries and np.isfinite(getattr(info, "mip_dual_bound", -np.inf)):
        result["lower"] = float(info.mip_dual_bound)
    result["status"] = highs.modelStatusToString(model_status)
    return result


def _encode_neighbourhood(builder, problem, copies):
    """``||x - center|| <= delta`` (one copy) or ``||x1 - x2|| <= delta`` (two)."""
    n = problem.lower.shape[0]
    delta = float(problem.delta)
    if problem.copies == 1:
        if problem.norm == "inf":
            return  # already in the variable bounds
        x, center = copies[0], problem.center
        t = builder.vars(np.zeros(n), np.full(n, delta))
        for i in range(n):
            builder.row([int(t[i]), int(x[i])], [1.0, -1.0], -center[i], np.inf)
            builder.row([int(t[i]), int(x[i])], [1.0, 1.0], center[i], np.inf)
        builder.row(t.tolist(), [1.0] * n, -np.inf, delta)
        return
    x1, x2 = copies
    if problem.norm == "inf":
        for i in range(n):
            builder.row([int(x1[i]), int(x2[i])], [1.0, -1.0], -delta, delta)
        return
    t = builder.vars(np.zeros(n), np.full(n, delta))
    for i in range(n):
        builder.row([int(t[i]), int(x1[i]), int(x2[i])], [1.0, -1.0, 1.0], 0.0, np.inf)
        builder.row([int(t[i]), int(x1[i]), int(x2[i])], [1.0, 1.0, -1.0], 0.0, np.inf)
    builder.row(t.tolist(), [1.0] * n, -np.inf, delta)


def _assemble(builder, cost, offset, relax=False):
    """A `highspy.HighsLp` from the builder (integrality dropped if ``relax``)."""
    import highspy

    num_col = len(builder.lower)
    lp = highspy.HighsLp()
    lp.num_col_ = num_col
    lp.num_row_ = len(builder.row_lower)
    col_cost = np.zeros(num_col)
    for var, c in cost.items():
        col_cost[var] = c
    lp.col_cost_ = col_cost
    lp.offset_ = offset
    lp.col_lower_ = np.array(builder.lower)
    lp.col_upper_ = np.array(builder.upper)
    lp.row_lower_ = np.array(builder.row_lower, dtype=float)
    lp.row_upper_ = np.array(builder.row_upper, dtype=float)
    rows = np.array(builder.rows, dtype=np.int64)
    cols = np.array(builder.cols, dtype=np.int64)
    vals = np.array(builder.vals, dtype=float)
    order = np.lexsort((rows, cols))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate(
        [[0], np.cumsum(np.bincount(cols, minlength=num_col))]
    ).astype(np.int32)
    lp.a_matrix_.index_ = rows[order].astype(np.int32)
    lp.a_matrix_.value_ = vals[order]
    binaries = int(sum(builder.integer))
    if binaries and not relax:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in builder.integer
        ]

    return lp, binaries


def _dual_bound(builder, cost, row_dual) -> float:
    """A lower bound of ``min cost . v`` valid for ANY row multipliers.

    Weak duality with all variables boxed (Neumaier and Shcherbina, 2004):
    ``cost . v = y . (A v) + (cost - A^T y) . v``, each term bounded from its
    row or column box. It does not trust the LP solver's tolerances.
    """
    y = np.asarray(row_dual, dtype=float).copy()
    row_lower = np.asarray(builder.row_lower, float)
    row_upper = np.asarray(builder.row_upper, float)
    y[(y > 0) & ~np.isfinite(row_lower)] = 0.0
    y[(y < 0) & ~np.isfinite(row_upper)] = 0.0
    rows = np.asarray(builder.rows)
    cols = np.asarray(builder.cols)
    vals = np.asarray(builder.vals, float)
    reduced = cost - np.bincount(cols, weights=vals * y[rows], minlength=cost.size)
    col_lower = np.asarray(builder.lower, float)
    col_upper = np.asarray(builder.upper, float)
    finite_lower = np.where(np.isfinite(row_lower), row_lower, 0.0)
    finite_upper = np.where(np.isfinite(row_upper), row_upper, 0.0)
    row_terms = np.where(y > 0, y * finite_lower, y * finite_upper)
    col_bound = np.where(reduced > 0, col_lower, col_upper)
    if not np.all(np.isfinite(col_bound[reduced != 0])):
        return -np.inf
    col_terms = np.where(reduced != 0, reduced * np.nan_to_num(col_bound), 0.0)
    terms = np.concatenate([row_terms, col_terms])
    # Float64 rounding of the sum itself.
    return float(terms.sum() - 1e-12 * (1.0 + np.abs(terms).sum()))


def neuron_bounds_lp(problem, tightened, current, k):
    """Tightens layer ``k``'s unstable pre-activation bounds with LPs.

    The LP relaxation (binaries in [0, 1]) of layers ``< k``, with their
    already tightened bounds, is minimised and maximised for each unstable
    neuron of layer ``k``. Sound: an LP relaxation only widens the set, and
    each bound is recomputed from the LP's duals by weak duality.
    """
    lower, upper = (np.array(v, dtype=float) for v in current)
    unstable = np.nonzero((lower < 0) & (upper > 0))[0]
    if k == 0 or unstable.size == 0:
        return lower, upper
    builder = _Builder()
    x_vars = builder.vars(problem.lower, problem.upper)
    if problem.delta is not None and problem.copies == 1:
        _encode_neighbourhood(builder, problem, [x_vars])
    last = _encode_copy(
        builder, problem.weights[: k + 1], problem.biases[: k + 1], tightened, x_vars
    )
    lp, _ = _assemble(builder, {}, 0.0, relax=True)
    highs = _new_highs()
    highs.passModel(lp)
    live = last >= 0
    cols = last[live].astype(np.int32)
    w = problem.weights[k][:, live]
    b = problem.biases[k]
    zeros = np.zeros(len(cols))
    cost = np.zeros(len(builder.lower))
    for j in unstable:
        for sense in (1.0, -1.0):
            highs.changeColsCost(len(cols), cols, sense * w[j])
            highs.run()
            solution = highs.getSolution()
            if not solution.dual_valid:
                continue
            cost[:] = 0.0
            cost[cols] = sense * w[j]
            value = _dual_bound(builder, cost, solution.row_dual)  # <= min sense*w.a
            if sense > 0:
                lower[j] = max(lower[j], value + b[j])
            else:
                upper[j] = min(upper[j], b[j] - value)
        highs.changeColsCost(len(cols), cols, zeros)
    return lower, np.maximum(upper, lower)
