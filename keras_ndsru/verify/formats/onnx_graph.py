"""Reading an ONNX model into a `graph.Graph` of structured operators.

Supported (inference semantics): Gemm and MatMul with a constant operand
(matrices and vectors, on either side), Conv (1-D, 2-D), BatchNormalization,
Add/Sub/Mul/Div/Neg with constants and Add/Sub/Sum between tensors,
Concat, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Slice, Gather,
Split, Expand and Tile with constant indices, Pad (constant mode),
AveragePool, GlobalAveragePool, MaxPool, GlobalMaxPool, Relu, LeakyRelu,
Sigmoid, Tanh, Identity, Dropout, Cast to float, and any node whose inputs
are all constants (folded with ONNX's reference evaluator, e.g. Shape ->
Gather -> Reshape chains). Anything else is a one-line `OnnxError` naming
the node and its op type. Per-sample tensors keep ONNX's shapes (a batch
axis of 1 included), so VNN-LIB's ``X_i``/``Y_j`` index the input and
output flattened in C order, as here.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_ndsru.verify.formats.errors import OnnxError
from keras_ndsru.verify.formats.onnx_model import open_onnx
from keras_ndsru.verify.graph import image_ops
from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.graph import Graph

# Data movement with constant parameters: read as a `Gather` of flat positions,
# found by running the node on a grid of positions.
_MOVES = ("Slice", "Gather", "Expand", "Tile", "Split", "DepthToSpace", "SpaceToDepth")


class _Tensor:
    """A value computed from the input: node ``index`` of the graph."""

    def __init__(self, index: int, shape: tuple):
        self.index, self.shape = index, tuple(shape)


def load_onnx_graph(path, input_domain=None) -> Graph:
    """Reads an ONNX model of one input and one output into a `Graph`.

    Args:
        path: the ``.onnx`` file.
        input_domain: optional ``(lower, upper)`` box of valid flat inputs.
            Defaults to None.

    Returns:
        A `Graph` whose input shape is the ONNX input's (symbolic axes as 1).

    Raises:
        OnnxError: an unreadable file, an unsupported node (named with its op
            type), or not one input and one output.
    """
    opened = open_onnx(path)
    dims = opened.input_dims
    graph = Graph(
        dims or (1,), name=os.path.basename(opened.path), input_domain=input_domain
    )
    reader = _Reader(opened.path, opened.opset, graph)
    reader.values[opened.input_name] = _Tensor(0, graph.input_shape)
    for name, value in opened.constants.items():
        reader.values[name] = _constant(value)
    for node in opened.nodes:
        reader.node(node)
    output = reader.values.get(opened.output_name)
    if not isinstance(output, _Tensor):
        raise OnnxError(f"{opened.path}: the output does not depend on the input.")
    graph.output = output.index
    return graph


def _constant(value):
    value = np.asarray(value)
    return value.astype(np.float64) if value.dtype.kind == "f" else value


class _Reader:
    def __init__(self, path, opset: int, graph: Graph):
        self.path, self.graph, self.opset = path, graph, opset
        self.values: dict = {}

    def error(self, node, why: str) -> OnnxError:
        return OnnxError(
            f"{self.path}: node {node.name or '(unnamed)'!r} (op {node.op_type}) "
            f"{why}. Received: op_type={node.op_type!r}"
        )

    def add(self, op, inputs, node) -> _Tensor:
        try:
            index = self.graph.add(
                op, [t.index for t in inputs], node.name or node.op_type
            )
        except (RuntimeError, ValueError) as error:
            raise self.error(
                node, f"cannot be applied ({error})".splitlines()[0]
            ) from None
        return _Tensor(index, self.graph.nodes[index].shape)

    def node(self, node):
        args = [self.values[name] if name else None for name in node.input]
        attrs = {a.name: _attribute(a) for a in node.attribute}
        tensors = [a for a in args if isinstance(a, _Tensor)]
        if not tensors and node.op_type != "Constant":
            results = self._fold(node, args)
        elif node.op_type in _MOVES:
            results = self._move(node, args, tensors)
        else:
            method = getattr(self, "op_" + node.op_type, None)
            if method is None:
                raise self.error(
                    node, f"is not supported by the verifier ({SUPPORTED})"
                )
            results = [method(node, args, attrs)]
        for name, result in zip(node.output, results):
            if name:
                self.values[name] = result

    def _fold(self, node, args, feeds=None):
        from onnx.reference import ReferenceEvaluator

        try:
            evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
            if feeds is None:
                feeds = {name: arg for name, arg in zip(node.input, args) if name}
            outs = evaluator.run(None, feeds)
        except Exception as error:  # noqa: BLE001 -- reported as one line
            raise self.error(
                node, f"could not be evaluated ({error})".splitlines()[0]
            ) from None
        return [_constant(out) for out in outs]

    def _move(self, node, args, tensors):
        if len(tensors) != 1 or not isinstance(args[0], _Tensor):
            raise self.error(node, "moves data with input-dependent indices")
        x = args[0]
        grid = np.arange(math.prod(x.shape), dtype=np.int64).reshape(x.shape)
        feeds = {node.input[0]: grid}
        feeds.update({n: a for n, a in zip(node.input[1:], args[1:]) if n})
        return [
            self.add(ops.Gather(index), [x], node)
            for index in self._fold(node, args, feeds)
        ]

    # -- element-wise --------------------------------------------------------

    def op_Constant(self, node, args, attrs):
        from onnx import numpy_helper

        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if key in attrs:
                value = attrs[key]
                if key == "value":
                    value = numpy_helper.to_array(value)
                return _constant(value)
        raise self.error(node, "has no supported value attribute")

    def op_Identity(self, node, args, attrs):
        return args[0]

    op_Dropout = op_Identity

    def op_Cast(self, node, args, attrs):
        from onnx import TensorProto

        if attrs.get("to") not in (
            TensorProto.FLOAT,
            TensorProto.DOUBLE,
            TensorProto.FLOAT16,
        ):
            raise self.error(
                node, "casts an input-dependent tensor to a non-float type"
            )
        return args[0]

    def _scale(self, node, x, scale=None, shift=None):
        shape = x.shape
        for c in (scale, shift):
            if c is not None:
                shape = np.broadcast_shapes(shape, np.shape(c))
        if len(shape) > len(x.shape):
            raise self.error(node, "broadcasts the input to a higher rank")
        out = None if tuple(shape) == x.shape else shape
        return self.add(ops.Scale(scale, shift, out), [x], node)

    def op_Add(self, node, args, attrs):
        a, b = args
        if isinstance(a, _Tensor) and isinstance(b, _Tensor):
            return self.add(ops.Sum((1, 1)), [a, b], node)
        tensor, constant = (a, b) if isinstance(a, _Tensor) else (b, a)
        return self._scale(node, tensor, shift=constant)

    def op_Sum(self, node, args, attrs):
        tensors = [a for a in args if isinstance(a, _Tensor)]
        out = self.add(ops.Sum((1,) * len(tensors)), tensors, node)
        constant = sum(a for a in args if not isinstance(a, _Tensor))
        return (
            out if isinstance(constant, int) else self._scale(node, out, shift=constant)
        )

    def op_Sub(self, node, args, attrs):
        a, b = args
        if isinstance(a, _Tensor) and isinstance(b, _Tensor):
            return self.add(ops.Sum((1, -1)), [a, b], node)
        if isinstance(a, _Tensor):
            return self._scale(node, a, shift=-b)
        return self._scale(node, b, scale=-1.0, shift=a)

    def op_Neg(self, node, args, attrs):
        return self._scale(node, args[0], scale=-1.0)

    def op_Mul(self, node, args, attrs):
        a, b = args
        if isinstance(a, _Tensor) and isinstance(b, _Tensor):
            raise self.error(
                node, "multiplies two input-dependent tensors (not linear)"
            )
        tensor, constant = (a, b) if isinstance(a, _Tensor) else (b, a)
        return self._scale(node, tensor, scale=constant)

    def op_Div(self, node, args, attrs):
        a, b = args
        if isinstance(b, _Tensor):
            raise self.error(node, "divides by an input-dependent tensor (not linear)")
        if np.any(b == 0):
            raise self.error(node, "divides by zero")
        return self._scale(node, a, scale=1.0 / b)

    def op_Relu(self, node, args, attrs):
        return self.add(ops.ReLU(), [args[0]], node)

    def op_LeakyRelu(self, node, args, attrs):
        try:
            op = ops.LeakyReLU(float(attrs.get("alpha", 0.01)))
        except ValueError as error:
            raise self.error(node, str(error)) from None
        return self.add(op, [args[0]], node)

    def op_Sigmoid(self, node, args, attrs):
        return self.add(ops.Sigmoid(), [args[0]], node)

    def op_Tanh(self, node, args, attrs):
        return self.add(ops.Tanh(), [args[0]], node)

    # -- matrix products -----------------------------------------------------

    def op_MatMul(self, node, args, attrs):
        a, b = args
        if isinstance(a, _Tensor) and isinstance(b, _Tensor):
            raise self.error(
                node, "multiplies two input-dependent tensors (not linear)"
            )
        if isinstance(a, _Tensor):
            return self.add(ops.MatMul(b, side="right"), [a], node)
        return self.add(ops.MatMul(a, side="left"), [b], node)

    def op_Gemm(self, node, args, attrs):
        a, b = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        if (
            not isinstance(a, _Tensor)
            or isinstance(b, _Tensor)
            or isinstance(c, _Tensor)
        ):
            raise self.error(node, "needs the input as A and constant B and C")
        if attrs.get("transA", 0):
            a = self.add(ops.Transpose(tuple(range(len(a.shape)))[::-1]), [a], node)
        weight = (b.T if attrs.get("transB", 0) else b) * float(attrs.get("alpha", 1.0))
        bias = None if c is None else float(attrs.get("beta", 1.0)) * c
        return self.add(ops.MatMul(weight, bias, side="right"), [a], node)

    # -- shapes --------------------------------------------------------------

    def _reshape(self, node, x, shape):
        shape = tuple(int(d) for d in shape)
        if math.prod(shape) != math.prod(x.shape):
            raise self.error(node, f"reshapes {x.shape} to {shape}")
        if shape == x.shape:
            return x
        return self.add(ops.Reshape(shape), [x], node)

    def op_Flatten(self, node, args, attrs):
        shape = args[0].shape
        axis = attrs.get("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        return self._reshape(
            node, args[0], (math.prod(shape[:axis]), math.prod(shape[axis:]))
        )

    def op_Reshape(self, node, args, attrs):
        data, target = args[0], [int(v) for v in np.asarray(args[1]).ravel()]
        if not attrs.get("allowzero", 0):
            target = [data.shape[i] if v == 0 else v for i, v in enumerate(target)]
        if -1 in target:
            known = math.prod(v for v in target if v != -1)
            target[target.index(-1)] = math.prod(data.shape) // max(known, 1)
        return self._reshape(node, data, target)

    def op_Shape(self, node, args, attrs):
        shape = args[0].shape
        return np.array(shape[attrs.get("start", 0) : attrs.get("end")], np.int64)

    def op_Transpose(self, node, args, attrs):
        rank = len(args[0].shape)
        perm = attrs.get("perm", list(range(rank))[::-1])
        return self.add(ops.Transpose(perm), [args[0]], node)

    def _axes(self, args, attrs):
        if len(args) > 1 and args[1] is not None:
            return [int(v) for v in np.asarray(args[1]).ravel()]
        return list(attrs.get("axes", []))

    def op_Squeeze(self, node, args, attrs):
        shape = args[0].shape
        axes = self._axes(args, attrs) or [i for i, d in enumerate(shape) if d == 1]
        axes = {a + len(shape) if a < 0 else a for a in axes}
        return self._reshape(
            node, args[0], [d for i, d in enumerate(shape) if i not in axes]
        )

    def op_Unsqueeze(self, node, args, attrs):
        shape = list(args[0].shape)
        axes = self._axes(args, attrs)
        rank = len(shape) + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            shape.insert(axis, 1)
        return self._reshape(node, args[0], shape)

    def op_Concat(self, node, args, attrs):
        parts = [
            a
            if isinstance(a, _Tensor)
            else self.add(ops.Constant(a), [_Tensor(0, ())], node)
            for a in args
        ]
        axis = attrs["axis"]
        axis = axis + len(parts[0].shape) if axis < 0 else axis
        return self.add(ops.Concat(axis), parts, node)

    def op_Pad(self, node, args, attrs):
        mode = attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            raise self.error(node, f"pads in mode {mode!r} (constant only)")
        x = args[0]
        pads = attrs.get("pads") if len(args) < 2 or args[1] is None else args[1]
        pads = [int(v) for v in np.asarray(pads).ravel()]
        value = 0.0
        if len(args) > 2 and args[2] is not None and np.size(args[2]):
            value = float(np.asarray(args[2]).ravel()[0])
        value = float(attrs.get("value", value))
        if len(args) > 3 and args[3] is not None:
            axes = [int(a) % len(x.shape) for a in np.asarray(args[3]).ravel()]
            full = [0] * (2 * len(x.shape))
            for i, axis in enumerate(axes):
                full[axis], full[axis + len(x.shape)] = pads[i], pads[i + len(axes)]
            pads = full
        try:
            op = ops.Pad(pads, value)
        except ValueError as error:
            raise self.error(node, str(error)) from None
        return self.add(op, [x], node)

    # -- convolution, normalization, pooling ---------------------------------

    def _spatial(self, node, x, kernel, attrs, ceil_mode=0):
        if len(x.shape) != 2 + len(kernel):
            raise self.error(node, f"needs an N, C, spatial input; got shape {x.shape}")
        return image_ops.onnx_pads(x.shape[2:], kernel, attrs, ceil_mode)

    def op_Conv(self, node, args, attrs):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 and args[2] is not None else None
        if isinstance(w, _Tensor) or isinstance(bias, _Tensor):
            raise self.error(node, "needs constant weights and bias")
        kernel = list(w.shape[2:])
        if len(kernel) not in (1, 2):
            raise self.error(
                node, f"is a {len(kernel)}-D convolution (1-D and 2-D only)"
            )
        strides, dilations, begin, end, _, _ = self._spatial(node, x, kernel, attrs)
        group = int(attrs.get("group", 1))
        op = ops.Conv(w, bias, strides, list(begin) + list(end), dilations, group)
        return self.add(op, [x], node)

    def op_BatchNormalization(self, node, args, attrs):
        if attrs.get("training_mode", 0):
            raise self.error(node, "is in training mode")
        x, gamma, beta, mean, var = args[:5]
        if any(isinstance(v, _Tensor) for v in (gamma, beta, mean, var)):
            raise self.error(node, "needs constant statistics")
        scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        axes = (-1,) + (1,) * (len(x.shape) - 2)
        return self._scale(
            node,
            x,
            scale=scale.reshape(axes),
            shift=(beta - scale * mean).reshape(axes),
        )

    def _pool_shape(self, node, x):
        if len(x.shape) != 4:
            raise self.error(
                node, f"needs a 4-D NCHW input (2-D pooling); got {x.shape}"
            )

    def op_AveragePool(self, node, args, attrs):
        x = args[0]
        self._pool_shape(node, x)
        kernel = list(attrs["kernel_shape"])
        attrs = {**attrs, "dilations": [1, 1]}
        strides, _, begin, end, out, declared = self._spatial(
            node, x, kernel, attrs, int(attrs.get("ceil_mode", 0))
        )
        include = int(attrs.get("count_include_pad", 0))
        counts = image_ops.pool_counts(
            x.shape[2:], kernel, strides, begin, end, declared, include, out
        )
        if np.any(counts <= 0):
            raise self.error(node, "has a window of padding only")
        return self.add(ops.AveragePool(kernel, strides, begin, end, counts), [x], node)

    def op_GlobalAveragePool(self, node, args, attrs):
        x = args[0]
        self._pool_shape(node, x)
        size = x.shape[2:]
        counts = np.full((1, 1), float(math.prod(size)))
        return self.add(ops.AveragePool(size, size, (0, 0), (0, 0), counts), [x], node)

    def op_MaxPool(self, node, args, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise self.error(node, "has an Indices output")
        x = args[0]
        self._pool_shape(node, x)
        kernel = list(attrs["kernel_shape"])
        strides, dilations, begin, end, _, _ = self._spatial(
            node, x, kernel, attrs, int(attrs.get("ceil_mode", 0))
        )
        return self.add(ops.MaxPool(kernel, strides, begin, end, dilations), [x], node)

    def op_GlobalMaxPool(self, node, args, attrs):
        x = args[0]
        self._pool_shape(node, x)
        size = x.shape[2:]
        return self.add(ops.MaxPool(size, size, (0, 0), (0, 0)), [x], node)


SUPPORTED = ", ".join(
    sorted({name[3:] for name in dir(_Reader) if name.startswith("op_")} | set(_MOVES))
)


def _attribute(attribute):
    from onnx import helper

    return helper.get_attribute_value(attribute)
