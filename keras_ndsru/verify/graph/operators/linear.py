"""Affine operators with weights: matrix products, convolutions, batch
normalization, average pooling, and arithmetic with constants.

Each is an `base.Affine`: its interval rule applies its absolute weights to
the radius, and back-substitution applies its transpose (``A @ W.T`` for a
product, the transposed convolution for a convolution), so no dense matrix
of the operator is ever built.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from keras_ndsru.verify.graph.operators.base import Affine


class MatMul(Affine):
    """``x @ W + b`` (``side="right"``) or ``W @ x + b`` (``side="left"``), as
    ONNX MatMul/Gemm with one constant operand (a matrix or a vector).

    Args:
        weight: the constant operand (1-D or 2-D).
        bias: constant added to the product (broadcast), or None.
        side: which side of the graph tensor the constant stands on.
    """

    def __init__(self, weight, bias=None, side="right"):
        super().__init__()
        self.weight = np.asarray(weight, np.float64)
        self.abs_weight = np.abs(self.weight)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        self.side = side

    def _apply(self, x, weight):
        if self.side == "right":
            return torch.matmul(x, weight)
        if x.dim() == 2:  # each sample a vector: W @ v
            return torch.matmul(
                x, weight.transpose(-1, -2) if weight.dim() == 2 else weight
            )
        return torch.matmul(weight, x)

    def linear(self, x):
        return self._apply(x, self.tensor("weight", x))

    def abs_linear(self, x):
        return self._apply(x, self.tensor("abs_weight", x))

    def offset(self, like):
        return None if self.bias is None else self.tensor("bias", like)

    def transpose(self, A):
        weight = self.tensor("weight", A)
        if self.side == "right" and weight.dim() == 2:
            return torch.matmul(A, weight.T)
        return super().transpose(A)


class Conv(Affine):
    """ONNX Conv (1-D or 2-D): ``conv(x, W) + b`` with explicit padding.

    Args:
        weight: ``(out_channels, in_channels / groups, *kernel)``.
        bias: ``(out_channels,)`` or None.
        strides, dilations: per spatial axis.
        pads: ONNX order ``(begin_0, begin_1, ..., end_0, end_1, ...)``.
        group: number of groups.
    """

    def __init__(self, weight, bias, strides, pads, dilations, group):
        super().__init__()
        self.weight = np.asarray(weight, np.float64)
        self.abs_weight = np.abs(self.weight)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        self.spatial = self.weight.ndim - 2
        if self.spatial not in (1, 2):
            raise ValueError(
                f"Conv supports 1-D and 2-D kernels. Received: kernel shape "
                f"{self.weight.shape[2:]}"
            )
        self.strides, self.dilations, self.group = strides, dilations, group
        half = len(pads) // 2
        begin, end = pads[:half], pads[half:]
        # F.pad takes (last axis begin, end, previous axis begin, end, ...).
        self.pad = tuple(
            v for axis in reversed(range(half)) for v in (begin[axis], end[axis])
        )

    def _conv(self, x, weight):
        if any(self.pad):
            x = F.pad(x, self.pad)
        conv = F.conv1d if self.spatial == 1 else F.conv2d
        return conv(
            x, weight, stride=self.strides, dilation=self.dilations, groups=self.group
        )

    def _batched(self, x, weight):
        # ONNX tensors keep their own batch axis of 1: fold it into ours.
        lead = x.shape[: x.dim() - self.spatial - 1]
        out = self._conv(x.reshape(-1, *x.shape[len(lead) :]), weight)
        return out.reshape(*lead, *out.shape[1:])

    def linear(self, x):
        return self._batched(x, self.tensor("weight", x))

    def abs_linear(self, x):
        return self._batched(x, self.tensor("abs_weight", x))

    def offset(self, like):
        if self.bias is None:
            return None
        return self.tensor("bias", like).reshape(-1, *([1] * self.spatial))

    def transpose(self, A):
        """The transposed convolution, cropped to the unpadded input."""
        shape = self.in_shapes[0]
        channels, size = shape[-self.spatial - 1], shape[-self.spatial :]
        flat = A.reshape(-1, *A.shape[-self.spatial - 1 :])
        # Sizes of the padded input the convolution saw, per spatial axis.
        begin = self.pad[::2][::-1]
        padded = [n + b + e for n, b, e in zip(size, begin, self.pad[1::2][::-1])]
        extra = [
            p - ((o - 1) * s + d * (k - 1) + 1)
            for p, o, s, d, k in zip(
                padded,
                flat.shape[2:],
                self.strides,
                self.dilations,
                self.weight.shape[2:],
            )
        ]
        transposed = F.conv_transpose1d if self.spatial == 1 else F.conv_transpose2d
        out = transposed(
            flat,
            self.tensor("weight", A),
            stride=self.strides,
            output_padding=extra,
            groups=self.group,
            dilation=self.dilations,
        )
        crop = [slice(None), slice(None)] + [
            slice(b, b + n) for b, n in zip(begin, size)
        ]
        return out[tuple(crop)].reshape(
            A.shape[0], *shape[: -self.spatial - 1], channels, *size
        )


class Scale(Affine):
    """``x * scale + shift`` elementwise with constants (broadcast): ONNX Mul,
    Div, Add, Sub and Neg with a constant operand, and BatchNormalization
    in inference mode.

    Args:
        scale: constant factor (broadcastable to the output), or None for 1.
        shift: constant term (broadcastable), or None for 0.
        out_shape: the output shape, when broadcasting the constants makes
            it larger than the input's.
    """

    def __init__(self, scale=None, shift=None, out_shape=None):
        super().__init__()
        self.scale = None if scale is None else np.asarray(scale, np.float64)
        self.abs_scale = None if scale is None else np.abs(self.scale)
        self.shift = None if shift is None else np.asarray(shift, np.float64)
        self.target = None if out_shape is None else tuple(out_shape)

    def _grow(self, x):
        if self.target is None or tuple(x.shape[1:]) == self.target:
            return x
        return x.expand(x.shape[0], *self.target)

    def linear(self, x):
        x = self._grow(x)
        return x if self.scale is None else x * self.tensor("scale", x)

    def abs_linear(self, x):
        x = self._grow(x)
        return x if self.scale is None else x * self.tensor("abs_scale", x)

    def offset(self, like):
        return None if self.shift is None else self.tensor("shift", like)


class AveragePool(Affine):
    """ONNX AveragePool (2-D): window sums of the zero-padded input divided
    by a constant count per output (``counts``, from the reader: it decides
    whether padding counts, as ONNX's ``count_include_pad``).

    Args:
        kernel, strides: per spatial axis.
        begin, end: padding per spatial axis (``end`` includes ceil mode's).
        counts: divisor per output position ``(out_h, out_w)``.
    """

    def __init__(self, kernel, strides, begin, end, counts):
        super().__init__()
        self.kernel, self.strides = tuple(kernel), tuple(strides)
        self.pad = (int(begin[1]), int(end[1]), int(begin[0]), int(end[0]))
        self.inv_counts = 1.0 / np.asarray(counts, np.float64)

    def linear(self, x):
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        if any(self.pad):
            flat = F.pad(flat, self.pad)
        size = self.kernel[0] * self.kernel[1]
        out = F.avg_pool2d(flat, self.kernel, self.strides) * size
        out = out * self.tensor("inv_counts", out)
        return out.reshape(*lead, *out.shape[1:])
