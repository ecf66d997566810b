"""Canaries for the three private Keras/TensorFlow APIs the package relies on
where no public one exists. Each lives in one function of the package; each
test here fails, naming that function, when a Keras or TensorFlow release
changes the API under it."""

import keras
import numpy as np
import tensorflow as tf

from keras_ndsru import NDAdam
from keras_ndsru.losses import _mask_losses
from keras_ndsru.optimizers.nd_adam import _tensorflow_outside_xla


def test_xla_context_probe_of_nd_adam_norm():
    """`nd_adam._tensorflow_outside_xla` reads `tf.__internal__`'s XLA
    context: True eagerly and in a plain `tf.function`, False under XLA."""
    assert hasattr(tf.__internal__, "get_enclosing_xla_context")
    seen = {}

    def probe(key):
        seen[key] = _tensorflow_outside_xla()
        return tf.constant(0.0)

    probe("eager")
    tf.function(lambda: probe("traced"))()
    tf.function(lambda: probe("xla"), jit_compile=True)()
    assert seen == {"eager": True, "traced": True, "xla": False}


def test_ema_overwrite_hook_of_nd_adam():
    """NDAdam renormalizes weight vectors after Keras overwrites the model
    with its moving average, by overriding the private
    `Optimizer._overwrite_model_variables_with_average_value`; Keras must
    still call it from `finalize_variable_values`."""
    hook = "_overwrite_model_variables_with_average_value"
    assert callable(getattr(keras.optimizers.Optimizer, hook, None))
    calls = []

    class Spy(NDAdam):
        def _overwrite_model_variables_with_average_value(self, variables):
            calls.append(len(variables))
            super()._overwrite_model_variables_with_average_value(variables)

    variable = keras.Variable(np.ones((3, 2), "float32"), name="kernel")
    optimizer = Spy(use_ema=True)
    optimizer.build([variable])  # before the gradient, as NDAdam asks
    optimizer.apply([np.ones((3, 2), "float32")], [variable])
    optimizer.finalize_variable_values([variable])
    assert calls == [1]


def test_keras_mask_attribute_of_losses_mask_losses():
    """`losses._mask_losses` sets the `_keras_mask` attribute that
    `keras.losses.Loss.__call__` reads to reduce over the valid entries."""

    class MeanOfValid(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return _mask_losses(keras.ops.square(y_pred - y_true), y_true >= 0)

    y_true = np.array([1.0, -1.0, 2.0, -1.0], "float32")
    y_pred = np.array([0.0, 5.0, 0.0, 7.0], "float32")
    # Mean over the two valid entries only: (1 + 4) / 2.
    np.testing.assert_allclose(MeanOfValid()(y_true, y_pred), 2.5, rtol=1e-6)
