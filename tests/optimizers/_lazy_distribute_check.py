"""Subprocess check: NDAdam's lazy updates under MirroredStrategy, 2 CPUs.

Two steps of an Embedding model (global batch 8, 4 per replica), the rows
of the first batch partly absent from the second, against the same steps on
one device; under a dense update those rows would move in the second step. Logical devices must be configured before
TensorFlow initializes, hence a separate process. Prints one JSON line.
"""

import json

import tensorflow as tf
from logical_cpus import split_cpu  # tests/support, on PYTHONPATH

split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_ndsru.optimizers import NDAdam, row_sparse  # noqa: E402

VOCAB = 40
rng = np.random.default_rng(0)
first = rng.integers(0, 20, size=(8, 5)).astype("int32")
second = rng.integers(10, VOCAB, size=(8, 5)).astype("int32")
y = rng.normal(size=(16, 1)).astype("float32")
left_alone = sorted(set(first.ravel()) - set(second.ravel()))
seen = []


class RecordingNDAdam(NDAdam):
    """Notes, while tracing, which embedding gradients were row-sparse."""

    def update_step(self, gradient, variable, learning_rate):
        if len(variable.shape) == 2 and variable.shape[0] == VOCAB:
            seen.append(row_sparse.is_row_sparse(gradient))
        super().update_step(gradient, variable, learning_rate)


def train(strategy=None):
    """Embeddings after step 1 and after step 2."""
    with strategy.scope() if strategy else keras.name_scope("single"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((5,), dtype="int32"),
                keras.layers.Embedding(VOCAB, 4),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(1),
            ]
        )
        model.compile(
            optimizer=RecordingNDAdam(learning_rate=0.01, lazy_sparse_updates=True),
            loss="mse",
        )
    table = model.layers[0].embeddings
    model.fit(first, y[:8], batch_size=8, verbose=0)
    after_first = np.asarray(table)
    model.fit(second, y[8:], batch_size=8, verbose=0)
    return after_first, np.asarray(table)


strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored_1, mirrored_2 = train(strategy)
sparse_in_replica = bool(seen) and all(seen)
single_1, single_2 = train()
print(
    json.dumps(
        {
            "replicas": strategy.num_replicas_in_sync,
            "sparse_gradient_in_replica": sparse_in_replica,
            "max_diff_vs_single_device": float(
                max(
                    np.abs(mirrored_1 - single_1).max(),
                    np.abs(mirrored_2 - single_2).max(),
                )
            ),
            "max_move_of_rows_left_alone": float(
                np.abs(mirrored_2[left_alone] - mirrored_1[left_alone]).max()
            ),
        }
    )
)
