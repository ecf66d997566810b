"""A 3-layer SRU Sequential trains with model.fit and NDAdam (offline data)."""

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_ndsru


def test_three_sru_layers_learn_digits_row_by_row_with_ndadam():
    # sklearn's 8x8 digits (bundled, offline), read as 8 steps of 8 pixels.
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    x = (digits.images[order] / 16.0).astype("float32")
    y = digits.target[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8)),
            keras_ndsru.SRU(32, return_sequences=True),
            keras_ndsru.SRU(32, return_sequences=True),
            keras_ndsru.SRU(32),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras_ndsru.NDAdam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x_train, y_train, batch_size=50, epochs=6, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert accuracy > 0.7, accuracy  # chance is 0.1
    # NDAdam treated every column of each SRU kernel as a unit weight vector.
    vectors = {v.path: axes for v, axes in model.optimizer.vector_variables}
    for layer in model.layers[:3]:
        assert vectors[layer.kernel.path] == (0,)
        norms = np.linalg.norm(layer.kernel.numpy(), axis=0)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-4)
