"""`chain_from_graph`: which graphs are affine/ReLU chains, and the chain
computes the graph (float64) on random inputs."""

import numpy as np
import pytest

from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.chain import chain_from_graph, chain_reason
from keras_ndsru.verify.graph.graph import Graph
from keras_ndsru.verify.graph.network import NotAChain


def _dense(graph, x, n_in, n_out, rng, name):
    w = rng.normal(size=(n_in, n_out))
    return graph.add(ops.MatMul(w, rng.normal(size=n_out)), [x], name)


def test_parallel_branches_constants_and_sums_form_layers():
    """Two ReLU branches of one input are one layer; a Concat with a
    constant and a Scale inside a layer stay affine."""
    rng = np.random.default_rng(0)
    g = Graph((3,))
    a = g.add(ops.ReLU(), [_dense(g, 0, 3, 4, rng, "a")], "relu_a")
    b = g.add(ops.ReLU(), [_dense(g, 0, 3, 2, rng, "b")], "relu_b")
    c = g.add(ops.Constant(rng.normal(size=3)), [0], "c")
    joined = g.add(ops.Concat(0), [a, b, c], "concat")
    scaled = g.add(ops.Scale(rng.uniform(0.5, 2, 9), rng.normal(size=9)), [joined], "s")
    h = g.add(ops.ReLU(), [_dense(g, scaled, 9, 5, rng, "d")], "relu_h")
    g.output = _dense(g, h, 5, 2, rng, "out")
    assert chain_reason(g) is None
    net = chain_from_graph(g)
    assert net.hidden_sizes == [6, 5]
    x = rng.normal(size=(64, 3))
    np.testing.assert_allclose(net(x), g(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "build, message",
    [
        ("residual", "adds tensors from before and after a ReLU"),
        ("sigmoid", "is a Sigmoid, not affine or ReLU"),
        ("too large", "would be a dense 6 x 3 matrix"),
    ],
)
def test_not_a_chain_names_the_node(build, message):
    rng = np.random.default_rng(1)
    g = Graph((3,))
    h = g.add(ops.ReLU(), [_dense(g, 0, 3, 6, rng, "first")], "relu")
    if build == "residual":
        back = g.add(ops.MatMul(rng.normal(size=(3, 6))), [0], "skip")
        h = g.add(ops.Sum((1, 1)), [h, back], "add")
    elif build == "sigmoid":
        h = g.add(ops.Sigmoid(), [h], "sigmoid")
    g.output = _dense(g, h, 6, 2, rng, "out")
    limit = 17 if build == "too large" else 10**6
    with pytest.raises(NotAChain, match=message):
        chain_from_graph(g, max_entries=limit)
    assert chain_reason(g, max_entries=limit) is not None
