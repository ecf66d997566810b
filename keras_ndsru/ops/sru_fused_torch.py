"""PyTorch wrapper of the fused SRU operators `keras_ndsru::sru_forward` and
`keras_ndsru::sru_backward` (C++ in `custom_ops/sru/torch/`, the kernels of
the TensorFlow op: Lei et al. 2017, arXiv 1709.02755, eqs. (1)-(4)).

- `register_autograd` makes the operators usable by autograd and
  `torch.compile`: the backward operator as the forward one's gradient
  (`torch.library.register_autograd`; it recomputes the gates from `u` and
  the saved `c`), and fake kernels giving the output shapes
  (`torch.library.register_fake`). The loader (`op_library.py`) calls it
  once per process, when the library loads.
- `sru_fused` runs the forward operator on the arguments of
  `sru_recurrence` for given per-row lengths (right padding): `x_highway` in
  the dtype of `u`; `weight_c`, `bias` and `c0` (zeros when None) in the
  state dtype (float64 for float64 `u`, else float32); alpha as the
  operator's float (double) argument, or folded into `x_highway` when it is
  a tensor (then also differentiable with respect to alpha). On the CPU,
  float16/bfloat16 `u` and `x_highway` are cast to float32 around the
  operator (same values: the kernels compute in float32; vectorized); the
  CUDA kernels take them as they are.
- `lengths_of_mask` turns a `(batch, time)` mask into per-row lengths and
  says whether the mask is right-padded.

This module imports torch (and Keras only for inputs that are not torch
tensors): only the torch path imports it (`sru_recurrence` and the loader
do so lazily).
"""

from __future__ import annotations

import threading

import torch

from keras_ndsru.ops import op_library
from keras_ndsru.ops.sru_layout import SRUOutputs, fused_call

FORWARD = "keras_ndsru::sru_forward"
BACKWARD = "keras_ndsru::sru_backward"


# The dispatch's questions to the loader, as constants of a torch.compile
# trace: the loader's lock and build records cannot be traced, and the
# answers do not change once the library is loaded.
@torch.compiler.assume_constant_result
def fused_op_ready() -> bool:
    """Whether the torch library is loaded and enabled (loads it once)."""
    return op_library.default_loader("torch").ready()


@torch.compiler.assume_constant_result
def has_cuda_kernels() -> bool:
    """Whether the loaded torch library has CUDA kernels."""
    return op_library.default_loader("torch").cuda


def lengths_of_mask(mask) -> tuple[torch.Tensor, bool]:
    """Per-row lengths of a `(batch, time)` mask (True = valid step), and
    whether the mask is right-padded (valid steps first), i.e. whether the
    lengths describe it exactly. The latter reads the mask's values: under
    `torch.compile` it is a graph break."""
    mask = _tensor(mask).to(torch.bool)
    if mask.dim() != 2:
        raise ValueError(
            f"`mask` must have shape (batch, time). "
            f"Received: mask.shape={tuple(mask.shape)}"
        )
    lengths = mask.sum(dim=1, dtype=torch.int32)
    steps = torch.arange(mask.shape[1], device=mask.device)
    right_padded = torch.equal(mask, steps[None, :] < lengths[:, None])
    return lengths, right_padded


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
    """Runs the forward operator.

    Args: as `sru_recurrence`, with `lengths` instead of `mask`: an optional
        `(batch,)` number of valid steps of each row (right padding), all
        steps when None.

    Returns:
        `SRUOutputs(h, h_last, c_last)`: `h` and `h_last` in the dtype of
        `u`, `c_last` in the state dtype.

    Raises:
        ValueError: `u` is not a float16, bfloat16, float32 or float64 tensor
            of rank 3 whose last dimension is a multiple of `n_dir * 3`.
    """
    u = _tensor(u)
    call = fused_call(
        str(u.dtype).removeprefix("torch."),
        u.shape,
        direction,
        lambda: u.device.type == "cpu",
    )
    state, op_dtype = getattr(torch, call.state_dtype), getattr(torch, call.op_dtype)
    batch, steps = u.shape[0], u.shape[1]
    x_highway = _tensor(x_highway, u.device).to(op_dtype)
    if isinstance(alpha, torch.Tensor):
        x_highway = x_highway * alpha.to(op_dtype)
        alpha = 1.0
    if c0 is None:
        c0 = u.new_zeros((batch, call.width), dtype=state)
    if lengths is None:
        lengths = torch.full((batch,), steps, dtype=torch.int32, device=u.device)
    h, _, h_last, c_last = torch.ops.keras_ndsru.sru_forward(
        u.to(op_dtype).contiguous(),
        x_highway.contiguous(),
        _as_state(weight_c, state, u.device),
        _as_state(bias, state, u.device),
        _as_state(c0, state, u.device),
        _tensor(lengths, u.device).to(torch.int32).contiguous(),
        float(alpha),
        direction,
    )
    return SRUOutputs(h.to(u.dtype), h_last.to(u.dtype), c_last)


def _tensor(x, device=None) -> torch.Tensor:
    """A torch tensor of `x` (also a Keras variable or a NumPy array)."""
    if not isinstance(x, torch.Tensor):
        import keras

        x = keras.ops.convert_to_tensor(x)
    return x if device is None else x.to(device)


def _as_state(x, state: torch.dtype, device) -> torch.Tensor:
    return _tensor(x, device).to(state).contiguous()


_registered = False
_registration_lock = threading.Lock()


def register_autograd() -> None:
    """Registers the fake kernels of both operators and the backward
    operator as the forward one's gradient. Only the first call registers;
    the library must be loaded (`torch.ops.load_library`)."""
    global _registered
    with _registration_lock:
        if _registered:
            return
        torch.library.register_fake(FORWARD)(_forward_fake)
        torch.library.register_fake(BACKWARD)(_backward_fake)
        torch.library.register_autograd(
            FORWARD, _forward_grad, setup_context=_save_for_backward
        )
        _registered = True


def _forward_fake(u, x_highway, weight_c, bias, c0, lengths, alpha, direction):
    state = c0.dtype
    return (
        x_highway.new_empty(x_highway.shape),
        x_highway.new_empty(x_highway.shape, dtype=state),
        c0.new_empty(c0.shape, dtype=x_highway.dtype),
        c0.new_empty(c0.shape),
    )


def _backward_fake(
    u,
    x_highway,
    weight_c,
    bias,
    c0,
    lengths,
    c_seq,
    grad_h,
    grad_h_last,
    grad_c_last,
    alpha,
    direction,
):
    return tuple(torch.empty_like(t) for t in (u, x_highway, weight_c, bias, c0))


def _save_for_backward(ctx, inputs, output):
    u, x_highway, weight_c, bias, c0, lengths, alpha, direction = inputs
    ctx.save_for_backward(u, x_highway, weight_c, bias, c0, lengths, output[1])
    ctx.alpha, ctx.direction = alpha, direction


def _forward_grad(ctx, grad_h, grad_c_seq, grad_h_last, grad_c_last):
    # c_seq is an internal output kept for this gradient; the public API
    # never returns it, so its incoming gradient is ignored.
    del grad_c_seq
    u, x_highway, weight_c, bias, c0, lengths, c_seq = ctx.saved_tensors

    def given(grad, like):
        return torch.zeros_like(like) if grad is None else grad.contiguous()

    grads = torch.ops.keras_ndsru.sru_backward(
        u,
        x_highway,
        weight_c,
        bias,
        c0,
        lengths,
        c_seq,
        given(grad_h, x_highway),
        given(grad_h_last, c0).to(x_highway.dtype),
        given(grad_c_last, c0),
        ctx.alpha,
        ctx.direction,
    )
    return (*grads, None, None, None)
