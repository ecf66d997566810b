"""LogitL2 layer against NumPy transcriptions of eq. 21 (arXiv 1709.04546)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from softmax_numpy import np_softmax

from keras_ndsru import LogitL2
from keras_ndsru.losses import LogitL2SparseCategoricalCrossentropy

L2 = 0.05


def _logits(seed=0, shape=(6, 4)):
    return np.random.default_rng(seed).normal(scale=3.0, size=shape).astype("float32")


def test_identity_and_penalty_averaged_over_the_batch():
    layer = LogitL2(l2=L2)
    z = _logits()
    np.testing.assert_array_equal(layer(z), z)
    assert len(layer.losses) == 1
    expected = (0.5 * L2 * (z.astype("float64") ** 2).sum(-1)).mean()
    np.testing.assert_allclose(layer.losses[0], expected, rtol=1e-6)


def test_batch_of_one():
    layer = LogitL2(l2=L2)
    z = _logits()[:1]
    layer(z)
    np.testing.assert_allclose(layer.losses[0], 0.5 * L2 * (z**2).sum(), rtol=1e-6)


def test_sequence_penalty_averages_unmasked_positions():
    z = _logits(shape=(2, 3, 4))
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    layer = LogitL2(l2=L2)
    layer(z, mask=mask)
    expected = (0.5 * L2 * (z[mask] ** 2).sum(-1)).mean()
    np.testing.assert_allclose(layer.losses[0], expected, rtol=1e-6)
    layer(z, mask=np.zeros((2, 3), bool))
    np.testing.assert_allclose(layer.losses[0], 0.0)


def test_zero_l2_adds_no_loss():
    layer = LogitL2(l2=0.0)
    layer(_logits())
    assert layer.losses == []


def _model(head):
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, kernel_initializer="he_normal")]
        + head
    )
    return model


def test_gradient_wrt_logits_is_softmax_minus_onehot_plus_l2_z():
    z = tf.Variable(_logits())
    labels = np.arange(6) % 4
    layer = LogitL2(l2=L2)
    crossentropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        total = crossentropy(labels, layer(z)) + tf.add_n(layer.losses)
    grad = tape.gradient(total, z).numpy()
    z = z.numpy().astype("float64")
    expected = (np_softmax(z) - np.eye(4)[labels] + L2 * z) / len(z)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_layer_and_loss_give_the_same_training_objective():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.integers(0, 4, size=12)
    with_layer = _model([LogitL2(l2=L2)])
    with_layer.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    with_loss = _model([])
    with_loss.set_weights(with_layer.get_weights())
    with_loss.compile("sgd", LogitL2SparseCategoricalCrossentropy(l2=L2))
    np.testing.assert_allclose(
        with_layer.evaluate(x, y, batch_size=12, verbose=0),
        with_loss.evaluate(x, y, batch_size=12, verbose=0),
        rtol=1e-5,
    )
    logits = with_loss.predict(x, verbose=0).astype("float64")
    expected = (
        -np.log(np_softmax(logits)[np.arange(12), y]) + 0.5 * L2 * (logits**2).sum(-1)
    ).mean()
    np.testing.assert_allclose(
        with_layer.evaluate(x, y, batch_size=12, verbose=0), expected, rtol=1e-5
    )


def test_mixed_precision_casts_logits_to_float32(mixed_precision):
    layer = LogitL2(l2=L2)
    assert layer.compute_dtype == "float32"
    z16 = tf.constant(_logits(), tf.float16)
    out = layer(z16)
    assert out.dtype == tf.float32
    assert layer.losses[0].dtype == tf.float32
    z = z16.numpy().astype("float64")
    np.testing.assert_allclose(
        layer.losses[0], (0.5 * L2 * (z**2).sum(-1)).mean(), rtol=1e-6
    )


def test_keras_file_round_trip(tmp_path):
    model = _model([LogitL2(l2=0.02, name="penalty")])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    layer = restored.get_layer("penalty")
    assert isinstance(layer, LogitL2)
    assert layer.l2 == 0.02
    x = np.random.default_rng(0).normal(size=(3, 5))
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_keras_file_round_trip_of_the_loss(tmp_path):
    model = _model([])
    model.compile("sgd", LogitL2SparseCategoricalCrossentropy(l2=0.02))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.loss, LogitL2SparseCategoricalCrossentropy)
    assert restored.loss.l2 == 0.02


@pytest.mark.parametrize("l2", [-1.0, float("inf"), None, True])
def test_bad_l2(l2):
    with pytest.raises(ValueError, match="Received: l2="):
        LogitL2(l2=l2)


def test_rank_one_input_is_refused():
    with pytest.raises(ValueError, match="Received: input_shape="):
        LogitL2().build((5,))
