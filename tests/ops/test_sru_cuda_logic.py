"""The CUDA kernels' logic, checked on CPU (CI has no GPU).

`custom_ops/sru/harness/host_driver.cc` compiles `custom_ops/sru/kernels/
sru_kernels.cu` as host C++ (`host_emulation.h` supplies `blockIdx`,
`threadIdx`, ... and 16-bit float types) and runs every kernel over all of its
(block, thread) indices with the launch configuration the GPU launcher picks.
Its outputs are compared with `keras_ndsru.ops.sru_reference` (the oracle) in
float64 for forward values and gradients, for every storage type, both
directions in one launch, lengths/masks and sizes that are not multiples of
the block size. Outputs are poisoned with NaN and followed by guard elements
so unwritten outputs and out-of-bounds writes fail.
"""

from __future__ import annotations

import ctypes
import json
import pathlib
import shutil
import subprocess
import zlib

import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru.ops.sru_reference import sru_reference

ROOT = pathlib.Path(__file__).resolve().parents[2]
HARNESS = ROOT / "custom_ops" / "sru" / "harness"
KERNELS = ROOT / "custom_ops" / "sru" / "kernels"
CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
GUARD = 5
DTYPE_CODES = {"float32": 0, "float16": 1, "bfloat16": 2, "float64": 3}
DIRECTIONS = {"forward": (1, 0), "backward": (1, 1), "bidirectional": (2, 2)}
# Max |kernel - oracle| / (1 + |oracle|) per storage type (outputs rounded to
# the storage type; the state is float32, float64 for float64).
TOLERANCE = {"float64": 1e-12, "float32": 2e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if CXX is None:
        pytest.skip("no C++ compiler")
    out = tmp_path_factory.mktemp("sru_host") / "libsru_host.so"
    cmd = [CXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall"]
    cmd += [str(HARNESS / "host_driver.cc"), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(out))
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
    lib.sru_host_forward.restype = ctypes.c_char_p
    lib.sru_host_forward.argtypes = [ctypes.c_int, i64, i64, i64, i64, i32]
    lib.sru_host_forward.argtypes += [p] * 6 + [ctypes.c_double] + [p] * 4
    lib.sru_host_backward.restype = ctypes.c_char_p
    lib.sru_host_backward.argtypes = [ctypes.c_int, i64, i64, i64, i64, i32]
    lib.sru_host_backward.argtypes += [p, ctypes.c_double, p]
    lib.sru_host_set_multiprocessors.argtypes = [ctypes.c_int]
    lib.sru_host_launch_config.argtypes = [i64, ctypes.c_int, p, p]
    lib.sru_host_last_launch.argtypes = [p, p, p]
    lib.sru_host_column_of_thread.argtypes = [i64, i64, i64, i64, p]
    lib.sru_host_set_multiprocessors(132)
    return lib


# -- 16-bit storage: float16 is numpy's, bfloat16 is carried as uint16 bits.


def to_storage(x, dtype):
    x = np.asarray(x)
    if dtype == "bfloat16":
        bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
        return bits.astype(np.uint16)
    return np.ascontiguousarray(x, dtype)


def from_storage(x, dtype):
    if dtype == "bfloat16":
        return (x.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return x.astype(np.float64)


def state_type(dtype):
    return np.float64 if dtype == "float64" else np.float32


class Buffer:
    """A NaN-poisoned output with guard elements after it."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype
        n = int(np.prod(shape))
        if dtype == "bfloat16":
            self.data = np.full(n + GUARD, 0x7FC0, np.uint16)  # NaN bits
        else:
            self.data = np.full(n + GUARD, np.nan, dtype)
        self.n = n

    @property
    def ptr(self):
        return self.data.ctypes.data

    def value(self):
        guard = from_storage(self.data[self.n :], self.dtype)
        assert np.isnan(guard).all(), "write past the end of an output"
        out = from_storage(self.data[: self.n], self.dtype).reshape(self.shape)
        assert not np.isnan(out).any(), "an output element was never written"
        return out

    def raw(self):
        return self.data[: self.n].reshape(self.shape)


def ptr(x):
    return None if x is None else x.ctypes.data


def random_case(rng, batch, steps, units, direction, dtype, lengths="ragged"):
    n_dir = DIRECTIONS[direction][0]
    width = n_dir * units
    state = state_type(dtype)
    # Quantize to the storage type first, so the oracle sees the same inputs.
    u = to_storage(rng.normal(size=(batch, steps, 3 * width)), dtype)
    xh = to_storage(rng.normal(size=(batch, steps, width)), dtype)
    case = {
        "u": u,
        "x_highway": xh,
        "weight_c": rng.normal(scale=0.5, size=2 * width).astype(state),
        "bias": rng.normal(scale=0.5, size=2 * width).astype(state),
        "c0": rng.normal(size=(batch, width)).astype(state),
        "grad_h": to_storage(rng.normal(size=(batch, steps, width)), dtype),
        "grad_h_last": to_storage(rng.normal(size=(batch, width)), dtype),
        "grad_c_last": rng.normal(size=(batch, width)).astype(state),
    }
    if lengths == "ragged":
        lens = rng.integers(0, steps + 1, size=batch).astype(np.int32)
        if batch >= 2:
            lens[0], lens[1] = steps, 0
        case["lengths"] = lens
    else:
        case["lengths"] = None
    return case


def kernel_forward(lib, case, direction, dtype, alpha, with_c0=True):
    n_dir, reverse_mask = DIRECTIONS[direction]
    batch, steps, width3 = case["u"].shape
    units = width3 // (3 * n_dir)
    state = "float64" if dtype == "float64" else "float32"
    h = Buffer((batch, steps, n_dir * units), dtype)
    c_seq = Buffer((batch, steps, n_dir * units), state)
    h_last = Buffer((batch, n_dir * units), dtype)
    c_last = Buffer((batch, n_dir * units), state)
    error = lib.sru_host_forward(
        DTYPE_CODES[dtype], batch, steps, n_dir, units, reverse_mask,
        ptr(case["u"]), ptr(case["x_highway"]), ptr(case["weight_c"]),
        ptr(case["bias"]), ptr(case["c0"]) if with_c0 else None,
        ptr(case["lengths"]), alpha, h.ptr, c_seq.ptr, h_last.ptr, c_last.ptr,
    )  # fmt: skip
    assert error is None, error
    return h, c_seq, h_last, c_last


def kernel_backward(lib, case, c_seq, direction, dtype, alpha, with_c0=True):
    n_dir, reverse_mask = DIRECTIONS[direction]
    batch, steps, width3 = case["u"].shape
    units = width3 // (3 * n_dir)
    width = n_dir * units
    state = "float64" if dtype == "float64" else "float32"
    outs = [
        Buffer((batch, steps, 3 * width), dtype),
        Buffer((batch, steps, width), dtype),
        Buffer((2 * width,), state),
        Buffer((2 * width,), state),
        Buffer((batch, width), state),
        Buffer((batch, 2 * width), state),
        Buffer((batch, 2 * width), state),
    ]
    names = ["u", "x_highway", "weight_c", "bias", "c0", "lengths"]
    ins = [ptr(case[k]) for k in names]
    if not with_c0:
        ins[4] = None
    ins += [ptr(c_seq), ptr(case["grad_h"])]
    ins += [ptr(case["grad_h_last"]), ptr(case["grad_c_last"])]
    error = lib.sru_host_backward(
        DTYPE_CODES[dtype], batch, steps, n_dir, units, reverse_mask,
        (ctypes.c_void_p * len(ins))(*ins), alpha,
        (ctypes.c_void_p * len(outs))(*[o.ptr for o in outs]),
    )  # fmt: skip
    assert error is None, error
    return outs


def oracle(case, direction, dtype, alpha, with_c0=True):
    """sru_reference in float64 on the (quantized) inputs, and its gradients
    for loss = <h, grad_h> + <h_last, grad_h_last> + <c_last, grad_c_last>."""

    def f64(name):
        value = case[name]
        if name in ("u", "x_highway", "grad_h", "grad_h_last"):
            value = from_storage(value, dtype)
        return tf.constant(np.asarray(value, np.float64))

    batch, steps = case["u"].shape[:2]
    lengths = case["lengths"]
    mask = None
    if lengths is not None:
        mask = np.arange(steps)[None, :] < lengths[:, None]
    inputs = [f64(k) for k in ("u", "x_highway", "weight_c", "bias", "c0")]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = sru_reference(
            *inputs[:4],
            c0=inputs[4] if with_c0 else None,
            mask=mask,
            alpha=alpha,
            direction=direction,
        )
        loss = (
            tf.reduce_sum(out.h * f64("grad_h"))
            + tf.reduce_sum(out.h_last * f64("grad_h_last"))
            + tf.reduce_sum(out.c_last * f64("grad_c_last"))
        )
    grads = tape.gradient(loss, inputs, unconnected_gradients="zero")
    values = [out.h, out.h_last, out.c_last]
    return [v.numpy() for v in values], [g.numpy() for g in grads]


def assert_close(actual, expected, dtype, what):
    err = np.max(np.abs(actual - expected) / (1.0 + np.abs(expected)), initial=0)
    assert err <= TOLERANCE[dtype], f"{what}: max scaled error {err:.3g}"


def check_case(lib, case, direction, dtype, alpha=1.3, with_c0=True):
    h, c_seq, h_last, c_last = kernel_forward(
        lib, case, direction, dtype, alpha, with_c0
    )
    (r_h, r_h_last, r_c_last), r_grads = oracle(case, direction, dtype, alpha, with_c0)
    assert_close(h.value(), r_h, dtype, "h")
    assert_close(h_last.value(), r_h_last, dtype, "h_last")
    assert_close(c_last.value(), r_c_last, dtype, "c_last")
    check_c_seq(case, direction, c_seq.value(), c_last.value())

    outs = kernel_backward(lib, case, c_seq.raw(), direction, dtype, alpha, with_c0)
    names = ["grad_u", "grad_x_highway", "grad_weight_c", "grad_bias", "grad_c0"]
    for name, out, ref in zip(names, outs[:5], r_grads):
        if name == "grad_c0" and not with_c0:
            continue  # written, but there is no input to compare with
        assert_close(out.value(), ref, dtype, name)
    check_batch_sum(outs, dtype)


def check_c_seq(case, direction, c_seq, c_last):
    """Padded steps carry the final state; the last processed step holds it."""
    n_dir, reverse_mask = DIRECTIONS[direction]
    batch, steps, width = c_seq.shape
    units = width // n_dir
    lengths = case["lengths"]
    for b in range(batch):
        n = steps if lengths is None else int(lengths[b])
        for k in range(n_dir):
            cols = slice(k * units, (k + 1) * units)
            np.testing.assert_array_equal(c_seq[b, n:, cols], np.broadcast_to(
                c_last[b, cols], c_seq[b, n:, cols].shape))  # fmt: skip
            if n > 0:
                t = 0 if (reverse_mask >> k) & 1 else n - 1
                np.testing.assert_array_equal(c_seq[b, t, cols], c_last[b, cols])


def check_batch_sum(outs, dtype):
    """The batch-sum kernel adds the per-row partials in batch order."""
    state = state_type(dtype)
    for total, partial in ((outs[2], outs[5]), (outs[3], outs[6])):
        acc = np.zeros(partial.shape[1], state)
        for row in partial.value().astype(state):
            acc = (acc + row).astype(state)
        np.testing.assert_array_equal(total.value(), acc.astype(np.float64))


@pytest.mark.parametrize("direction", ["forward", "backward", "bidirectional"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_reference_ragged_lengths(lib, direction, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{direction}-{dtype}".encode()))
    # 3 * n_dir * 37 columns: not a multiple of any block size.
    case = random_case(
        rng, batch=3, steps=7, units=37, direction=direction, dtype=dtype
    )
    check_case(lib, case, direction, dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_half_precision_storage(lib, dtype, direction):
    rng = np.random.default_rng(7)
    case = random_case(
        rng, batch=4, steps=9, units=19, direction=direction, dtype=dtype
    )
    check_case(lib, case, direction, dtype, alpha=1.0)


def test_no_c0_no_lengths(lib):
    rng = np.random.default_rng(3)
    case = random_case(
        rng, 2, 6, 5, "bidirectional", "float32", lengths=None
    )  # fmt: skip
    check_case(lib, case, "bidirectional", "float32", with_c0=False)


@pytest.mark.parametrize(
    "batch,steps,units,direction",
    [(1, 1, 1, "forward"), (1, 40, 1, "bidirectional"), (2, 3, 300, "backward")],
)
def test_edge_sizes(lib, batch, steps, units, direction):
    rng = np.random.default_rng(batch * 1000 + steps + units)
    case = random_case(rng, batch, steps, units, direction, "float64")
    check_case(lib, case, direction, "float64")


def test_one_launch_covers_both_directions(lib):
    """Both directions run in the same launch, with one thread per column."""
    rng = np.random.default_rng(11)
    batch, units = 5, 70
    case = random_case(rng, batch, 4, units, "bidirectional", "float32")
    before = last_launch(lib)[2]
    kernel_forward(lib, case, "bidirectional", "float32", 1.0)
    blocks, threads, launches = last_launch(lib)
    assert launches == before + 1
    assert (blocks - 1) * threads < batch * 2 * units <= blocks * threads


@pytest.mark.parametrize("multiprocessors", [1, 132])
def test_block_size_does_not_change_results(lib, multiprocessors):
    rng = np.random.default_rng(5)
    case = random_case(rng, 6, 5, 45, "bidirectional", "float32")
    lib.sru_host_set_multiprocessors(multiprocessors)
    try:
        h = kernel_forward(lib, case, "bidirectional", "float32", 1.0)[0].value()
        threads = last_launch(lib)[1]
    finally:
        lib.sru_host_set_multiprocessors(132)
    assert threads == (256 if multiprocessors == 1 else 64)
    r_h = oracle(case, "bidirectional", "float32", 1.0)[0][0]
    assert_close(h, r_h, "float32", "h")


def last_launch(lib):
    blocks, threads, launches = ctypes.c_int64(), ctypes.c_int(), ctypes.c_int64()
    lib.sru_host_last_launch(
        ctypes.byref(blocks), ctypes.byref(threads), ctypes.byref(launches)
    )
    return blocks.value, threads.value, launches.value


def test_threads_map_to_columns_unit_fastest(lib):
    """Consecutive threads take consecutive units of one (batch, direction)
    row (coalesced loads), and every column exactly once."""
    batch, dirs, units = 3, 2, 5
    column = (ctypes.c_int64 * 3)()
    seen = []
    for thread in range(batch * dirs * units):
        lib.sru_host_column_of_thread(batch, dirs, units, thread, column)
        seen.append(tuple(column))
    expected = [
        (b, k, j) for b in range(batch) for k in range(dirs) for j in range(units)
    ]
    assert seen == expected


def test_launch_config_covers_every_column(lib):
    blocks, threads = ctypes.c_int64(), ctypes.c_int()
    for columns in [1, 63, 64, 65, 255, 256, 257, 8192, 33792, 10**6 + 3]:
        for sms in [1, 80, 132]:
            lib.sru_host_launch_config(
                columns, sms, ctypes.byref(blocks), ctypes.byref(threads)
            )
            b, t = blocks.value, threads.value
            assert t in (64, 128, 256)
            assert (b - 1) * t < columns <= b * t
            if t < 256:  # shrunk only while there are too few blocks
                assert -(-columns // (2 * t)) < 2 * sms


def test_empty_batch_and_time(lib):
    rng = np.random.default_rng(2)
    # Batch 0: no column launch, but the batch sum still writes zeros.
    case = random_case(rng, 0, 4, 3, "bidirectional", "float32", lengths=None)
    h, c_seq, _, _ = kernel_forward(lib, case, "bidirectional", "float32", 1.0)
    outs = kernel_backward(lib, case, c_seq.raw(), "bidirectional", "float32", 1.0)
    np.testing.assert_array_equal(outs[2].value(), 0.0)
    np.testing.assert_array_equal(outs[3].value(), 0.0)
    # Time 0: h_last = 0, c_last = c0, grad_c0 = grad_c_last, no parameter grads.
    case = random_case(rng, 3, 0, 4, "forward", "float32", lengths=None)
    _, c_seq, h_last, c_last = kernel_forward(lib, case, "forward", "float32", 1.0)
    np.testing.assert_array_equal(h_last.value(), 0.0)
    np.testing.assert_array_equal(c_last.value(), case["c0"])
    outs = kernel_backward(lib, case, c_seq.raw(), "forward", "float32", 1.0)
    np.testing.assert_array_equal(outs[4].value(), case["grad_c_last"])
    np.testing.assert_array_equal(outs[2].value(), 0.0)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_nvcc_compiles_the_kernels(tmp_path):
    cmd = ["nvcc", "-std=c++17", "-O3", "-arch=sm_90", "-Xptxas", "-v", "-c"]
    cmd += [str(KERNELS / "sru_kernels.cu"), "-o", str(tmp_path / "k.o")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # No register spills in any kernel (they would go to local memory).
    assert "bytes spill stores" in result.stderr
    for line in result.stderr.splitlines():
        if "spill stores" in line:
            assert line.strip().startswith("0 bytes stack frame, 0 bytes spill"), line


def test_harness_host_build_passes_its_checks(tmp_path):
    """The GPU harness, built for host emulation, passes its own checks
    (independent double reference, finite differences, guards, determinism)
    and prints the JSON rows bench_vs_cudnn.py reads."""
    if CXX is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path / "harness_host"
    cmd = [CXX, "-std=c++17", "-O1", "-DSRU_HOST_EMULATION_BUILD", "-x", "c++"]
    cmd += [str(HARNESS / "harness.cu"), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    run = subprocess.run(
        [str(exe), "--check", "--bench", "--quick"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ALL CHECKS PASSED" in run.stdout
    assert "FAIL" not in run.stdout
    rows = [
        json.loads(line[5:])
        for line in run.stdout.splitlines()
        if line.startswith("JSON ")
    ]
    assert {r["dtype"] for r in rows} == {"float32", "bfloat16"}
    assert all(r["rec_fwd_ms"] > 0 and r["rec_fwdbwd_ms"] > 0 for r in rows)
