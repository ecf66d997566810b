"""Dispatch of the SRU recurrence: the fused op when it can run, else the
`keras.ops` reference in `sru_reference.py` (arguments, layout and outputs are
documented there).

The fused op exists for three Keras backends, built from the same kernels
(`custom_ops/sru/kernels`), each loaded by `op_library.py`: a TensorFlow op
(`KerasNdsru>SruForward`, wrapper `sru_fused.py`), PyTorch custom operators
(`keras_ndsru::sru_forward`, `sru_fused_torch.py`) and XLA FFI targets of
JAX (`sru_fused_jax.py`). `use_fused_kernel` selects the path, with the same
policy on each:

- `"auto"` (default): the fused op when the backend's library is built,
  loads and matches the running framework (see `op_library.py`), else the
  reference with one `FusedKernelWarning` per process. Masks that are not
  right-padded also run the reference (decided at run time inside a graph).
- `True`: the fused op, or a `RuntimeError` saying why it cannot run; a mask
  that is not right-padded is an error.
- `False`: always the reference.

The environment variable `KERAS_NDSRU_DISABLE_FUSED=1` forces the reference.
Backends without a fused op (numpy, openvino) run the reference without a
warning under `"auto"`.

When TensorFlow sees a GPU but the library was built without CUDA kernels,
the fused op still runs (on the CPU, with copies between the devices around
it), with one `FusedKernelWarning` per process saying how to avoid that. On
torch and JAX, tensors on a GPU then run the reference under `"auto"` (one
warning) and raise under `True`.

The TensorFlow op has no XLA kernel; the JAX FFI call and the PyTorch
operators compile (`jax.jit`, `torch.compile`). A layer calling
`sru_recurrence` sets `supports_jit = supports_jit(use_fused_kernel)`, so
that `jit_compile="auto"` leaves the TensorFlow op alone.

dtypes: `u` and `x_highway` may be float16, bfloat16, float32 or float64
(`x_highway` is cast to the dtype of `u`); `weight_c`, `bias` and `c0` are cast
to the state dtype (float64 for float64 `u`, else float32). The fused op
computes in the state dtype and stores `h` in the dtype of `u`, like the
reference. How the op is called (casts, alpha, devices) and its gradient are
in `sru_fused.py`; this module only chooses the path.

Backends: on torch and JAX neither the TensorFlow library nor TensorFlow
is loaded, only that backend's library.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from keras_ndsru.ops import op_library
from keras_ndsru.ops.sru_layout import (
    SRUOutputs,
    num_directions,
    repeat_last_valid_output,
    state_dtype,
    static_alpha,
)
from keras_ndsru.ops.sru_reference import sru_reference

_CHOICES = ("auto", True, False)
_NOT_RIGHT_PADDED = (
    "The fused SRU op needs a right-padded mask (valid steps first, then "
    "padding), and this mask is not. Pass use_fused_kernel='auto' to run "
    "the keras.ops recurrence for such masks."
)


def _check_choice(use_fused_kernel) -> None:
    if not (use_fused_kernel == "auto" or isinstance(use_fused_kernel, bool)):
        raise ValueError(
            f"`use_fused_kernel` must be one of {_CHOICES}. "
            f"Received: use_fused_kernel={use_fused_kernel!r}"
        )


def _on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def will_use_fused_kernel(use_fused_kernel="auto") -> bool:
    """Whether `sru_recurrence` runs the fused op for this setting on the
    running Keras backend.

    Loads the backend's op library on first call. Under `"auto"` a mask that
    is not right-padded still runs the reference at run time (and on torch
    and JAX, so do tensors on a GPU when the library has no CUDA kernels).

    Args:
        use_fused_kernel: `"auto"`, `True` or `False`.

    Returns:
        True when the fused op will be used.

    Raises:
        RuntimeError: `use_fused_kernel=True` and the fused op cannot run
            (the reason is in the message, e.g. the library is not built,
            or the backend has no fused op).
    """
    _check_choice(use_fused_kernel)
    if use_fused_kernel is False:
        return False
    if _fused_op_ready():
        return True
    if use_fused_kernel is True:
        reason = op_library.fused_kernel_status().reason
        raise RuntimeError(
            f"use_fused_kernel=True, but the fused SRU op cannot run: "
            f"{reason} Pass use_fused_kernel='auto' to fall back to "
            f"the keras.ops recurrence."
        )
    return False


def _fused_op_ready() -> bool:
    """Whether the backend's fused op loads and is enabled. On torch a
    constant of the trace under `torch.compile` (the loader's lock and files
    cannot be traced), as the decision is one for TensorFlow's graphs."""
    if keras.backend.backend() == "torch":
        from keras_ndsru.ops import sru_fused_torch

        return sru_fused_torch.fused_op_ready()
    loader = op_library.default_loader()
    return loader is not None and loader.ready()


def supports_jit(use_fused_kernel="auto") -> bool:
    """Whether a layer running `sru_recurrence` with this setting can be
    jit-compiled: False only for the TensorFlow op, which has no XLA kernel
    (the JAX FFI call and the PyTorch operators compile). A layer sets
    `self.supports_jit` from it, so that `jit_compile="auto"` leaves the
    TensorFlow op alone.

    Args:
        use_fused_kernel: `"auto"`, `True` or `False`.

    Raises:
        RuntimeError: as `will_use_fused_kernel`.
    """
    fused = will_use_fused_kernel(use_fused_kernel)
    return not (fused and _on_tensorflow())


def _check_alpha(alpha, u) -> None:
    """A static alpha must be finite in the state dtype: the op takes it as
    a float32 attribute, and the reference as a state-dtype constant."""
    value = static_alpha(alpha)
    if value is None:
        return
    dtype = state_dtype(getattr(u, "dtype", "float32"))
    if not abs(value) <= float(np.finfo(dtype).max):
        raise ValueError(
            f"`alpha` must be finite in the recurrence state dtype ({dtype}). "
            f"Received: alpha={value!r}"
        )


def sru_recurrence(
    u,
    x_highway,
    weight_c,
    bias,
    c0=None,
    mask=None,
    alpha: float = 1.0,
    direction: str = "forward",
    use_fused_kernel="auto",
    zero_output_for_mask: bool = True,
    for_export: bool = False,
) -> SRUOutputs:
    """Runs the SRU recurrence, fused when possible (see the module docstring).

    Args:
        u: `(batch, time, n_dir * 3 * units)` precomputed `x [W W_f W_r]`.
        x_highway: `(batch, time, n_dir * units)` highway input.
        weight_c: `(n_dir * 2 * units,)` the `[v_f | v_r]` vectors.
        bias: `(n_dir * 2 * units,)` the `[b_f | b_r]` biases.
        c0: optional `(batch, n_dir * units)` initial cell state (zeros).
        mask: optional `(batch, time)` boolean mask, True = valid step. The
            fused op needs right padding (valid steps first).
        alpha: highway scaling (Sec. 3.2), a float or a scalar tensor.
        direction: `"forward"`, `"backward"` or `"bidirectional"`.
        use_fused_kernel: `"auto"`, `True` or `False`. Defaults to `"auto"`.
        zero_output_for_mask: Whether `h` is 0 at masked steps (True) or
            repeats the last valid output of the direction (False, Keras'
            RNN default). Defaults to `True`.
        for_export: Whether the TensorFlow reference runs in its
            TensorList-free loop, which TFLite lowers for dynamic shapes
            (see `sru_reference`). Defaults to `False`.

    Returns:
        `SRUOutputs(h, h_last, c_last)`.

    Example:

    >>> import numpy as np
    >>> u = np.zeros((2, 5, 3 * 4), "float32")
    >>> x = np.ones((2, 5, 4), "float32")
    >>> w = np.zeros(8, "float32")
    >>> tuple(sru_recurrence(u, x, w, w).h.shape)
    (2, 5, 4)
    """
    num_directions(direction)  # a bad direction is the first error
    _check_alpha(alpha, u)
    args = (u, x_highway, weight_c, bias, c0, mask, alpha, direction)
    if not will_use_fused_kernel(use_fused_kernel):
        loader = op_library.default_loader()
        # A backend without a fused op has nothing to fall back from.
        if use_fused_kernel == "auto" and loader is not None:
            loader.warn_fallback_once()
        return sru_reference(*args, zero_output_for_mask, for_export)
    strict = use_fused_kernel is True
    backend = keras.backend.backend()
    if backend == "torch":
        return _fused_torch(*args, strict, zero_output_for_mask)
    if backend == "jax":
        return _fused_jax(*args, strict, zero_output_for_mask)
    from keras_ndsru.ops import sru_fused  # imports TensorFlow

    inputs = sru_fused.prepare_inputs(
        u, x_highway, weight_c, bias, c0, alpha, direction
    )
    if mask is None:
        return sru_fused.sru_fused(inputs)
    return _fused_with_mask(inputs, mask, strict, zero_output_for_mask, for_export)


def _no_cuda_kernels(strict: bool) -> None:
    """On a GPU with a library built without CUDA kernels (torch, JAX):
    raises under `strict`, else warns once (the caller runs the reference)."""
    loader = op_library.default_loader()
    if strict:
        raise RuntimeError(
            f"use_fused_kernel=True, but the fused SRU op cannot run on the GPU: "
            f"{loader.no_cuda_kernels_note()}"
        )
    loader.warn_once("no_cuda_kernels", loader.no_cuda_kernels_note)


def _fused_torch(
    u, x_highway, weight_c, bias, c0, mask, alpha, direction, strict, zero_output
):
    """The PyTorch operators; a mask that is not right-padded runs the
    reference (or is an error under `strict`). Checking the mask reads its
    values, a graph break under `torch.compile`; calls without a mask have
    none."""
    from keras_ndsru.ops import sru_fused_torch  # imports torch

    u = keras.ops.convert_to_tensor(u)
    args = (u, x_highway, weight_c, bias, c0, mask, alpha, direction, zero_output)
    if u.device.type != "cpu" and not sru_fused_torch.has_cuda_kernels():
        _no_cuda_kernels(strict)
        return sru_reference(*args)
    if mask is None:
        return sru_fused_torch.sru_fused(
            u, x_highway, weight_c, bias, c0, None, alpha, direction
        )
    lengths, right_padded = sru_fused_torch.lengths_of_mask(mask)
    if not right_padded:
        if strict:
            raise ValueError(_NOT_RIGHT_PADDED)
        return sru_reference(*args)
    outputs = sru_fused_torch.sru_fused(
        u, x_highway, weight_c, bias, c0, lengths, alpha, direction
    )
    if zero_output:
        return outputs
    return repeat_last_valid_output(outputs, mask, direction)


def _fused_jax(
    u, x_highway, weight_c, bias, c0, mask, alpha, direction, strict, zero_output
):
    """The JAX FFI call; a mask that is not right-padded runs the reference
    (chosen at run time by `lax.cond` under `jax.jit`), or is an error under
    `strict`."""
    from keras_ndsru.ops import sru_fused_jax  # imports JAX

    args = (u, x_highway, weight_c, bias, c0, mask, alpha, direction)
    if sru_fused_jax.default_platform() != "cpu" and not (
        op_library.default_loader().cuda
    ):
        _no_cuda_kernels(strict)
        return sru_reference(*args, zero_output)
    if mask is None:
        return sru_fused_jax.sru_fused(
            u, x_highway, weight_c, bias, c0, None, alpha, direction
        )
    return sru_fused_jax.sru_fused_with_mask(
        u,
        x_highway,
        weight_c,
        bias,
        c0,
        mask,
        alpha,
        direction,
        reference=functools.partial(sru_reference, zero_output_for_mask=zero_output),
        strict_message=_NOT_RIGHT_PADDED if strict else None,
        zero_output_for_mask=zero_output,
    )


def _fused_with_mask(
    inputs, mask, strict: bool, zero_output: bool, for_export: bool
) -> SRUOutputs:
    """The fused op for a right-padded mask. Any other mask runs the
    reference (`strict=False`) or is an error (`strict=True`), decided at
    run time inside a graph."""
    import tensorflow as tf

    from keras_ndsru.ops import sru_fused

    mask = tf.cast(mask, tf.bool)
    if mask.shape.rank != 2:
        raise ValueError(
            f"`mask` must have shape (batch, time). Received: mask.shape={mask.shape}"
        )
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    right_padded = tf.reduce_all(
        tf.equal(mask, tf.sequence_mask(lengths, tf.shape(mask)[1]))
    )

    def reference():
        # From the op's inputs, so that both branches compute from the same
        # values (x_highway cast, alpha possibly folded into it).
        return sru_reference(
            inputs.u,
            inputs.x_highway,
            inputs.weight_c,
            inputs.bias,
            inputs.c0,
            mask,
            inputs.alpha,
            inputs.direction,
            zero_output,
            for_export,
        )

    def fused():
        outputs = sru_fused.sru_fused(inputs, lengths)
        if zero_output:
            return outputs
        return repeat_last_valid_output(outputs, mask, inputs.direction)

    if tf.executing_eagerly():
        if bool(right_padded):
            return fused()
        if strict:
            raise ValueError(_NOT_RIGHT_PADDED)
        return reference()
    if strict:
        assertion = tf.debugging.Assert(right_padded, [_NOT_RIGHT_PADDED])
        with tf.control_dependencies([assertion]):
            lengths = tf.identity(lengths)
        return fused()
    return SRUOutputs(*tf.cond(right_padded, fused, reference))
