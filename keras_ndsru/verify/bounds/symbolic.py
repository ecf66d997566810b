"""Pre-activation bounds: interval and symbolic (back-substitution) propagation.

Reluplex (arXiv 1709.02802, Sec. 3) gains its speed from ReLUs whose phase is
fixed on the whole input region: they become linear. The bounds computed here
decide which ReLUs are fixed and give the big-M constants of the MILP encoding.
Symbolic bounds back-substitute the triangle relaxation of every ReLU down to
the input (as in DeepPoly/CROWN), then concretize over the input region
(`spec.Region.minimize`).
"""

from __future__ import annotations

import time

import numpy as np


class Relaxation:
    """The triangle relaxation of ReLUs with pre-activation bounds [l, u].

    Active (``l >= 0``) neurons are the identity, inactive
    ones (``u <= 0``) are zero. An ``unstable`` one is bounded above by its
    chord ``slope z + shift`` (``slope = u / (u - l)``) and below by
    ``low_slope z``, slope 1 where the interval is mostly positive, else 0
    (DeepPoly's area heuristic). Works on arrays of any shape (one region, or
    a batch of boxes).
    """

    def __init__(self, lower, upper):
        active = lower >= 0
        self.unstable = unstable(lower, upper)
        width = np.where(self.unstable, upper - lower, 1.0)
        self.slope = np.where(active, 1.0, np.where(self.unstable, upper / width, 0.0))
        self.shift = np.where(self.unstable, -self.slope * lower, 0.0)
        self.low_slope = np.where(
            self.unstable, (upper > -lower).astype(np.float64), self.slope
        )


def unstable(lower, upper):
    """ReLUs whose phase the bounds leave open."""
    return (lower < 0) & (upper > 0)


def _back_substitute(
    network, relax, coef, const, region, upper_side, deadline=None, bounds=None
):
    """Bound ``coef @ a_last + const`` with ``a_last`` the last relaxed layer.

    Past ``deadline`` (with the layers' pre-activation ``bounds``), the
    substitution stops at the layer it has reached and bounds what is left
    by that layer's output interval (sound, looser: DeepPoly's early stop).
    """
    sign = -1.0 if upper_side else 1.0
    coef, const = sign * coef, sign * const
    for m in range(len(relax) - 1, -1, -1):
        pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
        if deadline is not None and time.time() > deadline:
            lo, hi = activated(*bounds[m])
            return sign * (const + pos @ lo + neg @ hi)
        # Minimising: positive coefficients take the lower relaxation.
        const = const + neg @ relax[m].shift
        coef = pos * relax[m].low_slope + neg * relax[m].slope
        const = const + coef @ network.biases[m]
        coef = coef @ network.weights[m]
    return sign * region.minimize(coef, const)


def activated(lower, upper):
    """Interval of the layer's outputs from its pre-activation bounds."""
    return np.maximum(lower, 0.0), np.maximum(upper, 0.0)


def layer_bounds(network, region, symbolic: bool = True, deadline=None):
    """Bounds ``(lower, upper)`` of every hidden pre-activation over one copy
    of ``region`` (a `spec.Region`): intervals, tightened by back-substitution
    (``symbolic``) until ``deadline`` (a `time.time()` value or None); the
    layers after it keep their (sound, looser) intervals."""
    bounds, relax = [], []
    lo, hi = region.lower, region.upper
    for k in range(len(network.weights) - 1):
        w, b = network.weights[k], network.biases[k]
        if k == 0:
            lower = region.minimize(w, b)
            upper = -region.minimize(-w, -b)
        else:
            pos, neg = np.maximum(w, 0.0), np.minimum(w, 0.0)
            lower = pos @ lo + neg @ hi + b
            upper = pos @ hi + neg @ lo + b
            if symbolic and (deadline is None or time.time() < deadline):
                lower = np.maximum(
                    lower,
                    _back_substitute(
                        network, relax, w, b, region, False, deadline, bounds
                    ),
                )
                upper = np.minimum(
                    upper,
                    _back_substitute(
                        network, relax, w, b, region, True, deadline, bounds
                    ),
                )
        upper = np.maximum(upper, lower)
        bounds.append((lower, upper))
        relax.append(Relaxation(lower, upper))
        lo, hi = activated(lower, upper)
    return bounds


def output_lower_bounds(network, bounds, region, out_coef, out_const):
    """Lower bounds of ``out_coef @ N(x) + out_const`` per row over ``region``.

    Returns ``(lower, input_coef)``: ``lower`` of shape (rows,), and per row
    the back-substituted linear function of the input whose minimizing vertex
    is a good falsification candidate, shape (rows, n).
    """
    out_coef = np.atleast_2d(out_coef)
    coef = out_coef @ network.weights[-1]
    const = out_coef @ network.biases[-1] + out_const
    relax = [Relaxation(lo, hi) for lo, hi in bounds]
    lower = _back_substitute(network, relax, coef, const, region, False)
    if bounds:
        lo, hi = activated(*bounds[-1])
        interval = const + np.maximum(coef, 0) @ lo + np.minimum(coef, 0) @ hi
        lower = np.maximum(lower, interval)
    # The symbolic coefficient on the input, for the minimizing vertex.
    input_coef = coef
    for m in range(len(relax) - 1, -1, -1):
        input_coef = (
            np.maximum(input_coef, 0) * relax[m].low_slope
            + np.minimum(input_coef, 0) * relax[m].slope
        ) @ network.weights[m]
    return lower, input_coef


def count_unstable(network, bounds) -> int:
    """ReLUs whose phase the bounds leave open (binaries of the MILP)."""
    return sum(int(np.sum(unstable(lo, hi))) for lo, hi in bounds)


def margin_bounds(network, bounds, region, disjuncts):
    """Lower bounds of each disjunct's margin ``max_i (mat_i @ y - rhs_i)``.

    All rows of all disjuncts are back-substituted at once, per copy. Returns
    one ``(lower, vertex, input_coef)`` per disjunct: ``vertex`` ``(copies,
    n)`` minimizes the bound of the disjunct's best-bounded row (a candidate
    counterexample), ``input_coef`` (n,) that row's input coefficients of the
    first copy (for choosing a split dimension).
    """
    n_out = network.n_outputs
    mat = np.concatenate([d.mat for d in disjuncts])
    rhs = np.concatenate([d.rhs for d in disjuncts])
    lower = -rhs
    vertices, coefs = [], []
    for k in range(region.copies):
        block = mat[:, k * n_out : (k + 1) * n_out]
        value, coef = output_lower_bounds(network, bounds, region, block, 0.0)
        lower = lower + value
        vertices.append([region.minimizer(row) for row in coef])
        coefs.append(coef)
    out, start = [], 0
    for d in disjuncts:
        rows = slice(start, start + d.mat.shape[0])
        best = start + int(np.argmax(lower[rows]))
        vertex = np.stack([vertices[k][best] for k in range(region.copies)])
        out.append((float(lower[rows].max()), vertex, coefs[0][best]))
        start = rows.stop
    return out
