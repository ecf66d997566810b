"""Convolution and pooling geometry shared by the ONNX and Keras readers.

ONNX's conventions (Conv, AveragePool, MaxPool: explicit ``pads``
``(begin..., end...)``, ``auto_pad``, strides, dilations, ceil_mode);
Keras' ``padding="same"`` is ONNX's ``SAME_UPPER``; and the number of
inputs each average-pooling window counts.
"""

from __future__ import annotations

import math

import numpy as np


def resolve_pads(in_size, kernel, strides, dilations, pads, auto_pad, ceil_mode=0):
    """``(begin, end)`` padding per spatial axis, and the output sizes.

    ``end`` includes the extra padding that ``ceil_mode`` needs; the second
    return value is the declared padding alone (pooling counts use it).
    """
    rank = len(in_size)
    pads = list(pads) if pads else [0] * (2 * rank)
    begin, end, out = [], [], []
    for i in range(rank):
        span = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            size = -(-in_size[i] // strides[i])
            total = max((size - 1) * strides[i] + span - in_size[i], 0)
            small = total // 2
            lo, hi = (
                (small, total - small)
                if auto_pad == "SAME_UPPER"
                else (total - small, small)
            )
        elif auto_pad == "VALID":
            lo = hi = 0
        else:
            lo, hi = pads[i], pads[i + rank]
        padded = in_size[i] + lo + hi
        rounding = math.ceil if ceil_mode else math.floor
        size = rounding((padded - span) / strides[i]) + 1
        if ceil_mode and (size - 1) * strides[i] >= in_size[i] + lo:
            size -= 1  # a window must start inside the input or the begin pad
        begin.append(lo)
        end.append(hi)
        out.append(size)
    extra = [
        max(
            (out[i] - 1) * strides[i]
            + (kernel[i] - 1) * dilations[i]
            + 1
            - (in_size[i] + begin[i] + end[i]),
            0,
        )
        for i in range(rank)
    ]
    return begin, [e + x for e, x in zip(end, extra)], out, (begin, end)


def onnx_pads(in_size, kernel, attrs: dict, ceil_mode=0):
    """`resolve_pads` for an ONNX node's attributes (``strides``,
    ``dilations``, ``pads``, ``auto_pad``): ``(strides, dilations, begin,
    end, out, declared)``."""
    rank = len(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    begin, end, out, declared = resolve_pads(
        in_size, kernel, strides, dilations, attrs.get("pads"), auto_pad, ceil_mode
    )
    return strides, dilations, begin, end, out, declared


def keras_pads(layer, in_size, kernel, strides, dilations):
    """`resolve_pads` for a Keras layer's ``padding`` ("valid" or "same",
    which is ONNX's ``SAME_UPPER``)."""
    padding = getattr(layer, "padding", "valid")
    if padding not in ("valid", "same"):
        raise ValueError(
            f"Layer {layer.name!r}: padding must be 'valid' or 'same'. "
            f"Received: padding={padding!r}"
        )
    auto = "SAME_UPPER" if padding == "same" else "VALID"
    return resolve_pads(list(in_size), kernel, strides, dilations, None, auto)


def pool_counts(size, kernel, strides, begin, end, declared, count_include_pad, out):
    """Inputs per average-pooling window ``(out_h, out_w)`` over a spatial
    ``size``: padding counts only if ``count_include_pad`` (and never the
    extra padding of ``ceil_mode``, ``end`` beyond ``declared``)."""
    mask = np.ones((1, 1, *size))
    if count_include_pad:
        pad = (
            (0, 0),
            (0, 0),
            (declared[0][0], declared[1][0]),
            (declared[0][1], declared[1][1]),
        )
        mask = np.pad(mask, pad, constant_values=1.0)
        begin = [b - d for b, d in zip(begin, declared[0])]
        end = [e - d for e, d in zip(end, declared[1])]
    padded = np.pad(mask[0, 0], ((begin[0], end[0]), (begin[1], end[1])))
    counts = np.zeros(tuple(out))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            counts += padded[
                i : i + strides[0] * (out[0] - 1) + 1 : strides[0],
                j : j + strides[1] * (out[1] - 1) + 1 : strides[1],
            ]
    return counts
