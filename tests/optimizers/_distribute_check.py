"""Subprocess check: NDAdam under MirroredStrategy on two logical CPUs.

Logical devices must be configured before TensorFlow initializes, hence a
separate process. Prints one JSON line.
"""

import json
import sys

import tensorflow as tf
from logical_cpus import split_cpu  # tests/support, on PYTHONPATH

split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_ndsru.optimizers import NDAdam  # noqa: E402

# --lazy: no keras.Input, so the model is built in the first train step.
LAZY = "--lazy" in sys.argv[1:]


def make_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        ([] if LAZY else [keras.Input((6, 6, 2))])
        + [
            keras.layers.Conv2D(3, 3, use_bias=False),
            keras.layers.BatchNormalization(synchronized=True),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )


rng = np.random.default_rng(0)
x = rng.normal(size=(16, 6, 6, 2)).astype("float32")
y = rng.normal(size=(16, 2)).astype("float32")

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = make_model()
    mirrored.compile(
        optimizer=NDAdam(learning_rate=0.01, weight_decay=0.01), loss="mse"
    )
mirrored.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

single = make_model()
single.compile(optimizer=NDAdam(learning_rate=0.01, weight_decay=0.01), loss="mse")
single.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

optimizer = mirrored.optimizer
norm_error = max(
    float(np.max(np.abs(np.sqrt(np.sum(np.asarray(v) ** 2, axis=a)) - 1)))
    for v, a in optimizer.vector_variables
)
diff = max(
    float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    for a, b in zip(mirrored.trainable_variables, single.trainable_variables)
)
print(
    json.dumps(
        {
            "replicas": strategy.num_replicas_in_sync,
            "max_diff_vs_single_device": diff,
            "unit_norm_error": norm_error,
        }
    )
)
