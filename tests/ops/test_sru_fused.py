"""The fused SRU op through its wrapper (`keras_ndsru.ops.sru_fused`) against
the keras.ops reference recurrence (the oracle, itself checked against NumPy
in test_sru_reference.py): forward outputs and gradients, numeric gradients
in float64, half precision, alpha folding, input validation, the gradient's
registration, and the warning for a GPU without CUDA kernels. The choice of
path and the mask policy are tested in test_sru_recurrence.py."""

import contextlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru.ops import FusedKernelWarning, sru_fused, sru_reference

DIRECTIONS = ("forward", "backward", "bidirectional")
TOL = {"float64": 1e-10, "float32": 2e-5, "float16": 2e-2, "bfloat16": 1e-1}


@pytest.fixture(autouse=True)
def _library(fused_library):
    return fused_library


def fused(
    u, x_highway, weight_c, bias, c0=None, mask=None, alpha=1.0, direction="forward"
):
    """The op through its wrapper, with the signature of `sru_reference`; the
    (right-padded) mask goes to the op as its lengths."""
    lengths = None if mask is None else tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    inputs = sru_fused.prepare_inputs(
        u, x_highway, weight_c, bias, c0, alpha, direction
    )
    return sru_fused.sru_fused(inputs, lengths)


def right_padded_mask(lengths, steps):
    return tf.sequence_mask(lengths, steps)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_c0", [False, True])
def test_matches_reference_float64(
    make_inputs, assert_matches_reference, direction, with_mask, with_c0
):
    inputs = make_inputs(4, 6, 5, direction)
    if not with_c0:
        del inputs["c0"]
    mask = right_padded_mask([6, 3, 0, 1], 6) if with_mask else None
    assert_matches_reference(
        fused, inputs, TOL["float64"], mask=mask, alpha=1.25, direction=direction
    )


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_matches_reference_float32_multiple_unit_blocks(
    make_inputs, assert_matches_reference, direction
):
    # 300 units: more than one unit block per row in the CPU kernel, and a
    # remainder that is not a multiple of the vector width.
    inputs = make_inputs(2, 5, 300, direction, "float32")
    mask = right_padded_mask([5, 2], 5)
    assert_matches_reference(
        fused, inputs, TOL["float32"], mask=mask, alpha=1.7, direction=direction
    )


@pytest.mark.parametrize(
    "batch, steps, units",
    [(1, 4, 3), (3, 4, 1), (2, 200, 2), (1, 1, 1)],
    ids=["batch1", "units1", "long", "single_step"],
)
def test_matches_reference_edge_shapes(
    make_inputs, assert_matches_reference, batch, steps, units
):
    inputs = make_inputs(batch, steps, units, "bidirectional")
    assert_matches_reference(fused, inputs, TOL["float64"], direction="bidirectional")


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_empty_batch_and_empty_time(make_inputs, direction):
    for batch, steps in ((0, 4), (3, 0)):
        inputs = make_inputs(batch, steps, 3, direction)
        out = fused(**inputs, direction=direction)
        ref = sru_reference(**inputs, direction=direction)
        for a, b in zip(out, ref):
            assert a.shape == b.shape
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # No step: h_last is 0 and c_last the initial state.
    np.testing.assert_array_equal(np.asarray(out.c_last), np.asarray(inputs["c0"]))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs(make_inputs, assert_matches_reference, dtype):
    inputs = make_inputs(3, 5, 4, "bidirectional", dtype)
    # On this CPU machine the op runs in float32 (the half kernels serve GPUs).
    prepared = sru_fused.prepare_inputs(**inputs, direction="bidirectional")
    assert prepared.op_dtype == tf.float32
    out = sru_fused.sru_fused(prepared)
    assert out.h.dtype == dtype and out.h_last.dtype == dtype
    assert out.c_last.dtype == "float32"
    # Outputs and the gradients of every input, with a right-padded mask.
    assert_matches_reference(
        fused,
        inputs,
        TOL[dtype],
        direction="bidirectional",
        mask=right_padded_mask([5, 2, 0], 5),
    )


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_numeric_gradients_float64(make_inputs, direction):
    inputs = make_inputs(2, 4, 3, direction)
    lengths = [4, 2]
    names = list(inputs)

    def loss(*args):
        out = fused(
            **dict(zip(names, args)),
            mask=right_padded_mask(lengths, 4),
            alpha=1.3,
            direction=direction,
        )
        rng = np.random.default_rng(2)
        return sum(tf.reduce_sum(t * rng.normal(size=t.shape)) for t in out)

    theoretical, numerical = tf.test.compute_gradient(
        loss, list(inputs.values()), delta=1e-6
    )
    for name, a, b in zip(names, theoretical, numerical):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8, err_msg=name)


def test_alpha_not_representable_in_float32_and_as_tensor(
    make_inputs, assert_matches_reference
):
    inputs = make_inputs(2, 5, 3, "forward")
    alpha = float(np.sqrt(1 + 2 * np.exp(0.3)))
    assert float(np.float32(alpha)) != alpha
    # Folded into x_highway: the float32 attribute would round it.
    assert sru_fused.prepare_inputs(**inputs, alpha=alpha).alpha == 1.0
    assert_matches_reference(fused, inputs, 1e-12, alpha=alpha)
    # A variable alpha is only known at run time: still fused, and its
    # gradient matches the reference's.
    alpha_var = tf.Variable(alpha, dtype="float64")
    grads = []
    for fn in (fused, sru_reference):
        with tf.GradientTape() as tape:
            out = fn(**inputs, alpha=alpha_var)
            loss = tf.reduce_sum(out.h * out.h)
        grads.append(float(tape.gradient(loss, alpha_var)))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10)


def test_gradient_of_one_output_only(make_inputs):
    # The other outputs are unconnected: their incoming gradients are None.
    inputs = make_inputs(2, 4, 3, "backward")
    grads = []
    for fn in (fused, sru_reference):
        with tf.GradientTape() as tape:
            tape.watch(inputs["u"])
            out = fn(**inputs, direction="backward")
            loss = tf.reduce_sum(out.h_last)
        grads.append(np.asarray(tape.gradient(loss, inputs["u"])))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_inside_tf_function(make_inputs):
    inputs = make_inputs(3, 5, 4, "bidirectional", "float32")
    lengths = tf.constant([5, 1, 3], tf.int32)

    @tf.function
    def run(u, lengths):
        with tf.GradientTape() as tape:
            tape.watch(u)
            prepared = sru_fused.prepare_inputs(
                u, *list(inputs.values())[1:], direction="bidirectional"
            )
            out = sru_fused.sru_fused(prepared, lengths)
            loss = tf.reduce_sum(out.h) + tf.reduce_sum(out.c_last)
        return out, tape.gradient(loss, u)

    out, grad = run(inputs["u"], lengths)
    graph = run.get_concrete_function(inputs["u"], lengths).graph
    op_types = {op.type for op in graph.get_operations()}
    assert {sru_fused.FORWARD_OP, "KerasNdsru>SruBackward"} <= op_types
    u = inputs["u"]
    with tf.GradientTape() as tape:
        tape.watch(u)
        mask = right_padded_mask(lengths, 5)
        ref = sru_reference(**inputs, mask=mask, direction="bidirectional")
        loss = tf.reduce_sum(ref.h) + tf.reduce_sum(ref.c_last)
    for a, b in zip(out, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), 2e-5, 2e-5)
    np.testing.assert_allclose(
        np.asarray(grad), np.asarray(tape.gradient(loss, u)), 2e-5, 2e-5
    )


# The gradient is registered by the loader, whoever loads the library: here
# only `fused_kernel_status()`, as a process serving a SavedModel does, and
# the raw op, without the wrapper's forward.
FRESH_PROCESS = """
import numpy as np, tensorflow as tf
from keras_ndsru.ops import fused_kernel_status, op_library, sru_reference

assert fused_kernel_status().path == "fused"
module = op_library.default_loader().module()
rng = np.random.default_rng(0)
u, x, w, b = (tf.constant(rng.normal(size=s)) for s in [(2, 3, 6), (2, 3, 2), 4, 4])
c0 = tf.zeros((2, 2), tf.float64)
lengths = tf.constant([3, 2], tf.int32)
with tf.GradientTape(persistent=True) as tape:
    tape.watch([u, x, w, b])
    h = module.keras_ndsru_sru_forward(u, x, w, b, c0, lengths)[0]
    ref = sru_reference(u, x, w, b, c0, tf.sequence_mask(lengths, 3)).h
for a, e in zip(tape.gradient(h, [u, x, w, b]), tape.gradient(ref, [u, x, w, b])):
    np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)
print("gradient ok")
"""


def test_gradient_is_registered_when_the_library_loads():
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gradient ok" in result.stdout


def test_gradient_is_registered_once(make_inputs):
    # A second loader of the same library registers nothing (TensorFlow
    # refuses a second gradient for one op type) and the gradient still runs.
    sru_fused.register_gradient(object())
    inputs = make_inputs(2, 3, 2, "forward")
    with tf.GradientTape() as tape:
        tape.watch(inputs["u"])
        loss = tf.reduce_sum(fused(**inputs).h)
    assert tape.gradient(loss, inputs["u"]) is not None


def raw_inputs(make_inputs, **overrides):
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
def test_kernel_rejects_bad_shapes(
    fused_library, make_inputs, overrides, direction, message
):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        run_raw(fused_library, raw_inputs(make_inputs, **overrides), direction)


def test_shape_function_rejects_bad_shapes_in_graphs(fused_library, make_inputs):
    inputs = raw_inputs(make_inputs, x_highway=tf.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        tf.function(lambda: run_raw(fused_library, inputs)).get_concrete_function()


def test_bad_dtypes_and_attrs_rejected(fused_library, make_inputs):
    bad_type = (TypeError, tf.errors.InvalidArgumentError)
    with pytest.raises(bad_type, match="int32 is not in the list of allowed"):
        run_raw(
            fused_library, raw_inputs(make_inputs, u=tf.zeros((2, 3, 12), tf.int32))
        )
    with pytest.raises(bad_type, match="half"):
        run_raw(
            fused_library, raw_inputs(make_inputs, weight_c=tf.zeros((8,), tf.float16))
        )
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="sideways"):
        run_raw(fused_library, raw_inputs(make_inputs), direction="sideways")
    inputs = make_inputs(2, 3, 4, "forward")
    with pytest.raises(ValueError, match="Received: u.dtype=int32"):
        sru_fused.prepare_inputs(**{**inputs, "u": tf.zeros((2, 3, 12), tf.int32)})
    with pytest.raises(ValueError, match="Received: u.shape=\\(2, 3, 13\\)"):
        sru_fused.prepare_inputs(**{**inputs, "u": tf.zeros((2, 3, 13), tf.float64)})
    with pytest.raises(ValueError, match="Received: direction='up'"):
        sru_fused.prepare_inputs(**inputs, direction="up")


def test_backward_op_is_deterministic(make_inputs):
    inputs = make_inputs(8, 16, 40, "bidirectional", "float32")

    def grads():
        with tf.GradientTape() as tape:
            tape.watch(inputs["weight_c"])
            out = fused(**inputs, direction="bidirectional")
            loss = tf.reduce_sum(out.h)
        return np.asarray(tape.gradient(loss, inputs["weight_c"]))

    first = grads()
    for _ in range(3):
        np.testing.assert_array_equal(grads(), first)


# A GPU visible to TensorFlow while the op library has no CUDA kernels: the
# fused CPU op still runs (TensorFlow copies the tensors to the host and back)
# with ONE warning saying how to avoid the copies. Faked on this CPU machine.

NO_CUDA_MESSAGE = "a GPU is visible but the op library was built without CUDA"


def fused_warnings_of_two_traced_calls(make_inputs, device=None):
    """The FusedKernelWarnings of two traces (as two `model.fit` calls would
    do), each checked against the reference; graphs leave the device unset
    like a GPU program does, unless `device` scopes the call inside them."""
    inputs = make_inputs(2, 4, 3, "forward", "float32")

    def call():
        with tf.device(device) if device else contextlib.nullcontext():
            return fused(**inputs)

    expected = sru_reference(**inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            out = tf.function(call)()
            np.testing.assert_allclose(out.h, expected.h, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(out.c_last, expected.c_last, rtol=1e-6)
    return [w for w in caught if w.category is FusedKernelWarning]


def test_gpu_without_cuda_kernels_warns_once_and_runs_the_fused_op(
    monkeypatch, make_inputs, fake_gpu, loaded_loader
):
    loader = loaded_loader(cuda=False)
    fake_gpu()
    calls = []
    real_forward = loader.module().keras_ndsru_sru_forward
    monkeypatch.setattr(
        loader.module(),
        "keras_ndsru_sru_forward",
        lambda *a, **k: calls.append(1) or real_forward(*a, **k),
    )
    caught = fused_warnings_of_two_traced_calls(make_inputs)
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert (
        NO_CUDA_MESSAGE in message
        and "(python -m keras_ndsru.ops.build: --cpu-only)" in message
    )
    assert "use_fused_kernel=False" in message and "nvcc on PATH" in message
    assert len(calls) == 2  # the fused op ran


@pytest.mark.parametrize(
    ("cuda", "gpu", "device"),
    [(True, True, None), (False, False, None), (False, True, "/CPU:0")],
    ids=["cuda_kernels", "no_gpu", "explicit_cpu_scope"],
)
def test_no_warning_when_the_op_runs_where_it_should(
    make_inputs, fake_gpu, loaded_loader, cuda, gpu, device
):
    loaded_loader(cuda=cuda)
    fake_gpu(visible=gpu)
    assert fused_warnings_of_two_traced_calls(make_inputs, device) == []
