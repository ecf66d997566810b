"""Logit-L2 cross-entropy losses against NumPy transcriptions of eq. 21."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from softmax_numpy import np_softmax

from keras_ndsru.losses import (
    LogitL2CategoricalCrossentropy,
    LogitL2SparseCategoricalCrossentropy,
    logit_l2_penalty,
)

L2 = 0.05  # large enough that the penalty is visible next to the CE term


def np_per_example_loss(onehot, z, l2):
    """-sum_c t_c log softmax(z)_c + l2/2 sum_c z_c^2, per example."""
    log_p = np.log(np_softmax(z))
    return -(onehot * log_p).sum(axis=-1) + 0.5 * l2 * (z**2).sum(axis=-1)


def _data(seed=0, batch=6, classes=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(batch, classes))
    labels = rng.integers(0, classes, size=batch)
    return logits, labels, np.eye(classes)[labels]


def test_penalty_function_matches_eq_21():
    logits, _, _ = _data()
    expected = 0.5 * L2 * (logits**2).sum(axis=-1)
    np.testing.assert_allclose(logit_l2_penalty(logits, L2), expected, rtol=1e-6)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_value_with_sample_weight_and_reduction(sparse, reduction):
    logits, labels, onehot = _data()
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0, 3.0])
    if sparse:
        loss = LogitL2SparseCategoricalCrossentropy(l2=L2, reduction=reduction)
        y_true = labels
    else:
        loss = LogitL2CategoricalCrossentropy(l2=L2, reduction=reduction)
        y_true = onehot
    per_example = np_per_example_loss(onehot, logits, L2) * weights
    expected = {
        "sum_over_batch_size": per_example.sum() / len(per_example),
        "sum": per_example.sum(),
        "none": per_example,
    }[reduction]
    value = loss(y_true, logits.astype("float32"), sample_weight=weights)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_sparse_labels_of_shape_batch_by_one():
    logits, labels, onehot = _data()
    loss = LogitL2SparseCategoricalCrossentropy(l2=L2)
    value = loss(labels[:, None], logits.astype("float32"))
    np.testing.assert_allclose(
        value, np_per_example_loss(onehot, logits, L2).mean(), rtol=1e-5
    )


def test_label_smoothing():
    logits, _, onehot = _data()
    smoothing = 0.2
    smoothed = onehot * (1 - smoothing) + smoothing / onehot.shape[-1]
    loss = LogitL2CategoricalCrossentropy(l2=L2, label_smoothing=smoothing)
    np.testing.assert_allclose(
        loss(onehot, logits.astype("float32")),
        np_per_example_loss(smoothed, logits, L2).mean(),
        rtol=1e-5,
    )


def test_sequence_logits_average_over_every_position():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 4))
    labels = rng.integers(0, 4, size=(2, 3))
    loss = LogitL2SparseCategoricalCrossentropy(l2=L2)
    expected = np_per_example_loss(np.eye(4)[labels], logits, L2).mean()
    np.testing.assert_allclose(loss(labels, logits), expected, rtol=1e-5)


@pytest.mark.parametrize("sparse", [True, False])
def test_gradient_wrt_logits_is_softmax_minus_onehot_plus_l2_z(sparse):
    logits, labels, onehot = _data(seed=3)
    loss_cls = (
        LogitL2SparseCategoricalCrossentropy
        if sparse
        else LogitL2CategoricalCrossentropy
    )
    loss = loss_cls(l2=L2, reduction="sum", dtype="float64")
    z = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(labels if sparse else onehot, z)
    grad = tape.gradient(value, z).numpy()
    # With reduction "sum" each row is the gradient of one example's loss.
    expected = np_softmax(logits) - onehot + L2 * logits
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_gradient_matches_numeric_differences():
    logits, labels, _ = _data(seed=4, batch=2, classes=3)
    loss = LogitL2SparseCategoricalCrossentropy(l2=L2, dtype="float64")
    theoretical, numerical = tf.test.compute_gradient(
        lambda z: loss(labels, z), [tf.constant(logits)]
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-8)


def test_zero_l2_is_plain_crossentropy():
    logits, labels, _ = _data()
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ours = LogitL2SparseCategoricalCrossentropy(l2=0.0)
    np.testing.assert_allclose(
        ours(labels, logits), reference(labels, logits), rtol=1e-6
    )


def test_half_precision_is_computed_in_float32():
    logits, labels, onehot = _data()
    loss = LogitL2SparseCategoricalCrossentropy(l2=L2, dtype="mixed_float16")
    assert loss.dtype == "float32"
    value = loss(labels, tf.constant(logits, "float16"))
    assert value.dtype == tf.float32
    z16 = logits.astype("float16").astype("float64")
    expected = np_per_example_loss(onehot, z16, L2).mean()
    np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.parametrize("cls", ["sparse", "categorical"])
def test_softmax_output_is_refused(cls):
    logits, labels, onehot = _data()
    if cls == "sparse":
        loss, y_true = LogitL2SparseCategoricalCrossentropy(), labels
    else:
        loss, y_true = LogitL2CategoricalCrossentropy(), onehot
    probabilities = keras.ops.softmax(tf.constant(logits, "float32"))
    with pytest.raises(ValueError, match="expects logits"):
        loss(y_true, probabilities)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"l2": -1e-3}, "Received: l2=-0.001"),
        ({"l2": float("nan")}, "Received: l2=nan"),
        ({"l2": "big"}, "Received: l2='big'"),
        ({"label_smoothing": 1.5}, "Received: label_smoothing=1.5"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LogitL2CategoricalCrossentropy(**kwargs)


def test_rank_one_logits_are_refused():
    with pytest.raises(ValueError, match="rank >= 2"):
        LogitL2CategoricalCrossentropy()(np.ones(3), np.ones(3))


@pytest.mark.parametrize("sparse", [True, False])
def test_config_round_trip(sparse):
    if sparse:
        loss = LogitL2SparseCategoricalCrossentropy(l2=0.02, reduction="sum")
    else:
        loss = LogitL2CategoricalCrossentropy(l2=0.02, label_smoothing=0.1)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    logits, labels, onehot = _data()
    y_true = labels if sparse else onehot
    np.testing.assert_allclose(restored(y_true, logits), loss(y_true, logits))
