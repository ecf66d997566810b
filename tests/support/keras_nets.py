"""Small Keras models for the verifier's Keras readers (`from_keras`, the
chain, and `graph_from_keras`, the graph), with random weights."""

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


def to_pure_relu(net):
    """A `ReluNetwork`'s weights and biases with every pass-through neuron z
    as relu(z) - relu(-z) (the same function, pure ReLU)."""
    weights, biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    for k, through in enumerate(net.passthrough):
        if through is None:
            continue
        idx = np.nonzero(through)[0]
        weights[k] = np.concatenate([weights[k], -weights[k][idx]])
        biases[k] = np.concatenate([biases[k], -biases[k][idx]])
        weights[k + 1] = np.concatenate([weights[k + 1], -weights[k + 1][:, idx]], 1)
    return weights, biases


def tiny_models():
    inp = keras.Input((3,))
    h = L.Dense(3, activation="relu")(inp)
    branch = L.Dense(3)(L.Dense(3, activation="relu")(h))
    r = L.ReLU()(L.Add()([branch, h]))  # h rides along the branch's ReLU layer
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
