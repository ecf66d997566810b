"""What every operator of a `graph.Graph` provides, in one place.

As in auto_LiRPA (Xu et al., "Automatic Perturbation Analysis for Scalable
Certified Robustness and Beyond", NeurIPS 2020), one class per operator holds
all of its rules:

- ``evaluate(*xs)``: the exact value, on tensors with a leading batch axis
  (one row per input point or per domain) followed by the ONNX shape;
- ``interval(*bounds)``: interval bounds (IBP) of the output from interval
  bounds of the inputs;
- ``backward(A, *bounds, relax)``: one step of CROWN's back-substitution
  (Zhang et al., "Efficient Neural Network Robustness Certification with
  General Activation Functions", NeurIPS 2018, Thm. 3.2): given the
  coefficients ``A`` of a lower bound ``sum(A * out) + c``, coefficients of
  its inputs and the constant they add, such that ``sum(A * out) >=
  sum(A_i * in_i) + bias`` wherever the inputs lie in their bounds.

Tensors are ``torch`` tensors; ``A`` has shape ``(batch, specs, *out_shape)``.
Constants are held as float64 NumPy arrays and converted once per device and
dtype (`Operator.tensor`).
"""

from __future__ import annotations

import math

import numpy as np
import torch


class UnsupportedOperator(ValueError):
    """An ONNX/Keras operator (or a use of one) the verifier cannot bound."""


class Operator:
    """Base class. Subclasses set ``affine`` and implement the three rules.

    Attributes:
        affine: True when the output is an affine function of the inputs
            (back-substitution through it is exact).
        in_shapes: per-sample shapes of the graph inputs (set by `bind`).
        out_shape: per-sample output shape (set by `bind`).
    """

    affine = True
    # Nonlinear operators whose inputs BaB may split (ReLU-like).
    splittable = False

    def __init__(self):
        self.in_shapes: tuple = ()
        self.out_shape: tuple = ()
        self._cache: dict = {}

    def bind(self, in_shapes) -> tuple:
        """Records the input shapes and returns the output shape (found by
        evaluating on zeros, so every operator's shape rule is its own)."""
        self.in_shapes = tuple(tuple(s) for s in in_shapes)
        zeros = [torch.zeros((1, *s), dtype=torch.float64) for s in self.in_shapes]
        with torch.no_grad():
            out = self.evaluate(*zeros)
        self.out_shape = tuple(out.shape[1:])
        return self.out_shape

    def tensor(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """Constant ``name`` (an attribute holding a NumPy array) as a tensor
        on ``like``'s device and dtype, converted once."""
        key = (name, like.device, like.dtype)
        if key not in self._cache:
            value = np.asarray(getattr(self, name))
            self._cache[key] = torch.as_tensor(value, device=like.device).to(like.dtype)
        return self._cache[key]

    def evaluate(self, *xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def interval(self, *bounds):
        raise NotImplementedError

    def backward(self, A: torch.Tensor, *bounds, relax=None):
        raise NotImplementedError

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state


class Affine(Operator):
    """A single-input affine operator ``out = linear(x) + offset``.

    Subclasses implement ``linear`` (the linear part, batched) and may
    override ``abs_linear`` (the linear part with absolute coefficients, for
    interval bounds) and ``offset`` (the constant, broadcastable to the
    output, or None). The transpose for back-substitution is the
    vector-Jacobian product of ``linear`` (for a convolution, the transposed
    convolution), unless a subclass gives a cheaper ``transpose``.
    """

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def abs_linear(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def offset(self, like: torch.Tensor):
        return None

    def evaluate(self, x):
        out = self.linear(x)
        shift = self.offset(out)
        return out if shift is None else out + shift

    def interval(self, bounds):
        lower, upper = bounds
        center = self.evaluate((upper + lower) / 2)
        radius = self.abs_linear((upper - lower) / 2)
        return center - radius, center + radius

    def transpose(self, A: torch.Tensor) -> torch.Tensor:
        """``A @ L`` for rows ``A`` of shape ``(n, *out_shape)``: ``(n, *in)``."""
        x = torch.zeros(
            (A.shape[0], *self.in_shapes[0]), dtype=A.dtype, device=A.device
        ).requires_grad_(True)
        with torch.enable_grad():
            y = self.linear(x)
            (grad,) = torch.autograd.grad(y, x, A, create_graph=A.requires_grad)
        return grad

    def backward(self, A, bounds, relax=None):
        batch, specs = A.shape[:2]
        flat = A.reshape(batch * specs, *A.shape[2:])
        A_in = self.transpose(flat).reshape(batch, specs, *self.in_shapes[0])
        shift = self.offset(A)
        if shift is None:
            bias = A.new_zeros(batch, specs)
        else:
            bias = (A * shift).reshape(batch, specs, -1).sum(-1)
        return [A_in], bias


def unbroadcast(A: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Sums ``A`` ``(batch, specs, *out)`` down to ``(batch, specs, *shape)``
    (the transpose of broadcasting ``shape`` to ``out``)."""
    out = A.shape[2:]
    lead = len(out) - len(shape)
    if lead:
        A = A.sum(dim=tuple(range(2, 2 + lead)))
    dims = [
        2 + i for i, (s, o) in enumerate(zip(shape, A.shape[2:])) if s == 1 and o != 1
    ]
    if dims:
        A = A.sum(dim=dims, keepdim=True)
    return A.reshape(A.shape[0], A.shape[1], *shape)


def flat_size(shape) -> int:
    return math.prod(shape)
