"""Reading an ONNX affine/ReLU chain into a `ReluNetwork`.

The exact chain engine (input splitting, MILP) decides networks with few
inputs, such as ACAS Xu's (``Sub, Flatten, (MatMul, Add, Relu) x 6,
MatMul, Add``). `load_onnx` reads such a chain straight into NumPy, without
PyTorch (the verifier's start-up stays a fraction of a second): MatMul and
Gemm by constants, Add/Sub/Mul/Div/Neg with constants, Relu,
Flatten/Reshape/Squeeze/Unsqueeze, Identity/Dropout, and constant
subgraphs (folded by ONNX's reference evaluator). Any other node, or a
tensor read across a ReLU, sends the file through the graph reader
(`onnx_graph.load_onnx_graph`, every operator it supports) and
`graph.chain.chain_from_graph`: one meaning for every ONNX operator, and a
`NotAChain` error for graphs that are not chains (pooling, residual
connections, LeakyReLU, Sigmoid: the graph engine's). The VNN-LIB variables
``X_i``/``Y_i`` index the input and output flattened in C order, as here.
"""

from __future__ import annotations

import math
import os

import numpy as np

from keras_ndsru.verify.formats.errors import OnnxError
from keras_ndsru.verify.formats.onnx_model import open_onnx
from keras_ndsru.verify.graph.network import ReluNetwork

# The fast path's nodes; anything else goes through the graph reader.
FAST = (
    "Add",
    "Constant",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "Identity",
    "MatMul",
    "Mul",
    "Neg",
    "Relu",
    "Reshape",
    "Squeeze",
    "Sub",
    "Unsqueeze",
)


class _Fallback(Exception):
    """The fast path cannot read this node: use the graph reader."""


def load_onnx(path, input_domain=None) -> ReluNetwork:
    """Reads an ONNX affine/ReLU chain of one input and one output.

    Args:
        path: the ``.onnx`` file.
        input_domain: optional ``(lower, upper)`` box of valid flat inputs.
            Defaults to None.

    Returns:
        A `ReluNetwork` whose ``input_shape`` is the graph input's shape
        without a leading batch dimension of 1 (or a symbolic one).

    Raises:
        OnnxError: an unreadable file or an unsupported node (named with its
            op type).
        keras_ndsru.verify.graph.chain.NotAChain: a graph that is not an
            affine/ReLU chain (read it with `load_onnx_graph`).
    """
    opened = open_onnx(path)
    dims = list(opened.input_dims)
    shape = tuple(dims[1:]) if len(dims) > 1 and dims[0] == 1 else tuple(dims)
    name = os.path.basename(opened.path)
    try:
        weights, biases = _fast(opened)
    except _Fallback:
        from keras_ndsru.verify.formats.onnx_graph import load_onnx_graph
        from keras_ndsru.verify.graph.chain import chain_from_graph

        network = chain_from_graph(load_onnx_graph(path))
        weights, biases = network.weights, network.biases
    return ReluNetwork(
        weights, biases, input_shape=shape or (1,), input_domain=input_domain, name=name
    )


class _Affine:
    """A tensor ``coef.T @ state + const`` of the chain's current layer
    output: ``coef`` ``(state, *shape)``, ``const`` ``shape``."""

    def __init__(self, coef, const):
        self.coef, self.const = np.asarray(coef), np.asarray(const, np.float64)

    @property
    def shape(self):
        return self.const.shape

    def map(self, linear):
        return _Affine(linear(self.coef), linear(self.const[None])[0])

    def reshape(self, shape):
        return _Affine(
            self.coef.reshape(self.coef.shape[0], *shape), self.const.reshape(shape)
        )


def _fast(opened):
    """``(weights, biases)`` of the chain, or `_Fallback`."""
    dims = tuple(opened.input_dims)
    n = math.prod(dims)
    values = {opened.input_name: _Affine(np.eye(n).reshape(n, *dims), np.zeros(dims))}
    for key, value in opened.constants.items():
        values[key] = value.astype(np.float64) if value.dtype.kind == "f" else value
    layer = {opened.input_name}  # names holding tensors of the current layer
    weights, biases = [], []
    for node in opened.nodes:
        args = [values.get(a) if a else None for a in node.input]
        tensors = [a for a in args if isinstance(a, _Affine)]
        if any(
            a not in layer for a in node.input if isinstance(values.get(a), _Affine)
        ):
            raise _Fallback  # a tensor read across a ReLU
        if not tensors and node.op_type != "Constant":
            out = _fold(opened, node, args)
        elif node.op_type not in FAST:
            raise _Fallback
        elif node.op_type == "Relu":
            x = args[0]
            weights.append(x.coef.reshape(x.coef.shape[0], -1).T)
            biases.append(x.const.reshape(-1))
            size = x.const.size
            out = _Affine(np.eye(size).reshape(size, *x.shape), np.zeros(x.shape))
            layer = set()
        else:
            out = _node(node, args, {a.name: _attribute(a) for a in node.attribute})
        values[node.output[0]] = out
        if isinstance(out, _Affine):
            layer.add(node.output[0])
    output = values.get(opened.output_name)
    if not isinstance(output, _Affine) or opened.output_name not in layer:
        raise _Fallback
    weights.append(output.coef.reshape(output.coef.shape[0], -1).T)
    biases.append(output.const.reshape(-1))
    return weights, biases


def _node(node, args, attrs):
    op = node.op_type
    a = args[0]
    b = args[1] if len(args) > 1 else None
    if op == "Constant":
        from onnx import numpy_helper

        if "value" not in attrs:
            raise _Fallback
        return np.asarray(numpy_helper.to_array(attrs["value"]), np.float64)
    if op in ("Identity", "Dropout"):
        return a
    if op == "Neg":
        return a.map(lambda t: -t)
    if op in ("Add", "Sub"):
        if isinstance(a, _Affine) and isinstance(b, _Affine):
            raise _Fallback
        sign = -1.0 if op == "Sub" else 1.0
        if isinstance(a, _Affine):
            return _shift(a, sign * b)
        return _shift(b.map(lambda t: sign * t), a)
    if op in ("Mul", "Div"):
        tensor, constant = (a, b) if isinstance(a, _Affine) else (b, a)
        if isinstance(constant, _Affine) or (op == "Div" and tensor is not a):
            raise _Fallback
        factor = constant if op == "Mul" else 1.0 / constant
        if np.broadcast_shapes(np.shape(factor), tensor.shape) != tensor.shape:
            raise _Fallback
        return tensor.map(lambda t: t * factor)
    if op == "MatMul":
        if not isinstance(a, _Affine) or isinstance(b, _Affine) or b.ndim != 2:
            raise _Fallback
        return a.map(lambda t: np.matmul(t, b))
    if op == "Gemm":
        c = args[2] if len(args) > 2 else None
        if attrs.get("transA", 0) or isinstance(b, _Affine) or isinstance(c, _Affine):
            raise _Fallback
        w = (b.T if attrs.get("transB", 0) else b) * float(attrs.get("alpha", 1.0))
        out = a.map(lambda t: np.matmul(t, w))
        return out if c is None else _shift(out, float(attrs.get("beta", 1.0)) * c)
    return _reshape(op, a, args, attrs)


def _shift(x: _Affine, offset) -> _Affine:
    if np.broadcast_shapes(np.shape(offset), x.shape) != x.shape:
        raise _Fallback
    return _Affine(x.coef, x.const + offset)


def _reshape(op, x, args, attrs):
    shape = list(x.shape)
    if op == "Flatten":
        axis = attrs.get("axis", 1) % (len(shape) or 1)
        target = [math.prod(shape[:axis]), math.prod(shape[axis:])]
    elif op == "Reshape":
        target = [int(v) for v in np.asarray(args[1]).ravel()]
        if not attrs.get("allowzero", 0):
            target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
        if -1 in target:
            known = math.prod(v for v in target if v != -1)
            target[target.index(-1)] = math.prod(shape) // max(known, 1)
    else:  # Squeeze / Unsqueeze
        axes = args[1] if len(args) > 1 and args[1] is not None else attrs.get("axes")
        axes = [int(v) for v in np.asarray(axes if axes is not None else []).ravel()]
        if op == "Squeeze":
            axes = {a % len(shape) for a in axes} or {
                i for i, d in enumerate(shape) if d == 1
            }
            target = [d for i, d in enumerate(shape) if i not in axes]
        else:
            target, rank = list(shape), len(shape) + len(axes)
            for axis in sorted(a % rank for a in axes):
                target.insert(axis, 1)
    if math.prod(target) != math.prod(shape):
        raise _Fallback
    return x.reshape(tuple(target))


def _fold(opened, node, args):
    from onnx.reference import ReferenceEvaluator

    try:
        evaluator = ReferenceEvaluator(node, opsets={"": opened.opset})
        feeds = {name: arg for name, arg in zip(node.input, args) if name}
        out = np.asarray(evaluator.run(None, feeds)[0])
    except Exception:  # noqa: BLE001 -- the graph reader reports it in one line
        raise _Fallback from None
    return out.astype(np.float64) if out.dtype.kind == "f" else out


def _attribute(attribute):
    from onnx import helper

    return helper.get_attribute_value(attribute)


__all__ = ["OnnxError", "load_onnx"]
