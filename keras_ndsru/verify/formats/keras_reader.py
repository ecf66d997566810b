"""Reading a Keras model into a `ReluNetwork`.

The model's graph (a `Sequential` chain or a functional DAG) is lowered by
`keras_ndsru.verify.graph.lowering`: affine layers (Dense, Conv2D, BatchNormalization
in inference mode, AveragePooling2D, Add, Flatten, ...) update dense
coefficients, ReLU/LeakyReLU and MaxPooling2D close hidden layers, residual
tensors ride along as pass-through neurons. Dense matrices make this a tool
for small networks (e.g. a conv net on 8x8 digits), not ImageNet models.
"""

from __future__ import annotations

import math

import numpy as np

from keras_ndsru.verify.graph import image_ops
from keras_ndsru.verify.graph.lowering import Affine, Chain, Values

_IDENTITY_LAYERS = (
    "InputLayer",
    "Dropout",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "ActivityRegularization",
)
SUPPORTED = (
    "InputLayer, Dense, Conv2D, Activation/ReLU/LeakyReLU (relu, leaky_relu, "
    "linear), BatchNormalization, AveragePooling2D, MaxPooling2D, "
    "GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, Reshape, Permute, "
    "ZeroPadding2D, Rescaling, Add, Subtract, Average, Concatenate, Dropout"
)


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def _numpy(weight) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(weight), np.float64)


def from_keras(model, strip_softmax: bool = False):
    """Extracts the `ReluNetwork` computed by a Keras model in inference mode.

    Supported layers: see ``SUPPORTED`` (activations relu, leaky_relu and
    linear; softmax on the output only with ``strip_softmax=True``;
    LeakyReLU is ``a z + (1 - a) relu(z)``, max-pooling ``max(a, b) = a +
    relu(b - a)``, both exact). Any other layer, a shared layer or a nested
    model raises a `ValueError` naming it. The result is checked against the
    model's own forward pass on random inputs.

    Args:
        model: a built Keras model with one input and one output.
        strip_softmax: whether a final softmax may be dropped. The argmax label
            (Def. 1) is unchanged, but output differences (Def. 2 and 3) are
            then measured on logits. Defaults to `False`.

    Returns:
        A `ReluNetwork` with ``input_shape`` of the model's single input.
    """
    input_shape = model_input_shape(model)
    steps, output = _steps(model)
    last_use = {name: i for i, (_, ins, _) in enumerate(steps) for name in ins}
    last_use[output] = math.inf
    chain = Chain(input_shape)
    values = Values(chain, last_use)
    values["input"] = chain.input()
    stripped = False
    for step, (layer, ins, out) in enumerate(steps):
        result = _lower(layer, [values[name] for name in ins], values, step)
        activation = _activation_name(layer) if hasattr(layer, "activation") else None
        if activation == "softmax" and strip_softmax and out == output:
            stripped, activation = True, None
        if activation not in (None, "linear"):
            result = _activate(layer, activation, result, values, step)
        values[out] = result
    network = chain.finish(values[output], name=model.name)
    check_reproduces(network, model, stripped, "extracted network")
    return network


def model_input_shape(model) -> tuple:
    """The per-sample input shape of a built one-input, one-output model.

    Raises:
        TypeError: not a `keras.Model`.
        ValueError: not built, several inputs or outputs, or unknown axes.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model. Received: model={model!r}")
    inputs = model.inputs if model.built else None
    if not inputs or len(inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            "Expected a built model with one input and one output (call it once "
            f"or give it an Input). Received: model={model.name!r}"
        )
    input_shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in input_shape):
        raise ValueError(
            f"The model input needs a fully known shape. Received: {input_shape}"
        )
    return input_shape


def kind_of(layer) -> str:
    return type(layer).__name__


def _steps(model):
    """``[(layer, input names, output name)]`` in topological order."""
    import keras

    layers = [layer for layer in model.layers if kind_of(layer) != "InputLayer"]
    for layer in layers:
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"Layer {layer.name!r} is a nested model: build one flat model of "
                "its layers for the verifier."
            )
    if isinstance(model, keras.Sequential):
        names = ["input"] + [layer.name for layer in layers]
        return [(layer, [names[i]], names[i + 1]) for i, layer in enumerate(layers)], (
            names[-1]
        )
    known = {id(model.inputs[0]): "input"}
    pending, steps = list(layers), []
    while pending:
        for layer in pending:
            try:
                sources = layer.input
                target = layer.output
            except (AttributeError, ValueError) as error:
                raise ValueError(
                    f"Layer {layer.name!r} is shared or has several inbound nodes "
                    f"({error}); the verifier needs each layer called once."
                ) from None
            sources = sources if isinstance(sources, (list, tuple)) else [sources]
            if all(id(s) in known for s in sources):
                known[id(target)] = layer.name
                steps.append((layer, [known[id(s)] for s in sources], layer.name))
                pending.remove(layer)
                break
        else:
            raise ValueError(
                f"Layer {pending[0].name!r} reads a tensor that no layer of the "
                "model produces: the verifier needs one input feeding every layer."
            )
    return steps, known[id(model.outputs[0])]


def _activate(layer, activation, x, values, step):
    if activation == "relu":
        return values.relu(step, x)
    if activation == "leaky_relu":
        return values.leaky_relu(step, x, 0.2)  # keras.activations.leaky_relu
    hint = " (pass strip_softmax=True for Def. 1)" if activation == "softmax" else ""
    raise ValueError(
        f"Unsupported activation {activation!r} in layer {layer.name!r}{hint}: the "
        f"verifier handles relu, leaky_relu and linear. Received: {activation!r}"
    )


def _channels_first(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_first"


def _to_nchw(x: Affine, layer) -> Affine:
    if len(x.shape) != 3:
        raise ValueError(
            f"Layer {layer.name!r} ({kind_of(layer)}) needs a 3-D (H, W, C) "
            f"input. Received: shape {x.shape}"
        )
    x = x if _channels_first(layer) else x.transpose((2, 0, 1))
    return x.reshape((1, *x.shape))


def _from_nchw(x: Affine, layer) -> Affine:
    x = x.reshape(x.shape[1:])
    return x if _channels_first(layer) else x.transpose((1, 2, 0))


def _pads(layer, x, kernel, strides, dilations):
    return image_ops.keras_pads(layer, x.shape[2:], kernel, strides, dilations)


def _lower(layer, args, values, step):
    """The affine part of ``layer`` (activations are applied by the caller)."""
    kind = kind_of(layer)
    x = args[0]
    if kind in _IDENTITY_LAYERS or kind == "Activation":
        return x
    if kind == "Dense":
        if len(x.shape) != 1:
            raise ValueError(
                f"Layer {layer.name!r} (Dense) is applied to a non-flat tensor of "
                f"shape {x.shape}; add a Flatten layer before it."
            )
        kernel = _numpy(layer.kernel)
        bias = _numpy(layer.bias) if layer.bias is not None else 0.0
        return x.map(lambda t: t @ kernel, bias)
    if kind == "Conv2D":
        w = _numpy(layer.kernel).transpose(3, 2, 0, 1)  # (out, in/groups, kh, kw)
        bias = _numpy(layer.bias) if layer.bias is not None else None
        strides, dilations = list(layer.strides), list(layer.dilation_rate)
        nchw = _to_nchw(x, layer)
        begin, end, out, _ = _pads(layer, nchw, w.shape[2:], strides, dilations)
        groups = getattr(layer, "groups", 1)

        def linear(t):
            flat = t.reshape(-1, *nchw.shape[1:])
            y = image_ops.conv2d(flat, w, strides, begin, end, dilations, groups, out)
            return y.reshape(*t.shape[:-3], w.shape[0], *out)

        offset = 0.0 if bias is None else bias.reshape(-1, 1, 1)
        return _from_nchw(nchw.map(linear, offset), layer)
    if kind in ("AveragePooling2D", "MaxPooling2D"):
        kernel, strides = list(layer.pool_size), list(layer.strides)
        nchw = _to_nchw(x, layer)
        begin, end, out, declared = _pads(layer, nchw, kernel, strides, [1, 1])
        if kind == "MaxPooling2D":
            windows = image_ops.pool_windows(
                nchw.shape, kernel, strides, begin, end, [1, 1], out
            )
            pooled = values.max_over(step, nchw, windows, (*nchw.shape[:2], *out))
            return _from_nchw(pooled, layer)

        def linear(t):
            flat = t.reshape(-1, *nchw.shape[1:])
            y = image_ops.average_pool(
                flat, kernel, strides, begin, end, declared, 0, out
            )
            return y.reshape(*t.shape[:-2], *out)

        return _from_nchw(nchw.map(linear), layer)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        nchw = _to_nchw(x, layer)
        channels = nchw.shape[1]
        if kind == "GlobalAveragePooling2D":
            pooled = nchw.map(lambda t: t.mean(axis=(-2, -1)))
        else:
            windows = np.arange(nchw.size).reshape(channels, -1)
            pooled = values.max_over(step, nchw, windows, (1, channels))
        pooled = pooled.reshape((channels,))
        if getattr(layer, "keepdims", False):
            shape = (channels, 1, 1) if _channels_first(layer) else (1, 1, channels)
            pooled = pooled.reshape(shape)
        return pooled
    if kind == "Flatten":
        return x.reshape((x.size,)) if not _channels_first(layer) else _flatten_cf(x)
    if kind == "Reshape":
        return x.reshape(_target_shape(layer.target_shape, x.size))
    if kind == "Permute":
        return x.transpose([d - 1 for d in layer.dims])
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = layer.padding
        pad = [(top, bottom), (left, right), (0, 0)]
        if _channels_first(layer):
            pad = [(0, 0), (top, bottom), (left, right)]
        return x.map(lambda t: np.pad(t, [(0, 0), *pad]))
    if kind == "Rescaling":
        return x.scale(np.asarray(layer.scale, np.float64)).shift(
            np.asarray(layer.offset, np.float64)
        )
    if kind == "BatchNormalization":
        return _batchnorm(layer, x)
    if kind in ("Add", "Subtract", "Average"):
        total = args[0]
        for other in args[1:]:
            total = total + (other.scale(-1.0) if kind == "Subtract" else other)
        return total.scale(1.0 / len(args)) if kind == "Average" else total
    if kind == "Concatenate":
        axis = layer.axis if layer.axis >= 0 else layer.axis + len(x.shape) + 1
        return Affine(
            np.concatenate([a.coef for a in args], axis),
            np.concatenate([a.const for a in args], axis - 1),
        )
    if kind in ("ReLU", "LeakyReLU"):
        return _relu_layer(layer, x, values, step)
    raise ValueError(
        f"Unsupported layer {layer.name!r} of type {kind}: the verifier handles "
        f"{SUPPORTED}. Received: {kind}"
    )


def _flatten_cf(x):
    """Keras moves channels last before flattening a channels_first tensor."""
    if len(x.shape) > 1:
        x = x.transpose((*range(1, len(x.shape)), 0))
    return x.reshape((x.size,))


def _target_shape(target, size):
    target = list(target)
    if -1 in target:
        known = math.prod(v for v in target if v != -1)
        target[target.index(-1)] = size // max(known, 1)
    return tuple(target)


def relu_slope(layer) -> float:
    """The negative slope of a `keras.layers.ReLU` layer (0 for a plain one);
    a ``max_value`` or ``threshold`` is a one-line `ValueError`."""
    cfg = layer.get_config()
    if cfg.get("max_value") is not None or cfg.get("threshold", 0.0):
        raise ValueError(
            f"Layer {layer.name!r} (ReLU) must be a plain ReLU (or a leaky one: "
            "negative_slope), without max_value or threshold. Received: "
            f"max_value={cfg.get('max_value')}, threshold={cfg.get('threshold')}"
        )
    return float(cfg.get("negative_slope", 0.0) or 0.0)


def _relu_layer(layer, x, values, step):
    return values.leaky_relu(step, x, relu_slope(layer))


def _batchnorm(layer, x):
    mean, var = _numpy(layer.moving_mean), _numpy(layer.moving_variance)
    gamma = _numpy(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
    beta = _numpy(layer.beta) if layer.beta is not None else np.zeros_like(mean)
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    axis = axis % (len(x.shape) + 1) - 1  # without the batch dimension
    if x.shape[axis] != mean.size:
        raise ValueError(
            f"Layer {layer.name!r} (BatchNormalization) normalizes axis {axis} of "
            f"shape {x.shape}, but has {mean.size} statistics."
        )
    scale = gamma / np.sqrt(var + layer.epsilon)
    shape = [1] * len(x.shape)
    shape[axis] = mean.size
    return x.scale(scale.reshape(shape)).shift((beta - scale * mean).reshape(shape))


def check_reproduces(network, model, stripped: bool, what: str) -> None:
    """Raises a `ValueError` unless ``network`` (a callable on flat batches
    with ``input_shape``) gives the model's outputs on 8 random inputs (its
    softmax's, when the model's final softmax was ``stripped``)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, *network.input_shape))
    expected = keras_forward(model, x)
    got = network(x.reshape(8, -1))
    if stripped:
        got = np.exp(got - got.max(axis=1, keepdims=True))
        got /= got.sum(axis=1, keepdims=True)
    expected = expected.reshape(len(expected), -1)
    scale = 1.0 + np.abs(expected).max()
    if got.shape != expected.shape or np.abs(got - expected).max() > 1e-4 * scale:
        raise ValueError(
            f"The {what} does not reproduce model {model.name!r}: the "
            "verifier needs supported layers in inference mode."
        )


def keras_forward(model, x) -> np.ndarray:
    """The model's own inference-mode outputs for a batch, as float64."""
    import keras

    out = model(keras.ops.convert_to_tensor(np.asarray(x, np.float32)), training=False)
    return np.asarray(keras.ops.convert_to_numpy(out), np.float64)
