"""The graph engine's complete decision (attack, alpha-CROWN, beta-CROWN
branch and bound) against brute force: exact minima of small ReLU networks
over boxes, found by enumerating activation patterns (`verify_brute`)."""

import time

import numpy as np
import pytest
from graph_nets import relu_graph
from verify_brute import (
    def1_min_margin,
    exact_min_margin,
    forward,
    min_global,
    random_net,
)

from keras_ndsru.verify import global_robustness, local_robustness
from keras_ndsru.verify.outcomes.outcome import Method, Reason, Status
from keras_ndsru.verify.properties.spec import Disjunct, Property, Region
from keras_ndsru.verify.search import bab
from keras_ndsru.verify.search.complete import GraphOptions, decide_graph


def _case(seed):
    rng = np.random.default_rng(seed)
    weights, biases = random_net(rng, [2, 6, 6, 3], scale=1.5)
    center = rng.uniform(-1, 1, 2)
    region = Region(center - 0.6, center + 0.6)
    mat = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    return weights, biases, region, mat


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gap", [-0.05, 0.05])
def test_verdicts_match_exact_minima(seed, gap):
    """Unsafe set ``mat_i @ y <= t_i`` per row (two disjuncts), thresholds a
    little below (safe) or above (unsafe) the exact minima."""
    weights, biases, region, mat = _case(seed)
    exact = [
        exact_min_margin(weights, biases, region, Disjunct(row[None], np.zeros(1)))
        for row in mat
    ]
    rhs = np.array(exact) + gap
    prop = Property(region, [Disjunct(row[None], t[None]) for row, t in zip(mat, rhs)])
    graph = relu_graph(weights, biases)
    options = GraphOptions(device="cpu", restarts=2, steps=5)
    outcomes = decide_graph(graph, prop, time.time() + 120, options)
    if gap < 0:
        assert all(o.status is Status.SAFE for o in outcomes), outcomes
        assert len(outcomes) == 2 and outcomes[0].lower > 0
    else:
        assert outcomes[0].status is Status.VIOLATED, outcomes
        x = outcomes[0].x
        assert region.contains(x)
        assert prop.margins(graph, x[None])[0, outcomes[0].disjunct] <= 0


def test_branch_and_bound_proves_what_bounds_alone_cannot():
    """Thresholds just below the exact minimum: the root bound fails and
    the search over ReLU splits proves it."""
    proved_by_search = 0
    for seed in range(5):
        weights, biases, region, mat = _case(seed)
        exact = exact_min_margin(
            weights, biases, region, Disjunct(mat[:1], np.zeros(1))
        )
        prop = Property(region, [Disjunct(mat[:1], np.array([exact - 1e-3]))])
        options = GraphOptions(device="cpu", restarts=1, steps=2)
        (outcome,) = decide_graph(
            relu_graph(weights, biases), prop, time.time() + 120, options
        )
        assert outcome.status is Status.SAFE
        proved_by_search += outcome.method is Method.BAB
    assert proved_by_search >= 3


def test_deadline_is_kept():
    rng = np.random.default_rng(0)
    weights, biases = random_net(rng, [20, 64, 64, 64, 2], scale=2.0)
    region = Region(-np.ones(20), np.ones(20))
    prop = Property(region, [Disjunct(np.array([[1.0, -1.0]]), np.array([0.0]))])
    graph = relu_graph(weights, biases)
    start = time.time()
    (outcome,) = decide_graph(graph, prop, start + 1.0, GraphOptions(device="cpu"))
    assert time.time() - start < 3.0
    if outcome.status is Status.VIOLATED:  # else UNKNOWN: proving takes longer
        assert prop.margins(graph, outcome.x[None])[0, outcome.disjunct] <= 0
    else:
        assert outcome.status is Status.UNKNOWN and outcome.reason is Reason.TIMEOUT


def test_search_ends_with_the_round_that_passes_the_deadline(monkeypatch):
    """A round whose bounding ends past the deadline is the last: no float64
    re-certification, branching or corner probe after it (on image networks
    those took 10-25 s past an in-process timeout)."""
    weights, biases, region, mat = _case(0)
    exact = exact_min_margin(weights, biases, region, Disjunct(mat[:1], np.zeros(1)))
    prop = Property(region, [Disjunct(mat[:1], np.array([exact - 1e-3]))])
    deadline = time.time() + 5.0
    late = []
    bound, branches = bab._bound, bab._with_branches

    def slow_bound(*args, **kwargs):
        children = bound(*args, **kwargs)
        time.sleep(max(deadline - time.time(), 0.0) + 0.05)
        return children

    def recorded_branches(*args, **kwargs):
        late.append(time.time() > deadline)
        return branches(*args, **kwargs)

    monkeypatch.setattr(bab, "_bound", slow_bound)
    monkeypatch.setattr(bab, "_with_branches", recorded_branches)
    options = GraphOptions(device="cpu", restarts=1, steps=2)
    (outcome,) = decide_graph(relu_graph(weights, biases), prop, deadline, options)
    assert outcome.status is Status.UNKNOWN and outcome.reason is Reason.TIMEOUT
    assert outcome.lower < 0
    assert late and not any(late), late
    assert time.time() < deadline + 1.0


def test_general_input_constraints_are_refused():
    weights, biases, region, mat = _case(0)
    constrained = Region(
        region.lower, region.upper, a_ub=np.ones((1, 2)), b_ub=np.zeros(1)
    )
    prop = Property(constrained, [Disjunct(mat[:1], np.zeros(1))])
    with pytest.raises(ValueError, match="no general input constraints"):
        decide_graph(relu_graph(weights, biases), prop, time.time() + 5)


@pytest.mark.parametrize("seed", [1, 3])
def test_l1_ball_verdicts_match_exact_minima(seed):
    """Def. 1 over an L_1 ball (the graph engine's bounds use the ball
    exactly; attacks are projected onto it) against the exact minimum."""
    rng = np.random.default_rng(seed)
    weights, biases = random_net(rng, [2, 6, 6, 3], scale=1.5)
    graph = relu_graph(weights, biases)
    decided = []
    for _ in range(3):
        x0 = rng.uniform(-1, 1, 2)
        for delta in (0.1, 0.5, 2.5):
            exact = def1_min_margin(weights, biases, x0, delta, "1")
            if abs(exact) < 1e-5:
                continue
            res = local_robustness(graph, x0, delta, norm="1", timeout=20)
            if res.robust is not None:
                assert res.robust == (exact > 0), (x0, delta, exact)
                decided.append(res.robust)
            if res.robust is False:
                assert np.abs(res.counterexample - x0).sum() <= delta
    assert {True, False} <= set(decided)
    assert len(decided) >= 6


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_two_copies_match_exact_minima(norm):
    """Def. 2 on the graph engine (one graph over ``(x1, x2 - x1)``)
    against the exact maximum of ``y_j(x1) - y_j(x2)`` over valid pairs
    (for L_1, ``d`` in its ball on those coordinates)."""
    rng = np.random.default_rng(5)
    weights, biases = random_net(rng, [2, 5, 4], scale=1.0)
    graph = relu_graph(weights, biases)
    lower, upper, delta = np.array([-1.0, -0.5]), np.array([0.5, 1.0]), 0.2
    worst = -min(
        min_global(weights, biases, lower, upper, delta, norm, j) for j in range(4)
    )
    for eps, robust in ((worst * 1.05, True), (worst * 0.9, False)):
        res = global_robustness(graph, lower, upper, delta, eps, norm=norm, timeout=30)
        assert res.robust == robust, (norm, eps, worst)
        if robust is False:
            x1, x2 = res.counterexample
            assert np.all((lower <= x1) & (x1 <= upper) & (lower <= x2) & (x2 <= upper))
            gap = np.abs(x2 - x1)
            assert (gap.max() if norm == "inf" else gap.sum()) <= delta
            assert (
                np.abs(
                    forward(weights, biases, x1) - forward(weights, biases, x2)
                ).max()
                >= eps
            )


def test_points_run_in_parallel_on_an_executor():
    """A batch of points on the graph engine: one task per point on a thread
    pool and on a spawn process pool, the same verdicts as in-process."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    weights, biases = random_net(rng, [2, 6, 6, 3], scale=1.5)
    graph = relu_graph(weights, biases)
    points = rng.uniform(-1, 1, (4, 2))
    delta = 0.8
    expected = [def1_min_margin(weights, biases, x0, delta, "inf") > 0 for x0 in points]
    assert {True, False} <= set(expected)
    serial = local_robustness(graph, points, delta, workers=1)
    with ThreadPoolExecutor(2) as pool:
        threaded = local_robustness(graph, points, delta, executor=pool)
    spawned = local_robustness(graph, points, delta, workers=2, timeout=120)
    for results in (serial, threaded, spawned):
        assert [r.robust for r in results] == expected
        for r, x0 in zip(results, points):
            if r.robust is False:
                assert np.abs(r.counterexample - x0).max() <= delta


def test_check_takes_a_graph():
    """`verifier.check` (the public `check`) decides properties of a Graph."""
    from keras_ndsru.verify import check

    weights, biases, region, mat = _case(1)
    graph = relu_graph(weights, biases)
    exact = exact_min_margin(weights, biases, region, Disjunct(mat[:1], np.zeros(1)))
    props = [
        Property(region, [Disjunct(mat[:1], np.array([exact + gap]))])
        for gap in (-0.05, 0.05)
    ]
    safe, violated = check(graph, props, timeout=30)
    assert safe.status is Status.SAFE and violated.status is Status.VIOLATED
    assert mat[0] @ graph(violated.counterexample.ravel()) <= exact + 0.05
