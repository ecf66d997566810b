"""The public queries: Def. 1, 2 and 3 of Katz et al. (arXiv 1709.02802).

Arguments are validated here, compiled into `spec.Property` data by
`definitions`, decided by `verifier.check` and reported as
`VerificationResult`s.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np

from keras_ndsru import validation
from keras_ndsru.verify import verifier
from keras_ndsru.verify.formats.keras_model import keras_forward
from keras_ndsru.verify.graph.network import ReluNetwork
from keras_ndsru.verify.outcomes.max_delta_result import MaxDeltaResult
from keras_ndsru.verify.outcomes.outcome import Status
from keras_ndsru.verify.outcomes.result import VerificationResult
from keras_ndsru.verify.properties import definitions
from keras_ndsru.verify.search import schedule
from keras_ndsru.verify.search.decide import Options

_NORMS = {"inf": "inf", "linf": "inf", np.inf: "inf", "1": "1", "l1": "1", 1: "1"}
_METHODS = ("auto", "milp", "split")


def _is_graph(model) -> bool:
    """Whether ``model`` is a `Graph` (without importing the graph engine)."""
    module = sys.modules.get("keras_ndsru.verify.graph.graph")
    return module is not None and isinstance(model, module.Graph)


def _as_network(model, strip_softmax, method: str = "auto", chain: str = "small"):
    """``(network, keras_model)``: a Keras model is read as a `Graph`
    (`graph_from_keras`). If it is an affine/ReLU chain of dense segments,
    it becomes its `ReluNetwork` (the exact chain engine: input splitting,
    MILP) when ``chain`` is "always" (Def. 2, or a chain engine's
    ``method``), or "small" and it has at most ``Options().split_max_dims``
    inputs (input splitting); otherwise it stays a graph (the graph engine's
    branch and bound, much stronger than one MILP on image-sized inputs).
    A ``method`` other than "auto" requires a chain."""
    if isinstance(model, ReluNetwork) or _is_graph(model):
        return model, None
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        keras = None
    if keras is not None and isinstance(model, keras.Model):
        from keras_ndsru.verify.formats.keras_graph import graph_from_keras
        from keras_ndsru.verify.graph.chain import chain_from_graph, chain_reason

        graph = graph_from_keras(model, strip_softmax=strip_softmax)
        reason = chain_reason(graph)
        if method != "auto":
            if reason is not None:
                raise ValueError(
                    f"method={method!r} needs an affine/ReLU chain; model "
                    f"{model.name!r} is not one ({reason}): use method='auto' "
                    f"(the graph engine). Received: method={method!r}"
                )
            chain = "always"
        small = graph.n_inputs <= Options().split_max_dims
        if reason is None and (chain != "small" or small):
            return chain_from_graph(graph), model
        return graph, model
    raise TypeError(
        "Expected a keras.Model, a Graph (load_onnx_graph, graph_from_keras) or a "
        "network from load_nnet/ReluNetwork. "
        f"Received: model={type(model).__name__}"
    )


def _left(timeout, start: float):
    """What is left of ``timeout`` seconds since ``start`` (reading the
    model counts); None or an invalid timeout is passed on (for its error)."""
    if timeout is None or not float(timeout) >= 0:
        return timeout
    return max(float(timeout) - (time.time() - start), 0.0)


def _norm(norm):
    key = norm.lower() if isinstance(norm, str) else norm
    if key not in _NORMS:
        raise ValueError(f"norm must be 'inf' or '1'. Received: norm={norm!r}")
    return _NORMS[key]


def _options(method, tol, lp_tighten):
    method = validation.one_of("method", method, _METHODS)
    return Options(method=method, tol=float(tol), lp_tighten=bool(lp_tighten))


def _points(network, x0):
    x0 = np.asarray(x0, dtype=np.float64)
    shape = network.input_shape
    if x0.shape == shape or x0.shape == (network.n_inputs,):
        return x0.reshape(1, -1), False
    if x0.ndim == len(shape) + 1 and x0.shape[1:] == shape:
        return x0.reshape(len(x0), -1), True
    raise ValueError(
        f"x0 must have the model's input shape {shape} (or a batch of it). "
        f"Received: x0.shape={x0.shape}"
    )


def _domain(network, domain, n):
    if domain is None:
        domain = network.input_domain
    if domain is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    lower, upper = (
        np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (n,)) for v in domain
    )
    if np.any(lower > upper) or np.any(np.isnan(lower)) or np.any(np.isnan(upper)):
        raise ValueError(
            f"domain must be (lower, upper) with lower <= upper. Received: domain={domain}"
        )
    return lower, upper


def _check_parallel(workers, executor):
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(
            f"executor must be a concurrent.futures.Executor. Received: {executor!r}"
        )
    if workers is not None:
        validation.positive_int("workers", workers)


def _executor(workers, executor):
    """(executor or None for in-process, whether we own it)."""
    if executor is not None:
        return executor, False
    if workers is None:
        return schedule.default_executor(), False
    if workers == 1:
        return None, False
    return ProcessPoolExecutor(workers, mp_context=schedule.process_context()), True


def _graph_executor(workers, executor):
    """(executor or None, whether we own it) for the graph engine: the
    caller's executor, a ``spawn`` pool of ``workers > 1`` processes (a
    forked child of a process running PyTorch can hang), else in-process."""
    if executor is not None:
        return executor, False
    if workers is not None and workers > 1:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(workers, mp_context=context), True
    return None, False


def _run(
    network, properties, confirm, timeout, workers, executor, options, falsify_first
):
    """`verifier.check` on an executor made from ``workers``/``executor``;
    `verifier.check_graph` for a `Graph` (box regions, the graph engine)."""
    if _is_graph(network):
        if options.method != "auto":
            raise ValueError(
                f"method={options.method!r} needs an affine/ReLU chain (a "
                "ReluNetwork); a graph is decided by branch and bound: use "
                f"method='auto'. Received: method={options.method!r}"
            )
        pool, owned = _graph_executor(workers, executor)
        try:
            return verifier.check_graph(
                network,
                properties,
                confirm,
                timeout,
                executor=pool,
                stop_at_violation=False,
            )
        finally:
            if owned:
                pool.shutdown(wait=False, cancel_futures=True)
    pool, owned = _executor(workers, executor)
    try:
        return verifier.check(
            network,
            properties,
            confirm=confirm,
            timeout=timeout,
            executor=pool,
            options=options,
            falsify_first=falsify_first,
        )
    finally:
        if owned:
            pool.shutdown(wait=False, cancel_futures=True)


_ROBUST = {Status.SAFE: True, Status.VIOLATED: False, Status.UNKNOWN: None}


def local_robustness(
    model,
    x0,
    delta,
    norm="inf",
    eps=None,
    label_mode: str = "argmax",
    domain=None,
    timeout: float | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    method: str = "auto",
    tol: float = 1e-6,
    lp_tighten: bool = True,
    falsify_first: bool = True,
):
    """Proves or refutes local robustness at ``x0`` (Def. 1 or Def. 3).

    Def. 1 (``eps=None``): every ``x`` with ``||x - x0|| <= delta`` gets the
    label of ``x0`` (``argmax`` of the outputs, or ``argmin`` as for ACAS Xu);
    a tie with another output counts as not robust. Def. 3 (``eps`` given):
    ``|y_l(x) - y_l(x0)| < eps`` for every output ``l`` (two disjuncts each).
    "Robust" is returned only when every disjunct's margin is proven
    ``> tol``; a counterexample is returned only after re-checking it on the
    model (the Keras forward pass for Keras models).

    Args:
        model: a `keras.Model` of supported layers (read by
            `graph_from_keras`: an affine/ReLU chain with at most 16 inputs
            goes to the exact chain engine's input splitting, as does any
            chain for ``method="milp"``/``"split"``; every other model to
            the graph engine: CROWN, alpha/beta-CROWN, branch and bound), a
            `Graph`
            (`load_onnx_graph`, `graph_from_keras`: the graph engine; an L_1
            ball is used exactly in its bounds, its attacks are projected
            onto it), or a `ReluNetwork` / `load_nnet` network (queries are
            then in its normalized space).
        x0: the point (model input shape, or flat), or a batch of points:
            then a list of results is returned and points run in parallel.
        delta: radius of the neighbourhood, > 0.
        norm: "inf" or "1". Defaults to "inf".
        eps: output tolerance for Def. 3; `None` for Def. 1. Defaults to None.
        label_mode: "argmax" or "argmin". Defaults to "argmax".
        domain: optional ``(lower, upper)`` box of valid inputs intersected
            with the neighbourhood. Defaults to the network's own domain (the
            .nnet input ranges) or none.
        timeout: seconds for the whole call; undecided queries get
            ``robust=None``. Defaults to None (no limit).
        workers: processes for the disjuncts: None uses a shared local process
            pool (one worker per CPU), 1 runs sequentially in-process, k > 1 a
            fresh pool of k. On the graph engine the points of a batch are
            the tasks: None and 1 run them in-process, k > 1 on a fresh
            ``spawn`` pool of k. Defaults to None.
        executor: any `concurrent.futures.Executor` (e.g. Dask's or Ray's),
            used instead of ``workers`` (the graph engine sends it one point
            each, the graph pickled with it). Defaults to None.
        method: "auto" (input splitting for <= 16 inputs, else MILP, on a
            `ReluNetwork`; the engine chosen above for a Keras model), "milp"
            or "split" (the chain engine's; a Keras model must then be a
            chain). Defaults to "auto".
        tol: margin a proof must exceed. Defaults to 1e-6.
        lp_tighten: tighten the unstable neurons' bounds with LPs before
            a MILP (once per region). Defaults to True.
        falsify_first: try sampling/gradient counterexamples first.
            Defaults to True.

    Returns:
        A `VerificationResult` (or a list of them for a batch of points).

    Example:

    >>> res = local_robustness(model, x0, delta=0.01)  # doctest: +SKIP
    >>> res.robust, res.counterexample, res.seconds  # doctest: +SKIP
    """
    start = time.time()
    _check_parallel(workers, executor)
    method = validation.one_of("method", method, _METHODS)
    network, keras_model = _as_network(model, strip_softmax=eps is None, method=method)
    points, batched = _points(network, x0)
    delta = validation.positive_float("delta", delta)
    eps = None if eps is None else validation.positive_float("eps", eps)
    norm = _norm(norm)
    validation.one_of("label_mode", label_mode, ("argmax", "argmin"))
    options = _options(method, tol, lp_tighten)
    dom_lo, dom_hi = _domain(network, domain, network.n_inputs)
    if not np.all(np.isfinite(points)):
        raise ValueError(f"x0 must be finite. Received: x0={points.tolist()}")
    outside = np.any((points < dom_lo) | (points > dom_hi), axis=1)
    if np.any(outside):
        raise ValueError(
            f"x0 must lie in the input domain [{dom_lo.tolist()}, {dom_hi.tolist()}]. "
            f"Received: x0={points[outside].tolist()}"
        )
    argmin = label_mode == "argmin"
    properties, labels = [], []
    for x in points:
        region = definitions.local_region(x, delta, norm, (dom_lo, dom_hi))
        y0 = network(x)
        if eps is None:
            label = int(np.argmin(y0) if argmin else np.argmax(y0))
            labels.append(label)
            properties.append(
                definitions.label_property(region, network.n_outputs, label, argmin)
            )
        else:
            labels.append(None)
            properties.append(definitions.output_property(region, y0, eps))

    def model_outputs(xs):
        if keras_model is None:
            return network(xs)
        return keras_forward(keras_model, xs.reshape(len(xs), *network.input_shape))

    def confirm(q, x):
        x = x.reshape(1, -1)
        if eps is None:
            y = model_outputs(x)[0]
            label = labels[q]
            others = np.delete(y, label)
            return bool(
                np.any(others <= y[label]) if argmin else np.any(others >= y[label])
            )
        y = model_outputs(np.concatenate([points[q][None], x]))
        return bool(np.any(np.abs(y[1] - y[0]) >= eps))

    decided = _run(
        network,
        properties,
        confirm,
        _left(timeout, start),
        workers,
        executor,
        options,
        falsify_first,
    )
    results = []
    for q, outcome in enumerate(decided):
        x = outcome.counterexample
        results.append(
            VerificationResult(
                robust=_ROBUST[outcome.status],
                counterexample=None if x is None else x.reshape(network.input_shape),
                seconds=outcome.seconds,
                label=labels[q],
                definition=1 if eps is None else 3,
                delta=delta,
                eps=eps,
                norm=norm,
                bound=outcome.bound,
                details=outcome.outcomes,
            )
        )
    return results if batched else results[0]


def global_robustness(
    model,
    lower,
    upper,
    delta,
    eps,
    norm="inf",
    timeout: float | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    tol: float = 1e-6,
    lp_tighten: bool = True,
    falsify_first: bool = True,
) -> VerificationResult:
    """Proves or refutes (delta, eps)-global robustness on a box (Def. 2).

    For all ``x1, x2`` in ``[lower, upper]`` with ``||x1 - x2|| <= delta``:
    ``|y_l(x1) - y_l(x2)| < eps`` for every output ``l``. Encoded with two
    copies of the network in one MILP per output (the property is symmetric
    in ``x1, x2``, so one direction suffices). The bounds hold over the whole
    box, so this is practical for small networks only (tens of ReLUs).

    Args:
        model: as in `local_robustness`. On a graph (a model that is not an
            affine/ReLU chain) the two copies become one graph over ``(x1,
            x2 - x1)`` (`graph.two_copies`), exact for the L_inf norm; for
            L_1 the difference is bounded by its box (sound proofs; a
            counterexample counts only inside the L_1 region).
        lower, upper: the domain box (scalars or arrays of the input shape).
        delta: > 0. eps: > 0. norm: "inf" or "1". Defaults to "inf".
        timeout, workers, executor, tol, lp_tighten, falsify_first: as in
            `local_robustness`.

    Returns:
        A `VerificationResult` whose counterexample stacks ``x1, x2``.
    """
    start = time.time()
    _check_parallel(workers, executor)
    network, keras_model = _as_network(model, strip_softmax=False, chain="always")
    delta = validation.positive_float("delta", delta)
    eps = validation.positive_float("eps", eps)
    norm = _norm(norm)
    options = _options(
        "milp" if isinstance(network, ReluNetwork) else "auto", tol, lp_tighten
    )
    n = network.n_inputs
    box_lo, box_hi = _domain(network, (lower, upper), n)
    if not (np.all(np.isfinite(box_lo)) and np.all(np.isfinite(box_hi))):
        raise ValueError(
            "global_robustness needs a bounded box: lower and upper must be finite. "
            f"Received: lower={lower}, upper={upper}"
        )
    prop = definitions.global_property(
        box_lo, box_hi, network.n_outputs, delta, eps, norm
    )

    def confirm(q, x):
        if keras_model is None:
            y = network(x)
        else:
            y = keras_forward(keras_model, x.reshape(2, *network.input_shape))
        return bool(np.any(np.abs(y[0] - y[1]) >= eps))

    (outcome,) = _run(
        network,
        [prop],
        confirm,
        _left(timeout, start),
        workers,
        executor,
        options,
        falsify_first,
    )
    x = outcome.counterexample
    return VerificationResult(
        robust=_ROBUST[outcome.status],
        counterexample=None if x is None else x.reshape(2, *network.input_shape),
        seconds=outcome.seconds,
        label=None,
        definition=2,
        delta=delta,
        eps=eps,
        norm=norm,
        bound=outcome.bound,
        details=outcome.outcomes,
    )


def max_robust_delta(
    model,
    x0,
    eps=None,
    norm="inf",
    upper: float = 1.0,
    precision: float = 1e-3,
    **kwargs,
) -> MaxDeltaResult:
    """The largest delta for which ``x0`` is robust, by binary search.

    Each step is a `local_robustness` query (Def. 1, or Def. 3 with ``eps``).
    An undecided step is treated as "not proven" (the search moves down and
    ``exact`` becomes False), so ``delta`` is always a proven radius.

    Args:
        model, x0, eps, norm: as in `local_robustness`.
        upper: the largest radius tried. Defaults to 1.0.
        precision: stop when the bracket is narrower. Defaults to 1e-3.
        **kwargs: passed to `local_robustness` (timeout per query, workers...).

    Returns:
        A `MaxDeltaResult`.
    """
    upper = validation.positive_float("upper", upper)
    precision = validation.positive_float("precision", precision)
    start = time.time()
    queries = []
    first = local_robustness(model, x0, upper, norm=norm, eps=eps, **kwargs)
    queries.append(first)
    if first.robust:
        return MaxDeltaResult(upper, upper, False, None, time.time() - start, queries)
    lo, hi = 0.0, upper
    exact, witness = first.robust is False, first.counterexample
    while hi - lo > precision:
        mid = 0.5 * (lo + hi)
        res = local_robustness(model, x0, mid, norm=norm, eps=eps, **kwargs)
        queries.append(res)
        if res.robust:
            lo = mid
        else:
            hi = mid
            exact, witness = res.robust is False, res.counterexample
    return MaxDeltaResult(lo, hi, exact, witness, time.time() - start, queries)
