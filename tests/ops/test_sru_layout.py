"""The conventions shared by the layer, the dispatch, the op's wrapper and the
reference: directions, the state dtype, the outputs and a static alpha."""

import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru.ops import SRUOutputs
from keras_ndsru.ops.sru_layout import (
    FusedCall,
    fused_call,
    num_directions,
    state_dtype,
    static_alpha,
)


def test_num_directions():
    assert num_directions("forward") == num_directions("backward") == 1
    assert num_directions("bidirectional") == 2
    with pytest.raises(ValueError, match="Received: direction='sideways'"):
        num_directions("sideways")


@pytest.mark.parametrize(
    "dtype, state",
    [
        ("float16", "float32"),
        ("bfloat16", "float32"),
        ("float32", "float32"),
        ("float64", "float64"),
        (tf.float64, "float64"),
        (np.float16, "float32"),
    ],
)
def test_state_dtype(dtype, state):
    assert state_dtype(dtype) == state


def test_fused_call():
    asked = []

    def on_cpu(answer):
        return lambda: asked.append(answer) or answer

    shape = (2, 5, 2 * 3 * 4)
    assert fused_call("float64", shape, "bidirectional", on_cpu(True)) == FusedCall(
        8, "float64", "float64"
    )
    assert fused_call("float32", shape, "forward", on_cpu(True)) == FusedCall(
        8, "float32", "float32"
    )
    assert asked == []  # the device matters for half precision only
    # Half precision runs the op in float32 on the CPU, as is on a GPU.
    for dtype in ("float16", "bfloat16"):
        assert fused_call(dtype, shape, "forward", on_cpu(True)).op_dtype == "float32"
        assert fused_call(dtype, shape, "forward", on_cpu(False)).op_dtype == dtype
        assert fused_call(dtype, shape, "forward", on_cpu(False)).state_dtype == (
            "float32"
        )


@pytest.mark.parametrize(
    "dtype, shape, direction, message",
    [
        ("int32", (2, 5, 12), "forward", "Received: u.dtype=int32"),
        ("float32", (2, 5, 13), "forward", r"Received: u.shape=\(2, 5, 13\)"),
        ("float32", (2, 5, 9), "bidirectional", "divisible by 6"),
        ("float32", (2, 12), "forward", r"Received: u.shape=\(2, 12\)"),
        ("float32", (2, 5, None), "forward", "known last dimension"),
        ("float32", None, "forward", "Received: u.shape=<unknown>"),
        ("float32", (2, 5, 12), "up", "Received: direction='up'"),
    ],
)
def test_fused_call_rejects(dtype, shape, direction, message):
    with pytest.raises(ValueError, match=message):
        fused_call(dtype, shape, direction, lambda: True)


def test_static_alpha():
    for alpha in (2, 1.5, np.float32(1.5), np.int64(2), tf.constant(1.5, "float64")):
        assert static_alpha(alpha) == float(alpha)
        assert isinstance(static_alpha(alpha), float)
    # Known only at run time: a variable, or a tensor traced in a graph.
    assert static_alpha(tf.Variable(1.5)) is None
    traced = []
    tf.function(lambda a: traced.append(static_alpha(a)) or a)(tf.constant(1.5))
    assert traced == [None]


def test_outputs_are_a_named_tuple():
    out = SRUOutputs(1, 2, 3)
    assert out._fields == ("h", "h_last", "c_last")
    assert tuple(out) == (1, 2, 3)
