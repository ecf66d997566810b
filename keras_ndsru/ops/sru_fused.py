"""Python wrapper of the fused SRU op `KerasNdsru>SruForward` and its gradient
op `KerasNdsru>SruBackward` (both defined in `custom_ops/sru/ops/sru_ops.cc`).

- `prepare_inputs` turns the arguments of `sru_recurrence` into the op's
  inputs: `x_highway` in the dtype of `u`, `weight_c`, `bias` and `c0` (zeros
  when None) in the state dtype, and alpha as the op's float32 attribute, or
  folded into `x_highway` when that attribute cannot hold it exactly.
- `sru_fused` runs the forward op on them for given per-row lengths (right
  padding). Half-precision inputs of an op placed on the CPU are cast to
  float32 around it: same values, and vectorized (the half CPU kernels
  convert element by element; they serve GPU placement).
- `register_gradient` wires the backward op as the forward op's gradient with
  `tf.RegisterGradient`; the loader (`op_library.py`) calls it once per
  process, when the library loads.

A GPU visible to TensorFlow with a library built without CUDA kernels gives
one `FusedKernelWarning` per process: the op then runs on the CPU with copies
between the devices around it.

This module imports TensorFlow: only the TensorFlow path imports it
(`sru_recurrence` does so lazily), so the other backends never load it.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_ndsru.ops import op_library
from keras_ndsru.ops.sru_layout import SRUOutputs, fused_call, static_alpha

FORWARD_OP = "KerasNdsru>SruForward"


class FusedInputs(NamedTuple):
    """The forward op's inputs, as `prepare_inputs` returns them.

    `sru_reference(u, x_highway, weight_c, bias, c0, mask, alpha, direction)`
    on these computes what the op computes. `op_dtype` is the dtype `u` and
    `x_highway` are passed to the op in.
    """

    u: tf.Tensor
    x_highway: tf.Tensor
    weight_c: tf.Tensor
    bias: tf.Tensor
    c0: tf.Tensor
    alpha: float
    direction: str
    op_dtype: tf.DType


def prepare_inputs(
    u,
    x_highway,
    weight_c,
    bias,
    c0=None,
    alpha: float = 1.0,
    direction: str = "forward",
) -> FusedInputs:
    """Validates and casts the arguments of `sru_recurrence` for the op.

    Args: as `sru_recurrence` (without `mask`).

    Returns:
        `FusedInputs` for `sru_fused`.

    Raises:
        ValueError: `u` is not float16, bfloat16, float32 or float64, or its
            last dimension is unknown or not a multiple of `n_dir * 3`.
    """
    u = tf.convert_to_tensor(u)
    shape = tuple(u.shape) if u.shape.rank is not None else None
    call = fused_call(u.dtype.name, shape, direction, lambda: _runs_on_cpu(u))
    _warn_if_cpu_kernels_on_gpu(u)
    state = call.state_dtype
    if c0 is None:
        c0 = tf.zeros((tf.shape(u)[0], call.width), state)
    x_highway, alpha = _fold_alpha(tf.cast(x_highway, u.dtype), alpha, state)
    return FusedInputs(
        u,
        x_highway,
        tf.cast(weight_c, state),
        tf.cast(bias, state),
        tf.cast(c0, state),
        alpha,
        direction,
        tf.as_dtype(call.op_dtype),
    )


def sru_fused(inputs: FusedInputs, lengths=None) -> SRUOutputs:
    """Runs the fused forward op.

    Args:
        inputs: from `prepare_inputs`.
        lengths: optional `(batch,)` int32 number of valid steps of each row
            (right padding), all steps when None.

    Returns:
        `SRUOutputs(h, h_last, c_last)`: `h` and `h_last` in the dtype of
        `inputs.u`, `c_last` in the state dtype.
    """
    u, op_dtype = inputs.u, inputs.op_dtype
    if lengths is None:
        batch, steps = tf.shape(u)[0], tf.shape(u)[1]
        lengths = tf.fill(tf.reshape(batch, [1]), steps)
    h, _, h_last, c_last = _op_module().keras_ndsru_sru_forward(
        tf.cast(u, op_dtype),
        tf.cast(inputs.x_highway, op_dtype),
        inputs.weight_c,
        inputs.bias,
        inputs.c0,
        lengths,
        alpha=inputs.alpha,
        direction=inputs.direction,
    )
    return SRUOutputs(tf.cast(h, u.dtype), tf.cast(h_last, u.dtype), c_last)


def _op_module():
    module = op_library.default_loader().module()
    if module is None:
        raise RuntimeError(
            f"The fused SRU op cannot run: "
            f"{op_library.default_loader().status().reason}"
        )
    return module


def _exact_in_float32(value: float) -> bool:
    if abs(value) > float(np.finfo(np.float32).max):
        return False
    return float(np.float32(value)) == value


def _fold_alpha(x_highway, alpha, s_dtype: str):
    """`(x_highway, alpha)` for the op, whose alpha is a float32 attribute.
    When that would round or overflow alpha (float64 state), or alpha is only
    known at run time, it is folded into `x_highway` instead: exact, and
    differentiable with respect to alpha."""
    value = static_alpha(alpha)
    if value is not None and (s_dtype != "float64" or _exact_in_float32(value)):
        return x_highway, value
    # tf.cast would first round a Python float to a float32 tensor.
    if isinstance(alpha, (int, float, np.number)):
        alpha = tf.constant(alpha, x_highway.dtype)
    return x_highway * tf.cast(alpha, x_highway.dtype), 1.0


def _placed_on_cpu(u) -> bool:
    """Whether an op with a GPU kernel would be placed on the CPU here: an
    explicit CPU device scope, or in eager mode where `tf.identity` runs. An
    unset device in a graph counts as GPU, since the placer prefers it."""
    device = tf.identity(u).device
    return bool(device) and tf.DeviceSpec.from_string(device).device_type == "CPU"


def _runs_on_cpu(u) -> bool:
    """Whether the op will be placed on the CPU: when the library has no CUDA
    kernels, no GPU is visible, or `_placed_on_cpu(u)`."""
    if not op_library.default_loader().cuda:
        return True
    if not tf.config.list_logical_devices("GPU"):
        return True
    return _placed_on_cpu(u)


def _warn_if_cpu_kernels_on_gpu(u) -> None:
    """One warning per process when a GPU is visible but the library has no
    CUDA kernels: the op then runs on the CPU with copies around it. The fused
    CPU op stays (it is correct); the user chooses between rebuilding and
    `use_fused_kernel=False`. Silent under an explicit CPU device scope."""
    loader = op_library.default_loader()
    if (
        not loader.cuda
        and tf.config.list_logical_devices("GPU")
        and not _placed_on_cpu(u)
    ):
        loader.warn_once("no_cuda_kernels", loader.no_cuda_kernels_note)


_gradient_lock = threading.Lock()
_gradient_module = None


def register_gradient(module) -> None:
    """Wires `module`'s KerasNdsru>SruBackward as the gradient of the forward
    op. Only the first call registers (TensorFlow allows one gradient per op
    type); later ones, e.g. from a second loader of the same library, do
    nothing."""
    global _gradient_module
    with _gradient_lock:
        if _gradient_module is not None:
            return
        _gradient_module = module
    tf.RegisterGradient(FORWARD_OP)(_sru_forward_grad)


def _sru_forward_grad(op, grad_h, grad_c_seq, grad_h_last, grad_c_last):
    # c_seq is an internal output kept for this gradient; the public API
    # never returns it, so its incoming gradient is always zero.
    del grad_c_seq
    u, x_highway, weight_c, bias, c0, lengths = op.inputs
    h, c_seq, h_last, c_last = op.outputs
    grads = _gradient_module.keras_ndsru_sru_backward(
        u,
        x_highway,
        weight_c,
        bias,
        c0,
        lengths,
        c_seq,
        tf.zeros_like(h) if grad_h is None else grad_h,
        tf.zeros_like(h_last) if grad_h_last is None else grad_h_last,
        tf.zeros_like(c_last) if grad_c_last is None else grad_c_last,
        alpha=op.get_attr("alpha"),
        direction=op.get_attr("direction"),
    )
    return [*grads, None]
