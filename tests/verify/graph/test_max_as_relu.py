"""Max-pooling rewritten as ReLU trees computes the same function as the
MaxPool operator (and PyTorch's max_pool2d), padding and strides included."""

import numpy as np
import pytest
import torch

from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.graph import Graph
from keras_ndsru.verify.graph.max_as_relu import maxpool_as_relus


@pytest.mark.parametrize(
    "kernel, strides, begin, end",
    [
        ((2, 2), (2, 2), (0, 0), (0, 0)),
        ((3, 3), (2, 2), (1, 1), (1, 1)),
        ((1, 1), (1, 1), (0, 0), (0, 0)),
        ((3, 2), (1, 2), (0, 1), (1, 0)),
    ],
)
def test_relu_tree_equals_max_pooling(kernel, strides, begin, end):
    graph = Graph((1, 2, 5, 6))
    graph.output = graph.add(ops.MaxPool(kernel, strides, begin, end), [0], "mp")
    rewritten = maxpool_as_relus(graph)
    assert not any(isinstance(n.op, ops.MaxPool) for n in rewritten.nodes)
    relus = sum(isinstance(n.op, ops.ReLU) for n in rewritten.nodes)
    assert (relus > 0) == (kernel != (1, 1))
    x = np.random.default_rng(0).normal(size=(9, 60))
    pad = (begin[1], end[1], begin[0], end[0])
    padded = torch.nn.functional.pad(
        torch.as_tensor(x).reshape(9, 2, 5, 6), pad, value=-np.inf
    )
    expected = torch.nn.functional.max_pool2d(padded, kernel, strides)
    np.testing.assert_allclose(rewritten(x), expected.reshape(9, -1).numpy())
    assert maxpool_as_relus(graph) is rewritten  # cached


def test_graph_without_pooling_is_unchanged():
    graph = Graph((3,))
    graph.output = graph.add(ops.ReLU(), [0], "relu")
    assert maxpool_as_relus(graph) is graph
