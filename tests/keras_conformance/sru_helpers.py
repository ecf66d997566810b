"""Building SRU layers for the ports of Keras' RNN tests, and the references
their properties are checked against."""

from __future__ import annotations

import keras
import numpy as np
from keras_masked_outputs import check_like_keras  # tests/support is on pythonpath
from sru_numpy import layer_numpy

from keras_ndsru import SRU

# Keras' RNN tests use these constant initializers; `weight_c` (v_f, v_r, the
# SRU's only recurrent weights) takes the place of `recurrent_kernel`.
KERAS_CONSTANTS = dict(
    kernel_initializer=keras.initializers.Constant(0.01),
    weight_c_initializer=keras.initializers.Constant(0.02),
    bias_initializer=keras.initializers.Constant(0.03),
)
ATOL = RTOL = 1e-5  # float32 layer against the float64 oracle, as Keras' tests


def build_sru(input_shape, weights="random", seed=0, **kwargs) -> SRU:
    """A built SRU; `weights="random"` draws every weight (v terms included,
    which start at zero), `"keras"` keeps Keras' test constants."""
    if weights == "keras":
        kwargs = {**KERAS_CONSTANTS, **kwargs}
    layer = SRU(**kwargs)
    layer.build(tuple(input_shape))
    if weights == "random":
        rng = np.random.default_rng(seed)
        for w in layer.trainable_weights:
            w.assign(rng.normal(scale=0.5, size=w.shape).astype(w.dtype))
    return layer


def twin(layer: SRU, input_shape, **overrides) -> SRU:
    """A layer with `layer`'s config changed by `overrides` and its trainable
    weights (not a stateful layer's stored state)."""
    config = {**layer.get_config(), **overrides}
    config.pop("name")
    other = SRU.from_config(config)
    other.build(tuple(input_shape))
    for mine, theirs in zip(other.trainable_weights, layer.trainable_weights):
        mine.assign(theirs)
    return other


def oracle(layer: SRU, x, mask=None, c0=None):
    """`(output, c_last)` of `tests/sru_numpy.py` for `layer`'s weights."""
    return layer_numpy(layer, x, mask, c0)


def assert_close(actual, desired, atol=ATOL, rtol=RTOL):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), desired, atol=atol, rtol=rtol
    )


def sequence(shape, scale=None):
    """Keras' test input `np.arange(n).reshape(shape)`, divided by `scale`
    (default: its size) so that the gates do not saturate."""
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / (scale or n)).astype("float32")


def compact(x_row, mask_row):
    """The valid steps of one row, as a batch of one sequence."""
    return x_row[np.asarray(mask_row, bool)][None]


def check_masked_rows(layer: SRU, x, mask, keras_class):
    """Keras' masking property: each row of `layer(x, mask=mask)` equals its
    valid steps run alone (a masked step leaves the state unchanged), also
    step by step with `return_sequences`. There a masked step outputs what
    `keras_class` (Keras' LSTM or GRU) outputs on the same mask: by default
    the last valid output (`zero_output_for_mask=False`), and 0 with
    `zero_output_for_mask=True`."""
    output = np.asarray(layer(x, mask=mask))
    assert_close(output, oracle(layer, x, mask)[0])
    repeats = twin(layer, x.shape, return_sequences=True)
    assert repeats.zero_output_for_mask is False  # Keras' default
    zeros = twin(layer, x.shape, return_sequences=True, zero_output_for_mask=True)
    output_repeats = np.asarray(repeats(x, mask=mask))
    output_zeros = np.asarray(zeros(x, mask=mask))
    for row, valid in enumerate(np.asarray(mask, bool)):
        alone = compact(x[row], valid)
        assert_close(output[row], layer(alone)[0])
        assert_close(output_zeros[row][valid], zeros(alone)[0])
        np.testing.assert_array_equal(output_zeros[row][~valid], 0.0)
    np.testing.assert_array_equal(output_repeats[mask], output_zeros[mask])
    check_sequences_like_keras(layer, keras_class, x, mask)


def check_sequences_like_keras(layer: SRU, keras_class, x, mask):
    """`layer` returning sequences, with `zero_output_for_mask` False and
    True: its masked steps are what `keras_class` outputs on the same mask."""
    for zero_output_for_mask in (False, True):
        sequences = twin(
            layer,
            x.shape,
            return_sequences=True,
            zero_output_for_mask=zero_output_for_mask,
        )
        check_like_keras(sequences, keras_class, x, mask)


def graph_op_types(function, *args) -> set[str]:
    """Op types in the traced graph of a `tf.function`, nested functions
    included."""
    graph_def = function.get_concrete_function(*args).graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for fn in graph_def.library.function:
        types.update(node.op for node in fn.node_def)
    return types


FUSED_OP = "KerasNdsru>SruForward"
