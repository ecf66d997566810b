"""Reluplex's robustness definitions (arXiv 1709.02802) as `spec.Property`.

Def. 1 (delta-local robustness): every ``x`` with ``||x - x0|| <= delta``
gets the label of ``x0``. Unsafe: some other output reaches the label's
(``y_label - y_j <= 0`` for argmax; a tie counts as unsafe).
Def. 3 ((delta, eps)-local): ``|y_l(x) - y_l(x0)| < eps`` for every output.
Unsafe: ``y_l - y_l(x0) >= eps`` or ``<= -eps``, two disjuncts per output.
Def. 2 ((delta, eps)-global over a box): two copies of the network,
``||x_1 - x_2|| <= delta``; unsafe ``y_l(x_1) - y_l(x_2) >= eps`` (the
property is symmetric in the copies, so one direction suffices).
"""

from __future__ import annotations

import numpy as np

from keras_ndsru.verify.properties.spec import Disjunct, Property, Region


def ball_box(x, delta, lower, upper):
    """The L_inf box of the ball in the domain, rounded inwards so that every
    point of it is within ``delta`` of ``x`` in floating point too."""
    lo, hi = x - delta, x + delta
    lo = np.where(x - lo > delta, np.nextafter(lo, np.inf), lo)
    hi = np.where(hi - x > delta, np.nextafter(hi, -np.inf), hi)
    return np.maximum(lo, lower), np.minimum(hi, upper)


def local_region(x0, delta, norm, domain) -> Region:
    """``||x - x0|| <= delta`` intersected with the ``domain`` box."""
    lower, upper = ball_box(x0, delta, *domain)
    return Region(lower, upper, norm=norm, radius=delta, center=x0)


def label_property(region: Region, n_outputs: int, label: int, argmin=False):
    """Def. 1: the output ``label`` stays the argmax (or argmin)."""
    disjuncts = []
    relation = "<=" if argmin else ">="
    for j in range(n_outputs):
        if j == label:
            continue
        row = np.zeros((1, n_outputs))
        # margin = y_l - y_j (argmax) or y_j - y_l (argmin); <= 0 is unsafe.
        row[0, label], row[0, j] = (-1.0, 1.0) if argmin else (1.0, -1.0)
        disjuncts.append(Disjunct(row, np.zeros(1), f"y[{j}] {relation} y[{label}]"))
    return Property(region, tuple(disjuncts), f"Def. 1, label {label}")


def output_property(region: Region, y0: np.ndarray, eps: float):
    """Def. 3: every output stays within ``eps`` of ``y0`` (strictly)."""
    k = y0.size
    disjuncts = []
    for j in range(k):
        for sign in (1.0, -1.0):
            row = np.zeros((1, k))
            row[0, j] = -sign
            # margin = eps - sign * (y_j(x) - y_j(x0))
            disjuncts.append(
                Disjunct(
                    row,
                    np.array([-(eps + sign * y0[j])]),
                    f"{'+' if sign > 0 else '-'}(y[{j}] - y0[{j}]) >= eps",
                )
            )
    return Property(region, tuple(disjuncts), f"Def. 3, eps {eps:g}")


def global_property(lower, upper, n_outputs: int, delta, eps, norm):
    """Def. 2 over the box ``[lower, upper]`` with two network copies."""
    region = Region(lower, upper, copies=2, norm=norm, radius=delta)
    disjuncts = []
    for j in range(n_outputs):
        row = np.zeros((1, 2 * n_outputs))
        row[0, j], row[0, n_outputs + j] = -1.0, 1.0
        # margin = eps - (y_j(x1) - y_j(x2))
        disjuncts.append(
            Disjunct(row, np.array([-eps]), f"y[{j}](x1) - y[{j}](x2) >= eps")
        )
    return Property(region, tuple(disjuncts), f"Def. 2, eps {eps:g}")
