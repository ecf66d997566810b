"""The reference SRU recurrence against the NumPy transcription of eqs. (1)-(4)."""

import numpy as np
import pytest
import tensorflow as tf
from sru_numpy import sru_numpy  # tests/ is on pythonpath (pyproject)

from keras_ndsru.ops.sru_reference import sru_reference

DIRECTIONS = ("forward", "backward", "bidirectional")


def _inputs(rng, batch=3, steps=5, units=4, direction="forward", dtype="float64"):
    n_dir = 2 if direction == "bidirectional" else 1
    return dict(
        u=rng.normal(size=(batch, steps, n_dir * 3 * units)).astype(dtype),
        x_highway=rng.normal(size=(batch, steps, n_dir * units)).astype(dtype),
        weight_c=rng.normal(size=(n_dir * 2 * units,)).astype(dtype),
        bias=rng.normal(size=(n_dir * 2 * units,)).astype(dtype),
        c0=rng.normal(size=(batch, n_dir * units)).astype(dtype),
    )


def _masks(batch, steps):
    """Right-padded rows (incl. a full and an empty row) and a ragged pattern."""
    lengths = np.array([steps, 2, 0][:batch])
    right_padded = np.arange(steps)[None, :] < lengths[:, None]
    ragged = np.zeros((batch, steps), bool)
    ragged[:, ::2] = True
    ragged[-1, 1] = True
    return [None, right_padded, ragged]


def _assert_matches(got, want, rtol):
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g, np.float64), w, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("zero_output_for_mask", [True, False])
def test_forward_matches_numpy_with_masks(direction, zero_output_for_mask):
    rng = np.random.default_rng(0)
    args = _inputs(rng, direction=direction)
    kwargs = dict(alpha=1.7, direction=direction)
    kwargs["zero_output_for_mask"] = zero_output_for_mask
    for mask in _masks(3, 5):
        got = sru_reference(**args, mask=mask, **kwargs)
        want = sru_numpy(**args, mask=mask, **kwargs)
        _assert_matches(got, want, rtol=1e-12)


def test_masked_rows_carry_state_and_output_zero():
    rng = np.random.default_rng(1)
    args = _inputs(rng)
    mask = np.array([[True] * 5, [True, True, False, False, False], [False] * 5])
    h, h_last, c_last = sru_reference(**args, mask=mask)
    np.testing.assert_array_equal(np.asarray(h)[~mask], 0.0)
    np.testing.assert_allclose(np.asarray(c_last)[2], args["c0"][2])
    np.testing.assert_array_equal(np.asarray(h_last)[2], 0.0)
    np.testing.assert_allclose(np.asarray(h_last)[1], np.asarray(h)[1, 1])


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_float32_state_and_half_precision_inputs(direction):
    rng = np.random.default_rng(2)
    args = _inputs(rng, direction=direction, dtype="float16")
    mask = _masks(3, 5)[1]
    h, h_last, c_last = sru_reference(**args, mask=mask, alpha=1.3, direction=direction)
    assert h.dtype == tf.float16 and h_last.dtype == tf.float16
    assert c_last.dtype == tf.float32
    want = sru_numpy(**args, mask=mask, alpha=1.3, direction=direction)
    _assert_matches((h, h_last), want[:2], rtol=5e-3)
    np.testing.assert_allclose(c_last, want[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_gradients_match_numeric_differences_float64(direction):
    rng = np.random.default_rng(3)
    args = _inputs(rng, batch=2, steps=4, units=2, direction=direction)
    mask = np.array([[True, True, True, True], [True, True, False, False]])
    alpha = 1.4
    h_shape, s_shape = args["x_highway"].shape, args["c0"].shape
    w_h, w_last, w_c = (rng.normal(size=s) for s in (h_shape, s_shape, s_shape))

    def numpy_loss(values):
        h, h_last, c_last = sru_numpy(
            **values, mask=mask, alpha=alpha, direction=direction
        )
        return np.sum(h * w_h) + np.sum(h_last * w_last) + np.sum(c_last * w_c)

    variables = {k: tf.Variable(v) for k, v in args.items()}
    with tf.GradientTape() as tape:
        h, h_last, c_last = sru_reference(
            **variables, mask=mask, alpha=alpha, direction=direction
        )
        loss = tf.reduce_sum(h * w_h) + tf.reduce_sum(h_last * w_last)
        loss += tf.reduce_sum(c_last * w_c)
    np.testing.assert_allclose(loss.numpy(), numpy_loss(args), rtol=1e-12)
    grads = tape.gradient(loss, variables)
    eps = 1e-6
    for name, value in args.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            plus = {**args, name: value.copy()}
            minus = {**args, name: value.copy()}
            plus[name][index] += eps
            minus[name][index] -= eps
            numeric[index] = (numpy_loss(plus) - numpy_loss(minus)) / (2 * eps)
        np.testing.assert_allclose(
            grads[name].numpy(), numeric, rtol=1e-6, atol=1e-7, err_msg=name
        )


def test_tf_function_and_xla_match_eager():
    rng = np.random.default_rng(4)
    args = _inputs(rng, direction="bidirectional", dtype="float32")
    mask = _masks(3, 5)[1]
    eager = sru_reference(**args, mask=mask, alpha=1.2, direction="bidirectional")

    for for_export in (False, True):

        def run(u, x_highway, weight_c, bias, c0, for_export=for_export):
            return sru_reference(
                u,
                x_highway,
                weight_c,
                bias,
                c0,
                mask,
                1.2,
                "bidirectional",
                for_export=for_export,
            )

        for compiled in (tf.function(run), tf.function(run, jit_compile=True)):
            got = compiled(**args)
            for g, e in zip(got, eager):
                np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def _graph_op_types(concrete_function) -> set[str]:
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("zero_output_for_mask", [True, False])
def test_export_loop_gives_the_numbers_of_the_scan(direction, zero_output_for_mask):
    """`for_export=True` in a graph of unknown batch and length: a loop
    without TensorList ops (what TFLite lowers for dynamic shapes) whose
    outputs equal `tf.scan`'s bit for bit, for lengths around whole chunks
    of steps, an empty time axis and an empty batch, with ragged masks."""
    n_dir = 2 if direction == "bidirectional" else 1
    spec = [
        tf.TensorSpec((None, None, n_dir * 9), tf.float32),
        tf.TensorSpec((None, None, n_dir * 3), tf.float32),
        tf.TensorSpec((n_dir * 6,), tf.float32),
        tf.TensorSpec((n_dir * 6,), tf.float32),
        tf.TensorSpec((None, n_dir * 3), tf.float32),
        tf.TensorSpec((None, None), tf.bool),
    ]

    def graph(for_export):
        def run(u, x_highway, weight_c, bias, c0, mask):
            return sru_reference(
                u,
                x_highway,
                weight_c,
                bias,
                c0,
                mask,
                1.3,
                direction,
                zero_output_for_mask,
                for_export,
            )

        return tf.function(run, input_signature=spec).get_concrete_function()

    export, scan = graph(True), graph(False)
    export_ops, scan_ops = _graph_op_types(export), _graph_op_types(scan)
    assert not any("TensorList" in op for op in export_ops), export_ops
    assert "TensorListReserve" in scan_ops  # training graphs keep tf.scan
    rng = np.random.default_rng(8)
    for batch, steps in [(3, 5), (2, 16), (2, 17), (3, 40), (2, 0), (0, 4)]:
        args = _inputs(rng, batch, steps, 3, direction, "float32")
        mask = rng.random((batch, steps)) < 0.7
        for got, want in zip(export(**args, mask=mask), scan(**args, mask=mask)):
            np.testing.assert_array_equal(got, want)


def test_dynamic_shapes_under_tf_function():
    rng = np.random.default_rng(5)
    args = _inputs(rng, dtype="float32")
    spec = [
        tf.TensorSpec((None, None, 12), tf.float32),
        tf.TensorSpec((None, None, 4), tf.float32),
        tf.TensorSpec((8,), tf.float32),
        tf.TensorSpec((8,), tf.float32),
        tf.TensorSpec((None, 4), tf.float32),
    ]
    fn = tf.function(lambda *a: sru_reference(*a), input_signature=spec)
    got = fn(*args.values())
    _assert_matches(got, sru_numpy(**args), rtol=1e-5)
    # A time axis that is empty only at run time.
    empty = {**args, "u": args["u"][:, :0], "x_highway": args["x_highway"][:, :0]}
    h, h_last, c_last = fn(*empty.values())
    assert tuple(h.shape) == (3, 0, 4)
    np.testing.assert_array_equal(h_last, 0.0)
    np.testing.assert_array_equal(c_last, args["c0"])


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_empty_sequence_and_empty_batch(direction):
    rng = np.random.default_rng(6)
    empty_time = _inputs(rng, steps=0, direction=direction, dtype="float32")
    h, h_last, c_last = sru_reference(**empty_time, direction=direction)
    assert tuple(h.shape) == (3, 0, empty_time["c0"].shape[1])
    np.testing.assert_array_equal(h_last, 0.0)
    np.testing.assert_array_equal(c_last, empty_time["c0"])
    empty_batch = _inputs(rng, batch=0, direction=direction, dtype="float32")
    h, h_last, c_last = sru_reference(**empty_batch, direction=direction)
    assert tuple(h.shape) == (0, 5, empty_batch["c0"].shape[1])
    assert tuple(c_last.shape) == (0, empty_batch["c0"].shape[1])


def test_unknown_direction_is_a_clear_error():
    args = _inputs(np.random.default_rng(7), dtype="float32")
    with pytest.raises(ValueError, match="direction='sideways'"):
        sru_reference(**args, direction="sideways")
