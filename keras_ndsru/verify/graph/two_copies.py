"""Def. 2 (two network copies, arXiv 1709.02802) as one box problem.

The graph engine decides properties over a box (and an L_1 ball), while
Def. 2 constrains a pair ``x1, x2`` of the box ``[lower, upper]`` with
``||x1 - x2||_inf <= delta``. With ``x2 = clip(x1 + d, lower, upper)`` and
``d`` in ``[-delta, delta]`` the pairs are exactly the images of the box
``x1 in [lower, upper], d in [-delta, delta]``: clipping moves ``x1 + d``
towards ``x1`` (which is in the box), so ``|x2 - x1| <= delta``, and any
valid pair is reached with ``d = x2 - x1``. The clip is
``lower + relu(z - lower) - relu(z - upper)``: ReLUs the branch and bound
splits like any other, so the encoding is exact. For the L_1 norm ``d`` also
lies in the ball ``||d||_1 <= delta`` (`complete.L1Ball` on the ``d``
coordinates: used exactly by the bounds and the leaf LPs, attacks projected
onto it); clipping only shrinks ``|x2 - x1|``, so the pairs are exactly
the valid ones again.
"""

from __future__ import annotations

import copy

import numpy as np

from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.graph import Graph


def two_copy_graph(graph: Graph, lower, upper, delta: float):
    """The graph of ``(x1, d) -> (y(x1), y(clip(x1 + d)))``.

    Args:
        graph: a `Graph` with ``n`` inputs and ``k`` outputs.
        lower, upper: the finite box ``(n,)`` of both copies.
        delta: the distance bound.

    Returns:
        ``(pair_graph, box_lower, box_upper, to_pair)``: a `Graph` of input
        ``(2 n,)`` and output ``(2 k,)``, its input box, and a function
        mapping one of its inputs ``(2 n,)`` to the pair ``(2, n)``.
    """
    lower = np.array(lower, np.float64).reshape(-1)
    upper = np.array(upper, np.float64).reshape(-1)
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        raise ValueError(
            "Two network copies need a bounded box: lower and upper must be "
            f"finite. Received: lower={lower.tolist()}, upper={upper.tolist()}"
        )
    n, k = graph.n_inputs, graph.n_outputs
    pair = Graph((2 * n,), name=f"{graph.name} (two copies)")
    x1 = pair.add(ops.Gather(np.arange(n)), [0], "x1")
    d = pair.add(ops.Gather(np.arange(n, 2 * n)), [0], "d")
    z = pair.add(ops.Sum((1, 1)), [x1, d], "x1 + d")
    above = pair.add(
        ops.ReLU(),
        [pair.add(ops.Scale(shift=-lower), [z], "z - lower")],
        "relu(z - lower)",
    )
    over = pair.add(
        ops.ReLU(),
        [pair.add(ops.Scale(shift=-upper), [z], "z - upper")],
        "relu(z - upper)",
    )
    x2 = pair.add(
        ops.Scale(shift=lower),
        [pair.add(ops.Sum((1, -1)), [above, over], "clip")],
        "x2",
    )
    outs = []
    for copy_index, x in enumerate((x1, x2)):
        start = pair.add(ops.Reshape(graph.input_shape), [x], f"copy {copy_index}")
        index = {0: start}
        for j, node in enumerate(graph.nodes[1 : graph.output + 1], start=1):
            index[j] = pair.add(
                copy.copy(node.op),
                [index[i] for i in node.inputs],
                f"{node.name} (copy {copy_index})",
            )
        outs.append(pair.add(ops.Reshape((k,)), [index[graph.output]], "y"))
    pair.output = pair.add(ops.Concat(0), outs, "y1, y2")
    box_lower = np.concatenate([lower, np.full(n, -float(delta))])
    box_upper = np.concatenate([upper, np.full(n, float(delta))])

    def to_pair(v):
        v = np.asarray(v, np.float64).reshape(-1)
        return np.stack([v[:n], np.clip(v[:n] + v[n:], lower, upper)])

    return pair, box_lower, box_upper, to_pair
