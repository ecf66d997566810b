"""What both Keras paths share: the model's input shape, its layers in
topological order, the activation and ReLU checks, and the check that a
reading reproduces the model's own forward pass (`keras_graph`).
"""

from __future__ import annotations

import numpy as np

IDENTITY_LAYERS = (
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


def activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def to_numpy(weight) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(weight), np.float64)


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


def layer_steps(model):
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
