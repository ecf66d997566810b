"""Cross-entropy losses with the logit-L2 penalty of ND-Adam, section 4.

Zhang et al., "Normalized Direction-preserving Adam", arXiv 1709.04546, eq. 21:
the softmax learning signal depends on the overall magnitude of the logits
(eqs. 18-20), so the logits `z` of each example are penalized with
`lambda_C / 2 * sum_c z_c**2`, averaged over the batch like the cross-entropy.
"""

import math
import numbers

import keras
from keras import ops

__all__ = [
    "LogitL2CategoricalCrossentropy",
    "LogitL2SparseCategoricalCrossentropy",
    "logit_l2_penalty",
]

_HALF_PRECISION = ("float16", "bfloat16")


def float32_or_wider(dtype=None):
    """Returns `dtype`, promoted to `"float32"` if it computes in half precision.

    The softmax signal is sensitive to small differences between large logits,
    so layers and losses of this module never compute in float16 or bfloat16,
    also under a `mixed_float16` / `mixed_bfloat16` global policy. Wider dtypes
    (float64) are kept. `None` stays `None` unless the global policy is mixed.
    """
    if dtype is None:
        policy = keras.config.dtype_policy()
    else:
        policy = keras.dtype_policies.get(dtype)
    if policy.compute_dtype in _HALF_PRECISION:
        return "float32"
    return dtype


def validate_l2(l2: float) -> float:
    """Checks the penalty coefficient `lambda_C` (finite, `>= 0`)."""
    if isinstance(l2, bool) or not isinstance(l2, (int, float)):
        raise ValueError(f"`l2` must be a non-negative float. Received: l2={l2!r}")
    if not math.isfinite(l2) or l2 < 0:
        raise ValueError(f"`l2` must be a non-negative float. Received: l2={l2}")
    return float(l2)


def logit_l2_penalty(logits, l2: float = 1e-3):
    """Per-example logit-L2 penalty, eq. 21: `l2 / 2 * sum_c z_c**2`.

    Args:
        logits: Tensor of shape `(batch, ..., num_classes)`.
        l2: Float, `lambda_C`. Defaults to `1e-3` (the paper's value).

    Returns:
        Tensor of shape `logits.shape[:-1]`: the penalty of each example, not
        yet averaged over the batch.
    """
    logits = ops.convert_to_tensor(logits)
    return (0.5 * l2) * ops.sum(ops.square(logits), axis=-1)


def _check_logits(y_pred, loss_name: str) -> None:
    """Refuses probabilities: a softmax output here would be softmaxed twice."""
    # Keras marks the outputs of `ops.softmax` with `_keras_logits`; in graph
    # mode a raw `tf.nn.softmax` output is recognized by its op type.
    op = getattr(y_pred, "op", None)
    from_softmax = hasattr(y_pred, "_keras_logits") or (
        getattr(op, "type", None) == "Softmax"
    )
    if from_softmax:
        raise ValueError(
            f"`{loss_name}` expects logits, but `y_pred` was produced by a "
            "softmax. Remove the softmax activation (with `BNSoftmax`, use "
            "`output='logits'`). Received: y_pred produced by softmax"
        )
    # TensorShape has `rank` (None when unknown); other backends' shapes do not.
    rank = getattr(y_pred.shape, "rank", None)
    if rank is None and not hasattr(y_pred.shape, "rank"):
        rank = len(y_pred.shape)
    if rank is not None and rank < 2:
        raise ValueError(
            f"`{loss_name}` expects logits of rank >= 2, "
            f"`(batch, ..., num_classes)`. Received: y_pred.shape={y_pred.shape}"
        )


def validate_ignore_class(ignore_class) -> int | None:
    """Checks `ignore_class` (an int label or `None`)."""
    if ignore_class is None:
        return None
    if isinstance(ignore_class, bool) or not isinstance(ignore_class, numbers.Integral):
        raise ValueError(
            "`ignore_class` must be an int or None. "
            f"Received: ignore_class={ignore_class!r}"
        )
    return int(ignore_class)


def _mask_losses(losses, valid):
    """Marks which entries of `losses` count in the reduction.

    `keras.losses.Loss.__call__` reduces over the entries of the Keras mask of
    `call`'s result only (the mean is over the valid entries), the convention
    `keras.losses.sparse_categorical_crossentropy(ignore_class=...)` uses. Keras
    has no public setter for it, so the attribute it reads is set directly, as
    Keras does for tensors that take attributes (TensorFlow, torch).
    """
    try:
        losses._keras_mask = valid
    except AttributeError:
        raise NotImplementedError(
            "`ignore_class` needs tensors that take attributes (TensorFlow or "
            f"torch backend). Received: backend={keras.backend.backend()!r}"
        ) from None
    return losses


class _LogitL2Crossentropy(keras.losses.Loss):
    """Shared constructor, config and penalty of the two public losses."""

    def __init__(self, l2, reduction, name, dtype):
        self.l2 = validate_l2(l2)
        self._dtype_arg = dtype
        super().__init__(name=name, reduction=reduction, dtype=float32_or_wider(dtype))

    def _crossentropy(self, y_true, y_pred):
        raise NotImplementedError

    def call(self, y_true, y_pred):
        _check_logits(y_pred, self.name)
        return self._crossentropy(y_true, y_pred) + logit_l2_penalty(y_pred, self.l2)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2, "dtype": self._dtype_arg})
        return config


@keras.saving.register_keras_serializable(package="keras_ndsru")
class LogitL2SparseCategoricalCrossentropy(_LogitL2Crossentropy):
    """Sparse softmax cross-entropy from logits plus the logit-L2 penalty.

    ND-Adam paper (arXiv 1709.04546), eq. 21. For each example with integer
    label `y` and logits `z`:

    `loss = -log(softmax(z)[y]) + l2 / 2 * sum_c z_c**2`

    The per-example losses are then weighted by `sample_weight` and reduced
    like any Keras loss, so the penalty is weighted and averaged exactly like
    the cross-entropy term. The gradient with respect to the logits of one
    example is `softmax(z) - onehot(y) + l2 * z`.

    With `ignore_class`, examples (or positions of a sequence or image)
    whose label equals it contribute nothing, neither cross-entropy nor
    penalty, and get no gradient, as in
    `keras.losses.SparseCategoricalCrossentropy(ignore_class=...)`: the loss
    is masked, so `"sum_over_batch_size"` averages over the other examples
    only.

    `y_pred` must be logits (no softmax): pair it with a final `Dense` without
    activation, or with `BNSoftmax(output="logits")`. A softmax output raises
    a `ValueError`. The loss always computes in at least float32.

    Args:
        l2: Float >= 0, `lambda_C`. Defaults to `1e-3` (the paper's value).
        ignore_class: Int or `None`: a label (e.g. the padding label of a
            segmentation map or sequence; it may lie outside
            `[0, num_classes)`) whose examples are left out of both terms
            and of the average. Defaults to `None` (nothing ignored).
        reduction: Type of reduction, as for any `keras.losses.Loss`.
            Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"logit_l2_sparse_categorical_crossentropy"`.
        dtype: Dtype of the computation. Defaults to `None`
            (`keras.backend.floatx()`); half precision is promoted to float32.

    Example:

    >>> loss = LogitL2SparseCategoricalCrossentropy(l2=1e-3)
    >>> value = loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    """

    def __init__(
        self,
        l2: float = 1e-3,
        ignore_class: int | None = None,
        reduction="sum_over_batch_size",
        name: str = "logit_l2_sparse_categorical_crossentropy",
        dtype=None,
    ):
        self.ignore_class = validate_ignore_class(ignore_class)
        super().__init__(l2=l2, reduction=reduction, name=name, dtype=dtype)

    def _crossentropy(self, y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=True
        )

    def call(self, y_true, y_pred):
        if self.ignore_class is None:
            return super().call(y_true, y_pred)
        _check_logits(y_pred, self.name)
        # As keras.losses.sparse_categorical_crossentropy: labels of shape
        # (..., 1) are squeezed, and the logits of ignored examples are zeroed
        # so that neither term (nor its gradient) sees them.
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        valid = ops.not_equal(y_true, ops.cast(self.ignore_class, y_true.dtype))
        valid = ops.reshape(valid, ops.shape(y_pred)[:-1])
        y_pred = ops.where(ops.expand_dims(valid, -1), y_pred, 0.0)
        crossentropy = keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=True, ignore_class=self.ignore_class
        )
        return _mask_losses(crossentropy + logit_l2_penalty(y_pred, self.l2), valid)

    def get_config(self):
        config = super().get_config()
        config["ignore_class"] = self.ignore_class
        return config


@keras.saving.register_keras_serializable(package="keras_ndsru")
class LogitL2CategoricalCrossentropy(_LogitL2Crossentropy):
    """Softmax cross-entropy (one-hot labels) from logits plus logit-L2 penalty.

    ND-Adam paper (arXiv 1709.04546), eq. 21. For each example with label
    distribution `t` (one-hot, or smoothed with `label_smoothing`) and logits
    `z`:

    `loss = -sum_c t_c * log(softmax(z)_c) + l2 / 2 * sum_c z_c**2`

    Weighted by `sample_weight` and reduced like any Keras loss; the gradient
    with respect to the logits of one example is `softmax(z) - t + l2 * z`.

    `y_pred` must be logits (no softmax); a softmax output raises a
    `ValueError`. The loss always computes in at least float32.

    Args:
        l2: Float >= 0, `lambda_C`. Defaults to `1e-3` (the paper's value).
        label_smoothing: Float in `[0, 1]`, as in
            `keras.losses.CategoricalCrossentropy`. Defaults to `0.0`.
        reduction: Type of reduction, as for any `keras.losses.Loss`.
            Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"logit_l2_categorical_crossentropy"`.
        dtype: Dtype of the computation. Defaults to `None`
            (`keras.backend.floatx()`); half precision is promoted to float32.

    Example:

    >>> loss = LogitL2CategoricalCrossentropy(l2=1e-3)
    >>> value = loss([[1.0, 0.0, 0.0]], [[2.0, 0.5, -1.0]])
    """

    def __init__(
        self,
        l2: float = 1e-3,
        label_smoothing: float = 0.0,
        reduction="sum_over_batch_size",
        name: str = "logit_l2_categorical_crossentropy",
        dtype=None,
    ):
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, (int, float))
            or not 0.0 <= label_smoothing <= 1.0
        ):
            raise ValueError(
                "`label_smoothing` must be a float in [0, 1]. "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)
        super().__init__(l2=l2, reduction=reduction, name=name, dtype=dtype)

    def _crossentropy(self, y_true, y_pred):
        return keras.losses.categorical_crossentropy(
            y_true,
            y_pred,
            from_logits=True,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config
