"""Keras models read into a `Graph` (`graph_from_keras`): outputs against
Keras' own forward pass, CROWN bounds against sampling, verdicts of the graph
engine against the brute-force oracle, and unsupported layers as one line."""

import keras
import numpy as np
import pytest
import torch
from keras_nets import randomize, tiny_models, to_pure_relu
from verify_brute import def1_min_margin

from keras_ndsru.verify import from_keras, local_robustness
from keras_ndsru.verify.bounds import crown
from keras_ndsru.verify.formats.keras_graph import graph_from_keras
from keras_ndsru.verify.formats.keras_reader import keras_forward
from keras_ndsru.verify.graph.operators import Transpose

L = keras.layers


def assert_reproduces(model, seed=1, eps=0.05):
    """Outputs equal Keras' on random inputs; CROWN bounds of a box around
    one of them contain the outputs of 512 samples of the box."""
    graph = graph_from_keras(model)
    x = np.random.default_rng(seed).normal(size=(32, *graph.input_shape))
    np.testing.assert_allclose(
        graph.forward(x.reshape(32, -1)),
        keras_forward(model, x).reshape(32, -1),
        rtol=1e-5,
        atol=1e-5,
    )
    center = torch.tensor(x[:1])
    box = crown.Box(center - eps, center + eps)
    bounds = crown.intermediate_bounds(graph, box)
    n = graph.n_outputs
    C, _ = crown.output_rows(graph, np.eye(n), np.zeros(n), 1, box.lower)
    lo = crown.back_substitute(graph, graph.output, C, bounds, box)[0]
    hi = -crown.back_substitute(graph, graph.output, -C, bounds, box)[0]
    samples = center + eps * (2 * torch.rand((512, *center.shape[1:])) - 1)
    y = torch.as_tensor(keras_forward(model, samples.numpy())).reshape(512, -1)
    assert torch.all(y >= lo - 1e-6) and torch.all(y <= hi + 1e-6)
    return graph


def test_conv_pooling_and_normalization_layers():
    inp = keras.Input((7, 7, 2))
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(inp)
    h = L.Conv2D(3, 3, padding="same", strides=2, activation="relu")(h)
    h = L.BatchNormalization()(h)
    h = L.Conv2D(4, 2, padding="valid")(h)
    h = L.LeakyReLU(negative_slope=0.1)(h)
    a = L.AveragePooling2D(2, padding="same")(h)
    m = L.MaxPooling2D(2, strides=1)(h)
    g = L.GlobalMaxPooling2D()(m)
    f = L.Flatten()(L.Rescaling(0.5, offset=0.1)(a))
    h = L.Concatenate()([f, g, L.GlobalAveragePooling2D()(h)])
    out = L.Dense(3, activation="leaky_relu")(L.Dropout(0.5)(h))
    assert_reproduces(randomize(keras.Model(inp, out), 0))


def test_grouped_conv_reshape_permute_and_merges():
    inp = keras.Input((12,))
    h = L.Reshape((2, 3, 2))(inp)
    h = L.Permute((2, 1, 3))(h)
    h = L.Conv2D(4, (2, 1), groups=2, activation="relu")(h)
    h = L.Flatten()(h)
    a, b = L.Dense(5)(h), L.Dense(5)(h)
    h = L.Subtract()([a, b])
    h = L.ReLU(negative_slope=0.05)(L.Average()([h, a]))
    out = L.Dense(2)(h)
    assert_reproduces(randomize(keras.Model(inp, out), 2))


def test_layers_only_the_graph_reads():
    # S-shaped activations, Conv1D, Dense on a sequence, a residual Add and
    # a channel Concatenate of images, per-channel Rescaling, keepdims global
    # pooling, a channels-first Flatten (TensorFlow's CPU kernels run no
    # channels-first convolution or pooling to compare with).
    inp = keras.Input((6, 6, 3))
    h = L.Conv2D(4, 3, padding="same", activation="sigmoid")(inp)
    r = L.Conv2D(4, 1, activation="tanh")(h)
    h = L.Add()([h, r])
    h = L.Concatenate(axis=-1)([h, L.Rescaling([1.0, -2.0, 0.5, 3.0])(r)])
    h = L.BatchNormalization()(h)
    k = L.GlobalAveragePooling2D(keepdims=True)(h)
    h = L.MaxPooling2D(3)(L.Add()([h, k]))
    h = L.Permute((3, 1, 2))(h)  # (8, 2, 2), channels first
    h = L.Flatten(data_format="channels_first")(h)
    s = L.Reshape((8, 4))(h)
    s = L.Conv1D(3, 2, activation="relu")(s)
    s = L.Dense(2, activation="tanh")(s)  # on the last axis of (7, 3)
    out = L.Dense(3)(L.Flatten()(s))
    assert_reproduces(randomize(keras.Model(inp, out), 3))


def test_consecutive_convolutions_need_no_transposes():
    model = randomize(
        keras.Sequential(
            [
                keras.Input((8, 8, 2)),
                L.Conv2D(4, 3, activation="relu"),
                L.BatchNormalization(),
                L.Conv2D(4, 3, padding="same", activation="relu"),
                L.MaxPooling2D(2),
                L.Conv2D(3, 1),
                L.Flatten(),
                L.Dense(3),
            ]
        ),
        4,
    )
    graph = assert_reproduces(model)
    transposes = [n for n in graph.nodes if isinstance(n.op, Transpose)]
    # Into channels-first once, back to Keras' order once before Flatten.
    assert len(transposes) == 2


@pytest.mark.parametrize("index", [0, 1, 2])
def test_graph_engine_verdicts_match_the_brute_force_oracle(index):
    name, model = list(tiny_models())[index]
    randomize(model, 2)
    graph = assert_reproduces(model)
    weights, biases = to_pure_relu(from_keras(model))
    rng = np.random.default_rng(20 + index)
    verdicts = []
    for _ in range(3):
        x0 = rng.uniform(-1, 1, graph.n_inputs)
        for delta in (0.05, 0.5, 2.0):
            exact = def1_min_margin(weights, biases, x0, delta, "inf")
            if abs(exact) < 1e-5:
                continue
            res = local_robustness(graph, x0.reshape(graph.input_shape), delta)
            assert res.robust == (exact > 0), (name, delta, exact)
            verdicts.append(res.robust)
    assert {True, False} <= set(verdicts), name


@pytest.mark.parametrize(
    "make, shape, message",
    [
        (
            lambda: L.LSTM(2, name="lstm"),
            (3, 2),
            "Unsupported layer 'lstm' of type LSTM",
        ),
        (
            lambda: L.Dense(2, activation="softmax"),
            (4,),
            "Unsupported activation 'softmax'.*strip_softmax=True",
        ),
        (lambda: L.Dense(2, activation="elu"), (4,), "Unsupported activation 'elu'"),
    ],
)
def test_unsupported_layers_are_one_line(make, shape, message):
    model = keras.Sequential([keras.Input(shape), make()])
    with pytest.raises(ValueError, match=message) as info:
        graph_from_keras(model)
    assert "\n" not in str(info.value)


def test_softmax_output_is_dropped_on_request():
    model = randomize(
        keras.Sequential(
            [keras.Input((4,)), L.Dense(5, activation="relu"), L.Dense(3, "softmax")]
        ),
        5,
    )
    graph = graph_from_keras(model, strip_softmax=True)
    x = np.random.default_rng(0).normal(size=(16, 4))
    assert np.array_equal(
        np.argmax(graph.forward(x), 1), np.argmax(keras_forward(model, x), 1)
    )
