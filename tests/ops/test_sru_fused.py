"""The fused SRU op against the keras.ops reference recurrence (the oracle,
itself checked against NumPy in test_sru_reference.py): forward outputs and
gradients on both paths, numeric gradients in float64, input validation."""

import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru.ops import sru_recurrence, sru_reference, will_use_fused_kernel

DIRECTIONS = ("forward", "backward", "bidirectional")
TOL = {"float64": 1e-10, "float32": 2e-5, "float16": 2e-2, "bfloat16": 1e-1}


@pytest.fixture(autouse=True)
def _library(fused_library):
    return fused_library


def make_inputs(batch, steps, units, direction, dtype="float64", seed=0):
    n_dir = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    state = "float64" if dtype == "float64" else "float32"
    return dict(
        u=tf.constant(rng.normal(size=(batch, steps, n_dir * 3 * units)), dtype),
        x_highway=tf.constant(rng.normal(size=(batch, steps, n_dir * units)), dtype),
        weight_c=tf.constant(rng.normal(size=(n_dir * 2 * units,)), state),
        bias=tf.constant(rng.normal(size=(n_dir * 2 * units,)), state),
        c0=tf.constant(rng.normal(size=(batch, n_dir * units)), state),
    )


def right_padded_mask(lengths, steps):
    return tf.sequence_mask(lengths, steps)


def outputs_and_grads(fn, inputs, **kwargs):
    """Outputs of `fn` and the gradients of a random linear loss of all three
    outputs with respect to every input."""
    names = [k for k in ("u", "x_highway", "weight_c", "bias", "c0") if k in inputs]
    with tf.GradientTape() as tape:
        tape.watch([inputs[k] for k in names])
        out = fn(**inputs, **kwargs)
        rng = np.random.default_rng(1)
        loss = sum(
            tf.reduce_sum(tf.cast(t, "float64") * rng.normal(size=t.shape)) for t in out
        )
    grads = tape.gradient(loss, [inputs[k] for k in names])
    return out, dict(zip(names, grads))


def assert_same_as_reference(inputs, tol, **kwargs):
    fused, fused_grads = outputs_and_grads(
        sru_recurrence, inputs, use_fused_kernel=True, **kwargs
    )
    ref, ref_grads = outputs_and_grads(sru_reference, inputs, **kwargs)
    for name, a, b in zip(("h", "h_last", "c_last"), fused, ref):
        assert a.dtype == b.dtype, name
        assert a.shape == b.shape, name
        np.testing.assert_allclose(
            np.asarray(tf.cast(a, "float64")),
            np.asarray(tf.cast(b, "float64")),
            rtol=tol,
            atol=tol,
            err_msg=name,
        )
    for name in ref_grads:
        np.testing.assert_allclose(
            np.asarray(tf.cast(fused_grads[name], "float64")),
            np.asarray(tf.cast(ref_grads[name], "float64")),
            rtol=tol,
            atol=tol,
            err_msg=f"grad {name}",
        )


def test_fused_path_is_taken():
    assert will_use_fused_kernel("auto")
    assert will_use_fused_kernel(True)
    assert not will_use_fused_kernel(False)
    with pytest.raises(ValueError, match="Received: use_fused_kernel='yes'"):
        will_use_fused_kernel("yes")


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_c0", [False, True])
def test_matches_reference_float64(direction, with_mask, with_c0):
    inputs = make_inputs(4, 6, 5, direction)
    if not with_c0:
        del inputs["c0"]
    mask = right_padded_mask([6, 3, 0, 1], 6) if with_mask else None
    assert_same_as_reference(
        inputs, TOL["float64"], mask=mask, alpha=1.25, direction=direction
    )


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_matches_reference_float32_multiple_unit_blocks(direction):
    # 300 units: more than one unit block per row in the CPU kernel, and a
    # remainder that is not a multiple of the vector width.
    inputs = make_inputs(2, 5, 300, direction, "float32")
    mask = right_padded_mask([5, 2], 5)
    assert_same_as_reference(
        inputs, TOL["float32"], mask=mask, alpha=1.7, direction=direction
    )


@pytest.mark.parametrize(
    "batch, steps, units",
    [(1, 4, 3), (3, 4, 1), (2, 200, 2), (1, 1, 1)],
    ids=["batch1", "units1", "long", "single_step"],
)
def test_matches_reference_edge_shapes(batch, steps, units):
    inputs = make_inputs(batch, steps, units, "bidirectional")
    assert_same_as_reference(inputs, TOL["float64"], direction="bidirectional")


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_empty_batch_and_empty_time(direction):
    for batch, steps in ((0, 4), (3, 0)):
        inputs = make_inputs(batch, steps, 3, direction)
        out = sru_recurrence(**inputs, direction=direction, use_fused_kernel=True)
        ref = sru_reference(**inputs, direction=direction)
        for a, b in zip(out, ref):
            assert a.shape == b.shape
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # No step: h_last is 0 and c_last the initial state.
    np.testing.assert_array_equal(np.asarray(out.c_last), np.asarray(inputs["c0"]))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs(dtype):
    inputs = make_inputs(3, 5, 4, "bidirectional", dtype)
    out = sru_recurrence(**inputs, direction="bidirectional", use_fused_kernel=True)
    assert out.h.dtype == dtype and out.h_last.dtype == dtype
    assert out.c_last.dtype == "float32"
    # Outputs and the gradients of every input, with a right-padded mask.
    assert_same_as_reference(
        inputs,
        TOL[dtype],
        direction="bidirectional",
        mask=right_padded_mask([5, 2, 0], 5),
    )


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_numeric_gradients_float64(direction):
    inputs = make_inputs(2, 4, 3, direction)
    lengths = [4, 2]
    names = list(inputs)

    def loss(*args):
        out = sru_recurrence(
            **dict(zip(names, args)),
            mask=right_padded_mask(lengths, 4),
            alpha=1.3,
            direction=direction,
            use_fused_kernel=True,
        )
        rng = np.random.default_rng(2)
        return sum(tf.reduce_sum(t * rng.normal(size=t.shape)) for t in out)

    theoretical, numerical = tf.test.compute_gradient(
        loss, list(inputs.values()), delta=1e-6
    )
    for name, a, b in zip(names, theoretical, numerical):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8, err_msg=name)


def test_alpha_not_representable_in_float32_and_as_tensor():
    inputs = make_inputs(2, 5, 3, "forward")
    alpha = float(np.sqrt(1 + 2 * np.exp(0.3)))
    assert float(np.float32(alpha)) != alpha
    assert_same_as_reference(inputs, 1e-12, alpha=alpha)
    # A variable alpha is only known at run time: still fused, and its
    # gradient matches the reference's.
    alpha_var = tf.Variable(alpha, dtype="float64")
    grads = []
    for fn, extra in (
        (sru_recurrence, {"use_fused_kernel": True}),
        (sru_reference, {}),
    ):
        with tf.GradientTape() as tape:
            out = fn(**inputs, alpha=alpha_var, **extra)
            loss = tf.reduce_sum(out.h * out.h)
        grads.append(float(tape.gradient(loss, alpha_var)))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10)


def test_gradient_of_one_output_only():
    # The other outputs are unconnected: their incoming gradients are None.
    inputs = make_inputs(2, 4, 3, "backward")
    grads = []
    for fn, extra in (
        (sru_recurrence, {"use_fused_kernel": True}),
        (sru_reference, {}),
    ):
        with tf.GradientTape() as tape:
            tape.watch(inputs["u"])
            out = fn(**inputs, direction="backward", **extra)
            loss = tf.reduce_sum(out.h_last)
        grads.append(np.asarray(tape.gradient(loss, inputs["u"])))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_inside_tf_function_with_right_padded_mask():
    inputs = make_inputs(3, 5, 4, "bidirectional", "float32")
    mask = right_padded_mask([5, 1, 3], 5)

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
    assert "KerasNdsru>SruForward" in op_types
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


def test_mask_not_right_padded():
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


def raw_inputs(**overrides):
    inputs = make_inputs(2, 3, 4, "forward", "float32")
    inputs["lengths"] = tf.constant([3, 1], tf.int32)
    inputs.update(overrides)
    return inputs


def run_raw(module, inputs, direction="forward"):
    return module.keras_ndsru_sru_forward(
        inputs["u"],
        inputs["x_highway"],
        inputs["weight_c"],
        inputs["bias"],
        inputs["c0"],
        inputs["lengths"],
        direction=direction,
    )


@pytest.mark.parametrize(
    "overrides, direction, message",
    [
        ({"u": tf.zeros((2, 3, 13))}, "forward", "multiple of n_dir \\* 3"),
        ({"u": tf.zeros((2, 3, 15))}, "bidirectional", "n_dir \\* 3 = 6"),
        ({"u": tf.zeros((2, 3))}, "forward", "`u` must have rank 3"),
        ({"x_highway": tf.zeros((2, 3, 5))}, "forward", "x_highway.shape=\\[2,3,5\\]"),
        ({"x_highway": tf.zeros((2, 4, 4))}, "forward", "`x_highway` must have shape"),
        ({"weight_c": tf.zeros((4,))}, "forward", "`weight_c` must have shape"),
        ({"bias": tf.zeros((9,))}, "forward", "`bias` must have shape"),
        ({"c0": tf.zeros((3, 4))}, "forward", "`c0` must have shape"),
        ({"lengths": tf.constant([3], tf.int32)}, "forward", "`lengths` must have"),
        ({"lengths": tf.constant([4, 1], tf.int32)}, "forward", "lengths\\[0\\]=4"),
        ({"lengths": tf.constant([3, -1], tf.int32)}, "forward", "lengths\\[1\\]=-1"),
    ],
)
def test_kernel_rejects_bad_shapes(fused_library, overrides, direction, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        run_raw(fused_library, raw_inputs(**overrides), direction)


def test_shape_function_rejects_bad_shapes_in_graphs(fused_library):
    inputs = raw_inputs(x_highway=tf.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        tf.function(lambda: run_raw(fused_library, inputs)).get_concrete_function()


def test_bad_dtypes_and_attrs_rejected(fused_library):
    bad_type = (TypeError, tf.errors.InvalidArgumentError)
    with pytest.raises(bad_type, match="int32 is not in the list of allowed"):
        run_raw(fused_library, raw_inputs(u=tf.zeros((2, 3, 12), tf.int32)))
    with pytest.raises(bad_type, match="half"):
        run_raw(fused_library, raw_inputs(weight_c=tf.zeros((8,), tf.float16)))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="sideways"):
        run_raw(fused_library, raw_inputs(), direction="sideways")
    inputs = make_inputs(2, 3, 4, "forward")
    with pytest.raises(ValueError, match="Received: u.dtype=int32"):
        sru_recurrence(
            **{**inputs, "u": tf.zeros((2, 3, 12), tf.int32)}, use_fused_kernel=True
        )
    with pytest.raises(ValueError, match="Received: u.shape=\\(2, 3, 13\\)"):
        sru_recurrence(
            **{**inputs, "u": tf.zeros((2, 3, 13), tf.float64)}, use_fused_kernel=True
        )
    with pytest.raises(ValueError, match="Received: direction='up'"):
        sru_recurrence(**inputs, direction="up", use_fused_kernel=True)


def test_backward_op_is_deterministic(fused_library):
    inputs = make_inputs(8, 16, 40, "bidirectional", "float32")

    def grads():
        with tf.GradientTape() as tape:
            tape.watch(inputs["weight_c"])
            out = sru_recurrence(**inputs, direction="bidirectional")
            loss = tf.reduce_sum(out.h)
        return np.asarray(tape.gradient(loss, inputs["weight_c"]))

    first = grads()
    for _ in range(3):
        np.testing.assert_array_equal(grads(), first)
