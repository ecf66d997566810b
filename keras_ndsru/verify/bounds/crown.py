"""Interval bounds (IBP) and CROWN back-substitution through a `Graph`.

Back-substitution (CROWN: Zhang et al., NeurIPS 2018, Thm. 3.2; on general
graphs: Xu et al., NeurIPS 2020) bounds ``C @ v`` for a node ``v`` from
below: starting from ``A = C`` at ``v``, every node, in reverse topological
order, hands ``A`` to its inputs through its operator's ``backward`` rule
(exact for affine operators, a linear relaxation for nonlinear ones, which
need bounds of their inputs), until ``A`` reaches the input, where the
linear function is minimized over the input box in closed form:
``sum(A+ * lower + A- * upper)``. Nodes with several consumers (residual
connections) add up the ``A`` they receive.

Bounds of the nodes a nonlinearity reads (pre-activations) come first
(`intermediate_bounds`): layer by layer, each bounded by back-substitution
from itself (rows ``+e_j`` and ``-e_j`` for the neurons that need it, in
chunks that bound the memory), intersected with IBP.

All of it is differentiable in the relaxations' slopes (alpha) and in the
split multipliers (beta), which `keras_ndsru.verify.bounds.optimize` tunes.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from keras_ndsru.verify.graph.graph import Graph
from keras_ndsru.verify.graph.operators import Relax


@dataclasses.dataclass
class Ball:
    """An L_1 ball ``sum(|x - center|[mask]) <= radius`` on the coordinates
    ``mask`` (flat, ``(n,)`` tensors; ``center`` inside the box)."""

    center: torch.Tensor
    radius: float
    mask: torch.Tensor


@dataclasses.dataclass
class Box:
    """The input region's box, ``(batch or 1, *input_shape)`` tensors, and
    optionally an L_1 ball it is intersected with (``ball``)."""

    lower: torch.Tensor
    upper: torch.Tensor
    ball: Ball | None = None


def interval_pass(graph: Graph, box: Box, fixed: dict | None = None) -> list:
    """IBP bounds ``(lower, upper)`` of every node, intersected with
    ``fixed[k]`` where given."""
    fixed = fixed or {}
    bounds = [None] * len(graph.nodes)
    bounds[0] = (box.lower, box.upper)
    for k in range(1, graph.output + 1):
        node = graph.nodes[k]
        lower, upper = node.op.interval(*[bounds[i] for i in node.inputs])
        if k in fixed:
            lower = torch.maximum(lower, fixed[k][0])
            upper = torch.minimum(upper, fixed[k][1])
        bounds[k] = (lower, upper)
    return bounds


def concretize(A: torch.Tensor, box: Box) -> torch.Tensor:
    """``min over the box of sum(A * x)`` per row: ``(batch, specs)``;
    over the box and its L_1 ball when it has one (`l1_concretize`)."""
    batch, specs = A.shape[:2]
    flat = A.reshape(batch, specs, -1)
    center = ((box.upper + box.lower) / 2).reshape(box.lower.shape[0], 1, -1)
    radius = ((box.upper - box.lower) / 2).reshape(box.lower.shape[0], 1, -1)
    value = (flat * center).sum(-1) - (flat.abs() * radius).sum(-1)
    if box.ball is None:
        return value
    return torch.maximum(value, l1_concretize(flat, box))


def l1_concretize(flat: torch.Tensor, box: Box) -> torch.Tensor:
    """``min sum(a * x)`` over the box intersected with its L_1 ball, exactly:
    the box's minimum on the coordinates outside the ball's mask, and on the
    others a fractional knapsack from the center (move the coordinates of
    largest ``|a|`` first, each up to its box side, until the radius is
    spent)."""
    ball = box.ball
    like = flat
    n = flat.shape[-1]
    lower = box.lower.reshape(box.lower.shape[0], 1, n)
    upper = box.upper.reshape(box.upper.shape[0], 1, n)
    mask = ball.mask.to(like.device).reshape(1, 1, n)
    center = torch.where(
        mask, ball.center.to(like).reshape(1, 1, n), (upper + lower) / 2
    )
    free = torch.where(mask, torch.zeros_like(upper), (upper - lower) / 2)
    value = (flat * center).sum(-1) - (flat.abs() * free).sum(-1)
    # The knapsack on the ball's coordinates: capacity to the box side that
    # lowers sum(a * x), gain |a| per unit.
    cap = torch.where(flat > 0, center - lower, upper - center)
    cap = torch.where(mask, cap.clamp(min=0), torch.zeros_like(cap))
    gain, order = torch.sort(flat.abs() * mask, dim=-1, descending=True)
    cap = torch.gather(cap.expand_as(flat), -1, order)
    before = torch.cumsum(cap, -1) - cap
    take = torch.minimum(cap, (ball.radius - before).clamp(min=0))
    return value - (gain * take).sum(-1)


def back_substitute(
    graph: Graph,
    start: int,
    C: torch.Tensor,
    bounds: list,
    box: Box,
    relax_for=None,
    record: dict | None = None,
) -> torch.Tensor:
    """Lower bounds of ``sum(C[b, s] * v[b])`` for node ``start``'s value ``v``.

    Args:
        graph: the network.
        start: the bounded node.
        C: ``(batch, specs, *shape of start)``.
        bounds: bounds ``(lower, upper)`` of every node a nonlinearity reads
            (others may be None).
        box: the input box.
        relax_for: optional ``relax_for(node) -> Relax`` for nonlinear nodes
            (optimizable slopes, split multipliers). Defaults to None.
        record: optional dict, filled with the ``A`` each splittable node
            received (its output's coefficients: BaB's branching scores), and
            under key 0 the input's (the bound's minimizer is a box corner).

    Returns:
        ``(batch, specs)`` lower bounds.
    """
    A, bias = linear_bound(graph, start, C, bounds, box, relax_for, record)
    return bias if A is None else bias + concretize(A, box)


def linear_bound(
    graph: Graph,
    start: int,
    C: torch.Tensor,
    bounds: list,
    box: Box,
    relax_for=None,
    record: dict | None = None,
):
    """``(A, bias)`` with ``sum(C * v) >= sum(A * x) + bias`` for inputs ``x``
    in the box (``A`` None when ``v`` does not depend on the input); equal
    when every nonlinearity is stable under ``bounds``. See `back_substitute`.
    """
    A = {start: C}
    bias = C.new_zeros(C.shape[:2])
    for k in range(start, 0, -1):
        a = A.pop(k, None)
        if a is None:
            continue
        node = graph.nodes[k]
        relax = None
        if not node.op.affine:
            relax = relax_for(k) if relax_for is not None else None
            if record is not None and node.op.splittable:
                record[k] = a
        outs, added = node.op.backward(
            a, *[bounds[i] for i in node.inputs], relax=relax
        )
        bias = bias + added
        for i, a_in in zip(node.inputs, outs):
            A[i] = a_in if i not in A else A[i] + a_in
    if record is not None and 0 in A:
        record[0] = A[0]
    return A.pop(0, None), bias


def needs_all_neurons(graph: Graph, node: int) -> bool:
    """Whether every neuron of ``node`` needs bounds (a consumer other than
    a ReLU-like one: stable neurons of ReLUs need none)."""
    return any(
        node in n.inputs and not n.op.affine and not n.op.splittable
        for n in graph.nodes
    )


def unit_rows(index: torch.Tensor, shape: tuple, batch: int, like: torch.Tensor):
    """``C`` with rows ``+e_j`` then ``-e_j`` for flat neurons ``index``."""
    m, n = index.numel(), math.prod(shape)
    C = like.new_zeros(batch, 2 * m, n)
    rows = torch.arange(m, device=like.device)
    C[:, rows, index] = 1.0
    C[:, rows + m, index] = -1.0
    return C.reshape(batch, 2 * m, *shape)


def intermediate_bounds(
    graph: Graph,
    box: Box,
    fixed: dict | None = None,
    relax_for=None,
    chunk: int = 1024,
    nodes=None,
    deadline=None,
    selection: dict | None = None,
) -> list:
    """Bounds of every node, the pre-activations tightened by CROWN.

    Args:
        graph, box: the network and the input box.
        fixed: known bounds to intersect with (e.g. earlier, tighter ones).
        relax_for: ``relax_for(start, node) -> Relax`` for the relaxations
            used while bounding ``start`` (alpha-CROWN), or None for CROWN's.
        chunk: neurons bounded per back-substitution (memory).
        nodes: which pre-activation nodes to tighten (default: all).
        deadline: a `time.time()` value; past it, the remaining nodes keep
            their IBP bounds (still sound). Defaults to None.
        selection: per node, the flat neurons to bound, all in one
            back-substitution (rows as `unstable_selection`, matching the
            slopes of ``relax_for``). Defaults to the neurons that need it.

    Returns:
        The list of ``(lower, upper)`` per node.
    """
    import time

    fixed = dict(fixed or {})
    bounds = interval_pass(graph, box, fixed)
    for p in graph.pre_activations() if nodes is None else nodes:
        if p == 0 or (deadline is not None and time.time() > deadline):
            continue
        lower, upper = bounds[p]
        batch = lower.shape[0]
        flat_l, flat_u = lower.reshape(batch, -1), upper.reshape(batch, -1)
        if needs_all_neurons(graph, p):
            wanted = torch.ones(flat_l.shape[1], dtype=torch.bool, device=lower.device)
        else:
            wanted = ((flat_l < 0) & (flat_u > 0)).any(0)
        new_l, new_u = flat_l.clone(), flat_u.clone()
        relax = None if relax_for is None else (lambda k, p=p: relax_for(p, k))
        index = torch.nonzero(wanted).flatten()
        if selection is not None:
            index = selection.get(p, index[:0])
            chunk = max(index.numel(), 1)
        for begin in range(0, index.numel(), chunk):
            part = index[begin : begin + chunk]
            C = unit_rows(part, graph.nodes[p].shape, batch, lower)
            lb = back_substitute(graph, p, C, bounds, box, relax)
            m = part.numel()
            new_l[:, part] = torch.maximum(new_l[:, part], lb[:, :m])
            new_u[:, part] = torch.minimum(new_u[:, part], -lb[:, m:])
        fixed[p] = (new_l.reshape(lower.shape), new_u.reshape(upper.shape))
        bounds = interval_pass(graph, box, fixed)
    return bounds


def unstable_selection(graph: Graph, bounds: list) -> dict:
    """Per pre-activation node, the flat neurons whose bounds matter: all for
    non-ReLU consumers, else the unstable ones (in any domain)."""
    selection = {}
    for p in graph.pre_activations():
        if p == 0:
            continue
        lower, upper = (b.reshape(b.shape[0], -1) for b in bounds[p])
        if needs_all_neurons(graph, p):
            wanted = torch.ones(lower.shape[1], dtype=torch.bool, device=lower.device)
        else:
            wanted = ((lower < 0) & (upper > 0)).any(0)
        selection[p] = torch.nonzero(wanted).flatten()
    return selection


def output_rows(graph: Graph, mat, rhs, batch: int, like: torch.Tensor):
    """``C`` for the output rows ``mat @ y - rhs``: ``(batch, rows, *out)``
    and the constant ``-rhs`` ``(rows,)``."""
    mat = torch.as_tensor(mat, dtype=like.dtype, device=like.device)
    rhs = torch.as_tensor(rhs, dtype=like.dtype, device=like.device)
    C = mat.reshape(1, mat.shape[0], *graph.output_shape).expand(
        batch, -1, *graph.output_shape
    )
    return C, -rhs


def relax_with(alphas: dict | None, extras: dict | None):
    """A ``relax_for(node)`` from per-node slopes and split terms."""

    def relax_for(node):
        alpha = None if alphas is None else alphas.get(node)
        extra = None if extras is None else extras.get(node)
        if alpha is None and extra is None:
            return None
        return Relax(alpha=alpha, extra=extra)

    return relax_for
