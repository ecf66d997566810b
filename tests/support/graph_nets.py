"""Small `Graph`s for the verifier tests, built from chain weights."""

import numpy as np
import torch

from keras_ndsru.verify.bounds import crown
from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.graph import Graph


def relu_graph(weights, biases):
    """The chain ``W_L relu(... relu(W_1 x + b_1) ...) + b_L`` as a `Graph`
    (``weights[k]`` of shape ``(n_out, n_in)``, as `verify_brute`'s)."""
    graph = Graph((weights[0].shape[1],))
    node = 0
    for k, (w, b) in enumerate(zip(weights, biases)):
        node = graph.add(ops.MatMul(w.T, b), [node], f"dense{k}")
        if k < len(weights) - 1:
            node = graph.add(ops.ReLU(), [node], f"relu{k}")
    graph.output = node
    return graph


def assert_bounds_contain_samples(graph, center, eps, forward=None, count=512):
    """CROWN bounds of every output over the L_inf box of radius ``eps``
    around ``center`` (``(1, *input_shape)`` float64) contain the outputs of
    ``count`` uniform samples of the box, computed by ``forward`` (flat
    outputs of a batch; default the graph's own evaluation)."""
    center = torch.as_tensor(center, dtype=torch.float64)
    box = crown.Box(center - eps, center + eps)
    bounds = crown.intermediate_bounds(graph, box)
    n = graph.n_outputs
    C, _ = crown.output_rows(graph, np.eye(n), np.zeros(n), 1, box.lower)
    lo = crown.back_substitute(graph, graph.output, C, bounds, box)[0]
    hi = -crown.back_substitute(graph, graph.output, -C, bounds, box)[0]
    shape = (count, *center.shape[1:])
    samples = center + eps * (2 * torch.rand(shape, dtype=torch.float64) - 1)
    if forward is None:
        y = graph.evaluate(samples).reshape(count, -1)
    else:
        y = torch.as_tensor(forward(samples.numpy()), dtype=torch.float64)
        y = y.reshape(count, -1)
    tol = 1e-9 if forward is None else 1e-6  # float32 models: their rounding
    assert torch.all(y >= lo - tol) and torch.all(y <= hi + tol)
