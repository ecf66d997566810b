"""Optimized bounds: alpha-CROWN and beta-CROWN.

- alpha-CROWN (Xu et al., "Fast and Complete: Enabling Complete Neural
  Network Verification with Rapid and Massively Parallel Incomplete
  Verifiers", ICLR 2021, Sec. 3.1): every ReLU's lower relaxation
  ``alpha * z`` is valid for any ``alpha`` in ``[0, 1]``, so the bound is a
  valid lower bound for every ``alpha`` and is maximized over them by
  projected gradient ascent (Adam). ``alpha`` is separate per bounded row
  and per ReLU neuron; at the root, the intermediate layers' bounds are
  optimized too (each with its own ``alpha``) and the final bound's gradient
  flows through them.
- beta-CROWN (Wang et al., "Beta-CROWN: Efficient Bound Propagation with
  Per-neuron Split Constraints for Complete and Incomplete Neural Network
  Verification", NeurIPS 2021, Thm. 3.1): in a BaB domain, a split
  ``s_j z_j >= 0`` (``s_j = +1`` active, ``-1`` inactive) adds the
  Lagrangian term ``-beta_j s_j z_j`` (``beta_j >= 0``) to the bounded
  function, which lowers it nowhere in the domain; its coefficients join
  ``A`` at ``z``, and ``beta`` is optimized with ``alpha``.

Every iterate is a sound bound, so the best per row is kept.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from keras_ndsru.verify.bounds import crown
from keras_ndsru.verify.bounds.spec import OutputSpec
from keras_ndsru.verify.graph.operators import Relax


@dataclasses.dataclass
class Settings:
    """Gradient steps of the optimized bounds.

    Args:
        iterations: steps per optimization. Defaults to 20.
        lr_alpha: Adam step size of the slopes. Defaults to 0.1.
        lr_beta: Adam step size of the split multipliers. Defaults to 0.05.
    """

    iterations: int = 20
    lr_alpha: float = 0.1
    lr_beta: float = 0.05


def domain_bounds(graph, bounds: list, splits: dict | None) -> list:
    """``bounds`` with each split neuron's pre-activation clamped to its side
    (``splits[r]``: ``(batch, *shape)`` of -1, 0, +1 for ReLU node ``r``)."""
    if not splits:
        return bounds
    out = list(bounds)
    for r, s in splits.items():
        p = graph.nodes[r].inputs[0]
        lower, upper = bounds[p]
        lower = lower.expand(s.shape[0], *lower.shape[1:])
        upper = upper.expand(s.shape[0], *upper.shape[1:])
        out[p] = (
            torch.where(s > 0, lower.clamp(min=0), lower),
            torch.where(s < 0, upper.clamp(max=0), upper),
        )
    return out


def output_bounds(
    graph,
    box: crown.Box,
    bounds: list,
    spec: OutputSpec,
    alphas: dict | None = None,
    splits: dict | None = None,
    extras: dict | None = None,
    record: dict | None = None,
) -> torch.Tensor:
    """Lower bounds ``(batch, rows)`` of ``spec``'s rows ``mat @ y - rhs``.

    Args:
        graph, box: the network and the input box.
        bounds: pre-activation bounds (e.g. from `crown.intermediate_bounds`),
            shared by every domain or per domain.
        spec: the rows.
        alphas: per ReLU node, slopes ``(batch, rows, *shape)``, or None.
        splits: per ReLU node, split sides ``(batch, *shape)``, or None.
        extras: per ReLU node, beta-CROWN's split terms ``-beta * s``
            ``(batch, rows, *shape)`` (`split_terms`), or None.
        record: filled with each ReLU's ``A`` (see `crown.back_substitute`).
    """
    like = box.lower
    batch = max(
        [like.shape[0]]
        + [s.shape[0] for s in (splits or {}).values()]
        + [a.shape[0] for a in (alphas or {}).values()]
    )
    C, offset = crown.output_rows(graph, spec.mat, spec.rhs, batch, like)
    lower = crown.back_substitute(
        graph,
        graph.output,
        C,
        domain_bounds(graph, bounds, splits),
        box,
        crown.relax_with(alphas, extras),
        record,
    )
    return lower + offset


def initial_alphas(graph, bounds: list, rows: int, batch: int = 1) -> dict:
    """CROWN's adaptive slopes, one per row and ReLU neuron."""
    alphas = {}
    for r in graph.splittable():
        p = graph.nodes[r].inputs[0]
        lower, upper = bounds[p]
        alpha = graph.nodes[r].op.default_alpha(lower, upper)
        alphas[r] = alpha.unsqueeze(1).expand(batch, rows, *alpha.shape[1:]).clone()
    return alphas


def score(spec: OutputSpec, rows: torch.Tensor) -> torch.Tensor:
    """Per domain, what the optimization raises: the sum over disjuncts not
    yet excluded of their value (the best row's bound), ``(batch,)``."""
    values = spec.disjunct_values(rows)
    return values.clamp(max=0.0).sum(1) + 1e-3 * values.clamp(max=1.0).sum(1)


def optimize(
    evaluate,
    params: list,
    spec: OutputSpec,
    settings: Settings,
    deadline: float | None = None,
):
    """Projected gradient ascent of ``evaluate()`` over ``params``.

    Args:
        evaluate: ``() -> (batch, rows)`` sound lower bounds, differentiable
            in the parameters.
        params: ``(tensor, low, high, lr)`` leaf tensors of shape
            ``(batch, ...)``, projected onto ``[low, high]``.
        spec: the rows' disjuncts.
        settings: iterations.
        deadline: a `time.time()` value or None.

    Returns:
        ``(best, best_params)``: the row-wise best bounds ``(batch, rows)``
        and, per domain, the parameters of its best iterate.
    """
    if not params:
        with torch.no_grad():
            return evaluate(), []
    groups = [{"params": [p], "lr": lr} for p, _, _, lr in params]
    adam = torch.optim.Adam(groups)
    best = best_score = None
    kept = [p.detach().clone() for p, _, _, _ in params]
    for step in range(settings.iterations):
        with torch.enable_grad():
            rows = evaluate()
        current = score(spec, rows.detach())
        if best is None:
            best, best_score = rows.detach().clone(), current
        else:
            best = torch.maximum(best, rows.detach())
            better = current > best_score
            best_score = torch.where(better, current, best_score)
            for keep, (p, _, _, _) in zip(kept, params):
                keep[better] = p.detach()[better]
        done = (spec.disjunct_values(best) > 0).all()
        last = step == settings.iterations - 1
        if done or last or (deadline is not None and time.time() > deadline):
            break
        adam.zero_grad(set_to_none=True)
        (-score(spec, rows).sum()).backward()
        adam.step()
        with torch.no_grad():
            for p, low, high, _ in params:
                p.clamp_(low, high)
    return best, kept


def root_bounds(
    graph,
    box: crown.Box,
    bounds: list,
    spec: OutputSpec,
    settings: Settings,
    intermediate: bool = True,
    deadline: float | None = None,
    budget: int = 20_000_000,
):
    """alpha-CROWN at the root: the output rows' bounds and their slopes,
    with the pre-activation bounds optimized too when ``intermediate`` and
    their slopes fit in ``budget`` numbers.

    Returns:
        ``(rows, alphas, bounds, middle)``: best row bounds ``(1, rows)``,
        the output slopes of the best iterate, the (tightened) node bounds,
        and the slopes that tightened them (``{(node, relu): alpha}``,
        empty when not optimized).
    """
    alphas = {
        r: a.requires_grad_(True)
        for r, a in initial_alphas(graph, bounds, spec.rows).items()
    }
    params = [
        (a, *graph.nodes[r].op.alpha_range(), settings.lr_alpha)
        for r, a in alphas.items()
    ]
    selection = crown.unstable_selection(graph, bounds)
    relus = graph.splittable()
    sizes = {r: math.prod(graph.nodes[r].shape) for r in relus}
    cost = sum(
        2 * idx.numel() * sizes[r]
        for p, idx in selection.items()
        for r in relus
        if r < p
    )
    best = {"bounds": bounds}
    middle = {}
    if intermediate and 0 < cost <= budget:
        for p, idx in selection.items():
            for r in relus:
                if r < p and idx.numel():
                    q = graph.nodes[r].inputs[0]
                    alpha = graph.nodes[r].op.default_alpha(*bounds[q])
                    alpha = alpha.unsqueeze(1).expand(
                        1, 2 * idx.numel(), *alpha.shape[1:]
                    )
                    middle[(p, r)] = alpha.clone().requires_grad_(True)
        params += [
            (a, *graph.nodes[r].op.alpha_range(), settings.lr_alpha)
            for (_, r), a in middle.items()
        ]
        fixed = {p: bounds[p] for p in selection}

        def relax_mid(p, r):
            alpha = middle.get((p, r))
            return None if alpha is None else Relax(alpha=alpha)

        def evaluate():
            current = crown.intermediate_bounds(
                graph, box, fixed=fixed, relax_for=relax_mid, selection=selection
            )
            for p in selection:
                fixed[p] = tuple(b.detach() for b in current[p])
            best["bounds"] = [
                None if b is None else tuple(t.detach() for t in b) for b in current
            ]
            return output_bounds(graph, box, current, spec, alphas)
    else:

        def evaluate():
            return output_bounds(graph, box, bounds, spec, alphas)

    rows, kept = optimize(evaluate, params, spec, settings, deadline)
    final = {r: kept[i].detach() for i, r in enumerate(alphas)}
    tuned = {key: kept[len(alphas) + i].detach() for i, key in enumerate(middle)}
    return rows, final, best["bounds"], tuned
