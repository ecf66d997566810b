"""Keras model extraction against the Keras forward pass, and its errors."""

import keras
import numpy as np
import pytest

from keras_ndsru.verify import ReluNetwork, from_keras, local_robustness
from keras_ndsru.verify.formats.keras_model import keras_forward


def _trained_bn_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((2, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(6),
            keras.layers.ReLU(),
            keras.layers.Dense(5, activation="linear"),
            keras.layers.Activation("relu"),
            keras.layers.Dense(3),
        ]
    )
    # Non-trivial moving statistics for the folded BatchNormalization.
    bn = model.layers[2]
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 8))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 8))
    bn.gamma.assign(np.linspace(0.8, 1.2, 8))
    bn.beta.assign(np.linspace(-0.1, 0.1, 8))
    return model


def test_extraction_matches_keras_forward():
    model = _trained_bn_model()
    net = from_keras(model)
    assert net.input_shape == (2, 3) and net.hidden_sizes == [8, 6, 5]
    x = np.random.default_rng(1).normal(size=(16, 2, 3))
    np.testing.assert_allclose(
        net(x.reshape(16, -1)), keras_forward(model, x), rtol=1e-5, atol=1e-5
    )


def test_keras_model_query_returns_checked_counterexample():
    model = _trained_bn_model()
    x0 = np.random.default_rng(2).normal(size=(2, 3))
    res = local_robustness(model, x0, 2.0, workers=1)
    assert res.robust is False and res.counterexample.shape == (2, 3)
    y0 = keras_forward(model, x0[None])[0]
    y = keras_forward(model, res.counterexample[None])[0]
    assert np.argmax(y) != np.argmax(y0) or np.sum(y == y.max()) > 1
    assert local_robustness(model, x0, 1e-4, workers=1).robust is True


def test_softmax_needs_def1():
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    with pytest.raises(ValueError, match="softmax"):
        from_keras(model)
    with pytest.raises(ValueError, match="softmax"):
        local_robustness(model, np.zeros(2), 0.1, eps=0.1, workers=1)
    res = local_robustness(model, np.zeros(2), 1e-3, workers=1)  # argmax unchanged
    assert res.robust in (True, False)


@pytest.mark.parametrize(
    "layer, match",
    [
        (keras.layers.Dense(4, activation="tanh"), "is a Tanh, not affine or ReLU"),
        (keras.layers.LayerNormalization(), "LayerNormalization"),
        (keras.layers.ReLU(max_value=1.0), "plain ReLU"),
    ],
)
def test_unsupported_layers_are_named(layer, match):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), layer, keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match=match):
        from_keras(model)


def test_dense_on_non_flat_input_and_branches():
    # Dense on the last axis of a (2, 3) input: a (2 x 4, 2 x 3) block matrix.
    model = keras.Sequential([keras.Input((2, 3)), keras.layers.Dense(4)])
    x = np.random.default_rng(2).normal(size=(16, 2, 3))
    np.testing.assert_allclose(
        from_keras(model)(x.reshape(16, -1)),
        keras_forward(model, x).reshape(16, -1),
        rtol=1e-5,
        atol=1e-5,
    )
    # Two ReLU branches of one input joined by Add: one layer of 8 ReLUs.
    inp = keras.Input((3,))
    a = keras.layers.Dense(4, activation="relu")(inp)
    b = keras.layers.Dense(4, activation="relu")(inp)
    out = keras.layers.Dense(2)(keras.layers.Add()([a, b]))
    branched = keras.Model(inp, out)
    x = np.random.default_rng(3).normal(size=(16, 3))
    net = from_keras(branched)
    assert net.hidden_sizes == [8]
    np.testing.assert_allclose(net(x), keras_forward(branched, x), rtol=1e-5, atol=1e-5)
    # A product of two branches is not piecewise linear.
    out = keras.layers.Dense(2)(keras.layers.Multiply()([a, b]))
    with pytest.raises(ValueError, match="Multiply"):
        from_keras(keras.Model(inp, out))


def test_relu_network_validation():
    with pytest.raises(ValueError, match="Received"):
        ReluNetwork([np.ones((2, 3)), np.ones((1, 4))], [np.zeros(2), np.zeros(1)])
    with pytest.raises(ValueError, match="non-finite"):
        ReluNetwork([np.full((1, 2), np.nan)], [np.zeros(1)])
