"""Conventions of the SRU recurrence shared by the layer, the dispatch, the
fused op's wrappers (TensorFlow, torch, JAX) and the reference: directions,
the state dtype, the dtypes a fused op is called in, the outputs, reading
alpha when it is known before run time, and Keras' output at masked steps.

The tensor layout itself is documented in `sru_reference.py` (and for the op
in `custom_ops/sru/ops/sru_ops.cc`). This module imports neither TensorFlow
nor Keras at import time, so it serves every Keras backend (and the fused
op's GPU check, which runs where Keras may not be installed).
"""

from __future__ import annotations

from collections.abc import Callable
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


class FusedCall(NamedTuple):
    """How the fused op of any framework is called on a `u`.

    Attributes:
        width: the state width `n_dir * units`.
        state_dtype: the dtype of `weight_c`, `bias`, `c0` and `c_last`.
        op_dtype: the dtype `u` and `x_highway` are passed to the op in.
    """

    width: int
    state_dtype: str
    op_dtype: str


def fused_call(
    dtype: str, shape: tuple | None, direction: str, on_cpu: Callable[[], bool]
) -> FusedCall:
    """Checks the `u` of a fused call by its dtype name and static shape, and
    says how to call the op on it.

    Args:
        dtype: the dtype's name, e.g. `"float32"`.
        shape: the static shape of `u`, `(batch, time, n_dir * 3 * units)`;
            None when its rank is unknown.
        direction: `"forward"`, `"backward"` or `"bidirectional"`.
        on_cpu: whether the op runs on the CPU; asked only for float16 and
            bfloat16, whose CPU kernels convert element by element (6-10x
            slower than float32): a vectorized cast to float32 around the op
            gives the same values, since the kernels compute in float32.

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
    if shape is None or len(shape) != 3 or shape[-1] is None or shape[-1] % (3 * n_dir):
        raise ValueError(
            f"`u` must have shape (batch, time, n_dir * 3 * units) with a known "
            f"last dimension divisible by {3 * n_dir} for direction="
            f"{direction!r}. Received: u.shape="
            f"{'<unknown>' if shape is None else tuple(shape)}"
        )
    half = dtype in ("float16", "bfloat16")
    return FusedCall(
        width=n_dir * (shape[-1] // (3 * n_dir)),
        state_dtype=_state_dtype_of(dtype),
        op_dtype="float32" if half and on_cpu() else dtype,
    )


def state_dtype(dtype) -> str:
    """The dtype the recurrence state is carried in for inputs of `dtype`."""
    import keras

    return _state_dtype_of(keras.backend.standardize_dtype(dtype))


def _state_dtype_of(name: str) -> str:
    return "float64" if name == "float64" else "float32"


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


def repeat_last_valid_output(outputs: SRUOutputs, mask, direction: str) -> SRUOutputs:
    """Keras' default output at masked steps (`zero_output_for_mask=False`)
    from the fused op's, for a right-padded `(batch, time)` mask.

    The fused op outputs 0 at masked steps. Keras' RNN layers output there
    the last valid output their direction processed before (0 before the
    first). With right padding a forward direction reaches its masked steps
    after all valid ones, so they repeat `h_last`; a backward direction
    reaches them first, so they stay 0.
    """
    from keras import ops

    if direction == "backward":
        return outputs
    h, h_last, c_last = outputs
    keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
    if direction == "bidirectional":
        width = h_last.shape[-1]
        backward_columns = ops.arange(width) >= width // 2
        keep = ops.logical_or(keep, backward_columns)
    h = ops.where(keep, h, ops.expand_dims(h_last, 1))
    return SRUOutputs(h, h_last, c_last)
