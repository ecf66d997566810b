"""EffectiveLearningRate against ||dw|| / ||w|| computed from weight snapshots."""

import keras
import numpy as np
import pytest

from keras_ndsru import EffectiveLearningRate, NDAdam

LAYERS = keras.layers


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((5, 5, 2)),
            LAYERS.Conv2D(3, 3, use_bias=False),
            LAYERS.BatchNormalization(),
            LAYERS.Flatten(),
            LAYERS.Dense(2),
        ]
    )


def _expected(before, after, axes):
    """Mean over every weight vector of ||w_after - w_before|| / ||w_before||."""
    ratios = []
    for b, a, ax in zip(before, after, axes):
        step = np.sqrt(np.sum((a - b) ** 2, axis=ax))
        ratios.append((step / np.sqrt(np.sum(b**2, axis=ax))).ravel())
    return float(np.mean(np.concatenate(ratios)))


@pytest.mark.parametrize("optimizer", ["ndadam", "sgd"])
def test_matches_weight_snapshots(optimizer):
    model = _model()
    conv, dense = model.layers[0], model.layers[-1]
    opt = NDAdam() if optimizer == "ndadam" else keras.optimizers.SGD(0.1)
    model.compile(optimizer=opt, loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5, 5, 2)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # builds and normalizes
    before = [np.asarray(conv.kernel, "float64"), np.asarray(dense.kernel, "float64")]
    callback = EffectiveLearningRate()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    after = [np.asarray(conv.kernel, "float64"), np.asarray(dense.kernel, "float64")]
    got = history.history["effective_learning_rate"]
    assert len(got) == 1
    want = _expected(before, after, [(0, 1, 2), (0,)])
    assert want > 1e-4
    assert got[0] == pytest.approx(want, rel=1e-5)


def test_every_n_batches_and_name():
    model = _model()
    model.compile(optimizer=NDAdam(), loss="mse")
    x = np.random.default_rng(1).normal(size=(16, 5, 5, 2)).astype("float32")
    callback = EffectiveLearningRate(every_n_batches=3, name="eff_lr")
    history = model.fit(
        x, x[:, 0, 0, :], batch_size=4, epochs=2, verbose=0, callbacks=[callback]
    )
    values = history.history["eff_lr"]
    assert len(values) == 2 and all(0 < v < 1 for v in values)
    assert EffectiveLearningRate.from_config(callback.get_config()).every_n_batches == 3


@pytest.mark.parametrize(
    "kwargs", [{"every_n_batches": 0}, {"every_n_batches": 1.5}, {"name": ""}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Received"):
        EffectiveLearningRate(**kwargs)


class _KernelsAfterEachBatch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_train_batch_end(self, batch, logs=None):
        kernels = [layer.kernel for layer in self.model.layers]
        self.kernels.append([np.asarray(k, "float64") for k in kernels])


@pytest.mark.parametrize("with_input", [True, False], ids=["input", "deferred_build"])
def test_first_fit_measures_the_steps_of_the_built_optimizer(with_input):
    """In the first `fit`, NDAdam is built (and normalizes the weight
    vectors) by the first step, and a model without `keras.Input` gets its
    variables there: the measurement starts with the next batch, so it
    holds optimizer steps only, not the unit-norm initialization."""
    keras.utils.set_random_seed(0)
    layers = [LAYERS.Dense(3), LAYERS.Dense(2)]
    model = keras.Sequential([keras.Input((4,)), *layers] if with_input else layers)
    model.compile(optimizer=NDAdam(), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = rng.normal(size=(12, 2)).astype("float32")
    kernels = _KernelsAfterEachBatch()
    history = model.fit(
        x,
        y,
        batch_size=4,
        shuffle=False,
        verbose=0,
        callbacks=[kernels, EffectiveLearningRate()],
    )
    after_step = kernels.kernels  # three batches: steps 1, 2, 3
    want = np.mean(
        [_expected(after_step[i - 1], after_step[i], [(0,), (0,)]) for i in (1, 2)]
    )
    assert history.history["effective_learning_rate"] == [pytest.approx(want, rel=1e-5)]


def test_an_epoch_without_a_measured_step_logs_nan():
    """One batch per epoch in a first `fit`: epoch 0's only step builds
    NDAdam, so nothing is measured there; History still gets one value per
    epoch (NaN for epoch 0), as Keras' other logs, so it lines up with the
    epochs (e.g. in a DataFrame)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([LAYERS.Dense(3), LAYERS.Dense(2)])
    model.compile(optimizer=NDAdam(), loss="mse")
    x = np.ones((4, 4), "float32")
    y = np.zeros((4, 2), "float32")
    history = model.fit(
        x, y, batch_size=4, epochs=3, verbose=0, callbacks=[EffectiveLearningRate()]
    )
    rates = history.history["effective_learning_rate"]
    assert len(rates) == len(history.history["loss"]) == 3
    assert np.isnan(rates[0])
    assert all(np.isfinite(rates[1:])) and min(rates[1:]) > 0
