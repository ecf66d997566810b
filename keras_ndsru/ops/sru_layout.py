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
