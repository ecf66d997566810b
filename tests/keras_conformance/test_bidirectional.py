"""Port of keras/src/layers/rnn/bidirectional_test.py (Keras 3.15.1) to
`keras.layers.Bidirectional(SRU(...))`.

Each half of the wrapper's output is checked against a standalone SRU with
that half's weights: the forward half on the input, the backward half as the
forward layer on the time-reversed input (its sequence flipped back by the
wrapper), and against the NumPy oracle (tests/sru_numpy.py). Each test runs
on the fused op and on the reference recurrence.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_conformance.layer_checks import run_layer_test
from keras_conformance.sru_helpers import (
    FUSED_OP,
    KERAS_CONSTANTS,
    assert_close,
    compact,
    graph_op_types,
    oracle,
    sequence,
    twin,
)
from keras_masked_outputs import assert_outputs_follow, output_sources

from keras_ndsru import SRU

MERGE = {
    "concat": lambda f, b: np.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "ave": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}


def randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    for w in layer.trainable_weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(w.dtype))


def halves(bidi, x, mask=None, initial_state=(None, None)):
    """`(forward, backward)` outputs of standalone forward SRUs holding the
    wrapper's two sets of weights, on the reference recurrence (a reversed
    right-padded mask is left-padded); the backward one runs on the reversed
    input and, with `return_sequences`, is flipped back in time."""
    plain = dict(return_state=False, stateful=False, use_fused_kernel=False)
    forward = twin(bidi.forward_layer, x.shape, **plain)
    backward = twin(bidi.backward_layer, x.shape, go_backwards=False, **plain)
    reverse_mask = None if mask is None else np.ascontiguousarray(mask[:, ::-1])
    y = np.asarray(forward(x, mask=mask, initial_state=initial_state[0]))
    y_rev = np.asarray(
        backward(x[:, ::-1], mask=reverse_mask, initial_state=initial_state[1])
    )
    if bidi.return_sequences:
        y_rev = y_rev[:, ::-1]
    return y, y_rev


def wrapper_like(bidi, x_shape, **sru_kwargs):
    """`Bidirectional(SRU(...))` with `bidi`'s weights and other SRU args."""
    copy = keras.layers.Bidirectional(SRU(bidi.forward_layer.units, **sru_kwargs))
    copy.build(x_shape)
    for mine, theirs in zip(copy.trainable_weights, bidi.trainable_weights):
        mine.assign(theirs)
    return copy


def test_basics(use_fused_kernel, tmp_path):
    """bidirectional_test::test_basics: the default backward layer, and a
    given backward layer with `merge_mode="sum"`."""
    run_layer_test(
        keras.layers.Bidirectional,
        init_kwargs={"layer": SRU(4, use_fused_kernel=use_fused_kernel)},
        input_shape=(3, 2, 4),
        expected_output_shape=(3, 8),
        expected_num_trainable_weights=6,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )
    run_layer_test(
        keras.layers.Bidirectional,
        init_kwargs={
            "layer": SRU(4, use_fused_kernel=use_fused_kernel),
            "backward_layer": SRU(
                4, go_backwards=True, use_fused_kernel=use_fused_kernel
            ),
            "merge_mode": "sum",
        },
        input_shape=(3, 2, 4),
        expected_output_shape=(3, 4),
        expected_num_trainable_weights=6,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
    )


@pytest.mark.parametrize("merge_mode", ["concat", "ave", "mul", None])
def test_correctness(use_fused_kernel, merge_mode):
    """bidirectional_test::test_correctness: every merge mode, with Keras'
    constants and a given backward layer with other constants."""
    x = sequence((2, 3, 4))
    forward_layer = SRU(2, use_fused_kernel=use_fused_kernel, **KERAS_CONSTANTS)
    backward_layer = SRU(
        2,
        go_backwards=True,
        use_fused_kernel=use_fused_kernel,
        kernel_initializer=keras.initializers.Constant(0.03),
        weight_c_initializer=keras.initializers.Constant(0.02),
        bias_initializer=keras.initializers.Constant(0.01),
    )
    for backward in (None, backward_layer):
        layer = keras.layers.Bidirectional(
            forward_layer, backward_layer=backward, merge_mode=merge_mode
        )
        output = layer(x)
        y, y_rev = halves(layer, x)
        assert_close(y, oracle(layer.forward_layer, x)[0])
        assert_close(y_rev, oracle(layer.backward_layer, x)[0])
        if merge_mode is None:
            assert_close(output[0], y)
            assert_close(output[1], y_rev)
        else:
            assert_close(output, MERGE[merge_mode](y, y_rev))


def test_correctness_return_sequences(use_fused_kernel):
    """bidirectional_test::test_correctness, last case: `return_sequences`
    with `merge_mode="sum"`; the backward sequence is flipped back in time."""
    x = sequence((2, 3, 4))
    layer = keras.layers.Bidirectional(
        SRU(2, return_sequences=True, use_fused_kernel=use_fused_kernel),
        merge_mode="sum",
    )
    layer.build(x.shape)
    randomize(layer)
    y, y_rev = halves(layer, x)
    assert_close(layer(x), y + y_rev)
    assert_close(y_rev, oracle(layer.backward_layer, x)[0][:, ::-1])


def test_statefulness(use_fused_kernel):
    """bidirectional_test::test_statefulness: the second call starts from
    both directions' final states; `reset_state` starts over."""
    x = sequence((2, 4, 3))
    layer = keras.layers.Bidirectional(
        SRU(2, stateful=True, use_fused_kernel=use_fused_kernel)
    )
    layer.build(x.shape)
    randomize(layer)
    explicit = wrapper_like(
        layer, x.shape, return_state=True, use_fused_kernel=use_fused_kernel
    )
    want_first, c_forward, c_backward = explicit(x)
    want_second = explicit(x, initial_state=[c_forward, c_backward])[0]
    assert_close(
        want_second,
        np.concatenate(halves(layer, x, initial_state=(c_forward, c_backward)), -1),
    )
    for _ in range(2):  # before and after reset_state
        assert_close(layer(x), want_first)
        assert_close(layer(x), want_second)
        layer.reset_state()
    assert not np.allclose(want_first, want_second, atol=1e-4)


def test_pass_initial_state(use_fused_kernel):
    """bidirectional_test::test_pass_initial_state: the first half of
    `initial_state` goes to the forward layer, the second to the backward
    one (one state per direction for SRU, two for LSTM)."""
    x = sequence((2, 4, 3))
    initial_state = [
        np.arange(4).reshape((2, 2)).astype("float32") / 4,
        np.arange(4).reshape((2, 2)).astype("float32") / 2,
    ]
    layer = keras.layers.Bidirectional(SRU(2, use_fused_kernel=use_fused_kernel))
    layer.build(x.shape)
    randomize(layer)
    output = layer(x, initial_state=initial_state)
    y, y_rev = halves(layer, x, initial_state=initial_state)
    assert_close(output, np.concatenate([y, y_rev], -1))
    assert_close(y, oracle(layer.forward_layer, x, c0=initial_state[0])[0])
    assert_close(y_rev, oracle(layer.backward_layer, x, c0=initial_state[1])[0])
    assert not np.allclose(output, layer(x), atol=1e-4)


@pytest.mark.parametrize("pattern", ["right_padded", "gaps"])
def test_masking(use_fused_kernel, pattern):
    """bidirectional_test::test_masking: each row equals its valid steps run
    alone, also with `return_sequences`, where the wrapper sets
    `zero_output_for_mask=True` on both SRUs as on Keras' GRU: masked steps
    are 0 exactly where `Bidirectional(GRU)` outputs 0 on the same mask.
    Keras' mask has gaps, which the fused op does not take (documented):
    there it must raise, and `"auto"` fall back. A right-padded mask runs on
    both paths."""
    x = sequence((2, 4, 3))
    if pattern == "gaps":
        mask = np.array([[True, True, False, True], [True, False, False, True]])
    else:
        mask = np.array([[True, True, True, False], [True, False, False, False]])
    layer = keras.layers.Bidirectional(SRU(2, use_fused_kernel=use_fused_kernel))
    layer.build(x.shape)
    randomize(layer)
    if use_fused_kernel and pattern == "gaps":
        with pytest.raises(ValueError, match="right-padded"):
            layer(x, mask=mask)
        layer = wrapper_like(layer, x.shape, use_fused_kernel="auto")
    path = layer.forward_layer.use_fused_kernel
    output = np.asarray(layer(x, mask=mask))
    assert_close(output, np.concatenate(halves(layer, x, mask), -1))
    sequences = wrapper_like(
        layer, x.shape, return_sequences=True, use_fused_kernel=path
    )
    assert sequences.forward_layer.zero_output_for_mask
    assert sequences.backward_layer.zero_output_for_mask
    output_seq = np.asarray(sequences(x, mask=mask))
    assert_close(output_seq, np.concatenate(halves(sequences, x, mask), -1))
    gru = keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=True))
    keras_seq = np.asarray(gru(x, mask=mask))
    sources = [output_sources(half, mask) for half in np.split(keras_seq, 2, -1)]
    assert_outputs_follow(output_seq, sources)
    np.testing.assert_array_equal(output_seq[~mask], 0.0)

    reference = wrapper_like(layer, x.shape, use_fused_kernel=False)
    reference_seq = wrapper_like(
        layer, x.shape, return_sequences=True, use_fused_kernel=False
    )
    for row in range(2):
        valid = compact(x[row], mask[row])
        assert_close(output[row], reference(valid)[0])
        assert_close(output_seq[row][mask[row]], reference_seq(valid)[0])


def test_return_state(use_fused_kernel):
    """bidirectional_test::test_return_state: `output, *states` with the
    forward states first. LSTM has (h, c) per direction, SRU has c."""
    x = sequence((2, 4, 3))
    layer = keras.layers.Bidirectional(
        SRU(2, return_state=True, use_fused_kernel=use_fused_kernel)
    )
    layer.build(x.shape)
    randomize(layer)
    result = layer(x)
    assert type(result) is tuple
    output, c_forward, c_backward = result
    assert_close(output, np.concatenate(halves(layer, x), -1))
    assert_close(c_forward, oracle(layer.forward_layer, x)[1])
    assert_close(c_backward, oracle(layer.backward_layer, x)[1])


def test_output_shape(use_fused_kernel):
    """bidirectional_test::test_output_shape: `compute_output_shape` matches
    the outputs for every merge mode, with and without `return_state`, on
    Keras' integer input."""
    x = np.array([[[101, 202], [303, 404]]])
    for return_state in (True, False):
        for merge_mode in ["ave", "concat", "mul", "sum", None]:
            sub_layer = SRU(
                2, return_state=return_state, use_fused_kernel=use_fused_kernel
            )
            layer = keras.layers.Bidirectional(sub_layer, merge_mode=merge_mode)
            outputs = keras.tree.flatten(layer(x))
            shapes = layer.compute_output_shape(x.shape)
            if not return_state and merge_mode is not None:
                shapes = [shapes]
            assert [tuple(o.shape) for o in outputs] == [tuple(s) for s in shapes]


def test_keeps_use_fused_kernel():
    """bidirectional_test::test_keeps_use_cudnn: both directions keep the
    fast-path setting (`use_fused_kernel` is SRU's `use_cudnn`)."""
    for use_fused_kernel in (True, False, "auto"):
        bidi = keras.layers.Bidirectional(SRU(1, use_fused_kernel=use_fused_kernel))
        assert bidi.forward_layer.use_fused_kernel == use_fused_kernel
        assert bidi.backward_layer.use_fused_kernel == use_fused_kernel


def test_fused_matches_unfused():
    """bidirectional_test::test_fused_lstm_matches_unfused (and the GRU
    twin): the fused path gives the reference path's outputs and gradients."""
    x = np.random.default_rng(0).standard_normal((3, 6, 4)).astype("float32")

    def build(use_fused_kernel):
        layer = keras.layers.Bidirectional(
            SRU(5, use_fused_kernel=use_fused_kernel, return_sequences=True)
        )
        layer.build(x.shape)
        return layer

    reference, fused = build(False), build(True)
    randomize(reference)
    for mine, theirs in zip(fused.weights, reference.weights):
        mine.assign(theirs)

    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            output = layer(x)
            loss = tf.reduce_sum(output * np.linspace(-1, 1, output.shape[-1]))
        return output, tape.gradient(loss, layer.trainable_weights)

    want, want_grads = outputs_and_gradients(reference)
    got, got_grads = outputs_and_gradients(fused)
    assert_close(got, np.asarray(want))
    for g, w in zip(got_grads, want_grads):
        assert_close(g, np.asarray(w), atol=1e-5, rtol=1e-4)


def test_fused_dispatch_fires(use_fused_kernel):
    """bidirectional_test::test_torch_cudnn_bidirectional_gru_dispatch_fires:
    the fused op is in the traced wrapper exactly on the fused path."""
    layer = keras.layers.Bidirectional(
        SRU(8, return_sequences=True, use_fused_kernel=use_fused_kernel)
    )
    layer(np.zeros((4, 6, 5), "float32"))
    call = tf.function(lambda x: layer(x))
    types = graph_op_types(call, tf.TensorSpec((None, None, 5), tf.float32))
    assert (FUSED_OP in types) == use_fused_kernel
