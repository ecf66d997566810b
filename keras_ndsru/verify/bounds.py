"""Pre-activation bounds: interval and symbolic (back-substitution) propagation.

Reluplex (arXiv 1709.02802, Sec. 3) gains its speed from ReLUs whose phase is
fixed on the whole input region: they become linear. The bounds computed here
decide which ReLUs are fixed and give the big-M constants of the MILP encoding.
Symbolic bounds back-substitute the triangle relaxation of every ReLU down to
the input (as in DeepPoly/CROWN), then concretize over the input region
(`spec.Region.minimize`). Pass-through neurons (`ReluNetwork.passthrough`) are
exact identities: slope 1 on both sides.
"""

from __future__ import annotations

import numpy as np


def _relaxation(lower: np.ndarray, upper: np.ndarray, through=None):
    """Slopes/intercepts of the ReLU triangle relaxation for bounds [l, u]."""
    active = lower >= 0
    if through is not None:
        active = active | through
    unstable = (lower < 0) & (upper > 0) & ~active
    width = np.where(unstable, upper - lower, 1.0)
    up_slope = np.where(active, 1.0, np.where(unstable, upper / width, 0.0))
    up_shift = np.where(unstable, -lower * upper / width, 0.0)
    # Lower slope 0 or 1, whichever gives the smaller relaxation area.
    low_slope = np.where(active, 1.0, np.where(unstable & (upper > -lower), 1.0, 0.0))
    return low_slope, up_slope, up_shift


def _back_substitute(network, relax, coef, const, region, upper_side):
    """Bound ``coef @ a_last + const`` with ``a_last`` the last relaxed layer."""
    sign = -1.0 if upper_side else 1.0
    coef, const = sign * coef, sign * const
    for m in range(len(relax) - 1, -1, -1):
        low_slope, up_slope, up_shift = relax[m]
        pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
        # Minimising: positive coefficients take the lower relaxation.
        const = const + neg @ up_shift
        coef = pos * low_slope + neg * up_slope
        const = const + coef @ network.biases[m]
        coef = coef @ network.weights[m]
    return sign * region.minimize(coef, const)


def _activated(lower, upper, through):
    """Interval of the layer's outputs from its pre-activation bounds."""
    lo, hi = np.maximum(lower, 0.0), np.maximum(upper, 0.0)
    if through is not None:
        lo, hi = np.where(through, lower, lo), np.where(through, upper, hi)
    return lo, hi


def layer_bounds(network, region, symbolic: bool = True):
    """Bounds ``(lower, upper)`` of every hidden pre-activation over one copy
    of ``region`` (a `spec.Region`)."""
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
            if symbolic:
                lower = np.maximum(
                    lower, _back_substitute(network, relax, w, b, region, False)
                )
                upper = np.minimum(
                    upper, _back_substitute(network, relax, w, b, region, True)
                )
        upper = np.maximum(upper, lower)
        through = network.passthrough[k]
        bounds.append((lower, upper))
        relax.append(_relaxation(lower, upper, through))
        lo, hi = _activated(lower, upper, through)
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
    relax = [
        _relaxation(lo, hi, through)
        for (lo, hi), through in zip(bounds, network.passthrough)
    ]
    lower = _back_substitute(network, relax, coef, const, region, False)
    if bounds:
        lo, hi = _activated(*bounds[-1], network.passthrough[-1])
        interval = const + np.maximum(coef, 0) @ lo + np.minimum(coef, 0) @ hi
        lower = np.maximum(lower, interval)
    # The symbolic coefficient on the input, for the minimizing vertex.
    input_coef = coef
    for m in range(len(relax) - 1, -1, -1):
        low_slope, up_slope, _ = relax[m]
        input_coef = (
            np.maximum(input_coef, 0) * low_slope + np.minimum(input_coef, 0) * up_slope
        ) @ network.weights[m]
    return lower, input_coef


def count_unstable(network, bounds) -> int:
    """ReLUs whose phase the bounds leave open (binaries of the MILP)."""
    total = 0
    for (lo, hi), through in zip(bounds, network.passthrough):
        open_ = (lo < 0) & (hi > 0)
        if through is not None:
            open_ &= ~through
        total += int(np.sum(open_))
    return total


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
