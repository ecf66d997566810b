"""Operators that move or combine values without arithmetic: Reshape,
Flatten, Transpose, Squeeze/Unsqueeze, Slice, Gather (constant indices),
Pad (constant), Identity, and the multi-input Add, Sub and Concat.

Per-sample shapes are ONNX's own (the ONNX batch axis of 1 included); our
batch axis comes first, so an ONNX ``axis`` is our ``axis + 1``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from keras_ndsru.verify.graph.operators.base import Affine, Operator, unbroadcast


class Reshape(Affine):
    """Reshape (also Flatten, Squeeze, Unsqueeze) to a fixed per-sample shape."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(d) for d in shape)

    def linear(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def transpose(self, A):
        return A.reshape(A.shape[0], *self.in_shapes[0])


class Transpose(Affine):
    """ONNX Transpose with permutation ``perm`` of the per-sample axes."""

    def __init__(self, perm):
        super().__init__()
        self.perm = tuple(int(p) for p in perm)

    def linear(self, x):
        return x.permute(0, *[p + 1 for p in self.perm])

    def transpose(self, A):
        inverse = np.argsort(self.perm)
        return A.permute(0, *[int(p) + 1 for p in inverse])


class Gather(Affine):
    """Elements at constant flat indices of the input: ONNX Slice and Gather
    with constant indices (``index`` has the output's shape and holds flat
    positions in the input)."""

    def __init__(self, index):
        super().__init__()
        self.index = np.asarray(index, np.int64)

    def linear(self, x):
        index = self.tensor("index", x.new_zeros((), dtype=torch.int64)).reshape(-1)
        return x.reshape(x.shape[0], -1)[:, index].reshape(
            x.shape[0], *self.index.shape
        )

    def transpose(self, A):
        index = self.tensor("index", A.new_zeros((), dtype=torch.int64)).reshape(-1)
        out = A.new_zeros(A.shape[0], int(np.prod(self.in_shapes[0])))
        out = out.index_add(1, index, A.reshape(A.shape[0], -1))
        return out.reshape(A.shape[0], *self.in_shapes[0])

    def tensor(self, name, like):
        key = (name, like.device)
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self.index, device=like.device)
        return self._cache[key]


class Pad(Affine):
    """ONNX Pad in constant mode: ``pads`` in ONNX order, ``value`` outside."""

    def __init__(self, pads, value=0.0):
        super().__init__()
        half = len(pads) // 2
        begin, end = pads[:half], pads[half:]
        self.pad = tuple(
            int(v) for axis in reversed(range(half)) for v in (begin[axis], end[axis])
        )
        self.value = float(value)
        if any(v < 0 for v in self.pad):
            raise ValueError(
                f"negative Pad amounts are not supported. Received: pads={list(pads)}"
            )

    def linear(self, x):
        return F.pad(x, self.pad)

    def offset(self, like):
        if self.value == 0.0:
            return None
        key = ("border", like.device, like.dtype)
        if key not in self._cache:
            ones = torch.ones(
                (1, *self.in_shapes[0]), dtype=like.dtype, device=like.device
            )
            self._cache[key] = (1.0 - F.pad(ones, self.pad))[0] * self.value
        return self._cache[key]


class Identity(Affine):
    """Identity and Dropout (inference)."""

    def linear(self, x):
        return x

    def transpose(self, A):
        return A


class Sum(Operator):
    """``sum_i sign_i * x_i`` of graph tensors (broadcast): ONNX Add and Sub
    between two non-constant tensors."""

    def __init__(self, signs):
        super().__init__()
        self.signs = tuple(float(s) for s in signs)

    def evaluate(self, *xs):
        out = 0
        for sign, x in zip(self.signs, xs):
            out = out + (x if sign == 1.0 else sign * x)
        return out

    def interval(self, *bounds):
        lower = upper = 0
        for sign, (lo, hi) in zip(self.signs, bounds):
            if sign > 0:
                lower, upper = lower + lo, upper + hi
            else:
                lower, upper = lower - hi, upper - lo
        return lower, upper

    def backward(self, A, *bounds, relax=None):
        outs = [
            unbroadcast(A if sign == 1.0 else sign * A, shape)
            for sign, shape in zip(self.signs, self.in_shapes)
        ]
        return outs, A.new_zeros(A.shape[:2])


class Concat(Operator):
    """ONNX Concat of graph tensors along ``axis`` (constants are made graph
    tensors by the reader)."""

    def __init__(self, axis):
        super().__init__()
        self.axis = int(axis)

    def evaluate(self, *xs):
        return torch.cat(xs, dim=self.axis + 1)

    def interval(self, *bounds):
        return (
            torch.cat([b[0] for b in bounds], dim=self.axis + 1),
            torch.cat([b[1] for b in bounds], dim=self.axis + 1),
        )

    def backward(self, A, *bounds, relax=None):
        sizes = [s[self.axis] for s in self.in_shapes]
        return list(torch.split(A, sizes, dim=self.axis + 2)), A.new_zeros(A.shape[:2])


class Constant(Operator):
    """A constant tensor as a graph value (e.g. one operand of a Concat)."""

    def __init__(self, value):
        super().__init__()
        self.value = np.asarray(value, np.float64)

    def evaluate(self, *xs):
        like = xs[0] if xs else torch.zeros((), dtype=torch.float64)
        return self.tensor("value", like).expand(like.shape[0], *self.value.shape)

    def interval(self, *bounds):
        value = self.evaluate(bounds[0][0])
        return value, value

    def backward(self, A, *bounds, relax=None):
        value = self.tensor("value", A)
        bias = (A * value).reshape(A.shape[0], A.shape[1], -1).sum(-1)
        return [A.new_zeros(A.shape[:2] + tuple(self.in_shapes[0]))], bias
