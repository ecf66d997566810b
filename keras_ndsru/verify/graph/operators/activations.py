"""Elementwise nonlinearities and their linear relaxations.

Given bounds ``l <= z <= u`` of the input, each activation gives, per
element, lines ``ls * z + lb <= f(z) <= us * z + ub`` on ``[l, u]``;
back-substitution (CROWN, Zhang et al. 2018, Thm. 3.2) takes the lower line
where the coefficient is positive and the upper line where it is negative.

- ReLU and LeakyReLU: the upper line is the chord; the lower line is
  ``alpha * z`` with an optimizable slope ``alpha`` (alpha-CROWN, Xu et al.,
  "Fast and Complete", ICLR 2021, Sec. 3.1), by default CROWN's adaptive
  choice (1 where ``u >= -l``, else 0, or LeakyReLU's own slope).
- Sigmoid and Tanh: tangent and secant lines of CROWN (Zhang et al. 2018,
  Sec. 3.3): on a convex piece the chord is above and a tangent below, on a
  concave piece the opposite, and across the inflection point at 0 lines
  through an end point that touch the curve on the other side (found by
  bisection, then moved to the side that keeps them sound).
"""

from __future__ import annotations

import dataclasses

import torch

from keras_ndsru.verify.graph.operators.base import Operator


@dataclasses.dataclass
class Relax:
    """Per-call settings of a nonlinearity's relaxation in back-substitution.

    Attributes:
        alpha: optimizable lower slopes ``(batch, specs, *shape)`` or None.
        extra: coefficients added to the input's ``A`` (the Lagrangian term
            of beta-CROWN's split constraints), or None.
    """

    alpha: torch.Tensor | None = None
    extra: torch.Tensor | None = None


class Activation(Operator):
    """An elementwise, monotone nonlinearity."""

    affine = False

    def function(self, z):
        raise NotImplementedError

    def relaxation(self, lower, upper, alpha=None):
        """``(ls, lb, us, ub)``, broadcastable to ``alpha``'s shape when given
        (alpha adds a specs axis after the batch axis)."""
        raise NotImplementedError

    def evaluate(self, z):
        return self.function(z)

    def interval(self, bounds):
        return self.function(bounds[0]), self.function(bounds[1])

    def backward(self, A, bounds, relax=None):
        lower, upper = bounds
        alpha = None if relax is None else relax.alpha
        ls, lb, us, ub = self.relaxation(lower, upper, alpha)
        ls, lb, us, ub = (_with_specs(t, alpha) for t in (ls, lb, us, ub))
        pos, neg = A.clamp(min=0), A.clamp(max=0)
        A_in = pos * ls + neg * us
        bias = (pos * lb + neg * ub).reshape(A.shape[0], A.shape[1], -1).sum(-1)
        if relax is not None and relax.extra is not None:
            A_in = A_in + relax.extra
        return [A_in], bias


def _with_specs(t, alpha):
    """Adds the specs axis to a per-domain tensor (``alpha`` has it already)."""
    if alpha is not None and t.dim() == alpha.dim():
        return t
    return t.unsqueeze(1)


class ReLU(Activation):
    """``max(z, 0)``; BaB splits its unstable neurons (``splittable``)."""

    splittable = True
    slope = 0.0  # the negative side's slope (LeakyReLU sets its own)

    def function(self, z):
        return (
            torch.relu(z)
            if self.slope == 0.0
            else torch.where(z >= 0, z, self.slope * z)
        )

    def default_alpha(self, lower, upper):
        """CROWN's adaptive lower slope: the side of the larger magnitude."""
        return torch.where(upper >= -lower, 1.0, self.slope).to(lower.dtype)

    def alpha_range(self) -> tuple[float, float]:
        return self.slope, 1.0

    def relaxation(self, lower, upper, alpha=None):
        a = self.slope
        unstable = (lower < 0) & (upper > 0)
        active = (lower >= 0).to(lower.dtype)
        stable_slope = active + (1 - active) * a
        width = torch.where(unstable, upper - lower, torch.ones_like(upper))
        chord = (upper - a * lower) / width
        us = torch.where(unstable, chord, stable_slope)
        ub = torch.where(unstable, lower * (a - chord), torch.zeros_like(lower))
        if alpha is None:
            low = self.default_alpha(lower, upper)
            ls = torch.where(unstable, low, stable_slope)
        else:
            ls = torch.where(unstable.unsqueeze(1), alpha, stable_slope.unsqueeze(1))
        return ls, torch.zeros_like(lower), us, ub


class LeakyReLU(ReLU):
    """``z`` for ``z >= 0``, ``slope * z`` otherwise, ``0 <= slope <= 1``."""

    def __init__(self, slope: float):
        super().__init__()
        if not 0.0 <= float(slope) <= 1.0:
            raise ValueError(
                f"LeakyReLU is bounded for slopes in [0, 1]. Received: alpha={slope}"
            )
        self.slope = float(slope)


class SShaped(Activation):
    """Sigmoid-like: increasing, convex below 0 and concave above."""

    def derivative(self, z):
        raise NotImplementedError

    def relaxation(self, lower, upper, alpha=None):
        dtype = lower.dtype
        lo, hi = lower.double(), upper.double()
        f, df = self.function, self.derivative
        fl, fu = f(lo), f(hi)
        narrow = (hi - lo) < 1e-6
        width = torch.where(narrow, torch.ones_like(hi), hi - lo)
        chord_s = (fu - fl) / width
        chord_b = fl - chord_s * lo
        mid = (lo + hi) / 2
        tan_s, tan_b = df(mid), f(mid) - df(mid) * mid
        # Defaults: the convex case (hi <= 0): chord above, tangent below.
        ls, lb, us, ub = tan_s, tan_b, chord_s.clone(), chord_b.clone()
        concave = lo >= 0
        ls, lb = torch.where(concave, chord_s, ls), torch.where(concave, chord_b, lb)
        us, ub = torch.where(concave, tan_s, us), torch.where(concave, tan_b, ub)
        mixed = (lo < 0) & (hi > 0)
        if mixed.any():
            up_s, up_b = self._through(lo, fl, hi, side=1)
            lo_s, lo_b = self._through(hi, fu, lo, side=-1)
            us, ub = torch.where(mixed, up_s, us), torch.where(mixed, up_b, ub)
            ls, lb = torch.where(mixed, lo_s, ls), torch.where(mixed, lo_b, lb)
        zero = torch.zeros_like(lo)
        ls, us = torch.where(narrow, zero, ls), torch.where(narrow, zero, us)
        lb, ub = torch.where(narrow, fl, lb), torch.where(narrow, fu, ub)
        # A margin for rounding (the lines are computed in float64).
        slack = 1e-7 * (1.0 + lb.abs() + ub.abs())
        return (
            ls.to(dtype),
            (lb - slack).to(dtype),
            us.to(dtype),
            (ub + slack).to(dtype),
        )

    def _through(self, p, fp, q, side):
        """A line through ``(p, f(p))`` tangent at ``d`` between 0 and ``q``
        (``side=1``: upper line, ``d`` in ``[0, q]``; ``side=-1``: lower
        line, ``d`` in ``[q, 0]``), or the chord to ``q`` when no such
        tangent exists there."""
        f, df = self.function, self.derivative

        def gap(d):  # the tangent at d, evaluated at p, minus f(p)
            return side * (f(d) + df(d) * (p - d) - fp)

        exists = gap(q) >= 0
        inner, outer = torch.zeros_like(q), q.clone()
        for _ in range(60):
            mid = (inner + outer) / 2
            ok = gap(mid) >= 0
            outer = torch.where(ok, mid, outer)
            inner = torch.where(ok, inner, mid)
        d = outer  # gap(d) >= 0: the sound side of the root
        tan_s = df(d)
        tan_b = f(d) - tan_s * d
        fq = f(q)
        width = torch.where((q - p).abs() < 1e-12, torch.ones_like(q), q - p)
        chord_s = (fq - fp) / width
        chord_b = fp - chord_s * p
        return torch.where(exists, tan_s, chord_s), torch.where(exists, tan_b, chord_b)


class Sigmoid(SShaped):
    def function(self, z):
        return torch.sigmoid(z)

    def derivative(self, z):
        s = torch.sigmoid(z)
        return s * (1 - s)


class Tanh(SShaped):
    def function(self, z):
        return torch.tanh(z)

    def derivative(self, z):
        return 1 - torch.tanh(z) ** 2
