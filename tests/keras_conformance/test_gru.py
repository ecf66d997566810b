"""Port of keras/src/layers/rnn/gru_test.py (Keras 3.15.1) to `SRU`.

`test_basics`, `test_correctness` and `test_statefulness` are the LSTM tests
with GRU in place of LSTM: they are ported once, in test_lstm.py. The tests
here keep GRU's properties, checked against the NumPy oracle
(tests/sru_numpy.py) or an independent run of the layer, on the fused op and
on the reference recurrence.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_conformance.sru_helpers import (
    FUSED_OP,
    assert_close,
    build_sru,
    check_masked_rows,
    check_sequences_like_keras,
    graph_op_types,
    oracle,
    sequence,
    twin,
)

from keras_ndsru import SRU


@pytest.mark.parametrize("weights", ["keras", "random"])
def test_pass_initial_state(use_fused_kernel, weights):
    """gru_test::test_pass_initial_state: one tensor (not a list) as
    `initial_state`, forwards and backwards."""
    x = sequence((2, 4, 3))
    initial_state = np.arange(4).reshape((2, 2)).astype("float32") / 4
    layer = build_sru(x.shape, weights, units=2, use_fused_kernel=use_fused_kernel)
    output = layer(x, initial_state=initial_state)
    assert_close(output, oracle(layer, x, c0=initial_state)[0])
    assert not np.allclose(output, layer(x), atol=1e-4)

    backward = twin(layer, x.shape, go_backwards=True)
    assert_close(
        backward(x, initial_state=initial_state),
        layer(x[:, ::-1], initial_state=initial_state),
    )


@pytest.mark.parametrize("go_backwards", [False, True])
def test_pass_return_state(use_fused_kernel, go_backwards):
    """gru_test::test_pass_return_state: `output, state = layer(...)`. GRU's
    state is its output; SRU's is `c` (documented), so both are checked
    against the oracle instead of against each other."""
    x = sequence((2, 4, 3))
    initial_state = np.arange(4).reshape((2, 2)).astype("float32") / 4
    layer = build_sru(
        x.shape,
        units=2,
        return_state=True,
        go_backwards=go_backwards,
        use_fused_kernel=use_fused_kernel,
    )
    output, state = layer(x, initial_state=initial_state)
    want_output, want_state = oracle(layer, x, c0=initial_state)
    assert_close(output, want_output)
    assert_close(state, want_state)


def test_pass_return_state_is_a_tuple_like_gru(use_fused_kernel):
    """gru_test::test_pass_return_state unpacks `(output, state)`: Keras 3
    GRU and LSTM return a tuple, eagerly and symbolically."""
    x = sequence((2, 4, 3))
    layer = SRU(2, return_state=True, use_fused_kernel=use_fused_kernel)
    gru = keras.layers.GRU(2, return_state=True)
    assert type(gru(x)) is tuple
    assert type(layer(x)) is tuple
    symbolic = keras.KerasTensor((None, 4, 3))
    assert type(gru(symbolic)) is tuple
    assert type(layer(symbolic)) is tuple


@pytest.mark.parametrize("weights", ["keras", "random"])
def test_masking(use_fused_kernel, weights):
    """gru_test::test_masking, with Keras' mask that has gaps: a masked step
    leaves the state unchanged, so a row equals its valid steps run alone;
    with `return_sequences` the masked steps repeat the last valid output
    (Keras' default) or are 0 with `zero_output_for_mask=True`, exactly
    where `keras.layers.GRU` does on the same mask, also with go_backwards.
    The fused op takes only right-padded masks (documented): there it must
    raise, and `"auto"` fall back."""
    x = sequence((2, 4, 3))
    mask = np.array([[True, True, False, True], [True, False, False, True]])
    layer = build_sru(x.shape, weights, units=2, use_fused_kernel=use_fused_kernel)
    if use_fused_kernel:
        with pytest.raises(ValueError, match="right-padded"):
            layer(x, mask=mask)
        layer = twin(layer, x.shape, use_fused_kernel="auto")
    check_masked_rows(layer, x, mask, keras.layers.GRU)

    backward = twin(layer, x.shape, go_backwards=True)
    assert_close(
        backward(x, mask=mask),
        layer(x[:, ::-1], mask=np.ascontiguousarray(mask[:, ::-1])),
    )
    check_sequences_like_keras(backward, keras.layers.GRU, x, mask)


def test_stateful_with_symbolic_batch_size(use_fused_kernel):
    """gru_test::test_stateful_with_symbolic_batch_size: a stateful layer
    built eagerly also runs in a `tf.function` whose batch size is unknown,
    and continues from the stored state."""
    layer = SRU(5, stateful=True, use_fused_kernel=use_fused_kernel)
    x = np.random.default_rng(0).normal(size=(2, 10, 10)).astype("float32")
    first = layer(x, training=True)

    @tf.function(
        input_signature=[tf.TensorSpec(shape=(None, 10, 10), dtype=tf.float32)]
    )
    def f(x):
        return layer(x, training=True)

    second = f(x)
    assert tuple(second.shape) == (2, 5)
    want_first, c_first = oracle(layer, x)
    assert_close(first, want_first)
    assert_close(second, oracle(layer, x, c0=c_first)[0])


def test_fused_dispatch_fires(use_fused_kernel):
    """gru_test::test_torch_cudnn_dispatch_fires: the fast path must not be
    silently inactive. With `use_fused_kernel=True` the traced call holds
    the fused op; with `False` it does not."""
    layer = SRU(8, return_sequences=True, use_fused_kernel=use_fused_kernel)
    layer(np.zeros((4, 6, 5), "float32"))
    call = tf.function(lambda x: layer(x))
    types = graph_op_types(call, tf.TensorSpec((None, None, 5), tf.float32))
    assert (FUSED_OP in types) == use_fused_kernel
