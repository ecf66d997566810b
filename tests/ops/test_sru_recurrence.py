"""The dispatch of the SRU recurrence: which path each `use_fused_kernel`
choice runs, and the mask policy (right-padded masks fused, others the
reference under "auto" and an error under True, eagerly and in graphs). The
loader's refusals and their one warning are in test_op_library.py, the op's
numbers in test_sru_fused.py."""

import functools
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru.ops import (
    sru_fused,
    sru_recurrence,
    sru_reference,
    will_use_fused_kernel,
)

DIRECTIONS = ("forward", "backward", "bidirectional")


@pytest.fixture(autouse=True)
def _library(fused_library):
    return fused_library


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the calls of the op's wrapper."""
    calls = []
    real = sru_fused.sru_fused
    monkeypatch.setattr(
        sru_fused, "sru_fused", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    return calls


def test_choices():
    assert will_use_fused_kernel("auto")
    assert will_use_fused_kernel(True)
    assert not will_use_fused_kernel(False)
    with pytest.raises(ValueError, match="Received: use_fused_kernel='yes'"):
        will_use_fused_kernel("yes")
    with pytest.raises(ValueError, match="Received: use_fused_kernel='yes'"):
        sru_recurrence(
            np.zeros((1, 2, 3)),
            np.zeros((1, 2, 1)),
            *[np.zeros(2)] * 2,
            use_fused_kernel="yes",
        )


@pytest.mark.parametrize(
    "use_fused_kernel, fused", [("auto", True), (True, True), (False, False)]
)
def test_each_choice_runs_its_path(make_inputs, fused_calls, use_fused_kernel, fused):
    inputs = make_inputs(2, 4, 3, "bidirectional")
    out = sru_recurrence(
        **inputs, direction="bidirectional", use_fused_kernel=use_fused_kernel
    )
    ref = sru_reference(**inputs, direction="bidirectional")
    assert len(fused_calls) == int(fused)
    for a, b in zip(out, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), 1e-10, 1e-12)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_right_padded_mask_runs_the_fused_op(
    make_inputs, assert_matches_reference, fused_calls, direction
):
    inputs = make_inputs(4, 6, 5, direction)
    mask = tf.sequence_mask([6, 3, 0, 1], 6)
    strict = functools.partial(sru_recurrence, use_fused_kernel=True)
    assert_matches_reference(
        strict, inputs, 1e-10, mask=mask, alpha=1.25, direction=direction
    )
    assert fused_calls == [1]


def test_right_padded_mask_inside_tf_function(make_inputs):
    inputs = make_inputs(3, 5, 4, "bidirectional", "float32")
    mask = tf.sequence_mask([5, 1, 3], 5)

    @tf.function
    def run(u, mask):
        with tf.GradientTape() as tape:
            tape.watch(u)
            out = sru_recurrence(
                u, *list(inputs.values())[1:], mask=mask, direction="bidirectional"
            )
            loss = tf.reduce_sum(out.h) + tf.reduce_sum(out.c_last)
        return out, tape.gradient(loss, u)

    out, grad = run(inputs["u"], mask)
    graph = run.get_concrete_function(inputs["u"], mask).graph
    op_types = {op.type for op in graph.get_operations()}
    op_types |= {
        node.op for f in graph.as_graph_def().library.function for node in f.node_def
    }
    assert sru_fused.FORWARD_OP in op_types
    u = inputs["u"]
    with tf.GradientTape() as tape:
        tape.watch(u)
        ref = sru_reference(**inputs, mask=mask, direction="bidirectional")
        loss = tf.reduce_sum(ref.h) + tf.reduce_sum(ref.c_last)
    for a, b in zip(out, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), 2e-5, 2e-5)
    np.testing.assert_allclose(
        np.asarray(grad), np.asarray(tape.gradient(loss, u)), 2e-5, 2e-5
    )


def test_mask_not_right_padded(make_inputs):
    inputs = make_inputs(2, 4, 3, "forward")
    left_padded = tf.constant([[False, True, True, True], [True, True, True, True]])
    ref = sru_reference(**inputs, mask=left_padded)
    # "auto": the reference runs, eagerly and inside a graph (tf.cond).
    out = sru_recurrence(**inputs, mask=left_padded)
    graph_out = tf.function(lambda m: sru_recurrence(**inputs, mask=m))(left_padded)
    for a, b, c in zip(out, graph_out, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), 1e-12)
        np.testing.assert_allclose(np.asarray(b), np.asarray(c), 1e-12)
    # True: a clear error.
    with pytest.raises(ValueError, match="right-padded mask"):
        sru_recurrence(**inputs, mask=left_padded, use_fused_kernel=True)
    strict = tf.function(
        lambda m: sru_recurrence(**inputs, mask=m, use_fused_kernel=True)
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="right-padded mask"):
        strict(left_padded)


def test_bad_arguments_are_clear_errors(make_inputs):
    inputs = make_inputs(2, 4, 3, "forward")
    with pytest.raises(ValueError, match=r"Received: mask.shape=\(2, 4, 1\)"):
        sru_recurrence(**inputs, mask=tf.ones((2, 4, 1), tf.bool))
    # The direction is checked first, on either path.
    for use_fused_kernel in ("auto", False):
        with pytest.raises(ValueError, match="Received: direction='up'"):
            sru_recurrence(
                **inputs,
                alpha=np.inf,
                direction="up",
                use_fused_kernel=use_fused_kernel,
            )


@pytest.mark.parametrize("use_fused_kernel", ["auto", False])
def test_recurrence_rejects_an_alpha_the_state_dtype_cannot_hold(use_fused_kernel):
    u, x, w = np.zeros((1, 2, 3)), np.ones((1, 2, 1)), np.zeros(2)
    for alpha in (float("inf"), float("nan"), 1e39):
        with pytest.raises(ValueError, match=re.escape(f"Received: alpha={alpha!r}")):
            sru_recurrence(
                u.astype("float32"),
                x,
                w,
                w,
                alpha=alpha,
                use_fused_kernel=use_fused_kernel,
            )
    # A float64 state holds 1e39: the fused path folds it into x_highway.
    h = sru_recurrence(u, x, w, w, alpha=1e39, use_fused_kernel=use_fused_kernel).h
    np.testing.assert_array_equal(h, np.full((1, 2, 1), 0.5e39))
