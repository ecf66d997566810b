"""Port of keras/src/layers/rnn/lstm_test.py (Keras 3.15.1) to `SRU`.

Keras asserts LSTM numbers; these tests keep each property and check it
against the NumPy oracle (tests/sru_numpy.py) or an independent run of the
layer: go_backwards is the forward layer on the time-reversed input, a masked
row is the unpadded row run alone, stateful is `initial_state` = the previous
final state. Each test runs on the fused op and on the reference recurrence.
"""

import keras
import numpy as np
import pytest
from keras_conformance.layer_checks import run_layer_test
from keras_conformance.sru_helpers import (
    assert_close,
    build_sru,
    check_masked_rows,
    check_sequences_like_keras,
    oracle,
    sequence,
    twin,
)

from keras_ndsru import SRU


def test_basics_dropout(use_fused_kernel, tmp_path):
    """lstm_test::test_basics, first case (the `recurrent_dropout` case is
    left out: SRU has no recurrent weights to drop)."""
    run_layer_test(
        SRU,
        init_kwargs={"units": 3, "dropout": 0.5, "use_fused_kernel": use_fused_kernel},
        input_shape=(3, 2, 4),
        call_kwargs={"training": True},
        expected_output_shape=(3, 3),
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )


def test_basics_dropout_applies_only_in_training(use_fused_kernel):
    """lstm_test::test_basics calls with `training=True` and dropout 0.5: the
    training flag must switch dropout on, and off otherwise."""
    x = np.random.default_rng(3).normal(size=(3, 2, 4)).astype("float32")
    layer = build_sru(
        x.shape, units=3, dropout=0.5, seed=1, use_fused_kernel=use_fused_kernel
    )
    without_dropout = oracle(twin(layer, x.shape, dropout=0.0), x)[0]
    assert_close(layer(x), without_dropout)
    assert_close(layer(x, training=False), without_dropout)
    dropped = np.asarray(layer(x, training=True))
    assert np.all(np.isfinite(dropped))
    assert not np.allclose(dropped, without_dropout, atol=1e-3)


def test_basics_regularizers(use_fused_kernel):
    """lstm_test::test_basics, third case: three regularizers give three
    losses (`weight_c_regularizer` stands for `recurrent_regularizer`), with
    the values of the regularizers on the weights."""
    kwargs = {
        "units": 3,
        "return_sequences": True,
        "bias_regularizer": "l1",
        "kernel_regularizer": "l2",
        "weight_c_regularizer": "l2",
        "use_fused_kernel": use_fused_kernel,
    }
    run_layer_test(
        SRU,
        init_kwargs=kwargs,
        input_shape=(3, 2, 4),
        expected_output_shape=(3, 2, 3),
        expected_num_losses=3,
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
    )
    layer = build_sru((3, 2, 4), **kwargs)
    layer(np.ones((3, 2, 4), "float32"))
    kernel, weight_c, bias = (np.asarray(w, np.float64) for w in layer.weights)
    want = [
        0.01 * np.sum(np.abs(bias)),
        0.01 * np.sum(kernel**2),
        0.01 * np.sum(weight_c**2),
    ]
    got = [float(loss) for loss in layer.losses]
    np.testing.assert_allclose(sorted(got), sorted(want), rtol=1e-5)


@pytest.mark.parametrize("weights", ["keras", "random"])
def test_correctness(use_fused_kernel, weights):
    """lstm_test::test_correctness: the output against the oracle (Keras'
    constants and random weights), and go_backwards against the forward
    layer on the reversed input. The `unroll`, `unit_forget_bias`,
    `use_bias` and `implementation` cases are left out (no such arguments)."""
    x = sequence((3, 6, 4))
    layer = build_sru(x.shape, weights, units=3, use_fused_kernel=use_fused_kernel)
    assert_close(layer(x), oracle(layer, x)[0])

    backward = twin(layer, x.shape, go_backwards=True)
    assert_close(backward(x), layer(x[:, ::-1]))
    assert not np.allclose(backward(x), layer(x), atol=1e-4)

    forward_seq = twin(layer, x.shape, return_sequences=True)
    backward_seq = twin(layer, x.shape, return_sequences=True, go_backwards=True)
    assert_close(backward_seq(x), forward_seq(x[:, ::-1]))


@pytest.mark.parametrize("weights", ["keras", "random"])
def test_statefulness(use_fused_kernel, weights):
    """lstm_test::test_statefulness: the second call starts from the first
    call's final state, and `reset_state` starts over."""
    x = sequence((2, 3, 4))
    layer = build_sru(
        x.shape, weights, units=4, stateful=True, use_fused_kernel=use_fused_kernel
    )
    explicit = twin(layer, (None, 3, 4), stateful=False, return_state=True)
    want_first, c_first = explicit(x)
    want_second = explicit(x, initial_state=c_first)[0]
    oracle_first, oracle_c = oracle(layer, x)
    assert_close(want_first, oracle_first)
    assert_close(want_second, oracle(layer, x, c0=oracle_c)[0])

    for _ in range(2):  # before and after reset_state
        assert_close(layer(x), want_first)
        assert_close(layer(x), want_second)
        layer.reset_state()
    assert not np.allclose(want_first, want_second, atol=1e-4)


@pytest.mark.parametrize("weights", ["keras", "random"])
def test_pass_initial_state(use_fused_kernel, weights):
    """lstm_test::test_pass_initial_state: a list of state tensors as
    `initial_state` (SRU has one, `c`), forwards and backwards."""
    x = sequence((2, 4, 3))
    initial_state = [np.arange(4).reshape((2, 2)).astype("float32") / 4]
    layer = build_sru(x.shape, weights, units=2, use_fused_kernel=use_fused_kernel)
    output = layer(x, initial_state=initial_state)
    assert_close(output, oracle(layer, x, c0=initial_state[0])[0])
    assert not np.allclose(output, layer(x), atol=1e-4)

    backward = twin(layer, x.shape, go_backwards=True)
    assert_close(
        backward(x, initial_state=initial_state),
        layer(x[:, ::-1], initial_state=initial_state),
    )


@pytest.mark.parametrize("weights", ["keras", "random"])
def test_masking(use_fused_kernel, weights):
    """lstm_test::test_masking: a right-padded row equals the unpadded row
    run alone; with `return_sequences` the masked steps repeat the last
    valid output (Keras' default) or are 0 with `zero_output_for_mask=True`,
    exactly where `keras.layers.LSTM` does on the same mask. go_backwards
    with Keras' left-padded mask is the forward layer on the reversed input
    and mask; the fused op takes only right-padded masks (documented), so
    there that case must raise and `"auto"` must fall back."""
    x = sequence((2, 4, 3))
    mask = np.array([[True, True, True, False], [True, True, False, False]])
    layer = build_sru(x.shape, weights, units=2, use_fused_kernel=use_fused_kernel)
    check_masked_rows(layer, x, mask, keras.layers.LSTM)

    backward = twin(layer, x.shape, go_backwards=True)
    for row, length in enumerate(mask.sum(axis=1)):  # right-padded, backwards
        assert_close(
            backward(x, mask=mask)[row], layer(x[row : row + 1, :length][:, ::-1])[0]
        )
    check_sequences_like_keras(backward, keras.layers.LSTM, x, mask)
    backwards_mask = np.array([[False, True, True, True], [False, False, True, True]])
    if use_fused_kernel:
        with pytest.raises(ValueError, match="right-padded"):
            backward(x, mask=backwards_mask)
        backward = twin(layer, x.shape, go_backwards=True, use_fused_kernel="auto")
    assert_close(
        backward(x, mask=backwards_mask),
        layer(x[:, ::-1], mask=backwards_mask[:, ::-1]),
    )
    check_sequences_like_keras(backward, keras.layers.LSTM, x, backwards_mask)
