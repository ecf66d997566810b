"""Across machines: the verifier's executor protocol on Dask distributed.

A `LocalCluster` of two worker *processes* stands in for machines: the
network reaches each worker once by reference (a worker that lacks it answers
`NetworkMissing` and gets it attached once), and the verdicts equal the
sequential ones and the brute-force oracle's.
"""

import logging
import os

import numpy as np
import pytest
from verify_brute import def1_min_margin, random_net

distributed = pytest.importorskip("distributed")

from keras_ndsru.verify import ReluNetwork, local_robustness  # noqa: E402
from keras_ndsru.verify.search import schedule  # noqa: E402

AMBIGUOUS = 1e-5


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def case():
    """A network, six points and their exact Def. 1 margins (brute force)."""
    rng = np.random.default_rng(21)
    weights, biases = random_net(rng, [2, 6, 6, 3])
    points = rng.uniform(-1, 1, size=(6, 2))
    delta = 0.3
    exact = [def1_min_margin(weights, biases, x, delta, "inf") for x in points]
    return ReluNetwork(weights, biases), points, delta, exact


@pytest.mark.parametrize("method", ["auto", "milp"])
def test_points_on_dask_workers_match_sequential_and_brute_force(client, case, method):
    net, points, delta, exact = case
    seq = local_robustness(
        net, points, delta, workers=1, method=method, falsify_first=False
    )
    executor = client.get_executor(pure=False)
    par = local_robustness(
        net, points, delta, executor=executor, method=method, falsify_first=False
    )
    decided = 0
    for s, p, e in zip(seq, par, exact):
        if abs(e) > AMBIGUOUS:
            assert s.robust == p.robust == (e > 0)
            decided += 1
    assert decided >= 4
    remote = [d for r in par for d in r.details if d.method != "bounds"]
    assert remote and all(d.pid != os.getpid() for d in remote)


def test_workers_hold_the_network_by_reference(client):
    rng = np.random.default_rng(22)
    net = ReluNetwork(*random_net(rng, [2, 8, 8, 3]))
    points = rng.uniform(-1, 1, size=(4, 2))
    executor = client.get_executor(pure=False)
    local_robustness(net, points, 0.5, executor=executor, falsify_first=False)
    held = client.run(lambda: sorted(schedule._NETWORKS))
    assert any(net.key in keys for keys in held.values())


def test_graph_points_on_dask_workers_match_brute_force(client, case):
    """The graph engine sends each point to a worker with the graph."""
    from graph_nets import relu_graph

    net, points, delta, exact = case
    graph = relu_graph(net.weights, net.biases)
    executor = client.get_executor(pure=False)
    results = local_robustness(graph, points, delta, executor=executor, timeout=120)
    for res, value, x0 in zip(results, exact, points):
        if abs(value) < AMBIGUOUS:
            continue
        assert res.robust == (value > 0)
        if res.robust is False:
            assert np.abs(res.counterexample - x0).max() <= delta
