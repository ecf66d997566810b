"""Reading a Keras model into a `Graph` of operators.

Every layer becomes one or a few structured operators, so memory grows with
the activations: Keras image models (MNIST/CIFAR conv nets, ResNets) fit.
`from_keras` gives the `ReluNetwork` of a model that is an affine/ReLU chain
(`keras_ndsru.verify.graph.chain`), read through the same graph. Images
stay in Keras' channels-last layout except around convolutions and pooling,
which run channels-first: a tensor keeps the layout its last operator left it
in, and is moved back only where a layer needs Keras' own order (Flatten,
Dense, Reshape, ...), so consecutive convolutions need no transposes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from keras_ndsru.verify.formats.keras_model import (
    IDENTITY_LAYERS,
    activation_name,
    check_reproduces,
    kind_of,
    layer_steps,
    model_input_shape,
    relu_slope,
    to_numpy,
)
from keras_ndsru.verify.graph import image_ops
from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.chain import NotAChain, chain_from_graph
from keras_ndsru.verify.graph.graph import Graph

SUPPORTED = (
    "InputLayer, Dense, Conv1D, Conv2D, Activation/ReLU/LeakyReLU (relu, "
    "leaky_relu, sigmoid, tanh, linear), BatchNormalization, AveragePooling2D, "
    "MaxPooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, "
    "Reshape, Permute, ZeroPadding2D, Rescaling, Add, Subtract, Average, "
    "Concatenate, Dropout"
)

# Keras activations -> graph operators (leaky_relu's default slope is 0.2).
_ACTIVATIONS = {
    "relu": lambda: ops.ReLU(),
    "leaky_relu": lambda: ops.LeakyReLU(0.2),
    "sigmoid": lambda: ops.Sigmoid(),
    "tanh": lambda: ops.Tanh(),
}


@dataclasses.dataclass(frozen=True)
class _Value:
    """A graph node holding a Keras tensor; ``moved``: a channels-last image
    ``(H, W, C)`` stored channels-first ``(C, H, W)``."""

    index: int
    moved: bool = False


def graph_from_keras(model, strip_softmax: bool = False) -> Graph:
    """The `Graph` of operators computed by a Keras model in inference mode.

    For the graph engine (`local_robustness`, `max_robust_delta` on box
    regions: CROWN, alpha/beta-CROWN, branch and bound; PyTorch). Supported
    layers: see ``SUPPORTED``; softmax on the output only with
    ``strip_softmax=True``. Any other layer, a shared layer or a nested model
    is one `ValueError` naming it. The graph is checked against the model's
    own forward pass on random inputs.

    Args:
        model: a built Keras model with one input and one output.
        strip_softmax: whether a final softmax may be dropped (the argmax,
            Def. 1, is unchanged; output differences are then logits').
            Defaults to `False`.

    Returns:
        A `Graph` whose input shape is the model's (without the batch axis).

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.Flatten(), keras.layers.Dense(3)])
    >>> graph = graph_from_keras(model)
    >>> graph.input_shape, graph.n_outputs
    ((8, 8, 1), 3)
    """
    input_shape = model_input_shape(model)
    steps, output = layer_steps(model)
    reader = _Reader(Graph(input_shape, name=model.name))
    values = {"input": _Value(0)}
    stripped = False
    for layer, names, out in steps:
        result = reader.layer(layer, [values[name] for name in names])
        activation = activation_name(layer) if hasattr(layer, "activation") else None
        if activation == "softmax" and strip_softmax and out == output:
            stripped, activation = True, None
        if activation not in (None, "linear"):
            result = reader.activate(layer, activation, result)
        values[out] = result
    graph = reader.graph
    graph.output = reader.keras(values[output], "output")
    check_reproduces(graph, model, stripped, "graph")
    return graph


def from_keras(model, strip_softmax: bool = False):
    """The `ReluNetwork` computed by a Keras model that is an affine/ReLU
    chain (Dense, Conv2D, BatchNormalization, Flatten, ... with ReLU
    activations and no skip connection across a ReLU).

    The model is read by `graph_from_keras` (and checked against its own
    forward pass there), then each segment between ReLUs becomes one dense
    matrix (`keras_ndsru.verify.graph.chain.chain_from_graph`). Models with
    pooling, LeakyReLU, Sigmoid/Tanh or residual connections are graphs, not
    chains: pass the model (or ``graph_from_keras(model)``) to the queries.

    Args:
        model: a built Keras model with one input and one output.
        strip_softmax: as in `graph_from_keras`. Defaults to `False`.

    Returns:
        A `ReluNetwork` with ``input_shape`` of the model's single input.

    Raises:
        ValueError: an unsupported layer, or a model that is not a chain.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    >>> from_keras(model).hidden_sizes
    [8]
    """
    graph = graph_from_keras(model, strip_softmax=strip_softmax)
    try:
        return chain_from_graph(graph)
    except NotAChain as error:
        raise ValueError(
            f"Model {model.name!r} is not an affine/ReLU chain: {error}. Pass the "
            "model or graph_from_keras(model) to the queries (the graph engine). "
            f"Received: model={model.name!r}"
        ) from None


class _Reader:
    def __init__(self, graph: Graph):
        self.graph = graph

    def shape(self, value: _Value) -> tuple:
        return self.graph.nodes[value.index].shape

    def add(self, op, inputs, name, moved=False) -> _Value:
        return _Value(self.graph.add(op, [v.index for v in inputs], name), moved)

    # -- layouts ---------------------------------------------------------------

    def keras_shape(self, value: _Value) -> tuple:
        shape = self.shape(value)
        return (*shape[1:], shape[0]) if value.moved else shape

    def keras(self, value: _Value, name: str) -> int:
        """The node holding ``value`` in Keras' own layout."""
        if not value.moved:
            return value.index
        return self.graph.add(ops.Transpose((1, 2, 0)), [value.index], name)

    def channels_first(self, value: _Value, layer) -> _Value:
        """``value`` as ``(C, *spatial)`` for a convolution or pooling."""
        rank = len(self.shape(value))
        if _channels_first(layer):
            return _Value(self.keras(value, layer.name))
        if value.moved:
            return value
        if rank not in (2, 3):
            raise ValueError(
                f"Layer {layer.name!r} ({kind_of(layer)}) needs an image input "
                f"(spatial axes and channels). Received: shape={self.shape(value)}"
            )
        perm = (rank - 1, *range(rank - 1))
        return self.add(ops.Transpose(perm), [value], layer.name, moved=rank == 3)

    def back(self, value: _Value, layer) -> _Value:
        """A channels-first result for a channels-last layer's caller: 2-D
        images are moved back at once, 3-D ones stay moved (lazily)."""
        if _channels_first(layer) or value.moved:
            return value
        return self.add(ops.Transpose((1, 0)), [value], layer.name)

    def same_layout(self, args, layer) -> list:
        if len({v.moved for v in args}) == 1:
            return list(args)
        return [_Value(self.keras(v, layer.name)) for v in args]

    # -- layers ----------------------------------------------------------------

    def activate(self, layer, activation, value: _Value) -> _Value:
        make = _ACTIVATIONS.get(activation)
        if make is None:
            hint = " (pass strip_softmax=True for Def. 1)"
            raise ValueError(
                f"Unsupported activation {activation!r} in layer {layer.name!r}"
                f"{hint if activation == 'softmax' else ''}: the graph engine "
                f"handles {', '.join(_ACTIVATIONS)} and linear. "
                f"Received: activation={activation!r}"
            )
        return self.add(make(), [value], layer.name, value.moved)

    def layer(self, layer, args) -> _Value:
        """The layer without its activation (applied by the caller)."""
        kind = kind_of(layer)
        x = args[0]
        if kind in IDENTITY_LAYERS or kind == "Activation":
            return x
        method = getattr(self, "layer_" + kind, None)
        if method is None:
            raise ValueError(
                f"Unsupported layer {layer.name!r} of type {kind}: the graph "
                f"engine handles {SUPPORTED}. Received: {kind}"
            )
        return method(layer, args)

    def layer_Dense(self, layer, args):
        x = _Value(self.keras(args[0], layer.name))
        bias = to_numpy(layer.bias) if layer.bias is not None else None
        return self.add(ops.MatMul(to_numpy(layer.kernel), bias), [x], layer.name)

    def _conv(self, layer, args):
        spatial = 2 if kind_of(layer) == "Conv2D" else 1
        w = to_numpy(layer.kernel)  # (*kernel, in / groups, out)
        w = w.transpose(spatial + 1, spatial, *range(spatial))
        bias = to_numpy(layer.bias) if layer.bias is not None else None
        x = self.channels_first(args[0], layer)
        strides, dilations = list(layer.strides), list(layer.dilation_rate)
        begin, end = _pads(layer, self.shape(x)[1:], w.shape[2:], strides, dilations)
        op = ops.Conv(
            w, bias, strides, begin + end, dilations, getattr(layer, "groups", 1)
        )
        return self.back(self.add(op, [x], layer.name, x.moved), layer)

    layer_Conv1D = layer_Conv2D = _conv

    def _pool(self, layer, args):
        x = self.channels_first(args[0], layer)
        size = self.shape(x)[1:]
        if len(size) != 2:
            raise ValueError(
                f"Layer {layer.name!r} ({kind_of(layer)}) needs a 3-D image "
                f"input. Received: shape={self.shape(args[0])}"
            )
        kind = kind_of(layer)
        if kind.startswith("Global"):
            kernel = strides = list(size)
            begin, end, out = [0, 0], [0, 0], [1, 1]
        else:
            kernel, strides = list(layer.pool_size), list(layer.strides)
            begin, end, out, _ = image_ops.keras_pads(
                layer, size, kernel, strides, [1, 1]
            )
        if "Max" in kind:
            op = ops.MaxPool(kernel, strides, begin, end)
        else:
            counts = image_ops.pool_counts(  # Keras never counts padding
                size, kernel, strides, begin, end, (begin, end), 0, out
            )
            op = ops.AveragePool(kernel, strides, begin, end, counts)
        pooled = self.add(op, [x], layer.name, x.moved)
        if not kind.startswith("Global"):
            return pooled
        channels = self.shape(pooled)[0]
        if getattr(layer, "keepdims", False):
            return pooled
        return self.add(ops.Reshape((channels,)), [pooled], layer.name)

    layer_AveragePooling2D = layer_MaxPooling2D = _pool
    layer_GlobalAveragePooling2D = layer_GlobalMaxPooling2D = _pool

    def _reshape(self, layer, x: _Value, shape) -> _Value:
        index = self.keras(x, layer.name)
        if tuple(shape) == self.graph.nodes[index].shape:
            return _Value(index)
        return _Value(self.graph.add(ops.Reshape(tuple(shape)), [index], layer.name))

    def layer_Flatten(self, layer, args):
        x = _Value(self.keras(args[0], layer.name))
        shape = self.shape(x)
        if _channels_first(layer) and len(shape) > 1:
            # Keras moves channels last before flattening channels-first data.
            rank = len(shape)
            x = self.add(ops.Transpose((*range(1, rank), 0)), [x], layer.name)
        return self._reshape(layer, x, (math.prod(shape),))

    def layer_Reshape(self, layer, args):
        target = list(layer.target_shape)
        size = math.prod(self.shape(args[0]))
        if -1 in target:
            known = math.prod(v for v in target if v != -1)
            target[target.index(-1)] = size // max(known, 1)
        return self._reshape(layer, args[0], target)

    def layer_Permute(self, layer, args):
        x = _Value(self.keras(args[0], layer.name))
        return self.add(ops.Transpose([d - 1 for d in layer.dims]), [x], layer.name)

    def layer_ZeroPadding2D(self, layer, args):
        x = _Value(self.keras(args[0], layer.name))
        (top, bottom), (left, right) = layer.padding
        if _channels_first(layer):
            pads = [0, top, left, 0, bottom, right]
        else:
            pads = [top, left, 0, bottom, right, 0]
        return self.add(ops.Pad(pads), [x], layer.name)

    def _per_channel(self, x: _Value, values: np.ndarray, axis: int):
        """``values`` (one per entry of ``axis`` of the Keras tensor, or a
        scalar) broadcast to ``x``'s stored layout."""
        values = np.asarray(values, np.float64)
        if values.size == 1:
            return values.reshape(())
        rank = len(self.shape(x))
        stored = (axis + 1) % rank if x.moved else axis
        shape = [1] * rank
        shape[stored] = values.size
        return values.reshape(shape)

    def layer_Rescaling(self, layer, args):
        x = args[0]
        axis = len(self.shape(x)) - 1
        scale = self._per_channel(x, layer.scale, axis)
        shift = self._per_channel(x, layer.offset, axis)
        return self.add(ops.Scale(scale, shift), [x], layer.name, x.moved)

    def layer_BatchNormalization(self, layer, args):
        x = args[0]
        rank = len(self.shape(x))
        mean, var = to_numpy(layer.moving_mean), to_numpy(layer.moving_variance)
        gamma = to_numpy(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
        beta = to_numpy(layer.beta) if layer.beta is not None else np.zeros_like(mean)
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        axis = axis % (rank + 1) - 1  # without the batch axis
        keras_shape = self.keras_shape(x)
        if keras_shape[axis] != mean.size:
            raise ValueError(
                f"Layer {layer.name!r} (BatchNormalization) normalizes axis {axis} "
                f"of shape {keras_shape}, but has {mean.size} statistics."
            )
        scale = gamma / np.sqrt(var + layer.epsilon)
        op = ops.Scale(
            self._per_channel(x, scale, axis),
            self._per_channel(x, beta - scale * mean, axis),
        )
        return self.add(op, [x], layer.name, x.moved)

    def _merge(self, layer, args):
        args = self.same_layout(args, layer)
        kind = kind_of(layer)
        signs = (1.0, -1.0) if kind == "Subtract" else (1.0,) * len(args)
        total = self.add(ops.Sum(signs), args, layer.name, args[0].moved)
        if kind != "Average":
            return total
        op = ops.Scale(np.asarray(1.0 / len(args)))
        return self.add(op, [total], layer.name, total.moved)

    layer_Add = layer_Subtract = layer_Average = _merge

    def layer_Concatenate(self, layer, args):
        args = self.same_layout(args, layer)
        rank = len(self.shape(args[0]))
        axis = layer.axis if layer.axis >= 0 else layer.axis + rank + 1
        axis -= 1  # without the batch axis
        if args[0].moved:
            axis = (axis + 1) % rank
        return self.add(ops.Concat(axis), args, layer.name, args[0].moved)

    def layer_ReLU(self, layer, args):
        slope = relu_slope(layer)
        op = ops.LeakyReLU(slope) if slope else ops.ReLU()
        return self.add(op, [args[0]], layer.name, args[0].moved)

    def layer_LeakyReLU(self, layer, args):
        cfg = layer.get_config()
        slope = float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
        return self.add(ops.LeakyReLU(slope), [args[0]], layer.name, args[0].moved)


def _channels_first(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_first"


def _pads(layer, size, kernel, strides, dilations) -> tuple[list, list]:
    """Keras padding as explicit ``(begin, end)`` per spatial axis."""
    begin, end, _, _ = image_ops.keras_pads(layer, size, kernel, strides, dilations)
    return list(begin), list(end)
