"""Batched bounds (`batch_bounds`) and batched input splitting (`input_split`)
against brute force: sampled pre-activations, exact minima by activation
pattern, the triangle relaxation's LP, and verdicts of the joint search."""

import numpy as np
import pytest
from scipy.optimize import linprog
from verify_brute import exact_min_margin, forward, random_net

from keras_ndsru.verify import ReluNetwork
from keras_ndsru.verify.bounds import batched as bb
from keras_ndsru.verify.outcomes.outcome import Status
from keras_ndsru.verify.properties.spec import Disjunct, Property, Region
from keras_ndsru.verify.search.input_split import search


def random_boxes(rng, n, count, scale=1.0):
    lower = rng.uniform(-1, 1, (count, n))
    return lower, lower + rng.uniform(0.05, scale, (count, n))


def pre_activations(net, x):
    out, h = [], x
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        z = h @ w.T + b
        out.append(z)
        h = np.maximum(z, 0)
    return out


def samples(rng, lower, upper, count=400):
    x = rng.uniform(lower, upper, (count, lower.size))
    corners = np.where(rng.integers(0, 2, x.shape), lower, upper)
    return np.concatenate([x, corners])


def test_layer_bounds_contain_sampled_pre_activations():
    rng = np.random.default_rng(0)
    for _ in range(4):
        weights, biases = random_net(rng, [4, 12, 10, 10, 3])
        net = ReluNetwork(weights, biases)
        lower, upper = random_boxes(rng, 4, 30)
        layers = bb.hidden_bounds(net, lower, upper)
        cheap = bb.hidden_bounds(net, lower, upper, backward=False)
        for b in range(30):
            zs = pre_activations(net, samples(rng, lower[b], upper[b]))
            for (lo, hi), (clo, chi), z in zip(layers, cheap, zs):
                assert np.all(z >= lo[b] - 1e-9) and np.all(z <= hi[b] + 1e-9)
                assert np.all(z >= clo[b] - 1e-9) and np.all(z <= chi[b] + 1e-9)


def test_known_bounds_are_intersected_and_half_boxes_are_no_looser():
    rng = np.random.default_rng(1)
    weights, biases = random_net(rng, [3, 10, 10, 10, 2])
    net = ReluNetwork(weights, biases)
    lower, upper = random_boxes(rng, 3, 20, scale=1.5)
    parent = bb.hidden_bounds(net, lower, upper)
    mid = 0.5 * (lower + upper)
    halves = [(lower, np.where(np.arange(3) == d, mid, upper)) for d in range(3)]
    for lo_box, hi_box in halves:
        child = bb.hidden_bounds(net, lo_box, hi_box, known=parent)
        for b in range(20):
            zs = pre_activations(net, samples(rng, lo_box[b], hi_box[b]))
            for (lo, hi), (plo, phi), z in zip(child, parent, zs):
                assert np.all(lo[b] >= plo[b]) and np.all(hi[b] <= phi[b])
                assert np.all(z >= lo[b] - 1e-9) and np.all(z <= hi[b] + 1e-9)


def triangle_lp(net, layers, lower, upper, mat, rhs):
    """min over the triangle relaxation of max_i (mat_i y - rhs_i) (scipy)."""
    n = lower.size
    sizes = [b.size for b in net.biases[:-1]]
    # variables: x, then per hidden layer (z, a), then t
    offsets, total = [], n
    for size in sizes:
        offsets.append(total)
        total += 2 * size
    t = total
    total += 1
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    prev = np.arange(n)
    for k, size in enumerate(sizes):
        z0, a0 = offsets[k], offsets[k] + size
        lo, hi = layers[k][0], layers[k][1]
        for j in range(size):
            row = np.zeros(total)
            row[z0 + j] = 1.0
            row[prev] -= net.weights[k][j]
            a_eq.append(row)
            b_eq.append(net.biases[k][j])
            z, a = z0 + j, a0 + j
            if lo[j] >= 0:
                row = np.zeros(total)
                row[a], row[z] = 1.0, -1.0
                a_eq.append(row)
                b_eq.append(0.0)
            elif hi[j] <= 0:
                row = np.zeros(total)
                row[a] = 1.0
                a_eq.append(row)
                b_eq.append(0.0)
            else:
                row = np.zeros(total)
                row[z], row[a] = 1.0, -1.0  # a >= z
                a_ub.append(row)
                b_ub.append(0.0)
                slope = hi[j] / (hi[j] - lo[j])
                row = np.zeros(total)
                row[a], row[z] = 1.0, -slope  # a <= s (z - l)
                a_ub.append(row)
                b_ub.append(-slope * lo[j])
        prev = np.arange(a0, a0 + size)
    for r, bound in zip(mat, rhs):
        coef = r @ net.weights[-1]
        row = np.zeros(total)
        row[prev] = coef
        row[t] = -1.0
        a_ub.append(row)
        b_ub.append(bound - r @ net.biases[-1])
    bounds = [*zip(lower, upper)]
    for size in sizes:
        bounds += [(None, None)] * size + [(0, None)] * size
    bounds.append((None, None))
    cost = np.zeros(total)
    cost[t] = 1.0
    res = linprog(
        cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs"
    )
    assert res.status == 0
    return res.fun


@pytest.mark.parametrize("rows", [1, 3])
def test_margin_bounds_are_sound_and_optimization_approaches_the_lp(rows):
    rng = np.random.default_rng(2 + rows)
    closed, gaps = [], []
    for _ in range(6):
        weights, biases = random_net(rng, [3, 7, 6, 4])
        net = ReluNetwork(weights, biases)
        lower, upper = random_boxes(rng, 3, 6, scale=0.8)
        mat, rhs = rng.normal(size=(rows, 4)), rng.normal(size=rows) * 0.3
        layers = bb.hidden_bounds(net, lower, upper)
        single, coef, offset = bb.row_bounds(net, layers, lower, upper, mat, -rhs)
        start, _, _ = bb.optimized_bounds(net, layers, lower, upper, mat, rhs, steps=0)
        best, lin, const = bb.optimized_bounds(
            net, layers, lower, upper, mat, rhs, steps=60
        )
        for b in range(6):
            region = Region(lower[b], upper[b])
            exact = exact_min_margin(weights, biases, region, Disjunct(mat, rhs))
            box = [(lo[b : b + 1], hi[b : b + 1]) for lo, hi in layers]
            lp = triangle_lp(
                net, [(lo[0], hi[0]) for lo, hi in box], lower[b], upper[b], mat, rhs
            )
            for value in (single[b].max(), start[b], best[b]):
                assert value <= exact + 1e-9
                assert value <= lp + 1e-7  # a dual of the same relaxation
            assert best[b] >= start[b] - 1e-12
            # Linear lower bounds hold pointwise, and so does the margin's.
            x = samples(rng, lower[b], upper[b], 200)
            y = forward(weights, biases, x) @ mat.T - rhs
            assert np.all(y >= x @ coef[b].T + offset[b] - 1e-9)
            assert np.all(y.max(1) >= x @ lin[b] + const[b] - 1e-9)
            if lp - start[b] > 1e-6:
                closed.append((best[b] - start[b]) / (lp - start[b]))
            gaps.append(lp - best[b])
    # The optimized bound closes most of the gap to the LP on average.
    assert np.mean(closed) > 0.5, closed
    assert np.median(gaps) < 0.05, gaps


def test_optimization_stops_at_the_deadline_with_a_sound_bound():
    # Past the deadline only the first (sound) iterate is computed, so a
    # round of the search cannot run far past its instance's timeout.
    rng = np.random.default_rng(3)
    net = ReluNetwork(*random_net(rng, [3, 9, 9, 4]))
    lower, upper = random_boxes(rng, 3, 5)
    mat, rhs = rng.normal(size=(3, 4)), np.zeros(3)
    layers = bb.hidden_bounds(net, lower, upper)
    first, _, _ = bb.optimized_bounds(net, layers, lower, upper, mat, rhs, steps=0)
    late, _, _ = bb.optimized_bounds(
        net, layers, lower, upper, mat, rhs, steps=60, deadline=0.0
    )
    np.testing.assert_array_equal(late, first)


def near_zero_property(rng, weights, biases, n, n_out, margins):
    """Two disjuncts on a box whose exact minimum margins are ``margins``
    (each disjunct's rhs shifted after a first brute-force pass)."""
    lower = rng.uniform(-1, 0, n)
    region = Region(lower, lower + rng.uniform(0.5, 1.5, n))
    cases = []
    for target in margins:
        rows = int(rng.integers(1, 4))
        mat, rhs = rng.normal(size=(rows, n_out)), np.zeros(rows)
        exact = exact_min_margin(weights, biases, region, Disjunct(mat, rhs))
        cases.append(Disjunct(mat, rhs + exact - target))
    return Property(region, tuple(cases))


def test_joint_search_matches_brute_force():
    """Margins of +-0.005 need splitting; the verdicts, proven bounds and
    counterexamples are checked against the exact minima."""
    rng = np.random.default_rng(5)
    split = 0
    for case in range(8):
        weights, biases = random_net(rng, [2, 7, 7, 3])
        net = ReluNetwork(weights, biases)
        margins = [0.005, 0.005] if case % 2 else [0.005, -0.005]
        prop = near_zero_property(rng, weights, biases, 2, 3, margins)
        exact = margins  # by construction
        results, stats = search(net, prop, [0, 1], deadline=1e18, batch=4)
        if min(exact) > 0:
            assert all(r.status is Status.SAFE for r in results)
            for r, e in zip(results, exact):
                assert 0 < r.lower <= e + 1e-9
        else:
            (hit,) = [j for j, r in enumerate(results) if r.status is Status.VIOLATED]
            assert hit == 1
            x = results[hit].x
            assert prop.region.contains(x)
            assert prop.margins(net, x[None])[0, hit] <= 0
        split += stats.rounds > 0
    assert split >= 4  # most cases needed splitting


def test_joint_search_stops_at_the_deadline_with_typed_reasons():
    rng = np.random.default_rng(6)
    net = ReluNetwork(*random_net(rng, [4, 30, 30, 3]))
    prop = Property(
        Region(-np.ones(4), np.ones(4)),
        (Disjunct(np.array([[1.0, -1.0, 0.0]]), np.array([-50.0])),),
    )
    results, stats = search(net, prop, [0], deadline=0.0)
    (only,) = results
    # Bounded once (the root), then out of time: unknown, with its reason.
    assert only.status in (Status.SAFE, Status.UNKNOWN)
    if only.status is Status.UNKNOWN:
        assert only.reason.value == "timeout"
    assert stats.rounds == 0
