"""Pre-activation bounds: interval and symbolic (back-substitution) propagation.

Reluplex (arXiv 1709.02802, Sec. 3) gains its speed from ReLUs whose phase is
fixed on the whole input region: they become linear. The bounds computed here
decide which ReLUs are fixed and give the big-M constants of the MILP encoding.
Symbolic bounds back-substitute the triangle relaxation of every ReLU down to
the input (as in DeepPoly/CROWN), then concretize over the input region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class InputRegion:
    """A box, optionally intersected with the L_1 ball ``||x - center||_1 <= delta``."""

    lower: np.ndarray
    upper: np.ndarray
    l1_center: np.ndarray | None = None
    l1_delta: float = 0.0

    def minimize(self, coef: np.ndarray, const: np.ndarray) -> np.ndarray:
        """Lower bound of ``coef @ x + const`` per row over the region."""
        pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
        value = const + pos @ self.lower + neg @ self.upper
        if self.l1_center is not None:
            ball = const + coef @ self.l1_center - self.l1_delta * np.abs(coef).max(1)
            value = np.maximum(value, ball)
        return value

    def minimizer(self, coef: np.ndarray) -> np.ndarray:
        """A point of the region where ``coef @ x`` (one row) is small."""
        if self.l1_center is None:
            return np.where(coef > 0, self.lower, self.upper)
        x = self.l1_center.copy()
        i = int(np.argmax(np.abs(coef)))
        x[i] -= self.l1_delta * np.sign(coef[i])
        return np.clip(x, self.lower, self.upper)

    def split(self, dim: int):
        mid = 0.5 * (self.lower[dim] + self.upper[dim])
        left_upper, right_lower = self.upper.copy(), self.lower.copy()
        left_upper[dim], right_lower[dim] = mid, mid
        return (
            InputRegion(self.lower, left_upper, self.l1_center, self.l1_delta),
            InputRegion(right_lower, self.upper, self.l1_center, self.l1_delta),
        )


def _relaxation(lower: np.ndarray, upper: np.ndarray):
    """Slopes/intercepts of the ReLU triangle relaxation for bounds [l, u]."""
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    width = np.where(unstable, upper - lower, 1.0)
    up_slope = np.where(active, 1.0, np.where(unstable, upper / width, 0.0))
    up_shift = np.where(unstable, -lower * upper / width, 0.0)
    # Lower slope 0 or 1, whichever gives the smaller relaxation area.
    low_slope = np.where(active, 1.0, np.where(unstable & (upper > -lower), 1.0, 0.0))
    return low_slope, up_slope, up_shift


def _back_substitute(weights, biases, relax, coef, const, region, upper_side):
    """Bound ``coef @ a_last + const`` with ``a_last`` the last relaxed layer."""
    sign = -1.0 if upper_side else 1.0
    coef, const = sign * coef, sign * const
    for m in range(len(relax) - 1, -1, -1):
        low_slope, up_slope, up_shift = relax[m]
        pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
        # Minimising: positive coefficients take the lower relaxation.
        const = const + neg @ up_shift
        coef = pos * low_slope + neg * up_slope
        const = const + coef @ biases[m]
        coef = coef @ weights[m]
    return sign * region.minimize(coef, const)


def layer_bounds(weights, biases, region: InputRegion, symbolic: bool = True):
    """Bounds ``(lower, upper)`` of every hidden pre-activation over ``region``."""
    bounds, relax = [], []
    lo, hi = region.lower, region.upper
    for k in range(len(weights) - 1):
        w, b = weights[k], biases[k]
        if k == 0:
            lower = region.minimize(w, b)
            upper = -region.minimize(-w, -b)
        else:
            pos, neg = np.maximum(w, 0.0), np.minimum(w, 0.0)
            lower = pos @ lo + neg @ hi + b
            upper = pos @ hi + neg @ lo + b
            if symbolic:
                lower = np.maximum(
                    lower, _back_substitute(weights, biases, relax, w, b, region, False)
                )
                upper = np.minimum(
                    upper, _back_substitute(weights, biases, relax, w, b, region, True)
                )
        upper = np.maximum(upper, lower)
        bounds.append((lower, upper))
        relax.append(_relaxation(lower, upper))
        lo, hi = np.maximum(lower, 0.0), np.maximum(upper, 0.0)
    return bounds


def objective_lower_bound(weights, biases, bounds, region, out_coef, out_const=0.0):
    """Lower bound of ``out_coef @ N(x) + out_const`` over ``region``.

    Returns ``(bound, input_coef)`` where ``input_coef`` is the back-substituted
    linear function whose minimizing vertex is a good falsification candidate.
    """
    coef = (out_coef @ weights[-1])[None, :]
    const = np.atleast_1d(out_coef @ biases[-1] + out_const)
    relax = [_relaxation(lo, hi) for lo, hi in bounds]
    bound = _back_substitute(weights, biases, relax, coef, const, region, False)[0]
    if bounds:
        lo, hi = np.maximum(bounds[-1][0], 0.0), np.maximum(bounds[-1][1], 0.0)
        c = coef[0]
        interval = const[0] + np.maximum(c, 0) @ lo + np.minimum(c, 0) @ hi
        bound = max(bound, interval)
    # The symbolic coefficient on the input, for the minimizing vertex.
    input_coef = coef[0]
    for m in range(len(relax) - 1, -1, -1):
        low_slope, up_slope, _ = relax[m]
        input_coef = (
            np.maximum(input_coef, 0) * low_slope + np.minimum(input_coef, 0) * up_slope
        ) @ weights[m]
    return float(bound), input_coef


def count_unstable(bounds) -> int:
    return int(sum(np.sum((lo < 0) & (hi > 0)) for lo, hi in bounds))
