"""A plain NumPy affine/ReLU network: what the verifier reasons about."""

from __future__ import annotations

import math

import numpy as np

_IDENTITY_LAYERS = ("InputLayer", "Dropout", "GaussianNoise", "GaussianDropout")
_RESHAPE_LAYERS = ("Flatten",)


class ReluNetwork:
    """A feed-forward network of affine layers, each but the last followed by ReLU.

    ``y = W_L relu(... relu(W_1 x + b_1) ...) + b_L`` in float64. This is the
    piecewise-linear function that the Reluplex paper (arXiv 1709.02802, Sec. 2)
    verifies; Keras models and `.nnet` files are converted to it.

    Args:
        weights: list of 2-D arrays, ``weights[k]`` of shape ``(n_out, n_in)``.
        biases: list of 1-D arrays, ``biases[k]`` of shape ``(n_out,)``.
        input_shape: shape of one input before flattening. Defaults to
            ``(n_inputs,)``.
        input_domain: optional ``(lower, upper)`` box of valid (flattened)
            inputs, intersected with every query's neighbourhood. Defaults to
            `None` (unbounded).
        name: a label used in messages. Defaults to `"network"`.

    Example:

    >>> net = ReluNetwork([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> net(np.array([1.0, -2.0]))
    array([1.])
    """

    def __init__(
        self,
        weights,
        biases,
        input_shape=None,
        input_domain=None,
        name: str = "network",
    ):
        if len(weights) == 0 or len(weights) != len(biases):
            raise ValueError(
                "Expected as many weight matrices as bias vectors, at least one. "
                f"Received: len(weights)={len(weights)}, len(biases)={len(biases)}"
            )
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64).reshape(-1) for b in biases]
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.ndim != 2 or w.shape[0] != b.shape[0]:
                raise ValueError(
                    f"Layer {k}: expected weights (n_out, n_in) matching biases "
                    f"(n_out,). Received: weights.shape={w.shape}, "
                    f"biases.shape={b.shape}"
                )
            if k and w.shape[1] != self.weights[k - 1].shape[0]:
                raise ValueError(
                    f"Layer {k} expects {w.shape[1]} inputs but layer {k - 1} has "
                    f"{self.weights[k - 1].shape[0]} outputs. "
                    f"Received: weights[{k}].shape={w.shape}"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(
                    f"Layer {k} has non-finite weights or biases. "
                    f"Received: weights[{k}]={w.tolist()}"[:300]
                )
        self.input_shape = tuple(input_shape) if input_shape else (self.n_inputs,)
        if math.prod(self.input_shape) != self.n_inputs:
            raise ValueError(
                f"input_shape must have {self.n_inputs} elements. "
                f"Received: input_shape={input_shape}"
            )
        self.input_domain = None
        if input_domain is not None:
            lower, upper = (np.asarray(v, dtype=np.float64) for v in input_domain)
            lower = np.broadcast_to(lower.reshape(-1), (self.n_inputs,)).copy()
            upper = np.broadcast_to(upper.reshape(-1), (self.n_inputs,)).copy()
            if np.any(lower > upper):
                raise ValueError(
                    "input_domain lower must not exceed upper. "
                    f"Received: input_domain={input_domain}"
                )
            self.input_domain = (lower, upper)
        self.name = name

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def hidden_sizes(self) -> list[int]:
        return [w.shape[0] for w in self.weights[:-1]]

    def __call__(self, x) -> np.ndarray:
        """Outputs for one flattened input ``(n,)`` or a batch ``(batch, n)``."""
        x = np.asarray(x, dtype=np.float64)
        out = forward(self.weights, self.biases, np.atleast_2d(x))
        return out[0] if x.ndim == 1 else out

    def to_arrays(self) -> dict:
        """Plain picklable arrays (what worker processes receive)."""
        return {
            "weights": self.weights,
            "biases": self.biases,
            "input_shape": self.input_shape,
            "input_domain": self.input_domain,
            "name": self.name,
        }

    def __repr__(self) -> str:
        sizes = [self.n_inputs, *self.hidden_sizes, self.n_outputs]
        return f"ReluNetwork(name={self.name!r}, sizes={sizes})"


def forward(weights, biases, x: np.ndarray) -> np.ndarray:
    """Outputs of the affine/ReLU chain for a batch ``x`` of shape (batch, n)."""
    h = x
    for k, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w.T + b
        if k < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h


def input_gradient(weights, biases, x: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Gradient of ``outputs(x[i]) @ coef[i]`` w.r.t. ``x[i]``, per row."""
    h = x
    masks = []
    for w, b in zip(weights[:-1], biases[:-1]):
        z = h @ w.T + b
        masks.append(z > 0)
        h = np.maximum(z, 0.0)
    g = np.broadcast_to(np.atleast_2d(coef) @ weights[-1], h.shape)
    for mask, w in zip(reversed(masks), reversed(weights[:-1])):
        g = (g * mask) @ w
    return np.broadcast_to(g, x.shape)


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
