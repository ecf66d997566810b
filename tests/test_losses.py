"""Logit-L2 cross-entropy losses against NumPy transcriptions of eq. 21."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from backend_subprocess import run_script  # tests/ is on pythonpath (pyproject)
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


# -- ignore_class ------------------------------------------------------------


def np_ignore_class_loss(labels, z, l2, ignore_class, weights, reduction):
    """Eq. 21 per example; ignored examples are left out of both terms and,
    for the mean reductions, of the count (Keras' masked reduction)."""
    valid = labels != ignore_class
    safe = np.where(valid, labels, 0)
    per_example = np_per_example_loss(np.eye(z.shape[-1])[safe], z, l2)
    per_example = np.where(valid, per_example * weights, 0.0)
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    return per_example.sum() / valid.sum()


def _ignore_data(seed=5, shape=(6,), classes=5, ignore_class=-1):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(*shape, classes))
    labels = rng.integers(0, classes, size=shape)
    ignored = rng.random(size=shape) < 0.4
    ignored.flat[0], ignored.flat[1] = True, False  # at least one of each
    labels = np.where(ignored, ignore_class, labels)
    weights = rng.uniform(0.5, 2.0, size=shape)
    return logits, labels, weights


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
@pytest.mark.parametrize(
    "shape, ignore_class",
    [((6,), -1), ((6,), 2), ((3, 4), 255), ((3, 4), 0)],
    ids=["batch_pad-1", "batch_class2", "sequence_pad255", "sequence_class0"],
)
def test_ignore_class_matches_numpy_and_keras(shape, ignore_class, reduction):
    logits, labels, weights = _ignore_data(shape=shape, ignore_class=ignore_class)
    expected = np_ignore_class_loss(
        labels, logits, L2, ignore_class, weights, reduction
    )
    # Non-finite logits at ignored positions (padding) must not leak in.
    logits = np.where((labels == ignore_class)[..., None], np.nan, logits)
    loss = LogitL2SparseCategoricalCrossentropy(
        l2=L2, ignore_class=ignore_class, reduction=reduction
    )
    value = loss(labels, logits.astype("float32"), sample_weight=weights)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    # With l2=0 the loss is Keras' own, reduction and mask included.
    keras_ce = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=ignore_class, reduction=reduction
    )
    ours_ce = LogitL2SparseCategoricalCrossentropy(
        l2=0.0, ignore_class=ignore_class, reduction=reduction
    )
    for sample_weight in (None, weights):
        np.testing.assert_allclose(
            ours_ce(labels, logits, sample_weight=sample_weight),
            keras_ce(labels, logits, sample_weight=sample_weight),
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        ours_ce(labels, logits),
        np_ignore_class_loss(labels, logits, 0.0, ignore_class, 1.0, reduction),
        rtol=1e-5,
    )


def test_ignore_class_gradient_and_labels_of_shape_batch_by_one():
    logits, labels, _ = _ignore_data(seed=6, ignore_class=-1)
    valid = labels != -1
    loss = LogitL2SparseCategoricalCrossentropy(l2=L2, ignore_class=-1, dtype="float64")
    z = tf.Variable(np.where(valid[:, None], logits, np.inf))
    with tf.GradientTape() as tape:
        value = loss(labels[:, None], z)
    grad = tape.gradient(value, z).numpy()
    onehot = np.eye(logits.shape[-1])[np.where(valid, labels, 0)]
    expected = (np_softmax(logits) - onehot + L2 * logits) / valid.sum()
    expected[~valid] = 0.0
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_ignore_class_in_fit_with_sequence_labels():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    labels = rng.integers(0, 4, size=(8, 5))
    labels[:, 3:] = -1  # padded tail
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.Dense(4)])
    model.compile(
        optimizer="sgd",
        loss=LogitL2SparseCategoricalCrossentropy(l2=L2, ignore_class=-1),
    )
    logits = np.asarray(model(x), dtype="float64")
    expected = np_ignore_class_loss(labels, logits, L2, -1, 1.0, "mean")
    evaluated = model.evaluate(x, labels, batch_size=8, verbose=0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)


@pytest.mark.parametrize("bad", [1.5, "pad", True, [0]])
def test_ignore_class_must_be_an_int(bad):
    with pytest.raises(ValueError, match=r"Received: ignore_class="):
        LogitL2SparseCategoricalCrossentropy(ignore_class=bad)


def test_ignore_class_config_round_trip():
    loss = LogitL2SparseCategoricalCrossentropy(l2=0.02, ignore_class=np.int64(-1))
    assert loss.get_config()["ignore_class"] == -1
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.get_config() == loss.get_config()
    logits, labels, _ = _ignore_data()
    np.testing.assert_allclose(restored(labels, logits), loss(labels, logits))


@pytest.mark.torch
def test_ignore_class_on_the_torch_backend():
    pytest.importorskip("torch")
    script = (
        "import numpy as np, keras\n"
        "from keras_ndsru.losses import LogitL2SparseCategoricalCrossentropy as L\n"
        "rng = np.random.default_rng(0)\n"
        "z = rng.normal(size=(4, 3, 5)).astype('float32')\n"
        "y = rng.integers(-1, 5, size=(4, 3))\n"
        "ours = L(l2=0.0, ignore_class=-1)(y, z)\n"
        "ref = keras.losses.SparseCategoricalCrossentropy(\n"
        "    from_logits=True, ignore_class=-1)(y, z)\n"
        "print(keras.backend.backend(), float(ours), float(ref))\n"
    )
    backend, ours, ref = run_script(["-c", script], backend="torch").split()[-3:]
    assert backend == "torch"
    np.testing.assert_allclose(float(ours), float(ref), rtol=1e-6)
