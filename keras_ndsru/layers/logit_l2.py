"""LogitL2: identity on the logits that adds the logit-L2 penalty (eq. 21)."""

import keras
from keras import ops

from keras_ndsru.losses import float32_or_wider, logit_l2_penalty, validate_l2


@keras.saving.register_keras_serializable(package="keras_ndsru")
class LogitL2(keras.layers.Layer):
    """Identity on the logits that adds the logit-L2 penalty as a layer loss.

    ND-Adam paper (Zhang et al., arXiv 1709.04546), section 4, eq. 21. The
    softmax learning signal depends on the overall magnitude of the logits, so
    the logits `z` of each example are penalized with
    `l2 / 2 * sum_c z_c**2`; the layer adds the mean of this penalty over the
    examples of the batch (and over time steps etc. for inputs of rank > 2:
    every position is an example, as in the Keras cross-entropy losses) with
    `add_loss`. Masked positions are left out of the mean. Like an activity
    regularizer, the penalty is added in training and in evaluation.

    The output is the input, unchanged: they are still logits, so train with
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True)` (or the
    categorical version). The same penalty, weighted per example by
    `sample_weight`, is available as a loss:
    `keras_ndsru.losses.LogitL2SparseCategoricalCrossentropy`; use one or the
    other, not both.

    The penalty is computed in at least float32: under a mixed-precision
    policy the layer's policy is promoted to float32, so it also casts
    float16 logits to float32 for the loss (it can serve as the float32 output
    layer). A batch of one needs no special case. With `l2=0` no loss is added.

    Args:
        l2: Float >= 0, `lambda_C`. Defaults to `1e-3` (the paper's value).
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Logits of shape `(batch, ..., num_classes)`, rank >= 2.
        mask: Optional boolean mask of shape `inputs.shape[:-1]`.

    Example:

    >>> inputs = keras.Input((16,))
    >>> logits = keras.layers.Dense(10)(inputs)
    >>> logits = LogitL2(l2=1e-3)(logits)
    >>> model = keras.Model(inputs, logits)
    >>> model.compile(
    ...     "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ... )
    """

    def __init__(self, l2: float = 1e-3, **kwargs):
        kwargs["dtype"] = float32_or_wider(kwargs.get("dtype"))
        super().__init__(**kwargs)
        self.l2 = validate_l2(l2)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                "`LogitL2` expects logits of rank >= 2, `(batch, ..., "
                f"num_classes)`. Received: input_shape={tuple(input_shape)}"
            )

    def call(self, inputs, mask=None):
        if self.l2 > 0:
            self.add_loss(self._mean_penalty(inputs, mask))
        return inputs

    def _mean_penalty(self, inputs, mask):
        penalty = logit_l2_penalty(inputs, self.l2)
        if mask is None:
            weights = ops.ones_like(penalty)
        else:
            weights = ops.cast(mask, penalty.dtype)
        # Dividing by max(count, 1) keeps an empty or fully masked batch at 0.
        count = ops.maximum(ops.sum(weights), 1.0)
        return ops.sum(penalty * weights) / count

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config
