"""Deciding the open disjuncts of a property: bounds, a vertex, then search.

A property (`spec.Property`) holds iff every disjunct's *margin* is positive
on the region. A disjunct is decided by the stages of Reluplex's practice
(arXiv 1709.02802, Secs. 3-4) and of nnenum: symbolic bounds (a positive
lower bound proves it), the bound-minimising vertex (a non-positive margin
refutes it), then search. On a box with few inputs the search is batched
input splitting over all open disjuncts at once (`keras_ndsru.verify.
input_split`); on other regions with few inputs, per-disjunct input
splitting with a MILP at small leaves; otherwise one MILP (HiGHS) per
disjunct on the whole region. The layer bounds of the region are computed
once by the caller (`keras_ndsru.verify.verifier`) and passed in; only the
batched search bounds its root box again, with its own (tighter) bounds.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import time

import numpy as np

from keras_ndsru.verify.bounds import symbolic as bnd
from keras_ndsru.verify.outcomes.outcome import Method, Outcome, Reason, Status
from keras_ndsru.verify.properties.spec import Property
from keras_ndsru.verify.search.falsify import falsify


@dataclasses.dataclass(frozen=True)
class Options:
    """Solver settings shared by every disjunct of a call.

    Args:
        method: "auto" (input splitting for <= ``split_max_dims`` inputs and
            one copy, else MILP), "milp" or "split". Defaults to "auto".
        tol: margin a proof must exceed. Defaults to 1e-6.
        split_max_dims: "auto" splits inputs up to this size. Defaults to 16.
        split_milp_unstable: a split leaf with at most this many unstable
            ReLUs goes to the MILP. Defaults to 24.
        split_max_depth: deeper leaves go to the MILP. Defaults to 24.
        batch_size: boxes split per round of the batched search (box
            regions). Defaults to 256.
        batch_max_depth: boxes of the batched search this deep go to the
            MILP. Defaults to 48.
        lp_tighten: LP-tighten unstable bounds before a MILP. Defaults to True.
        seed: falsification seed. Defaults to 0.
    """

    method: str = "auto"
    tol: float = 1e-6
    split_max_dims: int = 16
    split_milp_unstable: int = 24
    split_max_depth: int = 24
    batch_size: int = 256
    batch_max_depth: int = 48
    lp_tighten: bool = True
    seed: int = 0


@dataclasses.dataclass
class Screen:
    """What bounding the region produced for one disjunct (reused, not redone)."""

    layer_bounds: list
    lower: float
    vertex: np.ndarray
    coef: np.ndarray


def screen(network, prop: Property, layer_bounds=None, deadline=None) -> list[Screen]:
    """Bounds every disjunct of ``prop`` over its region at once (the layers'
    back-substitution only until ``deadline``, a `time.time()` value)."""
    if layer_bounds is None:
        layer_bounds = bnd.layer_bounds(network, prop.region, deadline=deadline)
    return [
        Screen(layer_bounds, lower, vertex, coef)
        for lower, vertex, coef in bnd.margin_bounds(
            network, layer_bounds, prop.region, prop.disjuncts
        )
    ]


def uses_split(prop: Property, options) -> bool:
    """Whether ``options`` send ``prop`` to input splitting."""
    region = prop.region
    return options.method == "split" or (
        options.method == "auto"
        and region.copies == 1
        and region.n <= options.split_max_dims
    )


def batched(prop: Property, options) -> bool:
    """Whether ``prop``'s open disjuncts are split jointly in batches: input
    splitting on a plain box (no L_1 ball, no general linear constraints)."""
    region = prop.region
    plain = region.copies == 1 and not region.l1_ball and region.a_ub is None
    return plain and uses_split(prop, options)


def decide_all(
    network, prop: Property, indices, screens, deadline: float, options
) -> list[Outcome]:
    """Decides disjuncts ``indices`` of ``prop`` given their `Screen`s: jointly
    by batched input splitting (`batched`), else one by one (`decide`)."""
    if batched(prop, options):
        return _split_jointly(network, prop, list(indices), screens, deadline, options)
    return [
        decide(network, prop, i, first, deadline, options)
        for i, first in zip(indices, screens)
    ]


def _split_jointly(network, prop, indices, screens, deadline, options):
    from keras_ndsru.verify.search import input_split

    start = time.time()
    outcomes = [
        Outcome(
            Status.UNKNOWN,
            disjunct=i,
            method=Method.SPLIT,
            description=prop.disjuncts[i].description,
            pid=os.getpid(),
        )
        for i in indices
    ]

    def finish():
        for outcome in outcomes:
            outcome.seconds = time.time() - start
        return outcomes

    for k, (i, first) in enumerate(zip(indices, screens)):
        found = _candidate(network, prop, i, prop.region, first.vertex)
        if found:
            for outcome in outcomes:
                outcome.reason = Reason.SKIPPED
            outcomes[k].status, outcomes[k].reason = Status.VIOLATED, None
            outcomes[k].method, outcomes[k].x = Method.VERTEX, found["x"]
            outcomes[k].margin = found["margin"]
            return finish()

    def leaf_milp(i, box):
        layer_bounds = bnd.layer_bounds(network, box)
        result = _milp(network, prop, i, box, layer_bounds, deadline, options)
        return _interpret(network, prop, i, box, result, options)

    results, stats = input_split.search(
        network,
        prop,
        indices,
        deadline,
        tol=options.tol,
        batch=options.batch_size,
        max_depth=options.batch_max_depth,
        leaf_milp=leaf_milp,
        seed=options.seed,
    )
    for outcome, result in zip(outcomes, results):
        outcome.status, outcome.reason = result.status, result.reason
        outcome.lower, outcome.x, outcome.margin = result.lower, result.x, result.margin
        outcome.leaves, outcome.milps = stats.boxes, stats.milps
    return finish()


def decide(
    network, prop: Property, index: int, first: Screen, deadline: float, options
) -> Outcome:
    """Decides disjunct ``index`` of ``prop``, given its `Screen` over the region."""
    start = time.time()
    outcome = Outcome(
        Status.UNKNOWN,
        disjunct=index,
        description=prop.disjuncts[index].description,
        pid=os.getpid(),
    )

    def done(status, **fields):
        for name, value in fields.items():
            setattr(outcome, name, value)
        outcome.status = status
        outcome.seconds = time.time() - start
        return outcome

    if first.lower > options.tol:
        return done(Status.SAFE, lower=first.lower)
    if time.time() >= deadline:
        return done(Status.UNKNOWN, reason=Reason.TIMEOUT)
    found = _candidate(network, prop, index, prop.region, first.vertex)
    if found:
        return done(Status.VIOLATED, method=Method.VERTEX, **found)
    region = prop.region
    if uses_split(prop, options):
        if region.copies != 1:
            raise ValueError(
                "method='split' needs a single network copy (Def. 1/3). "
                f"Received: copies={region.copies}"
            )
        outcome.method = Method.SPLIT
        return done(
            **_branch_and_bound(network, prop, index, first, deadline, options, outcome)
        )
    outcome.method = Method.MILP
    result = _milp(network, prop, index, region, first.layer_bounds, deadline, options)
    outcome.binaries, outcome.nodes = result.binaries, result.nodes
    return done(**_interpret(network, prop, index, region, result, options))


def _candidate(network, prop, index, region, x) -> dict | None:
    """A refuting point if ``x`` (projected) or a short descent from it works."""
    shape = (1, region.copies, region.n)
    x = region.project(np.asarray(x, float).reshape(shape))
    margin = float(prop.margins(network, x)[0, index])
    if margin <= 0 and region.contains(x[0]):
        return {"x": x[0], "margin": margin}
    point, value, _ = falsify(
        network,
        prop,
        region=region,
        disjuncts=[index],
        samples=0,
        restarts=1,
        steps=20,
        seeds=[x[0]],
    )
    if value <= 0 and region.contains(point):
        return {"x": point, "margin": value}
    return None


def _interpret(network, prop, index, region, result, options) -> dict:
    from keras_ndsru.verify.search.milp import MilpStatus

    if result.x is not None:
        found = _candidate(network, prop, index, region, result.x)
        if found:
            return {"status": Status.VIOLATED, **found}
    if result.lower > options.tol or result.status == MilpStatus.CUTOFF:
        return {"status": Status.SAFE, "lower": result.lower}
    reason = (
        Reason.TIMEOUT if result.status == MilpStatus.TIME_LIMIT else Reason.TOLERANCE
    )
    return {"status": Status.UNKNOWN, "lower": result.lower, "reason": reason}


def _milp(network, prop, index, region, layer_bounds, deadline, options):
    from keras_ndsru.verify.search.milp import solve_milp

    if options.lp_tighten:
        # The disjuncts of a property share their region: tighten once per process.
        key = (network.key, region.key())
        if key not in _TIGHTENED:
            if len(_TIGHTENED) >= 16:
                _TIGHTENED.pop(next(iter(_TIGHTENED)))
            _TIGHTENED[key] = _tighten(network, region, layer_bounds, deadline)
        layer_bounds = _TIGHTENED[key]
    return solve_milp(
        network,
        region,
        prop.disjuncts[index],
        layer_bounds,
        time_limit=max(deadline - time.time(), 0.01),
        tol=options.tol,
    )


_TIGHTENED: dict = {}


def _tighten(network, region, layer_bounds, deadline):
    """LP-based bound tightening of the unstable neurons, layer by layer."""
    from keras_ndsru.verify.search.milp import neuron_bounds_lp

    tightened = []
    for k in range(len(layer_bounds)):
        if time.time() > deadline:
            return tightened + layer_bounds[k:]
        tightened.append(
            neuron_bounds_lp(
                network, region, tightened, layer_bounds[k], k, deadline=deadline
            )
        )
    return tightened


def _branch_and_bound(network, prop, index, first, deadline, options, outcome) -> dict:
    """Input splitting, best-first on the bound; MILP on small leaves."""
    disjunct = [prop.disjuncts[index]]
    counter = 0
    heap = [(-np.inf, counter, prop.region, 0, first)]
    worst = np.inf
    while heap:
        if time.time() >= deadline:
            return {
                "status": Status.UNKNOWN,
                "reason": Reason.TIMEOUT,
                "lower": heap[0][0],
            }
        _, _, region, depth, known = heapq.heappop(heap)
        if known is None:
            layer_bounds = bnd.layer_bounds(network, region)
            lower, vertex, coef = bnd.margin_bounds(
                network, layer_bounds, region, disjunct
            )[0]
        else:  # the root: bounded by the caller
            layer_bounds, lower = known.layer_bounds, known.lower
            vertex, coef = known.vertex, known.coef
        outcome.leaves += 1
        if lower > options.tol:
            worst = min(worst, lower)
            continue
        centre = 0.5 * (region.lower + region.upper)
        for point in (vertex, centre[None]):
            if known is not None and point is vertex:
                continue  # decide() tried the root's vertex already
            found = _candidate(network, prop, index, region, point)
            if found:
                return {"status": Status.VIOLATED, **found}
        unstable = bnd.count_unstable(network, layer_bounds)
        width = region.upper - region.lower
        if unstable <= options.split_milp_unstable or depth >= options.split_max_depth:
            outcome.milps += 1
            result = _interpret(
                network,
                prop,
                index,
                region,
                _milp(network, prop, index, region, layer_bounds, deadline, options),
                options,
            )
            if result["status"] != Status.SAFE:
                return result
            worst = min(worst, result["lower"])
            continue
        dim = int(np.argmax(np.abs(coef) * width))
        for child in region.split(dim):
            counter += 1
            heapq.heappush(heap, (lower, counter, child, depth + 1, None))
    return {"status": Status.SAFE, "lower": float(worst)}
