"""The one decision path: properties in, typed outcomes out.

Every query (Defs. 1-3 of arXiv 1709.02802 via `definitions`, VNN-LIB via
`vnnlib`) is a list of `spec.Property` decided here by the same stages, as
in nnenum: falsification over all disjuncts at once, then bounds over each
property's region (computed once and handed on), then per-disjunct search
(`decide`) for what is left, scheduled on an executor (`schedule`). A
counterexample counts only after it is re-checked: in the region exactly,
violating its disjunct on the network in float64, and by the caller's
``confirm`` (the model's own forward pass).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from keras_ndsru.verify.outcomes.outcome import (
    Method,
    Outcome,
    PropertyOutcome,
    Reason,
    Status,
)
from keras_ndsru.verify.search.decide import Options, batched, screen
from keras_ndsru.verify.search.falsify import falsify
from keras_ndsru.verify.search.schedule import Task, run_tasks


def check(
    network,
    properties,
    confirm=None,
    timeout: float | None = None,
    executor=None,
    options: Options | None = None,
    falsify_first: bool = True,
) -> list[PropertyOutcome]:
    """Decides each property: `Status.SAFE`, `VIOLATED` or `UNKNOWN`.

    Args:
        network: a `ReluNetwork`, or a `Graph` (then `check_graph` decides,
            ``executor`` runs its properties in parallel, and ``options`` and
            ``falsify_first`` do not apply).
        properties: a list of `spec.Property` over its inputs and outputs.
        confirm: optional ``confirm(property_index, x) -> bool`` re-checking a
            counterexample ``x`` ``(copies, n)`` on the real model; it runs
            after the float64 re-check on ``network``. Defaults to None.
        timeout: seconds for the whole call, or None. Defaults to None.
        executor: a `concurrent.futures.Executor` for the disjuncts left
            after the bounds, or None to run them in-process.
        options: a `decide.Options`. Defaults to `Options()`.
        falsify_first: try sampling/gradient counterexamples first.
            Defaults to True.

    Returns:
        One `PropertyOutcome` per property, in order.
    """
    graph_module = sys.modules.get("keras_ndsru.verify.graph.graph")
    if graph_module is not None and isinstance(network, graph_module.Graph):
        return check_graph(
            network,
            properties,
            confirm,
            timeout,
            executor=executor,
            stop_at_violation=False,
        )
    options = options or Options()
    start = time.time()
    if timeout is not None and not float(timeout) >= 0:
        raise ValueError(
            f"timeout must be >= 0 seconds or None. Received: timeout={timeout}"
        )
    deadline = start + (float(timeout) if timeout is not None else 1e9)
    outcomes = [[] for _ in properties]
    rng = np.random.default_rng(options.seed)

    def accept(q, index, x) -> bool:
        prop = properties[q]
        x = np.asarray(x, np.float64).reshape(prop.region.copies, prop.region.n)
        if not prop.region.contains(x):
            return False
        if prop.margins(network, x[None])[0, index] > 0:
            return False
        return confirm is None or bool(confirm(q, x))

    tasks, pre_seconds = [], []
    for q, prop in enumerate(properties):
        tick = time.time()
        if falsify_first:
            x, value, i = falsify(network, prop, rng=rng, deadline=deadline)
            if value <= 0 and accept(q, i, x):
                outcomes[q].append(
                    Outcome(
                        Status.VIOLATED,
                        disjunct=i,
                        method=Method.FALSIFY,
                        description=prop.disjuncts[i].description,
                        x=x,
                        margin=value,
                    )
                )
                pre_seconds.append(time.time() - tick)
                continue
        open_ = []
        for i, first in enumerate(screen(network, prop, deadline=deadline)):
            if first.lower > options.tol:
                outcomes[q].append(
                    Outcome(
                        Status.SAFE,
                        disjunct=i,
                        method=Method.BOUNDS,
                        description=prop.disjuncts[i].description,
                        lower=first.lower,
                    )
                )
            else:
                open_.append((i, first))
        # Joint input splitting takes all open disjuncts; else one task each.
        groups = [open_] if open_ and batched(prop, options) else [[o] for o in open_]
        for group in groups:
            indices, screens = (tuple(v) for v in zip(*group))
            tasks.append(
                Task(q, network.key, prop, indices, screens, deadline, options)
            )
        pre_seconds.append(time.time() - tick)

    def record(task, outcome) -> bool:
        if outcome.status is Status.VIOLATED and not accept(
            task.group, outcome.disjunct, outcome.x
        ):
            outcome.status, outcome.reason = Status.UNKNOWN, Reason.NOT_CONFIRMED
        outcomes[task.group].append(outcome)
        return outcome.status is Status.VIOLATED

    run_tasks(network, tasks, executor if len(tasks) > 1 else None, record)
    results = []
    for q, (prop, found) in enumerate(zip(properties, outcomes)):
        found.sort(key=lambda o: o.disjunct)
        seconds = pre_seconds[q] + sum(o.seconds for o in found)
        if len(properties) == 1:
            seconds = time.time() - start
        results.append(_verdict(network, prop, found, seconds))
    return results


def check_graph(
    graph,
    properties,
    confirm=None,
    timeout: float | None = None,
    options=None,
    executor=None,
    stop_at_violation: bool = True,
) -> list[PropertyOutcome]:
    """`check` for a `graph.Graph`: each property decided by
    `keras_ndsru.verify.search.complete.decide_graph` (attack, alpha-CROWN,
    beta-CROWN branch and bound) over its box, its L_1 ball, or for two
    copies (Def. 2) over the box of `graph.two_copies.two_copy_graph`.

    Args:
        graph: a `Graph`.
        properties: `spec.Property` list (no general input constraints).
        confirm: optional ``confirm(property_index, x) -> bool`` re-checking a
            counterexample ``x`` ``(copies, n)`` on the real model; it runs
            after the exact membership check of ``x`` in the region.
        timeout: seconds for the whole call, or None.
        options: a `complete.GraphOptions`.
        executor: a `concurrent.futures.Executor` deciding the properties in
            parallel (one task each; the graph is pickled with it, so use a
            ``spawn`` process pool, Dask or threads, not ``fork`` after
            PyTorch has started), or None to decide them in order
            in-process. Defaults to None.
        stop_at_violation: in-process, leave the properties after a violated
            one undecided (`UNKNOWN`), as a VNN-LIB disjunction needs; False
            decides each (a batch of points). Defaults to True.

    Returns:
        One `PropertyOutcome` per property, in order.
    """
    from keras_ndsru.verify.search.complete import decide_graph

    start = time.time()
    if timeout is not None and not float(timeout) >= 0:
        raise ValueError(
            f"timeout must be >= 0 seconds or None. Received: timeout={timeout}"
        )
    deadline = start + (float(timeout) if timeout is not None else 1e9)

    def check_one(q, i, x, to_region):
        prop = properties[q]
        x = to_region(x)
        if not prop.region.contains(x) or prop.margins(graph, x[None])[0, i] > 0:
            return False
        return confirm is None or bool(confirm(q, x))

    def finish(q, found, to_region, seconds):
        prop = properties[q]
        for outcome in found:
            outcome.description = prop.disjuncts[outcome.disjunct].description
            if outcome.x is not None:
                outcome.x = to_region(outcome.x)
        return _verdict(graph, prop, found, seconds)

    if executor is not None and len(properties) > 1:
        return _check_graph_on(
            executor, graph, properties, deadline, options, check_one, finish
        )
    results = []
    for q, prop in enumerate(properties):
        tick = time.time()
        if stop_at_violation and any(r.status is Status.VIOLATED for r in results):
            results.append(PropertyOutcome(Status.UNKNOWN))
            continue
        target, lifted, to_region, l1 = _lift(graph, prop)
        found = decide_graph(
            target,
            lifted,
            deadline,
            options,
            confirm=lambda i, x, q=q, f=to_region: check_one(q, i, x, f),
            l1=l1,
        )
        results.append(finish(q, found, to_region, time.time() - tick))
    return results


def _decide_task(graph, prop, deadline, options, l1):
    """One property on a worker (no confirmation there: the parent checks
    each counterexample against the region and the model)."""
    import torch

    from keras_ndsru.verify.search.complete import decide_graph

    torch.set_num_threads(1)
    tick = time.time()
    return decide_graph(graph, prop, deadline, options, l1=l1), time.time() - tick


def _check_graph_on(executor, graph, properties, deadline, options, check_one, finish):
    """`check_graph`'s properties decided in parallel on ``executor``."""
    lifts = [_lift(graph, prop) for prop in properties]
    futures = [
        executor.submit(_decide_task, target, lifted, deadline, options, l1)
        for target, lifted, _, l1 in lifts
    ]
    results = []
    for q, (future, (_, _, to_region, _)) in enumerate(zip(futures, lifts)):
        found, seconds = future.result()
        for outcome in found:
            if outcome.status is Status.VIOLATED and not check_one(
                q, outcome.disjunct, outcome.x, to_region
            ):
                outcome.status, outcome.reason = Status.UNKNOWN, Reason.NOT_CONFIRMED
                outcome.x = None
        results.append(finish(q, found, to_region, seconds))
    return results


def _lift(graph, prop):
    """``(graph, property, to_region, l1)`` for the graph engine: the
    property itself for one copy; for two copies the pair graph over ``(x1,
    d)``, with ``to_region`` mapping its points back to pairs ``(2, n)`` and,
    for the L_1 norm, the ball ``||d||_1 <= delta`` on ``d`` (an
    `complete.L1Ball`)."""
    from keras_ndsru.verify.graph.two_copies import two_copy_graph
    from keras_ndsru.verify.properties.spec import Property, Region
    from keras_ndsru.verify.search.complete import L1Ball, in_domain

    region = prop.region
    if region.copies == 1:
        n = region.n
        return graph, prop, lambda x: np.asarray(x, np.float64).reshape(1, n), None
    lower, upper = in_domain(graph, region.lower, region.upper)
    pair, box_lower, box_upper, to_pair = two_copy_graph(
        graph, lower, upper, region.radius
    )
    lifted = Property(Region(box_lower, box_upper), prop.disjuncts, prop.description)
    l1 = None
    if region.norm == "1":
        n = region.n
        mask = np.concatenate([np.zeros(n, bool), np.ones(n, bool)])
        l1 = L1Ball(np.zeros(2 * n), float(region.radius), mask)
    return pair, lifted, to_pair, l1


def _verdict(network, prop, found, seconds) -> PropertyOutcome:
    violated = [o for o in found if o.status is Status.VIOLATED]
    if violated:
        x = np.asarray(violated[0].x, np.float64)
        return PropertyOutcome(
            Status.VIOLATED,
            counterexample=x,
            outputs=prop.outputs(network, x[None])[0],
            seconds=seconds,
            outcomes=found,
        )
    safe = [o for o in found if o.status is Status.SAFE]
    if len(safe) == len(prop.disjuncts):
        bound = float(min(o.lower for o in safe))
        return PropertyOutcome(
            Status.SAFE, bound=bound, seconds=seconds, outcomes=found
        )
    return PropertyOutcome(Status.UNKNOWN, seconds=seconds, outcomes=found)
