"""Small `Graph`s for the verifier tests, built from chain weights."""

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
