"""Small Keras models for the verifier's Keras reader (`graph_from_keras`,
and `from_keras` for chains), with random weights, and hand-derived pure
ReLU chains of the tiny ones (the brute-force oracle's input)."""

import keras
import numpy as np

L = keras.layers


def randomize(model, seed):
    """Random weights and BatchNormalization statistics (not the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for weight in layer.weights:
            shape = tuple(weight.shape)
            if "variance" in weight.path:
                weight.assign(rng.uniform(0.5, 2.0, shape))
            else:
                weight.assign(rng.normal(size=shape) * 0.6)
    return model


def _w(layer, name):
    return np.asarray(keras.ops.convert_to_numpy(getattr(layer, name)), np.float64)


def tiny_chain(name, model):
    """The pure ReLU chain ``(weights, biases)`` computing a `tiny_models`
    model, derived by hand (independent of the verifier): residual
    ``relu(f(h) + h)`` carries ``h >= 0`` as ``relu(h)``; max-pooling is
    ``max(a, b) = a + relu(b - a)``; LeakyReLU is ``relu(z) - s relu(-z)``."""
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    if name == "residual":
        (k1, k2, k3, k4), (b1, b2, b3, b4) = zip(
            *[(_w(d, "kernel").T, _w(d, "bias")) for d in dense]
        )
        eye = np.eye(3)
        weights = [k1, np.vstack([k2, eye]), np.hstack([k3, eye]), k4]
        biases = [b1, np.concatenate([b2, np.zeros(3)]), b3, b4]
        return weights, biases
    if name == "conv-maxpool":
        (conv,) = [layer for layer in model.layers if isinstance(layer, L.Conv2D)]
        kernel, c = _w(conv, "kernel")[:, :, 0, 0], _w(conv, "bias")[0]
        w1 = np.zeros((4, 9))
        for p in range(2):
            for q in range(2):
                for di in range(2):
                    for dj in range(2):
                        w1[p * 2 + q, 3 * (p + di) + q + dj] = kernel[di, dj]
        # r -> (r0, r1 - r0, r2, r3 - r2) -> (m01, m23 - m01) -> max
        w2 = np.array([[1, 0, 0, 0], [-1, 1, 0, 0], [0, 0, 1, 0], [0, 0, -1, 1.0]])
        w3 = np.array([[1, 1, 0, 0], [-1, -1, 1, 1.0]])
        k, b = _w(dense[0], "kernel"), _w(dense[0], "bias")
        w_out = np.outer(k[0] + k[1], [1.0, 1.0])  # Dense on [max, max]
        return [w1, w2, w3, w_out], [np.full(4, c), np.zeros(4), np.zeros(2), b]
    if name == "leaky-bn":
        (bn,) = [
            layer for layer in model.layers if isinstance(layer, L.BatchNormalization)
        ]
        (leaky,) = [layer for layer in model.layers if isinstance(layer, L.LeakyReLU)]
        slope = float(leaky.get_config()["negative_slope"])
        scale = _w(bn, "gamma") / np.sqrt(_w(bn, "moving_variance") + bn.epsilon)
        shift = _w(bn, "beta") - scale * _w(bn, "moving_mean")
        k1, b1 = _w(dense[0], "kernel").T, _w(dense[0], "bias")
        z_w, z_b = scale[:, None] * k1, scale * b1 + shift
        k2, b2 = _w(dense[1], "kernel").T, _w(dense[1], "bias")
        return (
            [np.vstack([z_w, -z_w]), np.hstack([k2, -slope * k2])],
            [np.concatenate([z_b, -z_b]), b2],
        )
    raise ValueError(name)


def tiny_models():
    inp = keras.Input((3,))
    h = L.Dense(3, activation="relu")(inp)
    branch = L.Dense(3)(L.Dense(3, activation="relu")(h))
    r = L.ReLU()(L.Add()([branch, h]))  # a residual connection across a ReLU
    yield "residual", keras.Model(inp, L.Dense(3)(r))
    inp = keras.Input((3, 3, 1))
    h = L.Conv2D(1, 2, activation="relu")(inp)
    h = L.Flatten()(L.MaxPooling2D(2)(h))
    yield "conv-maxpool", keras.Model(inp, L.Dense(3)(L.Concatenate()([h, h])))
    inp = keras.Input((3,))
    h = L.LeakyReLU(negative_slope=0.2)(L.BatchNormalization()(L.Dense(3)(inp)))
    yield "leaky-bn", keras.Model(inp, L.Dense(3)(h))


def layer_zoo():
    """``(name, model)`` of layers both readers take, random weights: conv,
    pooling and normalization layers; grouped conv, reshapes and merges."""
    inp = keras.Input((7, 7, 2))
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(inp)
    h = L.Conv2D(3, 3, padding="same", strides=2, activation="relu")(h)
    h = L.BatchNormalization()(h)
    h = L.Conv2D(4, 2, dilation_rate=1, groups=1, padding="valid")(h)
    h = L.LeakyReLU(negative_slope=0.1)(h)
    a = L.AveragePooling2D(2, padding="same")(h)
    m = L.MaxPooling2D(2, strides=1)(h)
    g = L.GlobalMaxPooling2D()(m)
    f = L.Flatten()(L.Rescaling(0.5, offset=0.1)(a))
    h = L.Concatenate()([f, g, L.GlobalAveragePooling2D()(h)])
    out = L.Dense(3, activation="leaky_relu")(L.Dropout(0.5)(h))
    yield "conv-pooling-normalization", randomize(keras.Model(inp, out), 0)
    inp = keras.Input((12,))
    h = L.Reshape((2, 3, 2))(inp)
    h = L.Permute((2, 1, 3))(h)
    h = L.Conv2D(4, (2, 1), groups=2, activation="relu")(h)
    h = L.Flatten()(h)
    a, b = L.Dense(5)(h), L.Dense(5)(h)
    h = L.Subtract()([a, b])
    h = L.ReLU(negative_slope=0.05)(L.Average()([h, a]))
    out = L.Dense(2)(h)
    yield "grouped-conv-reshape-merges", randomize(keras.Model(inp, out), 2)
