"""Max-pooling as ReLUs, so that branch and bound can split it.

``max(a, b) = a + relu(b - a)`` (exact), so a window's maximum is a tree of
pairwise maxima, each one ReLU: ``k - 1`` ReLUs per output of a window of
``k`` inputs. The branch and bound splits ReLUs, and the leaf LP needs a
network that is affine once they are decided; a `MaxPool` node (DeepPoly's
relaxation, not splittable) would leave the search stuck on domains where
its relaxation is loose. The rewrite keeps memory linear in the activations
(`Gather`s of constant flat positions and `Sum`s), unlike a dense lowering.
Padding positions never win a maximum: a window's padded slots repeat one
of its inputs (``max(a, a) = a``).
"""

from __future__ import annotations

import copy
import math

import torch

from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.graph import Graph


def maxpool_as_relus(graph: Graph) -> Graph:
    """``graph`` with every `MaxPool` node replaced by a tree of ReLUs (the
    same function); ``graph`` itself when it has none. Cached on the graph."""
    if not any(isinstance(n.op, ops.MaxPool) for n in graph.nodes):
        return graph
    cached = getattr(graph, "_max_as_relu", None)
    if cached is not None and cached[0] == graph.key:
        return cached[1]
    out = Graph(graph.input_shape, name=graph.name, input_domain=graph.input_domain)
    index = {0: 0}
    for k, node in enumerate(graph.nodes[1 : graph.output + 1], start=1):
        inputs = [index[i] for i in node.inputs]
        if isinstance(node.op, ops.MaxPool):
            index[k] = _tree(out, node, inputs[0])
        else:
            index[k] = out.add(copy.copy(node.op), inputs, node.name)
    out.output = index[graph.output]
    graph._max_as_relu = (graph.key, out)
    return out


def _windows(node) -> torch.Tensor:
    """``(outputs, k)`` flat input positions of each output's window, padded
    slots filled with the window's first input."""
    shape = node.op.in_shapes[0]
    flat = torch.arange(1, math.prod(shape) + 1, dtype=torch.float64).reshape(1, *shape)
    cols = node.op._windows(flat, fill=0.0)  # (lead, C, k, L), 0 = padding
    rows = cols.permute(0, 1, 3, 2).reshape(-1, cols.shape[2]).round().long() - 1
    first = rows.max(dim=1, keepdim=True).values.expand_as(rows)
    return torch.where(rows >= 0, rows, first)


def _tree(graph: Graph, node, source: int) -> int:
    """Adds the pairwise-maximum tree of ``node`` (a MaxPool) reading node
    ``source``; returns the node holding its output."""
    slots = _windows(node)
    current, name = source, node.name
    while slots.shape[1] > 1:
        if slots.shape[1] % 2:
            slots = torch.cat([slots, slots[:, -1:]], 1)
        a = graph.add(ops.Gather(slots[:, 0::2].numpy()), [current], f"{name}/a")
        b = graph.add(ops.Gather(slots[:, 1::2].numpy()), [current], f"{name}/b")
        diff = graph.add(ops.Sum((1, -1)), [b, a], f"{name}/b-a")
        gap = graph.add(ops.ReLU(), [diff], f"{name}/relu")
        current = graph.add(ops.Sum((1, 1)), [a, gap], f"{name}/max")
        half = slots.shape[1] // 2
        slots = torch.arange(slots.shape[0] * half).reshape(-1, half)
    if current == source:  # 1 x 1 windows
        current = graph.add(ops.Gather(slots.numpy()), [source], f"{name}/take")
    return graph.add(ops.Reshape(node.shape), [current], name)
