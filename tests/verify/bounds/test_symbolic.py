"""Bound propagation and LP tightening contain every reachable pre-activation."""

import types

import numpy as np
import pytest
from verify_brute import def1_min_margin, random_net

from keras_ndsru.verify import ReluNetwork, local_robustness  # noqa: E402
from keras_ndsru.verify.bounds import symbolic  # noqa: E402
from keras_ndsru.verify.bounds.symbolic import layer_bounds  # noqa: E402
from keras_ndsru.verify.properties.spec import Region  # noqa: E402
from keras_ndsru.verify.search.milp import neuron_bounds_lp  # noqa: E402


def _pre_activations(weights, biases, x):
    out, h = [], x
    for w, b in zip(weights[:-1], biases[:-1]):
        z = h @ w.T + b
        out.append(z)
        h = np.maximum(z, 0)
    return out


def _samples(rng, region, count):
    x = rng.uniform(region.lower, region.upper, size=(count, len(region.lower)))
    if region.l1_ball:
        diff = x - region.center
        norms = np.abs(diff).sum(1, keepdims=True)
        x = region.center + diff * np.minimum(1, region.radius / norms)
    corners = np.where(rng.integers(0, 2, size=x.shape), region.lower, region.upper)
    if not region.l1_ball:
        x = np.concatenate([x, corners])
    return x


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_bounds_contain_sampled_pre_activations(norm):
    rng = np.random.default_rng(0)
    improved = False
    for _ in range(5):
        weights, biases = random_net(rng, [3, 8, 8, 6, 2])
        x0, delta = rng.uniform(-1, 1, 3), 0.4
        region = Region(x0 - delta, x0 + delta, norm=norm, radius=delta, center=x0)
        net = ReluNetwork(weights, biases)
        bounds = layer_bounds(net, region)
        tightened = []
        for k in range(len(bounds)):
            tightened.append(neuron_bounds_lp(net, region, tightened, bounds[k], k))
        zs = _pre_activations(weights, biases, _samples(rng, region, 4000))
        for (lo, hi), (tlo, thi), z in zip(bounds, tightened, zs):
            assert np.all(z >= lo - 1e-9) and np.all(z <= hi + 1e-9)
            assert np.all(z >= tlo - 1e-9) and np.all(z <= thi + 1e-9)
            assert np.all(tlo >= lo - 1e-12) and np.all(thi <= hi + 1e-12)
        improved |= any(
            np.any(t[0] > b[0] + 1e-6) or np.any(t[1] < b[1] - 1e-6)
            for t, b in zip(tightened, bounds)
        )
    assert improved, "LP tightening never improved a bound"


def test_bounds_cut_short_by_the_deadline_stay_sound(monkeypatch):
    """Past the deadline, back-substitution stops where it is and bounds the
    rest by that layer's output interval (a clock that passes the deadline
    after a few readings cuts substitutions at every depth)."""
    rng = np.random.default_rng(1)
    weights, biases = random_net(rng, [3, 8, 8, 8, 8, 2], scale=1.5)
    net = ReluNetwork(weights, biases)
    x0 = rng.uniform(-1, 1, 3)
    region = Region(x0 - 0.5, x0 + 0.5)
    full = layer_bounds(net, region)
    readings = iter(range(1000))
    clock = types.SimpleNamespace(time=lambda: float(next(readings)))
    monkeypatch.setattr(symbolic, "time", clock)
    cut = layer_bounds(net, region, deadline=6.5)
    zs = _pre_activations(weights, biases, _samples(rng, region, 4000))
    for (lo, hi), z in zip(cut, zs):
        assert np.all(z >= lo - 1e-9) and np.all(z <= hi + 1e-9)
    # The cut happened: the last layers' bounds are looser than in full.
    assert np.any(cut[-1][0] < full[-1][0] - 1e-6)
    assert np.any(cut[-1][1] > full[-1][1] + 1e-6)


def test_verdicts_with_and_without_lp_tightening():
    verdicts = []
    rng = np.random.default_rng(11)
    for _ in range(3):
        weights, biases = random_net(rng, [2, 6, 6, 3])
        x0 = rng.uniform(-1, 1, 2)
        for delta in (0.1, 0.5):
            exact = def1_min_margin(weights, biases, x0, delta, "inf")
            if abs(exact) < 1e-5:
                continue
            for tighten in (True, False):
                res = local_robustness(
                    ReluNetwork(weights, biases),
                    x0,
                    delta,
                    workers=1,
                    method="milp",
                    lp_tighten=tighten,
                    falsify_first=False,
                )
                assert res.robust == (exact > 0)
            verdicts.append(res.robust)
    assert {True, False} <= set(verdicts)


def test_lp_tightening_stops_at_its_deadline():
    """Past the deadline no LP is solved (bounds unchanged, still sound);
    without one the same call tightens."""
    rng = np.random.default_rng(3)
    weights, biases = random_net(rng, [4, 12, 12, 2])
    net = ReluNetwork(weights, biases)
    region = Region(-np.ones(4), np.ones(4))
    bounds = layer_bounds(net, region)
    first = neuron_bounds_lp(net, region, [], bounds[0], 0)
    late = neuron_bounds_lp(net, region, [first], bounds[1], 1, deadline=0.0)
    np.testing.assert_array_equal(late[0], bounds[1][0])
    np.testing.assert_array_equal(late[1], bounds[1][1])
    tight = neuron_bounds_lp(net, region, [first], bounds[1], 1)
    assert np.any(tight[0] > bounds[1][0] + 1e-9) or np.any(
        tight[1] < bounds[1][1] - 1e-9
    )
