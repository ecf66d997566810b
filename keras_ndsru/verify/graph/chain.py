"""A `Graph` that is a plain affine/ReLU chain, as a `ReluNetwork`.

Reluplex's object (arXiv 1709.02802, Sec. 2) is ``y = W_L relu(... relu(W_1
x + b_1) ...) + b_L``. A graph is such a chain when its ReLUs come one after
the other and each reads only an affine function of the previous ReLU's
output (or of the input), and the output is an affine function of the last
ReLU: Dense/Gemm layers, also convolutions, normalization, reshapes and sums
inside a segment. The exact engines for chains (input splitting, MILP, L_1
balls, two copies for Def. 2) then apply. Residual connections across a
ReLU, pooling, LeakyReLU, Sigmoid or Tanh make a graph not a chain: those
stay on the graph engine (`keras_ndsru.verify.search.complete`).

Each segment's matrix is dense (``inputs x outputs`` floats), so a segment
bigger than ``max_entries`` is refused too: the graph engine keeps memory
linear in the activations.
"""

from __future__ import annotations

import math

import torch

from keras_ndsru.verify.graph.graph import Graph
from keras_ndsru.verify.graph.network import NotAChain, ReluNetwork
from keras_ndsru.verify.graph.operators import Constant, ReLU

# 4M float64 entries (32 MiB) per segment: every MLP and the small conv nets
# the MILP can decide; a 28x28 conv layer of 8 channels (784 x 5408) is over.
MAX_ENTRIES = 4_000_000


def chain_reason(graph: Graph, max_entries: int = MAX_ENTRIES) -> str | None:
    """Why ``graph`` is not a chain of dense segments, or None if it is."""
    try:
        _levels(graph, max_entries)
    except NotAChain as error:
        return str(error)
    return None


def chain_from_graph(graph: Graph, max_entries: int = MAX_ENTRIES) -> ReluNetwork:
    """The `ReluNetwork` computing ``graph`` (exactly, in float64).

    Args:
        graph: a `Graph`.
        max_entries: the largest segment matrix (inputs x outputs) to build.
            Defaults to `MAX_ENTRIES`.

    Returns:
        A `ReluNetwork` with the graph's input shape, domain and name.

    Raises:
        NotAChain: naming the node that breaks the chain (or the segment that
            is too large).

    Example:

    >>> from keras_ndsru.verify.graph.operators import MatMul, ReLU
    >>> g = Graph((2,))
    >>> h = g.add(ReLU(), [g.add(MatMul(np.eye(2)), [0], "dense")], "relu")
    >>> g.output = g.add(MatMul(np.ones((2, 1))), [h], "out")
    >>> chain_from_graph(g)
    ReluNetwork(name='network', sizes=[2, 2, 1])
    """
    levels = _levels(graph, max_entries)
    weights, biases = [], []
    for state, targets in levels:
        w, b = _segment_matrix(graph, state, targets)
        weights.append(w)
        biases.append(b)
    network = ReluNetwork(
        weights,
        biases,
        input_shape=graph.input_shape,
        input_domain=graph.input_domain,
        name=graph.name,
    )
    return network


def _levels(graph: Graph, max_entries: int):
    """``[(state, targets)]`` per layer: the nodes that make up its input
    (the graph's input, or every ReLU of the previous layer, in order) and
    the nodes its affine map computes (the next layer's ReLU inputs, or the
    output). A ReLU's layer is one more than its input's; an affine node's
    is its inputs' (which must agree: no tensor crosses a ReLU)."""
    level = {0: 0}
    for k in range(1, graph.output + 1):
        node = graph.nodes[k]
        kind = type(node.op).__name__
        if isinstance(node.op, Constant):
            continue  # reads a node only for the batch size
        found = {level[i] for i in node.inputs if i in level}
        if len(found) > 1:
            raise NotAChain(
                f"node {node.name!r} ({kind}) adds tensors from before and after "
                "a ReLU (a residual connection)"
            )
        (here,) = found or {0}
        if type(node.op) is ReLU:
            level[k] = here + 1
        elif node.op.affine:
            level[k] = here
        else:
            raise NotAChain(f"node {node.name!r} is a {kind}, not affine or ReLU")
    relus = [k for k in level if type(graph.nodes[k].op) is ReLU]
    top = level[graph.output]
    levels = []
    for depth in range(top + 1):
        state = [0] if depth == 0 else [k for k in relus if level[k] == depth]
        targets = (
            [graph.output]
            if depth == top
            else [graph.nodes[k].inputs[0] for k in relus if level[k] == depth + 1]
        )
        n_in = sum(math.prod(graph.nodes[k].shape) for k in state)
        n_out = sum(math.prod(graph.nodes[k].shape) for k in targets)
        if n_in * n_out > max_entries:
            raise NotAChain(
                f"the layer to {graph.nodes[targets[0]].name!r} would be a dense "
                f"{n_out} x {n_in} matrix (more than {max_entries} entries)"
            )
        levels.append((state, targets))
    return levels


def _segment_matrix(graph: Graph, state: list, targets: list):
    """``(W, b)`` with ``concat(flat targets) = W concat(flat state) + b``,
    found by evaluating the layer on the zero vector and the unit vectors."""
    sizes = [math.prod(graph.nodes[k].shape) for k in state]
    n = sum(sizes)
    probe = torch.cat([torch.zeros(1, n), torch.eye(n)]).double()
    values, start = {}, 0
    for k, size in zip(state, sizes):
        values[k] = probe[:, start : start + size].reshape(-1, *graph.nodes[k].shape)
        start += size
    last = max(targets)
    with torch.no_grad():
        for k in range(1, last + 1):
            node = graph.nodes[k]
            if k in values or type(node.op) is ReLU:
                continue
            if isinstance(node.op, Constant):
                values[k] = node.op.evaluate(probe)
            elif node.inputs and all(i in values for i in node.inputs):
                values[k] = node.op.evaluate(*[values[i] for i in node.inputs])
    out = torch.cat([values[k].reshape(n + 1, -1) for k in targets], 1).numpy()
    bias = out[0]
    return (out[1:] - bias).T.copy(), bias.copy()
