"""Central differences of a scalar function of one NumPy array, the
gradient oracle of the recurrence and layer tests."""

from __future__ import annotations

import numpy as np


def central_differences(loss, value: np.ndarray, indices=None, eps: float = 1e-6):
    """d loss / d value by central differences, `value` changed in place and
    restored.

    Args:
        loss: a function of no arguments that reads `value` (float64).
        value: the array to differentiate with respect to.
        indices: the entries to differentiate at; defaults to `None`, all.
        eps: the step. Defaults to `1e-6`.

    Returns:
        An array of `value`'s shape when `indices` is None, else one entry per
        index.
    """
    points = list(np.ndindex(value.shape)) if indices is None else list(indices)
    grad = np.zeros(len(points))
    for i, index in enumerate(points):
        old = value[index]
        value[index] = old + eps
        plus = loss()
        value[index] = old - eps
        minus = loss()
        value[index] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(value.shape) if indices is None else grad
