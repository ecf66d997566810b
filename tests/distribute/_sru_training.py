"""The small training run the distribution checks share: two stacked fused
SRU layers and a Dense head trained with NDAdam on fixed random data.

Imported by the check scripts next to it, which run in subprocesses; it
imports Keras and keras_ndsru, so a script configures TensorFlow's devices
(or creates its strategy) before importing it.
"""

import keras
import numpy as np

import keras_ndsru

STEPS, FEATURES, UNITS = 6, 3, 8
SAMPLES, GLOBAL_BATCH, EPOCHS = 32, 8, 2


def data():
    """Inputs `(32, 6, 3)` and regression targets `(32, 2)`."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, STEPS, FEATURES)).astype("float32")
    y = rng.normal(size=(SAMPLES, 2)).astype("float32")
    return x, y


def make_model():
    """The model, compiled; `use_fused_kernel=True` raises unless the fused
    op runs."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((STEPS, FEATURES)),
            keras_ndsru.SRU(UNITS, return_sequences=True, use_fused_kernel=True),
            keras_ndsru.SRU(UNITS, use_fused_kernel=True),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        optimizer=keras_ndsru.NDAdam(learning_rate=0.01, weight_decay=0.01),
        loss="mse",
    )
    return model


def train(model):
    x, y = data()
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return model


def weights(model) -> list[np.ndarray]:
    return [np.asarray(v) for v in model.trainable_variables]


def unit_norm_error(optimizer) -> float:
    """Largest deviation from 1 of the norm of an NDAdam weight vector."""
    return max(
        float(np.max(np.abs(np.sqrt(np.sum(np.asarray(v) ** 2, axis=a)) - 1)))
        for v, a in optimizer.vector_variables
    )


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert [x.shape for x in a] == [x.shape for x in b]
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
