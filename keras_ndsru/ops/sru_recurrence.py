"""Dispatch of the SRU recurrence: the fused op when it can run, else the
`keras.ops` reference in `sru_reference.py` (arguments, layout and outputs are
documented there).

`use_fused_kernel` selects the path:

- `"auto"` (default): the fused op `KerasNdsru>SruForward` when its library is
  built, loads and matches the running TensorFlow (see `op_library.py`), else
  the reference with one `FusedKernelWarning` per process. Masks that are not
  right-padded also run the reference (decided at run time inside a graph).
- `True`: the fused op, or a `RuntimeError` saying why it cannot run; a mask
  that is not right-padded is an error.
- `False`: always the reference.

The environment variable `KERAS_NDSRU_DISABLE_FUSED=1` forces the reference.

When TensorFlow sees a GPU but the library was built without CUDA kernels,
the fused op still runs (on the CPU, with copies between the devices around
it), with one `FusedKernelWarning` per process saying how to avoid that.

The fused op has no XLA kernel. A layer calling `sru_recurrence` should set
`supports_jit = False` when `will_use_fused_kernel(use_fused_kernel)` is True,
so that `jit_compile="auto"` does not try to compile it.

dtypes: `u` and `x_highway` may be float16, bfloat16, float32 or float64
(`x_highway` is cast to the dtype of `u`); `weight_c`, `bias` and `c0` are cast
to the state dtype (float64 for float64 `u`, else float32). The fused op
computes in the state dtype and stores `h` in the dtype of `u`, like the
reference. float16/bfloat16 inputs of an op placed on the CPU are cast to
float32 around it (same values, vectorized); its half kernels serve the GPU.

Backends: the fused op is a TensorFlow op, so it exists only when Keras runs
on TensorFlow. On the other backends (torch, JAX) `"auto"` runs the
`keras.ops` reference without a warning (there is nothing to fall back from),
`True` raises a `RuntimeError` naming the backend, and neither the op library
nor TensorFlow is loaded. The reference is jit-compilable there
(`will_use_fused_kernel` is False).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_ndsru.ops import op_library
from keras_ndsru.ops.sru_reference import (
    SRUOutputs,
    num_directions,
    sru_reference,
    state_dtype,
)

_CHOICES = ("auto", True, False)
_FUSED_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _check_choice(use_fused_kernel) -> None:
    if not (use_fused_kernel == "auto" or isinstance(use_fused_kernel, bool)):
        raise ValueError(
            f"`use_fused_kernel` must be one of {_CHOICES}. "
            f"Received: use_fused_kernel={use_fused_kernel!r}"
        )


def _on_tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


def will_use_fused_kernel(use_fused_kernel="auto") -> bool:
    """Whether `sru_recurrence` runs the fused op for this setting.

    Loads the op library on first call (on the TensorFlow backend only; on
    the others the fused op does not exist and nothing is loaded). Under
    `"auto"` a mask that is not right-padded still runs the reference at run
    time, but the fused op is part of the graph, so a caller must not
    XLA-compile it either way.

    Args:
        use_fused_kernel: `"auto"`, `True` or `False`.

    Returns:
        True when the fused op will be used.

    Raises:
        RuntimeError: `use_fused_kernel=True` and the fused op cannot run,
            e.g. Keras does not run on TensorFlow.
    """
    _check_choice(use_fused_kernel)
    if use_fused_kernel is False:
        return False
    if not _on_tensorflow():
        if use_fused_kernel is True:
            backend = keras.backend.backend()
            raise RuntimeError(
                "use_fused_kernel=True, but the fused SRU op is a TensorFlow op "
                "and Keras runs on another backend. Pass use_fused_kernel="
                "'auto' or False to run the keras.ops recurrence, or set "
                f"KERAS_BACKEND=tensorflow. Received: backend={backend!r}"
            )
        return False
    status = op_library.default_loader().status()
    if status.path == "fused":
        return True
    if use_fused_kernel is True:
        raise RuntimeError(
            f"use_fused_kernel=True, but the fused SRU op cannot run: "
            f"{status.reason} Pass use_fused_kernel='auto' to fall back to "
            f"the keras.ops recurrence."
        )
    return False


def _static_alpha(alpha):
    """alpha as a Python float, or None when it is only known at run time."""
    if isinstance(alpha, (int, float, np.floating, np.integer)):
        return float(alpha)
    if not _on_tensorflow():
        return None  # a tensor (possibly traced): checked nowhere else either
    import tensorflow as tf

    value = tf.get_static_value(alpha)
    return None if value is None else float(value)


def _placed_on_cpu(u) -> bool:
    """Whether an op with a GPU kernel would be placed on the CPU here: an
    explicit CPU device scope, or in eager mode where `tf.identity` runs. An
    unset device in a graph counts as GPU, since the placer prefers it."""
    import tensorflow as tf

    device = tf.identity(u).device
    return bool(device) and tf.DeviceSpec.from_string(device).device_type == "CPU"


def _runs_on_cpu(u, loader) -> bool:
    """Whether the fused op will be placed on the CPU: when the library has
    no CUDA kernels, no GPU is visible, or `_placed_on_cpu(u)`."""
    import tensorflow as tf

    if not loader.status().cuda or not tf.config.list_logical_devices("GPU"):
        return True
    return _placed_on_cpu(u)


def _warn_if_cpu_kernels_on_gpu(u, loader) -> None:
    """One warning per process when a GPU is visible but the library has no
    CUDA kernels: the op then runs on the CPU with copies around it. The fused
    CPU op stays (it is correct); the user chooses between rebuilding and
    `use_fused_kernel=False`. Silent under an explicit CPU device scope."""
    import tensorflow as tf

    if (
        not loader.status().cuda
        and tf.config.list_logical_devices("GPU")
        and not _placed_on_cpu(u)
    ):
        loader.warn_once("no_cuda_kernels", loader.no_cuda_kernels_note())


def _exact_in_float32(value: float) -> bool:
    if abs(value) > float(np.finfo(np.float32).max):
        return False
    return float(np.float32(value)) == value


def _check_alpha(alpha, u) -> None:
    """A static alpha must be finite in the state dtype: the op takes it as
    a float32 attribute, and the reference as a state-dtype constant."""
    value = _static_alpha(alpha)
    if value is None:
        return
    dtype = state_dtype(getattr(u, "dtype", "float32"))
    if not abs(value) <= float(np.finfo(dtype).max):
        raise ValueError(
            f"`alpha` must be finite in the recurrence state dtype ({dtype}). "
            f"Received: alpha={value!r}"
        )


def _right_padded(mask, lengths):
    """Whether every row of the boolean mask is valid steps then padding."""
    import tensorflow as tf

    steps = tf.shape(mask)[1]
    return tf.reduce_all(tf.equal(mask, tf.sequence_mask(lengths, steps)))


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
    n_dir = num_directions(direction)
    _check_alpha(alpha, u)
    if not will_use_fused_kernel(use_fused_kernel):
        # Off TensorFlow the reference is the only path: nothing to warn about.
        if use_fused_kernel == "auto" and _on_tensorflow():
            loader = op_library.default_loader()
            loader.warn_fallback_once(loader.status().reason)
        return sru_reference(u, x_highway, weight_c, bias, c0, mask, alpha, direction)
    import tensorflow as tf

    strict = use_fused_kernel is True
    loader = op_library.default_loader()
    module = loader.module()

    u = tf.convert_to_tensor(u)
    if u.dtype.name not in _FUSED_DTYPES:
        raise ValueError(
            f"`u` must be float16, bfloat16, float32 or float64. "
            f"Received: u.dtype={u.dtype.name}"
        )
    if u.shape.rank != 3 or u.shape[-1] is None or u.shape[-1] % (3 * n_dir):
        raise ValueError(
            f"`u` must have shape (batch, time, n_dir * 3 * units) with a known "
            f"last dimension divisible by {3 * n_dir} for direction="
            f"{direction!r}. Received: u.shape={u.shape}"
        )
    _warn_if_cpu_kernels_on_gpu(u, loader)
    s_dtype = state_dtype(u.dtype)
    x_highway = tf.cast(x_highway, u.dtype)
    weight_c = tf.cast(weight_c, s_dtype)
    bias = tf.cast(bias, s_dtype)
    batch, steps = tf.shape(u)[0], tf.shape(u)[1]
    width = n_dir * (u.shape[-1] // (3 * n_dir))
    c0 = tf.zeros((batch, width), s_dtype) if c0 is None else tf.cast(c0, s_dtype)

    # The op takes alpha as a float32 attribute. When that would round or
    # overflow it (float64 state) or it is only known at run time, fold it
    # into x_highway instead: exact, and differentiable with respect to alpha.
    static_alpha = _static_alpha(alpha)
    if static_alpha is None or (
        s_dtype == "float64" and not _exact_in_float32(static_alpha)
    ):
        # tf.cast would first round a Python float to a float32 tensor.
        if isinstance(alpha, (int, float, np.number)):
            alpha = tf.constant(alpha, u.dtype)
        x_highway = x_highway * tf.cast(alpha, u.dtype)
        static_alpha = 1.0

    # The CPU kernels for float16/bfloat16 convert element by element (6-10x
    # slower than float32); a vectorized cast to float32 around the op gives
    # the same values, since the kernels compute in float32 anyway.
    op_dtype = u.dtype
    if u.dtype in (tf.float16, tf.bfloat16) and _runs_on_cpu(u, loader):
        op_dtype = tf.float32

    def fused(lengths):
        h, _, h_last, c_last = module.keras_ndsru_sru_forward(
            tf.cast(u, op_dtype),
            tf.cast(x_highway, op_dtype),
            weight_c,
            bias,
            c0,
            lengths,
            alpha=static_alpha,
            direction=direction,
        )
        return SRUOutputs(tf.cast(h, u.dtype), tf.cast(h_last, u.dtype), c_last)

    if mask is None:
        return fused(tf.fill(tf.reshape(batch, [1]), steps))

    mask = tf.cast(mask, tf.bool)
    if mask.shape.rank != 2:
        raise ValueError(
            f"`mask` must have shape (batch, time). Received: mask.shape={mask.shape}"
        )
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    right_padded = _right_padded(mask, lengths)
    message = (
        "The fused SRU op needs a right-padded mask (valid steps first, then "
        "padding), and this mask is not. Pass use_fused_kernel='auto' to run "
        "the keras.ops recurrence for such masks."
    )

    def reference():
        return sru_reference(
            u, x_highway, weight_c, bias, c0, mask, static_alpha, direction
        )

    if tf.executing_eagerly():
        if bool(right_padded):
            return fused(lengths)
        if strict:
            raise ValueError(message)
        return reference()
    if strict:
        with tf.control_dependencies([tf.debugging.Assert(right_padded, [message])]):
            lengths = tf.identity(lengths)
        return fused(lengths)
    return SRUOutputs(*tf.cond(right_padded, lambda: fused(lengths), reference))
