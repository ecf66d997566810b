"""BNSoftmax: batch-normalized logits with a fixed scale gamma_C."""

import warnings

import keras
from keras import ops

from keras_ndsru import validation
from keras_ndsru.losses import float32_or_wider

_OUTPUTS = ("logits", "probabilities")


@keras.saving.register_keras_serializable(package="keras_ndsru")
class BNSoftmax(keras.layers.Layer):
    """Batch-normalizes the logits and scales them by a fixed `gamma_C`.

    ND-Adam paper (Zhang et al., arXiv 1709.04546), section 4 ("BN-Softmax"):
    the softmax learning signal depends on the overall magnitude of the logits
    (eqs. 18-20), so the logits are batch-normalized per class, without a
    trainable scale, and multiplied by one fixed hyperparameter `gamma_C`:

    `z_hat = gamma * (z - mean) / sqrt(variance + epsilon) + beta`

    with an optional trainable per-class shift `beta` (kept by the authors'
    code, hence `center=True`). In training, `mean` and `variance` are the
    (biased) statistics of the batch, over every axis but the last, and the
    moving statistics are updated as
    `moving = moving * momentum + batch * (1 - momentum)`; in inference (or
    when `trainable=False`) the moving statistics are used, as in
    `keras.layers.BatchNormalization`.

    **Logits or probabilities.** By default (`output="logits"`) the layer
    returns the normalized logits `z_hat`, *not* probabilities: train with
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True)` (or
    `CategoricalCrossentropy(from_logits=True)`), which is numerically the
    most stable choice, and apply `keras.ops.softmax` yourself for
    probabilities at prediction time. With `output="probabilities"` it returns
    `softmax(z_hat)`: pair it with `from_logits=False` (Keras then reuses the
    logits internally, and warns if `from_logits=True` would softmax twice);
    the `keras_ndsru.losses` logit-L2 losses refuse such an output.

    **Batch of one.** With a single example (more precisely, a single
    unmasked position) in training, the batch variance is 0 and the batch
    mean is the example itself, so the normalized logits would all be
    `beta`. In that case the layer normalizes with the moving statistics
    instead and leaves them unchanged (decided per batch, so it also works
    for a last partial batch inside `fit`); the first time the batch size is
    known to be 1 when the layer is called, it warns once.

    The layer always computes in at least float32 and returns float32 under a
    mixed-precision policy (its dtype policy is promoted to float32).

    Args:
        gamma: Float > 0, the fixed scale `gamma_C`. Defaults to `2.5`
            (paper: 2.5 for CIFAR-10, 1 for CIFAR-100).
        output: `"logits"` or `"probabilities"`, what the layer returns
            (readable as `layer.output_type`). Defaults to `"logits"`.
        center: Boolean, whether to add the trainable per-class shift `beta`.
            Defaults to `True`.
        momentum: Float in `[0, 1)`, momentum of the moving statistics.
            Defaults to `0.99` (as `BatchNormalization`; the authors use 0.9).
        epsilon: Float > 0 added to the variance. Defaults to `1e-3`.
        beta_initializer: Initializer of `beta`. Defaults to `"zeros"`.
        beta_regularizer: Optional regularizer of `beta`. Defaults to `None`.
        moving_mean_initializer: Defaults to `"zeros"`.
        moving_variance_initializer: Defaults to `"ones"`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Logits of shape `(batch, ..., num_classes)`, rank >= 2, with a
            known number of classes.
        training: Boolean, batch statistics (`True`) or moving statistics.
        mask: Optional boolean mask of shape `inputs.shape[:-1]`; masked
            positions do not enter the batch statistics.

    Example:

    >>> inputs = keras.Input((16,))
    >>> logits = keras.layers.Dense(10)(inputs)
    >>> logits = BNSoftmax(gamma=2.5)(logits)  # output="logits"
    >>> model = keras.Model(inputs, logits)
    >>> model.compile(
    ...     "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ... )
    """

    def __init__(
        self,
        gamma: float = 2.5,
        output: str = "logits",
        center: bool = True,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        beta_initializer="zeros",
        beta_regularizer=None,
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        **kwargs,
    ):
        kwargs["dtype"] = float32_or_wider(kwargs.get("dtype"))
        super().__init__(**kwargs)
        self.gamma = validation.positive_float("gamma", gamma)
        self.output_type = validation.one_of("output", output, _OUTPUTS)
        self.center = bool(center)
        self.momentum = validation.fraction("momentum", momentum)
        self.epsilon = validation.positive_float("epsilon", epsilon)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(
            moving_variance_initializer
        )
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self._warned_batch_of_one = False

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "`BNSoftmax` expects logits of rank >= 2, `(batch, ..., "
                "num_classes)`, with a known number of classes. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        num_classes = input_shape[-1]
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: num_classes})
        if self.center:
            self.beta = self.add_weight(
                shape=(num_classes,),
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
            )
        else:
            self.beta = None
        self.moving_mean = self.add_weight(
            shape=(num_classes,),
            name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=(num_classes,),
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )

    def call(self, inputs, training=None, mask=None):
        inputs = ops.cast(inputs, self.compute_dtype)
        moving_mean = ops.cast(self.moving_mean, inputs.dtype)
        moving_variance = ops.cast(self.moving_variance, inputs.dtype)
        if training and self.trainable:
            mean, variance, count = self._moments(inputs, mask)
            self._maybe_warn_batch_of_one(inputs, mask)
            # A single position has variance 0: use the moving statistics,
            # which also makes the moving update below a no-op.
            usable = count > 1.0
            mean = ops.where(usable, mean, moving_mean)
            variance = ops.where(usable, variance, moving_variance)
            decay = 1.0 - self.momentum
            self.moving_mean.assign(moving_mean + (mean - moving_mean) * decay)
            self.moving_variance.assign(
                moving_variance + (variance - moving_variance) * decay
            )
        else:
            mean, variance = moving_mean, moving_variance
        logits = self.gamma * (inputs - mean) * ops.rsqrt(variance + self.epsilon)
        if self.beta is not None:
            logits = logits + ops.cast(self.beta, inputs.dtype)
        if self.output_type == "probabilities":
            return ops.softmax(logits, axis=-1)
        return logits

    def _moments(self, inputs, mask):
        """Per-class mean, biased variance and number of positions."""
        axes = tuple(range(len(inputs.shape) - 1))
        if mask is None:
            weights = ops.ones_like(inputs[..., :1])
        elif len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "`BNSoftmax` expects a mask of shape `inputs.shape[:-1]`. "
                f"Received: mask.shape={mask.shape}, inputs.shape={inputs.shape}"
            )
        else:
            weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        count = ops.sum(weights)
        safe_count = ops.maximum(count, 1.0)
        mean = ops.sum(inputs * weights, axis=axes) / safe_count
        variance = ops.sum(ops.square(inputs - mean) * weights, axis=axes) / safe_count
        return mean, variance, count

    def _maybe_warn_batch_of_one(self, inputs, mask):
        if self._warned_batch_of_one or mask is not None:
            return
        positions = inputs.shape[:-1]
        if all(dim == 1 for dim in positions):
            self._warned_batch_of_one = True
            warnings.warn(
                f"`BNSoftmax` layer '{self.name}' received a training batch of "
                "one example: the batch variance is 0, so it normalizes with "
                "its moving statistics and does not update them. "
                f"Received: inputs.shape={tuple(inputs.shape)}",
                stacklevel=2,
            )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "gamma": self.gamma,
                "output": self.output_type,
                "center": self.center,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "beta_initializer": keras.initializers.serialize(self.beta_initializer),
                "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
                "moving_mean_initializer": keras.initializers.serialize(
                    self.moving_mean_initializer
                ),
                "moving_variance_initializer": keras.initializers.serialize(
                    self.moving_variance_initializer
                ),
            }
        )
        return config
