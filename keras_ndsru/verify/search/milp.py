"""Mixed-integer encoding of a ReLU network, solved with HiGHS.

Each ReLU ``a = max(z, 0)`` with pre-activation bounds ``[l, u]`` is encoded as
linear (``a = z``) when ``l >= 0``, removed (``a = 0``) when ``u <= 0``, and
otherwise with one binary ``d``: ``a >= 0, a >= z, a <= z - l (1 - d),
a <= u d``. The solver *minimises* the
margin of one disjunct (`spec.Disjunct`) and stops as soon as its sign is
decided: a solution with margin ``<= 0`` (``objective_target``) or a proof that none below ``+tol`` exists
(``objective_bound`` as a cutoff).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
import time

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


def _encode_copy(builder, network, bounds, x_vars, layers=None):
    """Adds one network copy up to its last hidden layer (all, or ``layers``).

    Returns the indices of that layer's variables (-1 marks a neuron fixed
    at 0).
    """
    inf = np.inf
    prev = x_vars
    count = len(network.weights) - 1 if layers is None else layers
    for k in range(count):
        w, b = network.weights[k], network.biases[k]
        lower, upper = bounds[k]
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
            if lo >= 0:  # a = z
                a = builder.var(lo, hi)
                builder.row([a, *cols], [1.0, *neg_w], b[j], b[j])
            else:
                a = builder.var(0.0, hi)
                d = builder.var(0, 1, integer=True)
                builder.row([a, *cols], [1.0, *neg_w], b[j], inf)  # a >= z
                # a <= z - l (1 - d)
                builder.row([a, *cols, d], [1.0, *neg_w, -lo], -inf, b[j] - lo)
                builder.row([a, d], [1.0, -hi], -inf, 0.0)  # a <= u d
            current[j] = a
        prev = current
    return prev


class MilpStatus(enum.Enum):
    """What HiGHS reported, from its model status code (never its message)."""

    OPTIMAL = "optimal"
    CUTOFF = "cutoff"  # nothing below the +tol cutoff (or infeasible)
    TARGET = "target"  # stopped at a solution with margin <= 0
    TIME_LIMIT = "time limit"
    OTHER = "other"


@dataclasses.dataclass
class MilpResult:
    """One MILP solve of a disjunct's margin.

    Attributes:
        status: a `MilpStatus`.
        lower: a proven lower bound of the margin, or -inf.
        x: the best input found ``(copies, n)``, or `None`.
        objective: the margin of ``x`` in the model, or `None`.
        binaries, nodes: the encoding's binaries and HiGHS' B&B nodes.
    """

    status: MilpStatus
    lower: float = -np.inf
    x: np.ndarray | None = None
    objective: float | None = None
    binaries: int = 0
    nodes: int = 0


def _status(model_status) -> MilpStatus:
    import highspy

    codes = highspy.HighsModelStatus
    return {
        codes.kOptimal: MilpStatus.OPTIMAL,
        codes.kInfeasible: MilpStatus.CUTOFF,
        codes.kObjectiveBound: MilpStatus.CUTOFF,
        codes.kObjectiveTarget: MilpStatus.TARGET,
        codes.kTimeLimit: MilpStatus.TIME_LIMIT,
    }.get(model_status, MilpStatus.OTHER)


def _encode_region(builder, region, copies):
    """The region's distance and linear constraints on the input variables."""
    if region.radius is not None:
        _encode_distance(builder, region, copies)
    if region.a_ub is not None:
        flat = np.concatenate(copies)
        for row, bound in zip(region.a_ub, region.b_ub):
            nz = np.nonzero(row)[0]
            builder.row(flat[nz].tolist(), row[nz].tolist(), -np.inf, float(bound))


def solve_milp(network, region, disjunct, bounds, time_limit=None, tol=1e-6):
    """Minimises the margin of ``disjunct`` over ``region`` with HiGHS.

    Args:
        network: a `ReluNetwork`.
        region: a `spec.Region`; ``bounds`` hold for each copy of it.
        disjunct: a `spec.Disjunct`; its margin is ``max_i (mat_i y - rhs_i)``
            (one extra variable ``t >= mat_i y - rhs_i`` when it has rows > 1).
        bounds: pre-activation bounds of the hidden layers.
        time_limit: seconds, or None. tol: the proof cutoff.

    Returns:
        A `MilpResult`.
    """
    builder = _Builder()
    n = region.n
    copies = [builder.vars(region.lower, region.upper) for _ in range(region.copies)]
    _encode_region(builder, region, copies)
    lasts = [_encode_copy(builder, network, bounds, x_vars) for x_vars in copies]
    # Each row as (coefficients on last-layer variables, constant).
    n_out = network.n_outputs
    rows = []
    for mat_row, rhs in zip(disjunct.mat, disjunct.rhs):
        cost, offset = {}, -float(rhs)
        for k, last in enumerate(lasts):
            out = mat_row[k * n_out : (k + 1) * n_out]
            coef = out @ network.weights[-1]
            offset += float(out @ network.biases[-1])
            for j, var in enumerate(last):
                if var >= 0 and coef[j] != 0.0:
                    cost[int(var)] = cost.get(int(var), 0.0) + float(coef[j])
        rows.append((cost, offset))
    if len(rows) == 1:
        cost, offset = rows[0]
    else:  # minimise t subject to t >= row_i for every row
        lo, hi = np.array(builder.lower), np.array(builder.upper)
        ranges = []
        for row_cost, row_offset in rows:
            cols = np.fromiter(row_cost, int, len(row_cost))
            vals = np.fromiter(row_cost.values(), float, len(row_cost))
            ranges.append(
                (
                    row_offset + np.minimum(vals * lo[cols], vals * hi[cols]).sum(),
                    row_offset + np.maximum(vals * lo[cols], vals * hi[cols]).sum(),
                )
            )
        # Finite bounds of t (interval bounds of the rows) keep weak duality usable.
        t = builder.var(max(r[0] for r in ranges), max(r[1] for r in ranges))
        for row_cost, row_offset in rows:
            cols = list(row_cost)
            vals = [-row_cost[c] for c in cols]
            builder.row([t, *cols], [1.0, *vals], row_offset, np.inf)
        cost, offset = {t: 1.0}, 0.0

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
    info = highs.getInfo()
    status = _status(highs.getModelStatus())
    result = MilpResult(status, binaries=binaries)
    result.nodes = int(getattr(info, "mip_node_count", 0) or 0)
    import highspy

    if info.primal_solution_status == highspy.kSolutionStatusFeasible:
        values = np.asarray(highs.getSolution().col_value)
        result.x = np.stack([values[c] for c in copies]).reshape(region.copies, n)
        result.objective = float(info.objective_function_value)
    if status == MilpStatus.CUTOFF:
        # Nothing below the +tol cutoff: the margin is at least tol.
        result.lower = float(tol)
    elif status == MilpStatus.OPTIMAL:
        if binaries:
            result.lower = float(info.mip_dual_bound)
        elif highs.getSolution().dual_valid:
            # A pure LP (every ReLU fixed): certify the optimum by weak duality.
            result.lower = offset + _dual_bound(
                builder, np.asarray(lp.col_cost_), highs.getSolution().row_dual
            )
    elif binaries and np.isfinite(getattr(info, "mip_dual_bound", -np.inf)):
        result.lower = float(info.mip_dual_bound)
    return result


def _encode_distance(builder, region, copies):
    """``||x - center|| <= r`` (one copy) or ``||x1 - x2|| <= r`` (two)."""
    n = region.n
    delta = float(region.radius)
    if region.copies == 1:
        if region.norm == "inf" or region.center is None:
            return  # already in the variable bounds
        x, center = copies[0], region.center
        t = builder.vars(np.zeros(n), np.full(n, delta))
        for i in range(n):
            builder.row([int(t[i]), int(x[i])], [1.0, -1.0], -center[i], np.inf)
            builder.row([int(t[i]), int(x[i])], [1.0, 1.0], center[i], np.inf)
        builder.row(t.tolist(), [1.0] * n, -np.inf, delta)
        return
    x1, x2 = copies
    if region.norm == "inf":
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


def neuron_bounds_lp(network, region, tightened, current, k, deadline=None):
    """Tightens layer ``k``'s unstable pre-activation bounds with LPs.

    The LP relaxation (binaries in [0, 1]) of layers ``< k`` over one copy of
    ``region``, with their already tightened bounds, is minimised and
    maximised for each unstable neuron of layer ``k``. Sound: an LP
    relaxation only widens the set, and each bound is recomputed from the
    LP's duals by weak duality. At ``deadline`` (a `time.time()` value, or
    None) it stops, each LP included, and keeps the bounds found so far
    (also sound).
    """
    lower, upper = (np.array(v, dtype=float) for v in current)
    open_ = (lower < 0) & (upper > 0)
    unstable = np.nonzero(open_)[0]
    if k == 0 or unstable.size == 0:
        return lower, upper
    builder = _Builder()
    x_vars = builder.vars(region.lower, region.upper)
    if region.copies == 1:
        _encode_region(builder, region, [x_vars])
    last = _encode_copy(builder, network, tightened, x_vars, layers=k)
    lp, _ = _assemble(builder, {}, 0.0, relax=True)
    highs = _new_highs()
    highs.passModel(lp)
    live = last >= 0
    cols = last[live].astype(np.int32)
    w = network.weights[k][:, live]
    b = network.biases[k]
    zeros = np.zeros(len(cols))
    cost = np.zeros(len(builder.lower))
    for j in unstable:
        for sense in (1.0, -1.0):
            if deadline is not None:
                left = deadline - time.time()
                if left <= 0:
                    return lower, np.maximum(upper, lower)
                highs.setOptionValue("time_limit", left)
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
