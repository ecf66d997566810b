"""The public queries: Def. 1, 2 and 3 of Katz et al. (arXiv 1709.02802)."""

from __future__ import annotations

import time
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np

from keras_ndsru.verify import search
from keras_ndsru.verify.falsify import falsify, in_region
from keras_ndsru.verify.max_delta_result import MaxDeltaResult
from keras_ndsru.verify.network import ReluNetwork, from_keras, keras_forward
from keras_ndsru.verify.result import VerificationResult

_NORMS = {"inf": "inf", "linf": "inf", np.inf: "inf", "1": "1", "l1": "1", 1: "1"}
_METHODS = ("auto", "milp", "split")


def _as_network(model, strip_softmax):
    if isinstance(model, ReluNetwork):
        return model, None
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        keras = None
    if keras is not None and isinstance(model, keras.Model):
        return from_keras(model, strip_softmax=strip_softmax), model
    raise TypeError(
        "Expected a keras.Model or a network from load_nnet/ReluNetwork. "
        f"Received: model={type(model).__name__}"
    )


def _positive(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = np.nan
    if not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"{name} must be a positive finite number. Received: {name}={value}"
        )
    return value


def _norm(norm):
    key = norm.lower() if isinstance(norm, str) else norm
    if key not in _NORMS:
        raise ValueError(f"norm must be 'inf' or '1'. Received: norm={norm!r}")
    return _NORMS[key]


def _options(method, tol, lp_tighten):
    if method not in _METHODS:
        raise ValueError(
            f"method must be one of {_METHODS}. Received: method={method!r}"
        )
    return search.Options(method=method, tol=float(tol), lp_tighten=bool(lp_tighten))


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
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(
            f"workers must be None or an int >= 1. Received: workers={workers!r}"
        )


def _executor(workers, executor):
    """(executor or None for in-process, whether we own it)."""
    if executor is not None:
        return executor, False
    if workers is None:
        return search.default_executor(), False
    if workers == 1:
        return None, False
    return ProcessPoolExecutor(workers, mp_context=search.process_context()), True


def _ball_box(x, delta, dom_lo, dom_hi):
    """The L_inf box of the ball in the domain, rounded inwards so that every
    point of it is within ``delta`` of ``x`` in floating point too."""
    lower, upper = x - delta, x + delta
    lower = np.where(x - lower > delta, np.nextafter(lower, np.inf), lower)
    upper = np.where(upper - x > delta, np.nextafter(upper, -np.inf), upper)
    return np.maximum(lower, dom_lo), np.minimum(upper, dom_hi)


def _label_disjuncts(network, lower, upper, x0, label, argmin, norm, delta):
    k = network.n_outputs
    out = []
    for j in range(k):
        if j == label:
            continue
        coef = np.zeros((1, k))
        # margin = y_l - y_j (argmax) or y_j - y_l (argmin); <= 0 is a violation.
        coef[0, label], coef[0, j] = (-1.0, 1.0) if argmin else (1.0, -1.0)
        relation = "<=" if argmin else ">="
        out.append(
            search.Disjunct(
                network.weights,
                network.biases,
                lower,
                upper,
                coef,
                0.0,
                norm=norm,
                delta=delta,
                center=x0,
                description=f"y[{j}] {relation} y[{label}]",
            )
        )
    return out


def _output_disjuncts(network, lower, upper, x0, y0, eps, norm, delta):
    k = network.n_outputs
    out = []
    for j in range(k):
        for sign in (1.0, -1.0):
            coef = np.zeros((1, k))
            coef[0, j] = -sign
            # margin = eps - sign * (y_j(x) - y_j(x0))
            out.append(
                search.Disjunct(
                    network.weights,
                    network.biases,
                    lower,
                    upper,
                    coef,
                    eps + sign * y0[j],
                    norm=norm,
                    delta=delta,
                    center=x0,
                    description=f"{'+' if sign > 0 else '-'}(y[{j}] - y0[{j}]) >= eps",
                )
            )
    return out


def _run(
    queries,
    checks,
    timeout,
    workers,
    executor,
    options,
    falsify_first,
):
    """Falsify, screen with bounds, then solve what remains; returns outcomes."""
    start = time.time()
    if timeout is not None and not float(timeout) >= 0:
        raise ValueError(
            f"timeout must be >= 0 seconds or None. Received: timeout={timeout}"
        )
    deadline = start + (float(timeout) if timeout is not None else 1e9)
    outcomes = [[] for _ in queries]
    todo, todo_index = [], []
    rng = np.random.default_rng(options.seed)
    pre_seconds = []
    for q, disjuncts in enumerate(queries):
        tick = time.time()
        pre_seconds.append(0.0)
        if falsify_first:
            x, value, i = falsify(disjuncts, rng=rng)
            outcome = {
                "status": "violated",
                "x": x,
                "margin": value,
                "method": "falsify",
                "description": disjuncts[i].description,
                "disjunct": i,
            }
            if value <= 0 and in_region(disjuncts[i], x) and checks(q, i, outcome):
                outcomes[q].append(outcome)
                pre_seconds[q] = time.time() - tick
                todo.append([])
                todo_index.append((q, []))
                continue
        remaining = []
        for i, problem in enumerate(disjuncts):
            lower = search.bound_margin(problem, problem.region())[0]
            if lower > options.tol:
                outcomes[q].append(
                    {
                        "status": "robust",
                        "lower": lower,
                        "method": "bounds",
                        "description": problem.description,
                        "disjunct": i,
                    }
                )
            else:
                remaining.append(i)
        todo.append([disjuncts[i] for i in remaining])
        todo_index.append((q, remaining))
        pre_seconds[q] = time.time() - tick
    total_tasks = sum(len(t) for t in todo)
    pool, owned = (None, False)
    if total_tasks > 1:
        pool, owned = _executor(workers, executor)
    try:
        deadlines = [deadline] * len(todo)

        def confirm(t, i, outcome):
            q, remaining = todo_index[t]
            return checks(q, remaining[i], outcome)

        solved = search.run_tasks(todo, pool, deadlines, options, confirm)
    finally:
        if owned:
            pool.shutdown(wait=False, cancel_futures=True)
    for t, results in enumerate(solved):
        q, remaining = todo_index[t]
        for outcome in results:
            outcome["disjunct"] = remaining[outcome["disjunct"]]
            outcomes[q].append(outcome)
    seconds = [
        pre + sum(o.get("seconds", 0.0) for o in outs)
        for pre, outs in zip(pre_seconds, outcomes)
    ]
    if len(queries) == 1:
        seconds = [time.time() - start]
    return outcomes, seconds


def _verdict(outcomes, n_disjuncts):
    violated = [o for o in outcomes if o["status"] == "violated"]
    if violated:
        return False, violated[0]["x"], None
    robust = [o for o in outcomes if o["status"] == "robust"]
    if len(robust) == n_disjuncts:
        return True, None, float(min((o["lower"] for o in robust), default=np.inf))
    return None, None, None


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
        model: a `keras.Model` of supported layers, or a `ReluNetwork` /
            `load_nnet` network (queries are then in its normalized space).
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
            fresh pool of k. Defaults to None.
        executor: any `concurrent.futures.Executor` (e.g. Dask's or Ray's),
            used instead of ``workers``. Defaults to None.
        method: "auto" (input splitting for <= 16 inputs, else MILP), "milp"
            or "split". Defaults to "auto".
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
    _check_parallel(workers, executor)
    network, keras_model = _as_network(model, strip_softmax=eps is None)
    points, batched = _points(network, x0)
    delta = _positive("delta", delta)
    eps = _positive("eps", eps, allow_none=True)
    norm = _norm(norm)
    if label_mode not in ("argmax", "argmin"):
        raise ValueError(
            f"label_mode must be 'argmax' or 'argmin'. Received: label_mode={label_mode!r}"
        )
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
    queries, labels, y0s = [], [], []
    for x in points:
        lower, upper = _ball_box(x, delta, dom_lo, dom_hi)
        y0 = network(x)
        y0s.append(y0)
        if eps is None:
            label = int(np.argmin(y0) if argmin else np.argmax(y0))
            labels.append(label)
            queries.append(
                _label_disjuncts(network, lower, upper, x, label, argmin, norm, delta)
            )
        else:
            labels.append(None)
            queries.append(
                _output_disjuncts(network, lower, upper, x, y0, eps, norm, delta)
            )

    def model_outputs(xs):
        if keras_model is None:
            return network(xs)
        return keras_forward(keras_model, xs.reshape(len(xs), *network.input_shape))

    def checks(q, i, outcome):
        x = np.asarray(outcome["x"]).reshape(1, -1)
        if not in_region(queries[q][i], x):
            return False
        if eps is None:
            y = model_outputs(x)[0]
            label = labels[q]
            others = np.delete(y, label)
            return bool(
                np.any(others <= y[label]) if argmin else np.any(others >= y[label])
            )
        y = model_outputs(np.concatenate([points[q][None], x]))
        return bool(np.any(np.abs(y[1] - y[0]) >= eps))

    outcomes, seconds = _run(
        queries,
        checks,
        timeout,
        workers,
        executor,
        options,
        falsify_first,
    )
    results = []
    for q, query_outcomes in enumerate(outcomes):
        robust, x, bound = _verdict(query_outcomes, len(queries[q]))
        results.append(
            VerificationResult(
                robust=robust,
                counterexample=None
                if x is None
                else np.asarray(x).reshape(network.input_shape),
                seconds=seconds[q],
                label=labels[q],
                definition=1 if eps is None else 3,
                delta=delta,
                eps=eps,
                norm=norm,
                bound=bound,
                details=sorted(query_outcomes, key=lambda o: o["disjunct"]),
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
        model: a `keras.Model` or a `ReluNetwork` / `load_nnet` network.
        lower, upper: the domain box (scalars or arrays of the input shape).
        delta: > 0. eps: > 0. norm: "inf" or "1". Defaults to "inf".
        timeout, workers, executor, tol, lp_tighten, falsify_first: as in
            `local_robustness`.

    Returns:
        A `VerificationResult` whose counterexample stacks ``x1, x2``.
    """
    _check_parallel(workers, executor)
    network, keras_model = _as_network(model, strip_softmax=False)
    delta = _positive("delta", delta)
    eps = _positive("eps", eps)
    norm = _norm(norm)
    options = _options("milp", tol, lp_tighten)
    n = network.n_inputs
    box_lo, box_hi = _domain(network, (lower, upper), n)
    if not (np.all(np.isfinite(box_lo)) and np.all(np.isfinite(box_hi))):
        raise ValueError(
            "global_robustness needs a bounded box: lower and upper must be finite. "
            f"Received: lower={lower}, upper={upper}"
        )
    k = network.n_outputs
    disjuncts = []
    for j in range(k):
        coef = np.zeros((2, k))
        coef[0, j], coef[1, j] = -1.0, 1.0  # margin = eps - (y_j(x1) - y_j(x2))
        disjuncts.append(
            search.Disjunct(
                network.weights,
                network.biases,
                box_lo,
                box_hi,
                coef,
                eps,
                copies=2,
                norm=norm,
                delta=delta,
                description=f"y[{j}](x1) - y[{j}](x2) >= eps",
            )
        )

    def checks(q, i, outcome):
        x = np.asarray(outcome["x"]).reshape(2, -1)
        if not in_region(disjuncts[i], x):
            return False
        if keras_model is None:
            y = network(x)
        else:
            y = keras_forward(keras_model, x.reshape(2, *network.input_shape))
        return bool(np.any(np.abs(y[0] - y[1]) >= eps))

    outcomes, seconds = _run(
        [disjuncts],
        checks,
        timeout,
        workers,
        executor,
        options,
        falsify_first,
    )
    robust, x, bound = _verdict(outcomes[0], len(disjuncts))
    return VerificationResult(
        robust=robust,
        counterexample=None
        if x is None
        else np.asarray(x).reshape(2, *network.input_shape),
        seconds=seconds[0],
        label=None,
        definition=2,
        delta=delta,
        eps=eps,
        norm=norm,
        bound=bound,
        details=sorted(outcomes[0], key=lambda o: o["disjunct"]),
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
    upper = _positive("upper", upper)
    precision = _positive("precision", precision)
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
