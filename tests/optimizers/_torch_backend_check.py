"""Subprocess check: NDAdam on the torch backend (KERAS_BACKEND=torch).

Applies fixed gradients and compares with the NumPy transcription of
Algorithm 1, then runs `model.fit`. Prints one JSON line.
"""

import json

import keras
import numpy as np
from ndadam_numpy import NumpyNDAdam

from keras_ndsru.optimizers import NDAdam

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((5, 5, 2)),
        keras.layers.Conv2D(3, 3),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ]
)
names = [v.path for v in model.trainable_variables]
axes = {n: None for n in names}
axes["sequential/conv2d/kernel"] = (0, 1, 2)
axes["sequential/dense/kernel"] = (0,)
reference = NumpyNDAdam(
    {
        n: keras.ops.convert_to_numpy(v)
        for n, v in zip(names, model.trainable_variables)
    },
    axes,
    lr_s=0.01,
    lr_v=0.05,
)
optimizer = NDAdam(learning_rate=0.01, weight_decay=None)
optimizer.build(model.trainable_variables)
rng = np.random.default_rng(0)
for _ in range(4):
    grads = [
        rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables
    ]
    reference.step(dict(zip(names, grads)))
    optimizer.apply(
        [keras.ops.convert_to_tensor(g) for g in grads], model.trainable_variables
    )
diff = max(
    float(np.max(np.abs(keras.ops.convert_to_numpy(v) - reference.w[n])))
    for n, v in zip(names, model.trainable_variables)
)

x = rng.normal(size=(16, 4)).astype("float32")
y = rng.normal(size=(16, 2)).astype("float32")
fitted = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)]
)
fitted.compile(optimizer=NDAdam(), loss="mse")
fitted.fit(x, y, batch_size=8, epochs=2, verbose=0)
norm_error = max(
    float(
        np.max(np.abs(np.sqrt(np.sum(keras.ops.convert_to_numpy(v) ** 2, axis=a)) - 1))
    )
    for v, a in fitted.optimizer.vector_variables
)
print(
    json.dumps(
        {
            "backend": keras.backend.backend(),
            "max_diff_vs_numpy": diff,
            "fit_unit_norm_error": norm_error,
        }
    )
)
