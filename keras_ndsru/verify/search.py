"""Deciding one disjunct, and scheduling many across an executor.

A query (Def. 1, 2 or 3 of arXiv 1709.02802) is robust iff every disjunct of
its negation is infeasible, i.e. iff the *margin* ``sum_k c_k . N(x_k) + d``
of every disjunct is positive on the input region. One disjunct is decided by:
symbolic bounds (a positive lower bound proves it), a bound-minimising vertex
(a non-positive margin refutes it), then either branch-and-bound over input
splits (low-dimensional inputs) or one MILP (HiGHS) on the whole region.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import heapq
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait

import numpy as np

from keras_ndsru.verify import bounds as bnd
from keras_ndsru.verify.falsify import falsify, in_region, margins, project


@dataclasses.dataclass
class Disjunct:
    """One disjunct of a negated robustness property: is ``margin <= 0`` possible?

    ``margin(x) = sum_k out_coef[k] . N(x_k) + const`` over ``copies`` copies of
    the network, each input in the box ``[lower, upper]``; with one copy and
    ``norm == "1"`` also ``||x - center||_1 <= delta``; with two copies
    ``||x_1 - x_2|| <= delta`` in ``norm``.
    """

    weights: list
    biases: list
    lower: np.ndarray
    upper: np.ndarray
    out_coef: np.ndarray
    const: float
    copies: int = 1
    norm: str = "inf"
    delta: float | None = None
    center: np.ndarray | None = None
    description: str = ""

    def region(self) -> bnd.InputRegion:
        if self.copies == 1 and self.norm == "1":
            return bnd.InputRegion(self.lower, self.upper, self.center, self.delta)
        return bnd.InputRegion(self.lower, self.upper)

    def margin(self, x: np.ndarray) -> float:
        return float(margins([self], np.asarray(x, float)[None])[0, 0])


@dataclasses.dataclass
class Options:
    """Solver settings shared by every disjunct of a call."""

    method: str = "auto"
    tol: float = 1e-6
    split_max_dims: int = 16
    split_milp_unstable: int = 24
    split_max_depth: int = 24
    lp_tighten: bool = True
    seed: int = 0


def bound_margin(problem: Disjunct, region: bnd.InputRegion):
    """Lower bound of the margin over ``region`` and a candidate minimiser."""
    layer_bounds = bnd.layer_bounds(problem.weights, problem.biases, region)
    total, xs = problem.const, []
    for k in range(problem.copies):
        value, coef = bnd.objective_lower_bound(
            problem.weights, problem.biases, layer_bounds, region, problem.out_coef[k]
        )
        total += value
        xs.append(region.minimizer(coef))
    return total, np.stack(xs), layer_bounds, coef


def _milp(problem: Disjunct, layer_bounds, deadline, options: Options):
    from keras_ndsru.verify.milp import solve_milp

    if options.lp_tighten:
        # The disjuncts of a query share their region: tighten once per process.
        key = _region_key(problem)
        if key not in _TIGHTENED:
            if len(_TIGHTENED) >= 16:
                _TIGHTENED.pop(next(iter(_TIGHTENED)))
            _TIGHTENED[key] = _tighten(problem, layer_bounds, deadline)
        layer_bounds = _TIGHTENED[key]
    return solve_milp(
        problem,
        [layer_bounds] * problem.copies,
        time_limit=max(deadline - time.time(), 0.01),
        tol=options.tol,
    )


_TIGHTENED: dict = {}


def _region_key(problem: Disjunct):
    parts = [problem.lower, problem.upper, *problem.weights, *problem.biases]
    if problem.center is not None:
        parts.append(problem.center)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
    return digest.hexdigest(), problem.copies, problem.norm, problem.delta


def _tighten(problem: Disjunct, layer_bounds, deadline):
    """LP-based bound tightening of the unstable neurons, layer by layer."""
    from keras_ndsru.verify.milp import neuron_bounds_lp

    tightened = []
    for k in range(len(layer_bounds)):
        if time.time() > deadline:
            return tightened + layer_bounds[k:]
        lower, upper = neuron_bounds_lp(problem, tightened, layer_bounds[k], k)
        tightened.append((lower, upper))
    return tightened


def _candidate(problem: Disjunct, x) -> dict | None:
    """A refuting point if ``x`` (projected) or a short descent from it works."""
    x = project(problem, np.asarray(x, float).reshape(1, problem.copies, -1))[0]
    if problem.margin(x) <= 0 and in_region(problem, x):
        return {"x": x, "margin": problem.margin(x)}
    point, value, _ = falsify([problem], samples=0, restarts=1, steps=20, seeds=[x])
    if value <= 0 and in_region(problem, point):
        return {"x": point, "margin": value}
    return None


def solve_disjunct(problem: Disjunct, deadline: float, options: Options) -> dict:
    """Decides ``problem``: status "robust", "violated" or "unknown"."""
    start = time.time()
    info = {"description": problem.description, "method": "bounds", "pid": os.getpid()}

    def done(status, **extra):
        info.update(extra, status=status, seconds=time.time() - start)
        return info

    if time.time() >= deadline:
        return done("unknown", reason="timeout")
    region = problem.region()
    lower, vertex, layer_bounds, _ = bound_margin(problem, region)
    if lower > options.tol:
        return done("robust", lower=lower)
    found = _candidate(problem, vertex)
    if found:
        return done("violated", method="vertex", **found)
    n = problem.lower.shape[0]
    use_split = options.method == "split" or (
        options.method == "auto" and problem.copies == 1 and n <= options.split_max_dims
    )
    if use_split:
        if problem.copies != 1:
            raise ValueError("method='split' needs a single network copy (Def. 1/3).")
        info["method"] = "split"
        return done(**_branch_and_bound(problem, deadline, options, info))
    info["method"] = "milp"
    result = _milp(problem, layer_bounds, deadline, options)
    info.update(binaries=result["binaries"], nodes=result["nodes"])
    return done(**_interpret(problem, result, options))


def _interpret(problem: Disjunct, result: dict, options: Options) -> dict:
    if result["x"] is not None:
        found = _candidate(problem, result["x"])
        if found:
            return {"status": "violated", **found}
    if result["lower"] > options.tol or result.get("cutoff"):
        return {"status": "robust", "lower": result["lower"]}
    reason = "timeout" if result["status"] == "Time limit reached" else "tolerance"
    return {"status": "unknown", "lower": result["lower"], "reason": reason}


def _branch_and_bound(problem: Disjunct, deadline, options: Options, info) -> dict:
    """Input splitting, best-first on the bound; MILP on small leaves."""
    counter = 0
    heap = [(-np.inf, counter, problem.region(), 0)]
    worst = np.inf
    leaves = milps = 0
    while heap:
        if time.time() >= deadline:
            info.update(leaves=leaves, milps=milps)
            return {"status": "unknown", "reason": "timeout", "lower": heap[0][0]}
        _, _, region, depth = heapq.heappop(heap)
        lower, vertex, layer_bounds, coef = bound_margin(problem, region)
        leaves += 1
        if lower > options.tol:
            worst = min(worst, lower)
            continue
        centre = 0.5 * (region.lower + region.upper)
        for point in (vertex, centre[None]):
            found = _candidate(problem, point)
            if found:
                info.update(leaves=leaves, milps=milps)
                return {"status": "violated", **found}
        unstable = bnd.count_unstable(layer_bounds)
        width = region.upper - region.lower
        if unstable <= options.split_milp_unstable or depth >= options.split_max_depth:
            milps += 1
            sub = dataclasses.replace(problem, lower=region.lower, upper=region.upper)
            result = _interpret(
                sub, _milp(sub, layer_bounds, deadline, options), options
            )
            if result["status"] != "robust":
                info.update(leaves=leaves, milps=milps)
                if result["status"] == "violated":
                    result["x"] = project(problem, result["x"][None])[0]
                return result
            worst = min(worst, result["lower"])
            continue
        dim = int(np.argmax(np.abs(coef) * width))
        for child in region.split(dim):
            counter += 1
            heapq.heappush(heap, (lower, counter, child, depth + 1))
    info.update(leaves=leaves, milps=milps)
    return {"status": "robust", "lower": float(worst)}


def _solve_task(problem: Disjunct, deadline: float, options: Options) -> dict:
    return solve_disjunct(problem, deadline, options)


_POOL = None


def process_context():
    """``fork`` where available (workers start at once and need no ``__main__``
    guard; they only run NumPy and single-threaded HiGHS), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def default_executor() -> Executor:
    """A process pool shared by all calls (one worker per CPU), made on demand."""
    global _POOL
    if _POOL is None:
        _POOL = ProcessPoolExecutor(os.cpu_count() or 1, mp_context=process_context())
        atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
    return _POOL


def run_tasks(queries, executor, deadlines, options: Options, confirm):
    """Decides every query's disjuncts, stopping a query at its first violation.

    Args:
        queries: list of lists of `Disjunct`.
        executor: a `concurrent.futures.Executor`, or None to run in-process.
        deadlines: one absolute ``time.time()`` deadline per query.
        confirm: ``confirm(query_index, disjunct_index, outcome) -> bool``
            re-checks a violation on the real model.

    Returns:
        One list of outcome dicts per query (disjuncts never run are absent).
    """
    outcomes = [[] for _ in queries]
    refuted = [False] * len(queries)

    def record(q, i, outcome):
        outcome["disjunct"] = i
        if outcome["status"] == "violated" and not confirm(q, i, outcome):
            outcome.update(status="unknown", reason="not confirmed by the model")
        outcomes[q].append(outcome)
        if outcome["status"] == "violated":
            refuted[q] = True

    if executor is None:
        for q, disjuncts in enumerate(queries):
            for i, problem in enumerate(disjuncts):
                record(q, i, solve_disjunct(problem, deadlines[q], options))
                if refuted[q]:
                    break
        return outcomes
    pending = {}
    for q, disjuncts in enumerate(queries):
        for i, problem in enumerate(disjuncts):
            future = executor.submit(_solve_task, problem, deadlines[q], options)
            pending[future] = (q, i)
    while pending:
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in finished:
            q, i = pending.pop(future)
            if future.cancelled() or refuted[q]:
                continue
            record(q, i, future.result())
            if refuted[q]:
                for other, (q2, _) in list(pending.items()):
                    if q2 == q and other.cancel():
                        pending.pop(other)
    return outcomes
