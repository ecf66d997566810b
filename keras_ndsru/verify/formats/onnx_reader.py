"""Reading a feed-forward ONNX graph into a `ReluNetwork`.

Supported (inference semantics): Gemm, MatMul, Add, Sub, Mul, Div, Neg with
constants (Add/Sub also of two tensors: residual connections), Relu,
LeakyRelu, Flatten, Reshape, Shape, Transpose, Squeeze, Unsqueeze, Concat, Identity,
Dropout, Conv (2-D), BatchNormalization, AveragePool, GlobalAveragePool,
MaxPool, GlobalMaxPool, and any node whose inputs are all constants (folded
with ONNX's reference evaluator, e.g. Shape -> Gather -> Reshape chains).
Anything else is a one-line error naming the node and its op type. The graph
is lowered to a chain by `keras_ndsru.verify.graph.lowering` (dense matrices, so
meant for small networks). The VNN-LIB variables ``X_i``/``Y_i`` index the
input and output flattened in C order, as here.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_ndsru.verify.formats.errors import OnnxError
from keras_ndsru.verify.formats.onnx_model import open_onnx
from keras_ndsru.verify.graph import image_ops
from keras_ndsru.verify.graph.lowering import Affine, Chain, Values

SUPPORTED = (
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Relu",
    "Reshape",
    "Shape",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
)


def load_onnx(path, input_domain=None):
    """Reads an ONNX model of one input and one output into a `ReluNetwork`.

    Args:
        path: the ``.onnx`` file.
        input_domain: optional ``(lower, upper)`` box of valid flat inputs.
            Defaults to None.

    Returns:
        A `ReluNetwork` whose ``input_shape`` is the graph input's shape
        without a leading batch dimension of 1 (or a symbolic one).

    Raises:
        OnnxError: an unsupported node (named with its op type), or a graph
            that is not feed-forward from one input to one output.
    """
    opened = open_onnx(path)
    path, dims = opened.path, list(opened.input_dims)
    reader = _Reader(path, opened.opset, opened.nodes, opened.output_name, dims)
    reader.values[opened.input_name] = reader.chain.input()
    for name, value in opened.constants.items():
        reader.values[name] = (
            value.astype(np.float64) if value.dtype.kind == "f" else value
        )
    for step, node in enumerate(opened.nodes):
        reader.node(step, node)
    output = reader.values[opened.output_name]
    if not isinstance(output, Affine):
        raise OnnxError(f"{path}: the output does not depend on the input.")
    shape = tuple(dims[1:]) if len(dims) > 1 and dims[0] == 1 else tuple(dims)
    network = reader.chain.finish(
        output, input_domain=input_domain, name=os.path.basename(path)
    )
    network.input_shape = shape or (1,)
    return network


class _Reader:
    def __init__(self, path, opset, nodes, output_name, dims):
        self.path, self.opset = path, opset
        last_use = {}
        for step, node in enumerate(nodes):
            for name in node.input:
                last_use[name] = step
        last_use[output_name] = math.inf
        self.chain = Chain(dims)
        self.values = Values(self.chain, last_use)

    def error(self, node, why: str) -> OnnxError:
        return OnnxError(
            f"{self.path}: node {node.name or '(unnamed)'!r} (op {node.op_type}) "
            f"{why}. Received: op_type={node.op_type!r}"
        )

    def node(self, step, node):
        args = [self.values[name] if name else None for name in node.input]
        attrs = {a.name: _attribute(a) for a in node.attribute}
        if all(not isinstance(a, Affine) for a in args) and node.op_type != "Constant":
            result = self._fold(node, args)
        elif node.op_type not in SUPPORTED:
            raise self.error(
                node,
                "is not supported by the verifier (feed-forward graphs of "
                f"{', '.join(SUPPORTED)})",
            )
        else:
            result = getattr(self, "op_" + node.op_type)(step, node, args, attrs)
        self.values[node.output[0]] = result

    def _fold(self, node, args):
        from onnx.reference import ReferenceEvaluator

        try:
            evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
            feeds = {name: arg for name, arg in zip(node.input, args) if name}
            out = evaluator.run(None, feeds)[0]
        except Exception as error:  # noqa: BLE001 -- reported as one line
            raise self.error(
                node, f"could not be folded ({error})".splitlines()[0]
            ) from None
        out = np.asarray(out)
        return out.astype(np.float64) if out.dtype.kind == "f" else out

    # -- element-wise --------------------------------------------------------

    def op_Constant(self, step, node, args, attrs):
        from onnx import numpy_helper

        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if key in attrs:
                value = attrs[key]
                if key == "value":
                    value = numpy_helper.to_array(value)
                value = np.asarray(value)
                return value.astype(np.float64) if value.dtype.kind == "f" else value
        raise self.error(node, "has no supported value attribute")

    def op_Identity(self, step, node, args, attrs):
        return args[0]

    op_Dropout = op_Identity

    def op_Add(self, step, node, args, attrs):
        a, b = args
        if isinstance(a, Affine) and isinstance(b, Affine):
            return a + b
        tensor, constant = (a, b) if isinstance(a, Affine) else (b, a)
        return tensor.shift(constant)

    def op_Sub(self, step, node, args, attrs):
        a, b = args
        if isinstance(b, Affine):
            b = b.scale(-1.0)
            return a + b if isinstance(a, Affine) else b.shift(a)
        return a.shift(-b)

    def op_Neg(self, step, node, args, attrs):
        return args[0].scale(-1.0)

    def op_Mul(self, step, node, args, attrs):
        a, b = args
        if isinstance(a, Affine) and isinstance(b, Affine):
            raise self.error(
                node, "multiplies two input-dependent tensors (not linear)"
            )
        tensor, constant = (a, b) if isinstance(a, Affine) else (b, a)
        return tensor.scale(constant)

    def op_Div(self, step, node, args, attrs):
        a, b = args
        if isinstance(b, Affine):
            raise self.error(node, "divides by an input-dependent tensor (not linear)")
        if np.any(b == 0):
            raise self.error(node, "divides by zero")
        return a.scale(1.0 / b)

    def op_Relu(self, step, node, args, attrs):
        return self.values.relu(step, args[0])

    def op_LeakyRelu(self, step, node, args, attrs):
        return self.values.leaky_relu(step, args[0], float(attrs.get("alpha", 0.01)))

    # -- matrix products -----------------------------------------------------

    def op_MatMul(self, step, node, args, attrs):
        a, b = args
        if isinstance(b, Affine):
            if isinstance(a, Affine):
                raise self.error(node, "multiplies two input-dependent tensors")
            if len(b.shape) < 2:
                raise self.error(node, "needs a matrix (rank >= 2) on the right")
            return b.map(lambda t: np.matmul(a, t))
        if len(a.shape) == 1:
            return a.map(lambda t: t @ b)
        return a.map(lambda t: np.matmul(t, b))

    def op_Gemm(self, step, node, args, attrs):
        a, b = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        if isinstance(b, Affine) or (c is not None and isinstance(c, Affine)):
            raise self.error(node, "needs constant B and C")
        if attrs.get("transA", 0):
            a = a.transpose((1, 0))
        if attrs.get("transB", 0):
            b = b.T
        out = a.map(lambda t: np.matmul(t, b)).scale(float(attrs.get("alpha", 1.0)))
        if c is not None:
            out = out.shift(float(attrs.get("beta", 1.0)) * c)
        return out

    # -- shapes --------------------------------------------------------------

    def op_Flatten(self, step, node, args, attrs):
        shape = args[0].shape
        axis = attrs.get("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        return args[0].reshape((math.prod(shape[:axis]), math.prod(shape[axis:])))

    def op_Reshape(self, step, node, args, attrs):
        data, target = args[0], [int(v) for v in np.asarray(args[1]).ravel()]
        if not attrs.get("allowzero", 0):
            target = [data.shape[i] if v == 0 else v for i, v in enumerate(target)]
        if -1 in target:
            known = math.prod(v for v in target if v != -1)
            target[target.index(-1)] = data.size // max(known, 1)
        if math.prod(target) != data.size:
            raise self.error(node, f"reshapes {data.shape} to {target}")
        return data.reshape(tuple(target))

    def op_Shape(self, step, node, args, attrs):
        shape = args[0].shape
        return np.array(shape[attrs.get("start", 0) : attrs.get("end")], np.int64)

    def op_Transpose(self, step, node, args, attrs):
        rank = len(args[0].shape)
        return args[0].transpose(attrs.get("perm", list(range(rank))[::-1]))

    def _axes(self, args, attrs):
        if len(args) > 1 and args[1] is not None:
            return [int(v) for v in np.asarray(args[1]).ravel()]
        return list(attrs.get("axes", []))

    def op_Squeeze(self, step, node, args, attrs):
        shape = args[0].shape
        axes = self._axes(args, attrs) or [i for i, d in enumerate(shape) if d == 1]
        axes = {a + len(shape) if a < 0 else a for a in axes}
        return args[0].reshape(tuple(d for i, d in enumerate(shape) if i not in axes))

    def op_Unsqueeze(self, step, node, args, attrs):
        shape = list(args[0].shape)
        axes = self._axes(args, attrs)
        rank = len(shape) + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            shape.insert(axis, 1)
        return args[0].reshape(tuple(shape))

    def op_Concat(self, step, node, args, attrs):
        dim = self.chain.dim
        parts = [
            a if isinstance(a, Affine) else Affine(np.zeros((dim, *a.shape)), a)
            for a in args
        ]
        axis = attrs["axis"]
        axis = axis + len(parts[0].shape) if axis < 0 else axis
        return Affine(
            np.concatenate([p.coef for p in parts], axis + 1),
            np.concatenate([p.const for p in parts], axis),
        )

    # -- convolution, normalization, pooling ---------------------------------

    def _spatial(self, node, x, kernel, attrs, ceil_mode=0):
        if len(x.shape) != 4:
            raise self.error(
                node, f"needs a 4-D NCHW input (2-D spatial); got {x.shape}"
            )
        return image_ops.onnx_pads(x.shape[2:], kernel, attrs, ceil_mode)

    def op_Conv(self, step, node, args, attrs):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 and args[2] is not None else None
        if isinstance(w, Affine) or isinstance(bias, Affine):
            raise self.error(node, "needs constant weights and bias")
        kernel = list(w.shape[2:])
        if len(kernel) != 2:
            raise self.error(node, f"is a {len(kernel)}-D convolution (2-D only)")
        group = int(attrs.get("group", 1))
        strides, dilations, begin, end, out, _ = self._spatial(node, x, kernel, attrs)

        def linear(t):
            flat = t.reshape(-1, *x.shape[1:])
            y = image_ops.conv2d(flat, w, strides, begin, end, dilations, group, out)
            return y.reshape(*t.shape[:-3], w.shape[0], *out)

        offset = 0.0 if bias is None else bias.reshape(-1, 1, 1)
        return x.map(linear, offset)

    def op_BatchNormalization(self, step, node, args, attrs):
        if attrs.get("training_mode", 0):
            raise self.error(node, "is in training mode")
        x, gamma, beta, mean, var = args[:5]
        scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        axes = (-1,) + (1,) * (len(x.shape) - 2)
        return x.scale(scale.reshape(axes)).shift((beta - scale * mean).reshape(axes))

    def op_AveragePool(self, step, node, args, attrs):
        x = args[0]
        kernel = list(attrs["kernel_shape"])
        ceil_mode = int(attrs.get("ceil_mode", 0))
        strides, _, begin, end, out, declared = self._spatial(
            node, x, kernel, {**attrs, "dilations": [1, 1]}, ceil_mode
        )
        include = int(attrs.get("count_include_pad", 0))

        def linear(t):
            flat = t.reshape(-1, *x.shape[1:])
            y = image_ops.average_pool(
                flat, kernel, strides, begin, end, declared, include, out
            )
            return y.reshape(*t.shape[:-2], *out)

        return x.map(linear)

    def op_GlobalAveragePool(self, step, node, args, attrs):
        return args[0].map(lambda t: t.mean(axis=(-2, -1), keepdims=True))

    def op_MaxPool(self, step, node, args, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise self.error(node, "has an Indices output")
        x = args[0]
        kernel = list(attrs["kernel_shape"])
        strides, dilations, begin, end, out, _ = self._spatial(
            node, x, kernel, attrs, int(attrs.get("ceil_mode", 0))
        )
        windows = image_ops.pool_windows(
            x.shape, kernel, strides, begin, end, dilations, out
        )
        return self.values.max_over(step, x, windows, (*x.shape[:2], *out))

    def op_GlobalMaxPool(self, step, node, args, attrs):
        x = args[0]
        windows = np.arange(x.size).reshape(-1, math.prod(x.shape[2:]))
        return self.values.max_over(step, x, windows, (*x.shape[:2], 1, 1))


def _attribute(attribute):
    from onnx import helper

    return helper.get_attribute_value(attribute)
