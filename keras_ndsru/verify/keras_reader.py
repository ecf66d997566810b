"""Reading a Keras model into a `ReluNetwork`."""

from __future__ import annotations

import math

import numpy as np

from keras_ndsru.verify.network import ReluNetwork

_IDENTITY_LAYERS = ("InputLayer", "Dropout", "GaussianNoise", "GaussianDropout")
_RESHAPE_LAYERS = ("Flatten",)


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def from_keras(model, strip_softmax: bool = False) -> ReluNetwork:
    """Extracts the `ReluNetwork` computed by a Keras model in inference mode.

    Supported layers: `InputLayer`, `Dense` (activation relu or linear; softmax
    on the last layer only with ``strip_softmax=True``), `Activation` and `ReLU`
    (plain relu), `Flatten`, inference-mode `BatchNormalization` on a flat
    tensor (folded into the affine maps), and `Dropout`-like layers (identity
    at inference). Any other layer raises a `ValueError` naming it. The result
    is checked against the model's own forward pass on random inputs, so a
    non-sequential wiring is reported instead of verified wrongly.

    Args:
        model: a built Keras model whose layers form one chain.
        strip_softmax: whether a final softmax may be dropped. The argmax label
            (Def. 1) is unchanged, but output differences (Def. 2 and 3) are
            then measured on logits. Defaults to `False`.

    Returns:
        A `ReluNetwork` with ``input_shape`` of the model's single input.
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
    n = math.prod(input_shape)
    # Pending affine map x -> a @ x + c in flat coordinates, and closed layers.
    a, c = np.eye(n), np.zeros(n)
    layers_w, layers_b = [], []
    flat = len(input_shape) == 1
    size = n
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _IDENTITY_LAYERS:
            continue
        if kind in _RESHAPE_LAYERS:
            flat = True
            continue
        if kind == "Dense":
            if not flat:
                raise ValueError(
                    f"Layer {layer.name!r} (Dense) is applied to a non-flat tensor; "
                    "add a Flatten layer before it."
                )
            kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
            bias = (
                np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float64)
                if layer.bias is not None
                else np.zeros(kernel.shape[1])
            )
            if kernel.shape[0] != size:
                raise ValueError(
                    f"Layer {layer.name!r} (Dense) expects {kernel.shape[0]} inputs "
                    f"but the chain before it has {size}: the verifier needs the "
                    "model's layers to form a single chain."
                )
            a, c = kernel.T @ a, kernel.T @ c + bias
            size = kernel.shape[1]
            activation = _activation_name(layer)
        elif kind == "BatchNormalization":
            if not flat:
                raise ValueError(
                    f"Layer {layer.name!r} (BatchNormalization) needs a flat input."
                )
            scale, shift = _batchnorm_affine(layer, size)
            a, c = scale[:, None] * a, scale * c + shift
            activation = "linear"
        elif kind == "Activation":
            activation = _activation_name(layer)
        elif kind == "ReLU":
            cfg = layer.get_config()
            if (
                cfg.get("max_value") is not None
                or cfg.get("negative_slope", 0.0)
                or cfg.get("threshold", 0.0)
            ):
                raise ValueError(
                    f"Layer {layer.name!r} (ReLU) must be a plain ReLU (no "
                    f"max_value, negative_slope or threshold). Received: {cfg}"
                )
            activation = "relu"
        else:
            raise ValueError(
                f"Unsupported layer {layer.name!r} of type {kind}: the verifier "
                "handles InputLayer, Dense (relu/linear), Activation/ReLU (relu), "
                "Flatten, BatchNormalization and Dropout."
            )
        if activation == "relu":
            layers_w.append(a)
            layers_b.append(c)
            a, c = np.eye(size), np.zeros(size)
        elif activation == "softmax" and strip_softmax and layer is model.layers[-1]:
            continue
        elif activation != "linear":
            hint = (
                " (pass strip_softmax=True for Def. 1)"
                if activation == "softmax"
                else ""
            )
            raise ValueError(
                f"Unsupported activation {activation!r} in layer {layer.name!r}"
                f"{hint}: the verifier handles relu and linear."
            )
    layers_w.append(a)
    layers_b.append(c)
    network = ReluNetwork(layers_w, layers_b, input_shape=input_shape, name=model.name)
    _check_against_keras(network, model, strip_softmax)
    return network


def _batchnorm_affine(layer, size):
    import keras

    def get(weight):
        return np.asarray(keras.ops.convert_to_numpy(weight), np.float64)

    mean, var = get(layer.moving_mean), get(layer.moving_variance)
    gamma = get(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
    beta = get(layer.beta) if layer.beta is not None else np.zeros_like(mean)
    if mean.shape != (size,):
        raise ValueError(
            f"Layer {layer.name!r} (BatchNormalization) must normalize the last "
            f"axis of a flat tensor of size {size}. Received: {mean.shape}"
        )
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - scale * mean


def _check_against_keras(network: ReluNetwork, model, strip_softmax: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, *network.input_shape))
    expected = keras_forward(model, x)
    got = network(x.reshape(8, -1))
    if (
        strip_softmax
        and model.layers
        and _activation_name(model.layers[-1]) == "softmax"
    ):
        got = np.exp(got - got.max(axis=1, keepdims=True))
        got /= got.sum(axis=1, keepdims=True)
    scale = 1.0 + np.abs(expected).max()
    if got.shape != expected.shape or np.abs(got - expected).max() > 1e-4 * scale:
        raise ValueError(
            f"The extracted network does not reproduce model {model.name!r}: the "
            "verifier needs a single chain of supported layers in inference mode."
        )


def keras_forward(model, x) -> np.ndarray:
    """The model's own inference-mode outputs for a batch, as float64."""
    import keras

    out = model(keras.ops.convert_to_tensor(np.asarray(x, np.float32)), training=False)
    return np.asarray(keras.ops.convert_to_numpy(out), np.float64)
