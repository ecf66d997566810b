"""Properties as data: region geometry and disjunct margins."""

import numpy as np
import pytest
from verify_brute import random_net

from keras_ndsru.verify import ReluNetwork
from keras_ndsru.verify.properties.spec import Disjunct, Property, Region, project_l1


def test_region_membership_and_projection_l1_ball():
    center = np.array([0.2, -0.1, 0.4])
    region = Region(center - 0.5, center + 0.3, norm="1", radius=0.5, center=center)
    rng = np.random.default_rng(0)
    x = region.project(rng.normal(size=(200, 1, 3)))
    assert all(region.contains(p) for p in x)
    assert np.all(np.abs(x[:, 0] - center).sum(1) <= 0.5)
    assert not region.contains(center + np.array([0.3, 0.3, 0.0]))  # L1 = 0.6
    assert not region.contains(center + np.array([0.0, 0.0, 0.31]))  # box
    samples = region.sample(rng, 100)
    assert samples.shape[1:] == (1, 3) and all(region.contains(p) for p in samples)


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_two_copy_region(norm):
    region = Region(-np.ones(2), np.ones(2), copies=2, norm=norm, radius=0.2)
    rng = np.random.default_rng(1)
    x = region.project(rng.uniform(-2, 2, size=(100, 2, 2)))
    for p in x:
        assert region.contains(p)
        diff = np.abs(p[1] - p[0])
        assert (diff.max() if norm == "inf" else diff.sum()) <= 0.2 + 1e-12
    assert not region.contains(np.array([[0.0, 0.0], [0.5, 0.0]]))


def test_linear_input_constraints_and_split():
    region = Region(
        np.zeros(2), np.ones(2), a_ub=np.array([[1.0, 1.0]]), b_ub=np.array([1.0])
    )
    assert region.contains(np.array([0.5, 0.5]))
    assert not region.contains(np.array([0.6, 0.5]))
    left, right = region.split(0)
    assert left.upper[0] == right.lower[0] == 0.5 and left.a_ub is region.a_ub


def test_minimize_is_a_lower_bound_over_the_region():
    rng = np.random.default_rng(2)
    center = rng.normal(size=4)
    region = Region(center - 0.4, center + 0.2, norm="1", radius=0.3, center=center)
    coef, const = rng.normal(size=(5, 4)), rng.normal(size=5)
    low = region.minimize(coef, const)
    x = region.sample(rng, 2000)[:, 0]
    assert np.all(x @ coef.T + const >= low - 1e-12)
    for row in coef:  # candidate vertices, projected, lie in the region
        vertex = region.project(region.minimizer(row)[None, None])[0]
        assert region.contains(vertex)
        assert np.abs(vertex[0] - region.minimizer(row)).max() < 1e-8


def test_property_margins_are_max_over_rows_min_over_disjuncts():
    rng = np.random.default_rng(3)
    net = ReluNetwork(*random_net(rng, [2, 5, 3]))
    first = Disjunct(np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]), np.zeros(2), "a")
    second = Disjunct(np.array([[0.0, 0.0, 1.0]]), np.array([0.5]), "b")
    prop = Property(Region(-np.ones(2), np.ones(2)), (first, second))
    x = rng.uniform(-1, 1, size=(50, 1, 2))
    y = net(x[:, 0])
    expected = np.stack(
        [np.maximum(y[:, 0] - y[:, 1], y[:, 1] - y[:, 2]), y[:, 2] - 0.5], axis=1
    )
    np.testing.assert_allclose(prop.margins(net, x), expected)
    inside = int(np.argmin(expected.min(1)))
    hit = prop.violated_by(net, x[inside, 0])
    assert (hit is not None) == (expected[inside].min() <= 0)
    assert prop.violated_by(net, np.array([2.0, 0.0])) is None  # outside


def test_bad_specs_are_reported():
    with pytest.raises(ValueError, match="norm"):
        Region(np.zeros(2), np.ones(2), norm="2")
    with pytest.raises(ValueError, match="mat"):
        Disjunct(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        Property(Region(np.zeros(2), np.ones(2)), ())


def test_project_l1_lands_on_the_ball():
    v = np.random.default_rng(4).normal(size=(20, 6)) * 3
    out = project_l1(v, 1.0)
    assert np.all(np.abs(out).sum(1) <= 1.0)
