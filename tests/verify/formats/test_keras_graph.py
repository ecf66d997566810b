"""Keras models read into a `Graph` (`graph_from_keras`): outputs against
Keras' own forward pass, CROWN bounds against sampling, verdicts of the graph
engine against the brute-force oracle, and unsupported layers as one line."""

import keras
import numpy as np
import pytest
from graph_nets import assert_bounds_contain_samples
from keras_nets import layer_zoo, randomize, tiny_chain, tiny_models
from verify_brute import def1_min_margin

from keras_ndsru.verify import local_robustness
from keras_ndsru.verify.formats.keras_graph import graph_from_keras
from keras_ndsru.verify.formats.keras_model import keras_forward
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
    assert_bounds_contain_samples(graph, x[:1], eps, lambda v: keras_forward(model, v))
    return graph


@pytest.mark.parametrize("index", [0, 1])
def test_layer_zoo(index):
    _, model = list(layer_zoo())[index]
    assert_reproduces(model)


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


@pytest.mark.parametrize("norm", ["inf", "1"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_graph_engine_verdicts_match_the_brute_force_oracle(index, norm):
    """Residual, max-pooling (split as ReLUs) and LeakyReLU graphs, L_inf
    boxes and L_1 balls, against exact minima on hand-derived chains."""
    name, model = list(tiny_models())[index]
    randomize(model, 2)
    graph = assert_reproduces(model)
    weights, biases = tiny_chain(name, model)
    rng = np.random.default_rng(20 + index)
    verdicts = []
    for _ in range(3):
        x0 = rng.uniform(-1, 1, graph.n_inputs)
        for delta in (0.05, 0.5, 2.0):
            exact = def1_min_margin(weights, biases, x0, delta, norm)
            if abs(exact) < 1e-5:
                continue
            res = local_robustness(
                graph, x0.reshape(graph.input_shape), delta, norm=norm
            )
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
        (lambda: L.ReLU(max_value=6.0), (4,), "without max_value .* max_value=6.0,"),
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
