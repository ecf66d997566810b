"""Max-pooling and its linear relaxation.

Per window, with bounds ``l_i <= x_i <= u_i`` of its inputs: the input
``j`` with the largest lower bound gives ``max_i x_i >= x_j``; when ``l_j``
is at least every other input's upper bound the window's maximum *is*
``x_j`` (exact); otherwise ``max_i x_i <= max_i u_i`` (a constant). This is
the relaxation of DeepPoly (Singh et al., POPL 2019) and CROWN for max.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from keras_ndsru.verify.graph.operators.base import Operator


class MaxPool(Operator):
    """ONNX MaxPool (2-D): ``kernel``, ``strides``, ``dilations`` and padding
    ``begin``/``end`` per spatial axis (``end`` includes ceil mode's)."""

    affine = False

    def __init__(self, kernel, strides, begin, end, dilations=(1, 1)):
        super().__init__()
        self.kernel, self.strides = tuple(kernel), tuple(strides)
        self.dilations = tuple(dilations)
        self.pad = (int(begin[1]), int(end[1]), int(begin[0]), int(end[0]))

    def _padded(self, x):
        """``x`` as ``(n, C, H, W)``, padded with -inf."""
        x = x.reshape(-1, *x.shape[-3:])
        return F.pad(x, self.pad, value=-math.inf) if any(self.pad) else x

    def evaluate(self, x):
        out = F.max_pool2d(
            self._padded(x), self.kernel, self.strides, dilation=self.dilations
        )
        return out.reshape(*x.shape[:-3], *out.shape[1:])

    def interval(self, bounds):
        return self.evaluate(bounds[0]), self.evaluate(bounds[1])

    def _windows(self, x, fill=-math.inf):
        """``(n, C, k, L)``: each output's window of ``x`` (padded with ``fill``)."""
        padded = x.reshape(-1, *x.shape[-3:])
        if any(self.pad):
            padded = F.pad(padded, self.pad, value=fill)
        n, c = padded.shape[:2]
        cols = F.unfold(
            padded, self.kernel, dilation=self.dilations, stride=self.strides
        )
        return cols.reshape(n, c, -1, cols.shape[-1])

    def backward(self, A, bounds, relax=None):
        lower, upper = bounds
        if lower.shape[0] != A.shape[0]:  # bounds shared by every domain
            lower = lower.expand(A.shape[0], *lower.shape[1:])
            upper = upper.expand(A.shape[0], *upper.shape[1:])
        shape = self.in_shapes[0]
        c, h, w = shape[-3:]
        batch, specs = A.shape[:2]
        low = self._windows(lower)  # (batch', C, k, L); batch' = batch * lead
        high = self._windows(upper)
        index = torch.arange(h * w, device=A.device, dtype=A.dtype).reshape(1, 1, h, w)
        # Padding positions get index -1 (their -inf bounds are never chosen).
        positions = self._windows(index + 1, fill=0.0).round().long() - 1
        best = low.argmax(dim=2, keepdim=True)  # (batch', C, 1, L)
        l_best = low.gather(2, best)
        others = high.scatter(2, best, -math.inf).amax(dim=2, keepdim=True)
        exact = (l_best >= others).squeeze(2)  # (batch', C, L)
        u_max = high.amax(dim=2)  # (batch', C, L)
        where = positions.expand(low.shape[0], c, -1, -1).gather(2, best).squeeze(2)
        per = low.shape[0] // batch
        A = A.reshape(batch, specs, per, c, -1)  # (batch, specs, lead, C, L)
        exact = exact.reshape(batch, 1, per, c, -1)
        where = where.reshape(batch, 1, per, c, -1).expand(-1, specs, -1, -1, -1)
        pos, neg = A.clamp(min=0), A.clamp(max=0)
        coef = pos + torch.where(exact, neg, torch.zeros_like(neg))
        bias = torch.where(
            exact, torch.zeros_like(neg), neg * u_max.reshape(batch, 1, per, c, -1)
        )
        A_in = A.new_zeros(batch, specs, per, c, h * w)
        A_in = A_in.scatter_add(4, where.clamp(min=0), coef)
        return [A_in.reshape(batch, specs, *shape)], bias.reshape(batch, specs, -1).sum(
            -1
        )
