"""BNSoftmax against a NumPy transcription of BN-Softmax (arXiv 1709.04546, sec. 4)."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from softmax_numpy import np_softmax

from keras_ndsru import BNSoftmax
from keras_ndsru.losses import LogitL2SparseCategoricalCrossentropy

GAMMA, MOMENTUM, EPSILON = 2.5, 0.9, 1e-3


def np_bn_softmax(z, mean, variance, beta, gamma=GAMMA, epsilon=EPSILON):
    return gamma * (z - mean) / np.sqrt(variance + epsilon) + beta


def _logits(seed=0, shape=(8, 5)):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * rng.uniform(0.5, 4, shape[-1]) + 3.0).astype(
        "float32"
    )


def _layer(**kwargs):
    kwargs.setdefault("gamma", GAMMA)
    kwargs.setdefault("momentum", MOMENTUM)
    kwargs.setdefault("epsilon", EPSILON)
    layer = BNSoftmax(**kwargs)
    layer.build((None, 5))
    if layer.beta is not None:
        layer.beta.assign(np.linspace(-1.0, 1.0, 5))
    return layer


def test_training_uses_batch_statistics_and_updates_moving_ones():
    layer = _layer()
    beta = layer.beta.numpy()
    moving_mean, moving_variance = np.zeros(5), np.ones(5)
    for seed in range(3):
        z = _logits(seed)
        out = layer(z, training=True)
        mean, variance = z.mean(axis=0), z.var(axis=0)
        np.testing.assert_allclose(
            out, np_bn_softmax(z, mean, variance, beta), rtol=1e-5, atol=1e-5
        )
        moving_mean = MOMENTUM * moving_mean + (1 - MOMENTUM) * mean
        moving_variance = MOMENTUM * moving_variance + (1 - MOMENTUM) * variance
        np.testing.assert_allclose(layer.moving_mean, moving_mean, rtol=1e-5)
        np.testing.assert_allclose(layer.moving_variance, moving_variance, rtol=1e-5)


def test_normalized_logits_have_zero_mean_and_gamma_scale_per_class():
    layer = _layer(center=False, epsilon=1e-6)
    out = layer(_logits(), training=True).numpy()
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), GAMMA, rtol=1e-4)


def test_inference_uses_moving_statistics_and_leaves_them_alone():
    layer = _layer()
    layer.moving_mean.assign(np.arange(5.0))
    layer.moving_variance.assign(np.arange(1.0, 6.0))
    z = _logits()
    for training in (False, None):
        out = layer(z, training=training)
        expected = np_bn_softmax(
            z, np.arange(5.0), np.arange(1.0, 6.0), layer.beta.numpy()
        )
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean, np.arange(5.0))


def test_frozen_layer_uses_moving_statistics_in_training():
    layer = _layer()
    layer.trainable = False
    z = _logits()
    np.testing.assert_allclose(layer(z, training=True), layer(z, training=False))
    np.testing.assert_allclose(layer.moving_mean, np.zeros(5))


def test_center_false_has_no_shift_weight():
    layer = _layer(center=False)
    assert layer.beta is None
    assert not layer.trainable_weights
    z = _logits()
    out = layer(z, training=True)
    expected = np_bn_softmax(z, z.mean(0), z.var(0), 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_sequence_statistics_skip_masked_positions():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3, 4, 5)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    layer = _layer()
    out = layer(z, training=True, mask=mask)
    kept = z[mask]
    expected = np_bn_softmax(z, kept.mean(0), kept.var(0), layer.beta.numpy())
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        layer.moving_mean, (1 - MOMENTUM) * kept.mean(0), rtol=1e-5, atol=1e-7
    )


def test_gradient_through_batch_statistics_matches_numerics():
    layer = BNSoftmax(gamma=GAMMA, dtype="float64")
    layer.build((None, 3))
    layer.beta.assign([0.1, -0.2, 0.3])
    weights = tf.constant(np.random.default_rng(2).normal(size=(4, 3)))
    z = tf.constant(_logits(shape=(4, 3)).astype("float64"))

    def objective(logits):
        return tf.reduce_sum(weights * layer(logits, training=True))

    theoretical, numerical = tf.test.compute_gradient(objective, [z])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-5, atol=1e-5)
    # The batch mean is subtracted, so the gradient of each class sums to 0.
    np.testing.assert_allclose(theoretical[0].reshape(4, 3).sum(0), 0, atol=1e-9)


def test_probabilities_output_and_loss_pairing():
    z = _logits()
    labels = np.arange(8) % 5
    as_logits = _layer()(z, training=True)
    as_probabilities = _layer(output="probabilities")(z, training=True)
    np.testing.assert_allclose(
        as_probabilities, np_softmax(as_logits.numpy()), rtol=1e-5
    )
    from_logits = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    from_probabilities = keras.losses.SparseCategoricalCrossentropy()
    np.testing.assert_allclose(
        from_probabilities(labels, as_probabilities),
        from_logits(labels, as_logits),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="expects logits"):
        LogitL2SparseCategoricalCrossentropy()(labels, as_probabilities)


def test_batch_of_one_falls_back_to_moving_statistics_with_one_warning():
    layer = _layer()
    layer.moving_mean.assign(np.arange(5.0))
    layer.moving_variance.assign(np.full(5, 4.0))
    z = _logits()[:1]
    with pytest.warns(UserWarning, match="batch of one"):
        out = layer(z, training=True)
    np.testing.assert_allclose(out, layer(z, training=False), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_mean, np.arange(5.0), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, np.full(5, 4.0), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(z, training=True)


def test_batch_of_one_with_unknown_static_batch_size():
    layer = _layer()
    layer.moving_mean.assign(np.arange(5.0))
    step = tf.function(
        lambda x: layer(x, training=True),
        input_signature=[tf.TensorSpec((None, 5), tf.float32)],
    )
    z = _logits()
    np.testing.assert_allclose(step(z[:1]), layer(z[:1]), rtol=1e-6)
    np.testing.assert_allclose(layer.moving_mean, np.arange(5.0))
    out = step(z)  # a full batch still uses its own statistics
    np.testing.assert_allclose(
        out,
        np_bn_softmax(z, z.mean(0), z.var(0), layer.beta.numpy()),
        rtol=1e-5,
        atol=1e-5,
    )


def test_fit_with_a_last_batch_of_one_stays_finite():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 4)), rng.integers(0, 3, size=9)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), BNSoftmax()])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert np.all(np.isfinite(model.layers[-1].moving_variance.numpy()))


def test_mixed_precision_computes_and_returns_float32(mixed_precision):
    layer = BNSoftmax()
    assert layer.compute_dtype == "float32"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), layer])
    assert model.layers[0].compute_dtype == "float16"
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    out = model(x, training=True)
    assert out.dtype == tf.float32
    hidden = model.layers[0](x).numpy().astype("float64")
    assert hidden.dtype == np.float64
    expected = np_bn_softmax(hidden, hidden.mean(0), hidden.var(0), 0.0, epsilon=1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_explicit_float64_dtype_is_kept():
    assert BNSoftmax(dtype="float64").compute_dtype == "float64"


def test_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)), rng.integers(0, 3, size=16)
    layer = BNSoftmax(
        gamma=1.5,
        output="probabilities",
        momentum=0.8,
        epsilon=1e-4,
        beta_regularizer="l2",
    )
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), layer])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    restored_layer = restored.layers[-1]
    assert isinstance(restored_layer, BNSoftmax)
    assert restored_layer.get_config() == layer.get_config()
    np.testing.assert_allclose(restored_layer.moving_mean, layer.moving_mean)
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gamma": 0.0}, "Received: gamma=0.0"),
        ({"gamma": -2.5}, "Received: gamma=-2.5"),
        ({"gamma": float("inf")}, "Received: gamma=inf"),
        ({"gamma": "2.5"}, "Received: gamma='2.5'"),
        ({"output": "softmax"}, "Received: output='softmax'"),
        ({"momentum": 1.0}, "Received: momentum=1.0"),
        ({"epsilon": 0}, "Received: epsilon=0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BNSoftmax(**kwargs)


@pytest.mark.parametrize("shape", [(5,), (None, None)])
def test_bad_input_shapes(shape):
    with pytest.raises(ValueError, match="Received: input_shape="):
        BNSoftmax().build(shape)


def test_rank_one_input_is_refused_on_call():
    with pytest.raises(ValueError, match="min_ndim=2|rank >= 2"):
        BNSoftmax()(np.ones(5, "float32"))
