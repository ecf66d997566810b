"""Effective learning rate ||dw|| / ||w|| of weight vectors (arXiv 1709.04546)."""

from __future__ import annotations

import keras
import numpy as np

from keras_ndsru import validation
from keras_ndsru.optimizers.vector_partition import weight_vectors


@keras.saving.register_keras_serializable(package="keras_ndsru")
class EffectiveLearningRate(keras.callbacks.Callback):
    """Logs the effective learning rate of the weight vectors every epoch.

    Zhang et al., "Normalized Direction-preserving Adam" (arXiv 1709.04546),
    Sec. 3 and Fig. 1b: only the direction of a weight vector `w` that feeds
    a normalization or a scale-invariant unit matters, so the size of a step
    is measured by the effective learning rate `||w_t - w_{t-1}|| /
    ||w_{t-1}||`. Matching ND-Adam's to SGD's is how the paper picks
    `vector_learning_rate`.

    On each measured batch the callback takes this ratio for every weight
    vector, averages it over all vectors (each vector counts once), and at
    the end of the epoch writes the mean over the measured batches into
    `logs[name]`, so `History` records it (NaN for an epoch in which no
    batch was measured, so that the values line up with the epochs). The
    weight vectors are those of
    `NDAdam.vector_variables` when the model's optimizer is an `NDAdam`
    (also inside a `LossScaleOptimizer`), else those of
    `keras_ndsru.optimizers.vector_axes_for_model(model)`, so the same
    number can be read for SGD or Adam. Measuring starts with the first
    batch after the optimizer is built, so in a model's first `fit` with the
    second batch: NDAdam's unit-norm initialization happens in the first
    step and is no step of the algorithm. With `steps_per_execution=k` a
    measured "batch" spans `k` optimizer steps.

    Args:
        every_n_batches: Positive int; measure one batch out of every
            `every_n_batches` (copying the weights costs host time).
            Defaults to `1`.
        name: String, the `logs` key. Defaults to
            `"effective_learning_rate"`.

    Example:

    >>> history = model.fit(x, y, callbacks=[EffectiveLearningRate()])
    >>> history.history["effective_learning_rate"]
    """

    def __init__(self, every_n_batches: int = 1, name: str = "effective_learning_rate"):
        super().__init__()
        self.every_n_batches = validation.positive_int(
            "every_n_batches", every_n_batches
        )
        self.name = validation.non_empty_str("name", name)
        self._vectors: list | None = None
        self._snapshot = None

    def _weight_vectors(self) -> list | None:
        """The vectors to measure, or None until they exist: the first train
        step builds the optimizer (NDAdam normalizes the vectors then, which
        is no step) and the variables of a model without `keras.Input`."""
        optimizer = getattr(self.model, "optimizer", None)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if hasattr(optimizer, "vector_variables"):
            if not optimizer.built:
                return None
            return list(optimizer.vector_variables) or weight_vectors(self.model)
        return weight_vectors(self.model) if self.model.built else None

    def on_train_begin(self, logs=None):
        self._vectors = None

    def on_epoch_begin(self, epoch, logs=None):
        self._sum, self._count = 0.0, 0

    def on_train_batch_begin(self, batch, logs=None):
        if self._vectors is None:
            self._vectors = self._weight_vectors()
        if self._vectors and batch % self.every_n_batches == 0:
            self._snapshot = [
                keras.ops.convert_to_numpy(v).astype("float64")
                for v, _ in self._vectors
            ]

    def on_train_batch_end(self, batch, logs=None):
        if self._snapshot is None:
            return
        ratios = []
        for (variable, axes), old in zip(self._vectors, self._snapshot):
            new = keras.ops.convert_to_numpy(variable).astype("float64")
            step = np.sqrt(np.sum(np.square(new - old), axis=axes))
            norm = np.sqrt(np.sum(np.square(old), axis=axes))
            ratios.append((step / np.where(norm > 0, norm, np.nan)).ravel())
        ratios = np.concatenate(ratios)
        ratios = ratios[np.isfinite(ratios)]
        if ratios.size:
            self._sum += float(np.mean(ratios))
            self._count += 1
        self._snapshot = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.name] = self._sum / self._count if self._count else float("nan")

    def get_config(self) -> dict:
        return {"every_n_batches": self.every_n_batches, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> EffectiveLearningRate:
        return cls(**config)
