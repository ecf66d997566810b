"""Port of keras/src/layers/rnn/rnn_test.py (Keras 3.15.1) to `SRU`.

Keras tests `keras.layers.RNN` with a one-state and a two-state toy cell.
SRU has one state tensor, `c`, so the one-state tests are ported and the
two-state ones left out. Values are checked against the NumPy oracle
(tests/sru_numpy.py) or an independent run of the layer, on the fused op and
on the reference recurrence.
"""

import itertools

import keras
import numpy as np
import pytest
from keras_conformance.layer_checks import check_serialization, run_layer_test
from keras_conformance.sru_helpers import (
    assert_close,
    build_sru,
    oracle,
    sequence,
    twin,
)

from keras_ndsru import SRU

FLAGS = list(itertools.product([False, True], repeat=2))


@pytest.mark.parametrize(
    "kwargs, expected_output_shape",
    [
        ({}, (3, 5)),
        ({"return_sequences": True}, (3, 2, 5)),
        ({"go_backwards": True}, (3, 5)),
    ],
    ids=["last", "sequences", "go_backwards"],
)
def test_basics(use_fused_kernel, kwargs, expected_output_shape, tmp_path):
    """rnn_test::test_basics, one-state cases (`unroll` left out: SRU has
    none)."""
    run_layer_test(
        SRU,
        init_kwargs={"units": 5, "use_fused_kernel": use_fused_kernel, **kwargs},
        input_shape=(3, 2, 4),
        expected_output_shape=expected_output_shape,
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("return_sequences, return_state", FLAGS)
def test_compute_output_shape_single_state(
    use_fused_kernel, return_sequences, return_state
):
    """rnn_test::test_compute_output_shape_single_state, and the shapes of
    the actual outputs match."""
    x = np.ones((3, 4, 5), "float32")
    layer = SRU(
        8,
        return_sequences=return_sequences,
        return_state=return_state,
        use_fused_kernel=use_fused_kernel,
    )
    output_shape = (3, 4, 8) if return_sequences else (3, 8)
    want = (output_shape, (3, 8)) if return_state else output_shape
    assert layer.compute_output_shape(x.shape) == want
    outputs = layer(x)
    got = (
        tuple(tuple(o.shape) for o in outputs) if return_state else tuple(outputs.shape)
    )
    assert got == want


@pytest.mark.parametrize("return_sequences, return_state", FLAGS)
def test_dynamic_shapes(use_fused_kernel, return_sequences, return_state):
    """rnn_test::test_dynamic_shapes, one-state cases, for
    `compute_output_shape` and a symbolic call."""
    layer = SRU(
        8,
        return_sequences=return_sequences,
        return_state=return_state,
        use_fused_kernel=use_fused_kernel,
    )
    output_shape = (None, None, 8) if return_sequences else (None, 8)
    want = (output_shape, (None, 8)) if return_state else output_shape
    assert layer.compute_output_shape((None, None, 3)) == want
    outputs = layer(keras.KerasTensor((None, None, 3)))
    got = (
        tuple(tuple(o.shape) for o in outputs) if return_state else tuple(outputs.shape)
    )
    assert got == want


@pytest.mark.parametrize("return_sequences, return_state", FLAGS)
def test_forward_pass_single_state(use_fused_kernel, return_sequences, return_state):
    """rnn_test::test_forward_pass_single_state: outputs and state against
    the oracle (Keras' toy cell returns its state as output; SRU's state is
    `c`)."""
    x = np.ones((1, 2, 3), "float32")
    layer = build_sru(
        x.shape,
        units=2,
        return_sequences=return_sequences,
        return_state=return_state,
        use_fused_kernel=use_fused_kernel,
    )
    want_output, want_state = oracle(layer, x)
    if return_state:
        output, state = layer(x)
        assert_close(state, want_state)
    else:
        output = layer(x)
    assert_close(output, want_output)


@pytest.mark.parametrize("return_state", [False, True])
def test_passing_initial_state_single_state(use_fused_kernel, return_state):
    """rnn_test::test_passing_initial_state_single_state."""
    x = np.ones((2, 3, 2), "float32")
    initial_state = np.ones((2, 2), "float32")
    layer = build_sru(
        x.shape, units=2, return_state=return_state, use_fused_kernel=use_fused_kernel
    )
    want_output, want_state = oracle(layer, x, c0=initial_state)
    if return_state:
        output, state = layer(x, initial_state=initial_state)
        assert_close(state, want_state)
    else:
        output = layer(x, initial_state=initial_state)
    assert_close(output, want_output)
    assert not np.allclose(output, oracle(layer, x)[0], atol=1e-4)


@pytest.mark.parametrize("return_state", [False, True])
def test_statefulness_single_state(use_fused_kernel, return_state):
    """rnn_test::test_statefulness_single_state: the second call continues
    from the first call's final state."""
    x = np.ones((1, 2, 3), "float32")
    layer = build_sru(
        x.shape,
        units=2,
        stateful=True,
        return_state=return_state,
        use_fused_kernel=use_fused_kernel,
    )
    layer(x)
    _, c_first = oracle(layer, x)
    want_output, want_state = oracle(layer, x, c0=c_first)
    if return_state:
        output, state = layer(x)
        assert_close(state, want_state)
        assert_close(layer.states[0], want_state)
    else:
        output = layer(x)
    assert_close(output, want_output)


def test_go_backwards(use_fused_kernel):
    """rnn_test::test_go_backwards: go_backwards is the forward layer on the
    reversed input, also when a stateful layer continues from its state
    (Keras' second case, stateful with `return_state`, made go_backwards)."""
    x = sequence((2, 3, 4))
    layer = build_sru(
        x.shape, units=2, go_backwards=True, use_fused_kernel=use_fused_kernel
    )
    forward = twin(layer, x.shape, go_backwards=False)
    layer(x)
    assert_close(layer(x), forward(x[:, ::-1]))
    assert_close(layer(x), oracle(layer, x)[0])

    stateful = twin(layer, x.shape, stateful=True, return_state=True)
    stateful(x)
    output, state = stateful(x)
    _, c_first = oracle(layer, x)
    want_output, want_state = oracle(layer, x, c0=c_first)
    assert_close(output, want_output)
    assert_close(state, want_state)
    assert_close(output, forward(x[:, ::-1], initial_state=c_first))


def test_serialization():
    """rnn_test::test_serialization, for the default and a full config."""
    check_serialization(SRU(2, return_sequences=False))
    check_serialization(
        SRU(
            3,
            return_sequences=True,
            return_state=True,
            go_backwards=True,
            stateful=True,
            highway_bias=-1.5,
            rescale=False,
            dropout=0.25,
            layer_norm=True,
            projection_size=2,
            bidirectional=True,
            highway_projection=True,
            use_fused_kernel=False,
            seed=7,
            kernel_initializer="glorot_uniform",
            weight_c_initializer=keras.initializers.Constant(0.5),
            bias_initializer="ones",
            kernel_regularizer="l2",
            weight_c_regularizer="l1",
            bias_regularizer=keras.regularizers.L1L2(0.1, 0.2),
            kernel_constraint="max_norm",
            weight_c_constraint="non_neg",
            bias_constraint="unit_norm",
            name="full",
        )
    )


def test_stateful_batch_size_mismatch_raises(use_fused_kernel):
    """rnn_test::test_stateful_batch_size_mismatch_raises."""
    inputs = keras.Input(shape=(5, 3), batch_size=4)
    layer = SRU(2, stateful=True, use_fused_kernel=use_fused_kernel)
    model = keras.Model(inputs, layer(inputs))
    model(np.random.default_rng(0).uniform(size=(4, 5, 3)).astype("float32"))
    with pytest.raises(ValueError, match="batch size"):
        model(np.random.default_rng(1).uniform(size=(1, 5, 3)).astype("float32"))
