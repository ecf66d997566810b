"""A small masked-sequence task for the SRU training checks: is token 1 more
frequent than token 2 in a right-padded sequence of tokens 1-3 (0 = padding)?
Its model embeds with `mask_zero=True`, so every SRU sees a right-padded mask.
Used by the backend check scripts (tests/layers, tests/backends)."""

from __future__ import annotations

import numpy as np


def counting_data(rng, samples: int = 128, steps: int = 8):
    """`(tokens, labels)`: int tokens `(samples, steps)` with 2 to `steps`
    valid tokens per row, and float32 labels."""
    tokens = rng.integers(1, 4, size=(samples, steps))
    lengths = rng.integers(2, steps + 1, size=samples)
    tokens[np.arange(steps) >= lengths[:, None]] = 0
    labels = np.sum(tokens == 1, axis=1) > np.sum(tokens == 2, axis=1)
    return tokens, labels.astype("float32")


def counting_model(keras, sru, steps: int = 8):
    """Embedding(mask_zero) -> Bidirectional(SRU) -> SRU -> Dense, compiled
    with Adam(0.02) and a logits cross-entropy; `sru` is the SRU class."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(4, 8, mask_zero=True),
            keras.layers.Bidirectional(sru(8, return_sequences=True)),
            sru(8),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model
