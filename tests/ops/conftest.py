"""Fixtures of the fused SRU op tests: the op library, built if needed; random
recurrence inputs; a faked GPU and a loader whose library claims (or lacks)
CUDA kernels."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru.ops import op_library, sru_reference

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fused_library():
    """The loaded op module. Builds the library first when it is missing or
    stale (the README set-up normally has built it), before anything in this
    process tries to load it."""
    loader = op_library.default_loader()
    if loader.check() is not None:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "build_ops.py")], check=True
        )
        loader.forget_failure()
    module = loader.module()
    assert module is not None, loader.status().reason
    return module


def _make_inputs(batch, steps, units, direction, dtype="float64", seed=0):
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


@pytest.fixture
def make_inputs():
    """`make_inputs(batch, steps, units, direction, dtype="float64", seed=0)`:
    random `u`, `x_highway`, `weight_c`, `bias` and `c0` as keyword arguments
    of the recurrence."""
    return _make_inputs


@pytest.fixture
def fake_gpu(monkeypatch):
    """`fake_gpu(visible=True)`: TensorFlow lists one GPU (or none), logical
    and physical, on this CPU machine."""

    def fake(visible=True):
        gpus = [tf.config.LogicalDevice("/device:GPU:0", "GPU")] if visible else []
        for name in ("list_logical_devices", "list_physical_devices"):
            real = getattr(tf.config, name)
            monkeypatch.setattr(
                tf.config,
                name,
                lambda device_type=None, real=real: (
                    gpus if device_type == "GPU" else real(device_type)
                ),
            )

    return fake


@pytest.fixture
def loaded_loader(monkeypatch, fused_library):
    """`loaded_loader(cuda)`: a fresh default loader with the real library
    loaded, claiming to have CUDA kernels or not (built with `--cpu-only`)."""

    def use(cuda):
        loader = op_library.OpLibraryLoader()
        assert loader.module() is not None
        monkeypatch.setattr(loader, "_cuda", cuda)
        monkeypatch.setattr(loader, "_cuda_note", "--cpu-only" if not cuda else None)
        monkeypatch.setattr(op_library, "_default_loader", loader)
        return loader

    return use


def _outputs_and_grads(fn, inputs, **kwargs):
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


def _assert_matches_reference(fn, inputs, tol, **kwargs):
    out, out_grads = _outputs_and_grads(fn, inputs, **kwargs)
    ref, ref_grads = _outputs_and_grads(sru_reference, inputs, **kwargs)
    for name, a, b in zip(("h", "h_last", "c_last"), out, ref):
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
            np.asarray(tf.cast(out_grads[name], "float64")),
            np.asarray(tf.cast(ref_grads[name], "float64")),
            rtol=tol,
            atol=tol,
            err_msg=f"grad {name}",
        )


@pytest.fixture
def assert_matches_reference():
    """`assert_matches_reference(fn, inputs, tol, **kwargs)`: `fn(**inputs,
    **kwargs)` gives `sru_reference`'s outputs, and the gradients of a random
    loss of them with respect to every input, within `tol`."""
    return _assert_matches_reference
