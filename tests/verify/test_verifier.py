"""The decision path on properties beyond Defs. 1-3: conjunctions of output
rows and general linear input constraints (VNN-LIB), against brute force;
typed outcomes; the network sent to workers once."""

import time

import numpy as np
import pytest
from verify_brute import exact_min_margin, random_net

from keras_ndsru.verify import ReluNetwork
from keras_ndsru.verify.bounds import symbolic
from keras_ndsru.verify.outcomes.outcome import Method, Reason, Status
from keras_ndsru.verify.properties.spec import Disjunct, Property, Region
from keras_ndsru.verify.search import schedule
from keras_ndsru.verify.search.decide import Options, screen
from keras_ndsru.verify.verifier import check

AMBIGUOUS = 1e-5


def random_property(rng, n_out, linear):
    lower = rng.uniform(-1, 0, 3)
    region = Region(lower, lower + rng.uniform(0.2, 1.0, 3))
    if linear:
        centre = (region.lower + region.upper) / 2
        region = Region(
            region.lower,
            region.upper,
            a_ub=np.array([[1.0, 1.0, 0.0]]),
            b_ub=np.array([centre[0] + centre[1]]),
        )
    disjuncts = []
    for _ in range(2):
        rows = int(rng.integers(1, 4))
        mat = rng.normal(size=(rows, n_out))
        disjuncts.append(Disjunct(mat, rng.normal(size=rows) * 0.5))
    return Property(region, tuple(disjuncts))


@pytest.mark.parametrize("linear", [False, True])
def test_conjunctions_and_linear_inputs_match_brute_force(linear):
    rng = np.random.default_rng(7 if linear else 8)
    statuses = []
    for _ in range(10):
        weights, biases = random_net(rng, [3, 6, 5, 3])
        net = ReluNetwork(weights, biases)
        prop = random_property(rng, 3, linear)
        exact = min(
            exact_min_margin(weights, biases, prop.region, d) for d in prop.disjuncts
        )
        if abs(exact) < AMBIGUOUS:
            continue
        for method in ("milp", "split"):
            for first in (True, False):
                (out,) = check(
                    net, [prop], options=Options(method=method), falsify_first=first
                )
                expected = Status.SAFE if exact > 0 else Status.VIOLATED
                assert out.status is expected, (method, first, exact, out.outcomes)
                if out.status is Status.VIOLATED:
                    assert prop.violated_by(net, out.counterexample) is not None
                    np.testing.assert_allclose(out.outputs, net(out.counterexample[0]))
                else:
                    assert out.bound > 0
        statuses.append(out.status)
    assert {Status.SAFE, Status.VIOLATED} <= set(statuses)


def test_outcomes_are_typed_and_a_timeout_is_a_reason():
    rng = np.random.default_rng(9)
    net = ReluNetwork(*random_net(rng, [4, 30, 30, 3]))
    region = Region(-np.ones(4), np.ones(4))
    prop = Property(region, (Disjunct(np.array([[1.0, -1.0, 0.0]]), np.array([-5.0])),))
    (out,) = check(
        net, [prop], timeout=0.0, options=Options(method="milp"), falsify_first=False
    )
    assert out.status is Status.UNKNOWN
    (only,) = out.outcomes
    assert only.status is Status.UNKNOWN and only.reason is Reason.TIMEOUT
    (out,) = check(net, [prop], options=Options(method="milp"))
    assert out.status in (Status.SAFE, Status.VIOLATED)
    assert all(isinstance(o.method, Method) for o in out.outcomes)


def test_the_bounds_stage_keeps_the_deadline(monkeypatch):
    """Symbolic back-substitution of wide layers took 53 s of a Keras conv
    net's local_robustness(timeout=30); past the deadline the remaining
    layers keep their interval bounds and the answer comes on time."""
    rng = np.random.default_rng(12)
    net = ReluNetwork(*random_net(rng, [4, 20, 20, 20, 20, 20, 20, 3]))
    prop = Property(
        Region(-np.ones(4), np.ones(4)),
        (Disjunct(np.array([[1.0, -1.0, 0.0]]), np.array([-50.0])),),
    )
    slow = symbolic._back_substitute

    def slower(*args, **kwargs):
        time.sleep(0.4)
        return slow(*args, **kwargs)

    monkeypatch.setattr(symbolic, "_back_substitute", slower)
    start = time.time()
    (out,) = check(net, [prop], timeout=1.0, options=Options(method="milp"))
    # Before: 10 layer bounds + the margin bound, 0.4 s each, = 4.4 s at least.
    assert time.time() - start < 2.5
    assert out.status is not Status.VIOLATED  # -50 is far below every output gap


def test_a_counterexample_the_model_rejects_is_not_counted():
    rng = np.random.default_rng(10)
    net = ReluNetwork(*random_net(rng, [2, 4, 2]))
    prop = Property(
        Region(-np.ones(2), np.ones(2)), (Disjunct(np.zeros((1, 2)), np.zeros(1)),)
    )  # every input is unsafe
    (out,) = check(net, [prop], confirm=lambda q, x: False)
    assert out.status is Status.UNKNOWN and out.counterexample is None
    assert all(o.reason is Reason.NOT_CONFIRMED for o in out.outcomes if o.reason)


def test_workers_get_the_network_once_by_reference():
    rng = np.random.default_rng(11)
    net = ReluNetwork(*random_net(rng, [3, 8, 3]))
    prop = Property(
        Region(-np.ones(3), np.ones(3)),
        (Disjunct(np.array([[1.0, 0.0, -1.0]]), np.zeros(1)),),
    )
    (first,) = screen(net, prop)
    task = schedule.Task(0, net.key, prop, (0,), (first,), 1e18, Options(method="milp"))
    saved = dict(schedule._NETWORKS)
    schedule._NETWORKS.clear()
    try:
        assert isinstance(schedule.run_task(task), schedule.NetworkMissing)
        (with_network,) = schedule.run_task(dataclass_replace(task, network=net))
        assert with_network.status in (Status.SAFE, Status.VIOLATED)
        (cached,) = schedule.run_task(task)  # cached now
        assert cached.status is with_network.status
    finally:
        schedule._NETWORKS.clear()
        schedule._NETWORKS.update(saved)


def dataclass_replace(task, **changes):
    import dataclasses

    return dataclasses.replace(task, **changes)
