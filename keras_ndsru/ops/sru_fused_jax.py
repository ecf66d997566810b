"""JAX wrapper of the fused SRU recurrence: XLA FFI targets
`keras_ndsru_sru_forward` and `keras_ndsru_sru_backward` (C++ in
`custom_ops/sru/jax/`, the kernels of the TensorFlow op: Lei et al. 2017,
arXiv 1709.02755, eqs. (1)-(4)).

- `register_targets` loads the library (`ctypes`) and registers its
  handlers with `jax.ffi` for the CPU, and for CUDA when it has CUDA
  kernels. The loader (`op_library.py`) calls it once per process.
- `sru_fused` calls the forward target through `jax.ffi.ffi_call`, inside a
  `jax.custom_vjp` whose backward pass is the backward target (it
  recomputes the gates from `u` and the saved `c`): it works under
  `jax.jit`, `jax.grad` and `jax.vmap` (one call per mapped element). The
  arguments are those of `sru_recurrence` plus per-row lengths (right
  padding): `x_highway` in the dtype of `u`; `weight_c`, `bias` and `c0`
  (zeros when None) in the state dtype (float64 for float64 `u`, else
  float32); alpha as a float64 attribute, or folded into `x_highway` when
  it is an array (then also differentiable with respect to alpha). On the
  CPU, float16/bfloat16 `u` and `x_highway` are cast to float32 around the
  call (same values: the kernels compute in float32).
- `sru_fused_with_mask` takes a `(batch, time)` mask: right-padded masks
  run the targets, others the reference, chosen at run time by `lax.cond`
  under `jax.jit` (in Python for concrete arrays), or are an error.

This module imports JAX: only the JAX path imports it (`sru_recurrence` and
the loader do so lazily).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from keras_ndsru.ops.sru_layout import (
    SRUOutputs,
    fused_call,
    repeat_last_valid_output,
)

FORWARD = "keras_ndsru_sru_forward"
BACKWARD = "keras_ndsru_sru_backward"
# The handler symbols of the library, per jax.ffi platform.
_HANDLERS = {
    "cpu": ("KerasNdsruSruForwardCpu", "KerasNdsruSruBackwardCpu"),
    "CUDA": ("KerasNdsruSruForwardCuda", "KerasNdsruSruBackwardCuda"),
}

_registration_lock = threading.Lock()
_registered: dict = {}


def register_targets(path: Path) -> ctypes.CDLL:
    """Loads the library at `path` and registers its FFI handlers: the CPU
    ones, and the CUDA ones when it has them. Only the first call
    registers; returns the loaded library."""
    with _registration_lock:
        if "library" in _registered:
            return _registered["library"]
        library = ctypes.cdll.LoadLibrary(str(path))
        for platform, symbols in _HANDLERS.items():
            if not all(hasattr(library, s) for s in symbols):
                continue
            for target, symbol in zip((FORWARD, BACKWARD), symbols):
                jax.ffi.register_ffi_target(
                    target, jax.ffi.pycapsule(getattr(library, symbol)), platform
                )
        _registered["library"] = library
        return library


def default_platform() -> str:
    """The platform JAX computes on by default: `"cpu"`, `"gpu"`, ..."""
    return jax.default_backend()


def sru_fused(
    u,
    x_highway,
    weight_c,
    bias,
    c0=None,
    lengths=None,
    alpha=1.0,
    direction: str = "forward",
) -> SRUOutputs:
    """Runs the fused recurrence.

    Args: as `sru_recurrence` (arrays for tensors), with `lengths` instead
        of `mask`: an optional `(batch,)` number of valid steps of each row
        (right padding), all steps when None.

    Returns:
        `SRUOutputs(h, h_last, c_last)`: `h` and `h_last` in the dtype of
        `u`, `c_last` in the state dtype.

    Raises:
        ValueError: `u` is not a float16, bfloat16, float32 or float64 array
            of rank 3 whose last dimension is a multiple of `n_dir * 3`.
    """
    u = jnp.asarray(u)
    call = fused_call(
        str(u.dtype), u.shape, direction, lambda: default_platform() == "cpu"
    )
    state, op_dtype = call.state_dtype, call.op_dtype
    batch, steps = u.shape[0], u.shape[1]
    x_highway = jnp.asarray(x_highway).astype(op_dtype)
    if not isinstance(alpha, (int, float, np.number)):
        x_highway = x_highway * jnp.asarray(alpha).astype(op_dtype)
        alpha = 1.0
    if c0 is None:
        c0 = jnp.zeros((batch, call.width), state)
    if lengths is None:
        lengths = jnp.full((batch,), steps, jnp.int32)
    h, h_last, c_last = _sru(
        u.astype(op_dtype),
        x_highway,
        jnp.asarray(weight_c).astype(state),
        jnp.asarray(bias).astype(state),
        jnp.asarray(c0).astype(state),
        jnp.asarray(lengths).astype(jnp.int32),
        float(alpha),
        direction,
    )
    return SRUOutputs(h.astype(u.dtype), h_last.astype(u.dtype), c_last)


def _forward_call(u, x_highway, weight_c, bias, c0, lengths, alpha, direction):
    seq, state = x_highway.shape, c0.shape
    results = (
        jax.ShapeDtypeStruct(seq, x_highway.dtype),  # h
        jax.ShapeDtypeStruct(seq, c0.dtype),  # c_seq
        jax.ShapeDtypeStruct(state, x_highway.dtype),  # h_last
        jax.ShapeDtypeStruct(state, c0.dtype),  # c_last
    )
    call = jax.ffi.ffi_call(FORWARD, results, vmap_method="sequential")
    return call(
        u,
        x_highway,
        weight_c,
        bias,
        c0,
        lengths,
        alpha=np.float64(alpha),
        direction=direction,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _sru(u, x_highway, weight_c, bias, c0, lengths, alpha, direction):
    h, _, h_last, c_last = _forward_call(
        u, x_highway, weight_c, bias, c0, lengths, alpha, direction
    )
    return h, h_last, c_last


def _sru_forward(u, x_highway, weight_c, bias, c0, lengths, alpha, direction):
    h, c_seq, h_last, c_last = _forward_call(
        u, x_highway, weight_c, bias, c0, lengths, alpha, direction
    )
    return (h, h_last, c_last), (u, x_highway, weight_c, bias, c0, lengths, c_seq)


def _sru_backward(alpha, direction, saved, grads):
    u, x_highway, weight_c, bias, c0, lengths, c_seq = saved
    grad_h, grad_h_last, grad_c_last = grads
    results = tuple(
        jax.ShapeDtypeStruct(t.shape, t.dtype)
        for t in (u, x_highway, weight_c, bias, c0)
    )
    call = jax.ffi.ffi_call(BACKWARD, results, vmap_method="sequential")
    grad_u, grad_x, grad_weight_c, grad_bias, grad_c0 = call(
        u,
        x_highway,
        weight_c,
        bias,
        c0,
        lengths,
        c_seq,
        grad_h.astype(x_highway.dtype),
        grad_h_last.astype(x_highway.dtype),
        grad_c_last.astype(c0.dtype),
        alpha=np.float64(alpha),
        direction=direction,
    )
    return grad_u, grad_x, grad_weight_c, grad_bias, grad_c0, None


_sru.defvjp(_sru_forward, _sru_backward)


def sru_fused_with_mask(
    u,
    x_highway,
    weight_c,
    bias,
    c0,
    mask,
    alpha,
    direction: str,
    reference,
    strict_message: str | None = None,
    zero_output_for_mask: bool = True,
) -> SRUOutputs:
    """The fused recurrence for a right-padded `(batch, time)` mask (True =
    valid step). Any other mask runs `reference` (same arguments as
    `sru_recurrence`), or raises `ValueError(strict_message)` when that is
    given: at once for a concrete mask, from a `jax.debug.callback` at run
    time under `jax.jit` (which then surfaces as JAX's runtime error with
    the message). With `zero_output_for_mask=False` the fused op's masked
    steps repeat the last valid output (`reference` must do the same)."""
    mask = jnp.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(
            f"`mask` must have shape (batch, time). Received: mask.shape={mask.shape}"
        )
    lengths = jnp.sum(mask, axis=1, dtype=jnp.int32)
    steps = jnp.arange(mask.shape[1])
    right_padded = jnp.all(mask == (steps[None, :] < lengths[:, None]))
    args = (u, x_highway, weight_c, bias, c0)

    def fused():
        outputs = sru_fused(*args, lengths, alpha, direction)
        if not zero_output_for_mask:
            outputs = repeat_last_valid_output(outputs, mask, direction)
        return tuple(outputs)

    def fallback():
        return tuple(reference(*args, mask, alpha, direction))

    if not isinstance(right_padded, jax.core.Tracer):
        if bool(right_padded):
            return SRUOutputs(*fused())
        if strict_message is not None:
            raise ValueError(strict_message)
        return SRUOutputs(*fallback())
    if strict_message is not None:

        def check(ok):
            if not ok:
                raise ValueError(strict_message)

        jax.debug.callback(check, right_padded)
        return SRUOutputs(*fused())
    return SRUOutputs(*jax.lax.cond(right_padded, fused, fallback))
