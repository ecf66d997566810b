"""Conventions of the SRU recurrence shared by the layer, the dispatch, the
fused op's wrapper and the reference: directions, the state dtype, the
outputs, and reading alpha when it is known before run time.

The tensor layout itself is documented in `sru_reference.py` (and for the op
in `custom_ops/sru/ops/sru_ops.cc`). This module imports neither TensorFlow
nor Keras at import time, so it serves every Keras backend (and the fused
op's GPU check, which runs where Keras may not be installed).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DIRECTIONS = ("forward", "backward", "bidirectional")
# The dtypes of `u` the fused ops take.
FUSED_DTYPES = ("float16", "bfloat16", "float32", "float64")


class SRUOutputs(NamedTuple):
    """Outputs of the SRU recurrence.

    Attributes:
        h: `(batch, time, n_dir * units)` hidden outputs, in the dtype of `u`.
        h_last: `(batch, n_dir * units)` last valid hidden output per row.
        c_last: `(batch, n_dir * units)` final cell state (float32/float64).
    """

    h: object
    h_last: object
    c_last: object


def num_directions(direction: str) -> int:
    """Returns 2 for `"bidirectional"`, 1 for `"forward"`/`"backward"`."""
    if direction not in DIRECTIONS:
        raise ValueError(
            f"`direction` must be one of {DIRECTIONS}. Received: direction={direction!r}"
        )
    return 2 if direction == "bidirectional" else 1


def fused_width(dtype: str, shape: tuple, direction: str) -> int:
    """Checks the `u` of a fused call by its dtype name and static shape, and
    returns the state width `n_dir * units`.

    Args:
        dtype: the dtype's name, e.g. `"float32"`.
        shape: the static shape of `u`, `(batch, time, n_dir * 3 * units)`.
        direction: `"forward"`, `"backward"` or `"bidirectional"`.

    Raises:
        ValueError: `u` is not float16, bfloat16, float32 or float64, or not
            of rank 3 with a known last dimension that is a multiple of
            `n_dir * 3`.
    """
    n_dir = num_directions(direction)
    if dtype not in FUSED_DTYPES:
        raise ValueError(
            f"`u` must be float16, bfloat16, float32 or float64. "
            f"Received: u.dtype={dtype}"
        )
    if len(shape) != 3 or shape[-1] is None or shape[-1] % (3 * n_dir):
        raise ValueError(
            f"`u` must have shape (batch, time, n_dir * 3 * units) with a known "
            f"last dimension divisible by {3 * n_dir} for direction="
            f"{direction!r}. Received: u.shape={tuple(shape)}"
        )
    return n_dir * (shape[-1] // (3 * n_dir))


def state_dtype(dtype) -> str:
    """The dtype the recurrence state is carried in for inputs of `dtype`."""
    import keras

    return (
        "float64" if keras.backend.standardize_dtype(dtype) == "float64" else "float32"
    )


def static_alpha(alpha) -> float | None:
    """alpha as a Python float, or None when it is only known at run time."""
    if isinstance(alpha, (int, float, np.floating, np.integer)):
        return float(alpha)
    import keras

    if keras.backend.backend() != "tensorflow":
        return None  # a tensor (possibly traced): checked nowhere else either
    import tensorflow as tf

    value = tf.get_static_value(alpha)
    return None if value is None else float(value)
