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
