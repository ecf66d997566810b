"""Projected gradient descent on a property's margin: counterexamples fast.

PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018) in the input box, as alpha-beta-CROWN runs it before
and during its search: several random starts, signed-gradient steps on the
smallest disjunct margin (``max_i mat_i @ y - rhs_i``, a disjunct holds at
a point where it is ``<= 0``), a step size that decays, and the best point
kept. A point found here is only a candidate: the caller re-checks it
exactly (`properties.spec.Property.violated_by`, onnxruntime).
"""

from __future__ import annotations

import math
import time

import torch

from keras_ndsru.verify.bounds.spec import OutputSpec


def pgd(
    graph,
    lower: torch.Tensor,
    upper: torch.Tensor,
    spec: OutputSpec,
    restarts: int = 16,
    steps: int = 100,
    generator: torch.Generator | None = None,
    starts: torch.Tensor | None = None,
    deadline: float | None = None,
):
    """Searches the box for a point where some disjunct holds.

    Args:
        graph: the network.
        lower, upper: the box, ``(1, *input_shape)``.
        spec: the disjuncts.
        restarts: random starting points (plus the box centre and
            ``starts``). Defaults to 16.
        steps: gradient steps. Defaults to 100.
        generator: random numbers. Defaults to None (torch's global one).
        starts: extra starting points ``(k, *input_shape)``, or None.
        deadline: a `time.time()` value or None.

    Returns:
        ``(x, margin)``: the best point ``(*input_shape)`` and its margin
        (``<= 0``: a candidate counterexample).
    """
    shape = (restarts, *lower.shape[1:])
    noise = torch.rand(shape, generator=generator, dtype=lower.dtype).to(lower.device)
    x = lower + noise * (upper - lower)
    x = torch.cat([x, (lower + upper) / 2])
    if starts is not None:
        x = torch.cat([x, torch.minimum(torch.maximum(starts.to(x), lower), upper)])
    width = (upper - lower).amax().item()
    best_x, best = x[:1].detach(), math.inf
    for step in range(steps + 1):
        x = x.detach().requires_grad_(True)
        y = graph.evaluate(x).reshape(x.shape[0], -1)
        margin = spec.margins(y).amin(1)
        value, at = margin.min(0)
        if value.item() < best:
            best, best_x = value.item(), x[at].detach().clone()
        if (
            best <= 0
            or step == steps
            or (deadline is not None and time.time() > deadline)
        ):
            break
        (grad,) = torch.autograd.grad(margin.sum(), x)
        size = 0.5 * width * (1 + math.cos(math.pi * step / steps)) / 4 + 1e-4 * width
        with torch.no_grad():
            x = x - size * grad.sign()
            x = torch.minimum(torch.maximum(x, lower), upper)
    return best_x.reshape(lower.shape[1:]), best
