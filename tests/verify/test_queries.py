"""Verdicts of the three definitions against the brute-force oracle."""

import concurrent.futures
import os
import time

import numpy as np
import pytest

# The brute-force oracle sits beside this file (pytest runs in importlib mode).
from verify_brute import (
    def1_min_margin,
    def3_min_margin,
    forward,
    min_global,
    random_net,
)

from keras_ndsru.verify import (  # noqa: E402
    ReluNetwork,
    global_robustness,
    local_robustness,
    max_robust_delta,
    queries,  # noqa: E402
)

AMBIGUOUS = 1e-5  # exact margins this close to 0 are not asserted


def _cases(seed, count, sizes):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        weights, biases = random_net(rng, sizes)
        x0 = rng.uniform(-1, 1, size=sizes[0])
        yield weights, biases, x0


def _check_verdicts(verdicts):
    assert {True, False} <= set(verdicts), f"both verdicts expected: {verdicts}"


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_def1_matches_brute_force(norm):
    verdicts = []
    for weights, biases, x0 in _cases(1, 3, [3, 5, 4, 3]):
        net = ReluNetwork(weights, biases)
        label = int(np.argmax(forward(weights, biases, x0)[0]))
        for delta in (0.05, 0.3, 0.6):
            exact = def1_min_margin(weights, biases, x0, delta, norm)
            for method in ("milp", "split"):
                res = local_robustness(
                    net, x0, delta, norm=norm, workers=1, method=method
                )
                assert res.label == label
                if abs(exact) < AMBIGUOUS:
                    continue
                assert res.robust == (exact > 0), (method, delta, exact, res.details)
                verdicts.append(res.robust)
                if res.robust is False:
                    x = res.counterexample
                    diff = np.abs(x - x0)
                    assert (diff.max() if norm == "inf" else diff.sum()) <= delta
                    y = forward(weights, biases, x)[0]
                    assert np.any(np.delete(y, label) >= y[label])
    _check_verdicts(verdicts)


def test_def1_without_falsification_finds_counterexamples_by_search():
    verdicts = []
    for weights, biases, x0 in _cases(2, 4, [2, 6, 3]):
        net = ReluNetwork(weights, biases)
        for delta in (0.1, 0.6):
            exact = def1_min_margin(weights, biases, x0, delta, "inf")
            if abs(exact) < AMBIGUOUS:
                continue
            for method in ("milp", "split"):
                res = local_robustness(
                    net, x0, delta, workers=1, method=method, falsify_first=False
                )
                assert res.robust == (exact > 0)
            verdicts.append(res.robust)
    _check_verdicts(verdicts)


def test_def1_argmin_and_domain():
    verdicts = []
    for weights, biases, x0 in _cases(3, 4, [2, 5, 3]):
        net = ReluNetwork(weights, biases)
        domain = (x0 - 0.1, x0 + 1.0)  # cuts the ball on the lower side
        for delta in (0.2, 0.7):
            exact = def1_min_margin(
                weights, biases, x0, delta, "inf", argmin=True, domain=domain
            )
            if abs(exact) < AMBIGUOUS:
                continue
            res = local_robustness(
                net, x0, delta, label_mode="argmin", domain=domain, workers=1
            )
            assert res.robust == (exact > 0)
            verdicts.append(res.robust)
            if res.robust is False:
                assert np.all(res.counterexample >= domain[0])
    _check_verdicts(verdicts)


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_def3_matches_brute_force(norm):
    verdicts = []
    for weights, biases, x0 in _cases(4, 3, [2, 4, 4, 2]):
        net = ReluNetwork(weights, biases)
        y0 = forward(weights, biases, x0)[0]
        for delta, eps in ((0.05, 0.5), (0.3, 0.02), (0.3, 0.2), (0.3, 2.0)):
            exact = def3_min_margin(weights, biases, x0, delta, norm, eps)
            if abs(exact) < AMBIGUOUS:
                continue
            res = local_robustness(net, x0, delta, norm=norm, eps=eps, workers=1)
            assert res.robust == (exact > 0), (delta, eps, exact)
            assert res.definition == 3
            verdicts.append(res.robust)
            if res.robust is False:
                y = forward(weights, biases, res.counterexample)[0]
                assert np.abs(y - y0).max() >= eps
    _check_verdicts(verdicts)


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_def2_global_matches_brute_force(norm):
    verdicts = []
    for weights, biases, _ in _cases(5, 3, [2, 4, 2]):
        net = ReluNetwork(weights, biases)
        lower, upper = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
        delta = 0.1
        worst = max(
            -min_global(weights, biases, lower, upper, delta, norm, j) for j in range(2)
        )  # the largest output change
        for eps in (0.5 * worst, 1.5 * worst):
            res = global_robustness(net, lower, upper, delta, eps, norm=norm, workers=1)
            assert res.robust == (eps > worst)
            verdicts.append(res.robust)
            if res.robust is False:
                x1, x2 = res.counterexample
                diff = np.abs(x1 - x2)
                assert (diff.max() if norm == "inf" else diff.sum()) <= delta
                y = forward(weights, biases, res.counterexample)
                assert np.abs(y[0] - y[1]).max() >= eps
    _check_verdicts(verdicts)


def test_max_robust_delta_brackets_the_exact_threshold():
    weights, biases, x0 = next(_cases(6, 1, [2, 5, 3]))
    net = ReluNetwork(weights, biases)
    res = max_robust_delta(net, x0, upper=2.0, precision=1e-3, workers=1)
    assert res.exact and res.upper - res.delta <= 1e-3
    assert def1_min_margin(weights, biases, x0, res.delta, "inf") > 0
    y = forward(weights, biases, res.counterexample)[0]
    label = int(np.argmax(forward(weights, biases, x0)[0]))
    assert np.any(np.delete(y, label) >= y[label])


def test_tie_counts_as_not_robust():
    # Two identical output rows: every input is a tie.
    net = ReluNetwork(
        [np.eye(2), np.array([[1.0, 1.0], [1.0, 1.0]])], [np.zeros(2)] * 2
    )
    res = local_robustness(net, np.array([0.5, 0.5]), 0.1, workers=1)
    assert res.robust is False


def test_batch_of_points_parallel_matches_sequential():
    weights, biases, _ = next(_cases(7, 1, [3, 6, 4, 3]))
    net = ReluNetwork(weights, biases)
    points = np.random.default_rng(0).uniform(-1, 1, size=(4, 3))
    seq = local_robustness(net, points, 0.3, workers=1, method="milp")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        par = local_robustness(net, points, 0.3, executor=pool, method="milp")
    exact = [def1_min_margin(weights, biases, x, 0.3, "inf") for x in points]
    for s, p, e in zip(seq, par, exact):
        if abs(e) > AMBIGUOUS:
            assert s.robust == p.robust == (e > 0)


def test_process_pool_executor():
    for seed in (13, 19):  # two disjuncts each left for the solver
        weights, biases, x0 = next(_cases(seed, 1, [2, 8, 8, 3]))
        net = ReluNetwork(weights, biases)
        seq = local_robustness(net, x0, 0.5, workers=1, method="milp")
        for workers in (2, None):  # a fresh pool of 2, the shared default pool
            res = local_robustness(
                net, x0, 0.5, workers=workers, method="milp", falsify_first=False
            )
            assert res.robust == seq.robust is not None
            solved = [d for d in res.details if d.method != "bounds"]
            assert solved and all(d.pid != os.getpid() for d in solved)


def test_timeout_gives_unknown():
    rng = np.random.default_rng(9)
    weights, biases = random_net(rng, [4, 30, 30, 3])
    net = ReluNetwork(weights, biases)
    res = local_robustness(
        net,
        np.zeros(4),
        0.5,
        workers=1,
        method="milp",
        timeout=0.0,
        falsify_first=False,
    )
    assert res.robust is None and res.counterexample is None


def test_reading_the_model_counts_against_the_timeout(monkeypatch):
    """``timeout`` is for the whole call: reading a Keras conv net (then a
    dense lowering) took 8 s that the deadline did not see (33.5 s of
    checking after it, timeout 30)."""
    rng = np.random.default_rng(9)
    net = ReluNetwork(*random_net(rng, [4, 8, 3]))
    given = {}
    as_network, run = queries._as_network, queries._run

    def slow_read(model, strip_softmax, **kwargs):
        time.sleep(0.6)
        return as_network(model, strip_softmax, **kwargs)

    def recorded_run(network, properties, confirm, timeout, *args):
        given.setdefault("timeouts", []).append(timeout)
        return run(network, properties, confirm, timeout, *args)

    monkeypatch.setattr(queries, "_as_network", slow_read)
    monkeypatch.setattr(queries, "_run", recorded_run)
    local_robustness(net, np.zeros(4), 0.1, workers=1, timeout=5.0)
    global_robustness(net, -np.ones(4), np.ones(4), 0.1, 0.5, workers=1, timeout=5.0)
    assert all(t <= 5.0 - 0.6 for t in given["timeouts"]), given


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"delta": 0.0}, "delta"),
        ({"delta": float("nan")}, "delta"),
        ({"norm": "2"}, "norm"),
        ({"eps": -1.0}, "eps"),
        ({"label_mode": "max"}, "label_mode"),
        ({"method": "smt"}, "method"),
        ({"x0": np.zeros(3)}, "shape"),
        ({"x0": np.array([np.inf, 0.0])}, "finite"),
        ({"domain": (np.ones(2), np.full(2, 2.0))}, "domain"),
        ({"domain": (np.ones(2), np.zeros(2))}, "lower <= upper"),
        ({"workers": 0}, "workers"),
        ({"timeout": -1.0}, "timeout"),
    ],
)
def test_bad_arguments_are_reported(kwargs, match):
    net = ReluNetwork([np.ones((3, 2)), np.ones((2, 3))], [np.zeros(3), np.zeros(2)])
    args = {"x0": np.zeros(2), "delta": 0.1, **kwargs}
    if "workers" not in kwargs:
        args["workers"] = 1
    x0 = args.pop("x0")
    with pytest.raises(ValueError, match=match):
        local_robustness(net, x0, **args)


def test_bad_models_and_executors():
    net = ReluNetwork([np.ones((3, 2)), np.ones((2, 3))], [np.zeros(3), np.zeros(2)])
    with pytest.raises(TypeError, match="keras.Model"):
        local_robustness([np.ones((2, 2))], np.zeros(2), 0.1)
    with pytest.raises(TypeError, match="Executor"):
        local_robustness(
            net, np.array([0.3, 0.1]), 1.0, executor="pool", falsify_first=False
        )
    with pytest.raises(ValueError, match="finite"):
        global_robustness(net, -np.inf, 1.0, 0.1, 0.1)
    with pytest.raises(ValueError, match="eps"):
        global_robustness(net, -1.0, 1.0, 0.1, None)


def test_optional_solvers_are_imported_lazily():
    """highspy, scipy, onnx, onnxruntime and torch (the `verify` extra) are
    imported only when used: with all of them missing, the package imports
    and a query on a chain network still runs through its MILP-free path."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('highspy', 'scipy', 'onnx', 'onnxruntime', 'torch'):\n"
        "    sys.modules[name] = None\n"
        "import numpy as np\n"
        "import keras_ndsru.verify as verify\n"
        "net = verify.ReluNetwork([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])\n"
        "print(net(np.ones(2)), hasattr(verify, 'check'))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("[2.] True")


def test_def1_on_a_graph_matches_brute_force():
    """The graph engine (a `Graph`, L_inf neighbourhoods) against the oracle."""
    from graph_nets import relu_graph

    verdicts = []
    for weights, biases, x0 in _cases(5, 3, [3, 5, 4, 3]):
        graph = relu_graph(weights, biases)
        label = int(np.argmax(forward(weights, biases, x0)[0]))
        for delta in (0.05, 0.3, 0.6):
            exact = def1_min_margin(weights, biases, x0, delta, "inf")
            res = local_robustness(graph, x0, delta, timeout=60)
            assert res.label == label
            if abs(exact) < AMBIGUOUS:
                continue
            assert res.robust == (exact > 0), (delta, exact, res.details)
            verdicts.append(res.robust)
            if res.robust is False:
                x = res.counterexample
                assert np.abs(x - x0).max() <= delta
                y = forward(weights, biases, x)[0]
                assert np.any(np.delete(y, label) >= y[label])
    _check_verdicts(verdicts)


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_property_random_networks_verdicts_survive_sampling(norm):
    # Many random networks, no oracle needed: a robust verdict must survive dense
    # sampling of the ball, and a counterexample must really violate.
    rng = np.random.default_rng(21)
    verdicts = []
    for _ in range(12):
        weights, biases = random_net(rng, [3, 10, 8, 4])
        net = ReluNetwork(weights, biases)
        x0, delta = rng.uniform(-1, 1, 3), rng.uniform(0.02, 0.5)
        y0 = forward(weights, biases, x0)[0]
        label = int(np.argmax(y0))
        steps = (
            rng.laplace(size=(3000, 3))
            if norm == "1"
            else rng.uniform(-1, 1, (3000, 3))
        )
        scale = np.abs(steps).sum(1) if norm == "1" else np.abs(steps).max(1)
        pts = x0 + delta * steps / np.maximum(scale, 1.0)[:, None]
        for eps in (None, 0.1):
            res = local_robustness(net, x0, delta, norm=norm, eps=eps, workers=1)
            assert res.robust is not None
            verdicts.append(res.robust)
            y = forward(weights, biases, pts)
            if eps is None:
                bad = np.any(np.delete(y, label, 1) >= y[:, [label]], axis=1)
            else:
                bad = np.any(np.abs(y - y0) >= eps, axis=1)
            if res.robust:
                assert not bad.any()
            else:
                x = res.counterexample
                yx = forward(weights, biases, x)[0]
                if eps is None:
                    assert np.any(np.delete(yx, label) >= yx[label])
                else:
                    assert np.any(np.abs(yx - y0) >= eps)
    _check_verdicts(verdicts)
