"""The lazy loader of the fused SRU op library: status, the fallback paths
(missing library, other TensorFlow version, stale sources, environment
variable), each with exactly one warning, and the build record."""

import json
import re
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf

import keras_ndsru
from keras_ndsru.ops import (
    FusedKernelWarning,
    fused_kernel_status,
    op_library,
    sru_recurrence,
    sru_reference,
)


@pytest.fixture(autouse=True)
def _library(fused_library):
    return fused_library


def inputs():
    rng = np.random.default_rng(0)
    return dict(
        u=tf.constant(rng.normal(size=(2, 4, 9)), "float32"),
        x_highway=tf.constant(rng.normal(size=(2, 4, 3)), "float32"),
        weight_c=tf.constant(rng.normal(size=(6,)), "float32"),
        bias=tf.constant(rng.normal(size=(6,)), "float32"),
    )


def use_loader(monkeypatch, loader):
    monkeypatch.setattr(op_library, "_default_loader", loader)


def assert_one_warning_then_fallback(monkeypatch, loader, reason_pattern):
    """Under "auto": two calls, the reference's numbers, ONE warning."""
    use_loader(monkeypatch, loader)
    assert fused_kernel_status().path == "fallback"
    expected = sru_reference(**inputs())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            out = sru_recurrence(**inputs())
            np.testing.assert_array_equal(np.asarray(out.h), np.asarray(expected.h))
    fused_warnings = [w for w in caught if w.category is FusedKernelWarning]
    assert len(fused_warnings) == 1, [str(w.message) for w in caught]
    assert re.search(reason_pattern, str(fused_warnings[0].message))
    # use_fused_kernel=True: an error naming the reason, no warning.
    with pytest.raises(RuntimeError, match=reason_pattern):
        sru_recurrence(**inputs(), use_fused_kernel=True)
    # use_fused_kernel=False never warns.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sru_recurrence(**inputs(), use_fused_kernel=False)
    assert not caught


def test_status_reports_the_fused_path():
    status = keras_ndsru.ops.fused_kernel_status()
    assert status.path == "fused"
    assert status.library.endswith("_sru_ops.so")
    assert "loaded" in status.reason


def test_library_is_loaded_once(monkeypatch):
    calls = []
    real_load = tf.load_op_library
    monkeypatch.setattr(
        tf, "load_op_library", lambda path: calls.append(path) or real_load(path)
    )
    loader = op_library.OpLibraryLoader()
    first = loader.module()
    assert loader.module() is first
    loader.forget_failure()  # a loaded library is kept
    assert loader.module() is first
    assert len(calls) == 1


def test_missing_library(monkeypatch, tmp_path):
    loader = op_library.OpLibraryLoader(library_dir=tmp_path)
    assert "does not exist" in loader.status().reason
    assert_one_warning_then_fallback(monkeypatch, loader, "does not exist")


def copy_library(tmp_path, **info_changes):
    real = op_library.LIBRARY_DIR
    shutil.copy(real / op_library.LIBRARY_NAME, tmp_path / op_library.LIBRARY_NAME)
    info = json.loads((real / op_library.BUILD_INFO_NAME).read_text())
    info.update(info_changes)
    (tmp_path / op_library.BUILD_INFO_NAME).write_text(json.dumps(info))


def test_library_built_for_another_tensorflow(monkeypatch, tmp_path):
    copy_library(tmp_path, tf_version="2.0.0")
    loader = op_library.OpLibraryLoader(library_dir=tmp_path)
    assert_one_warning_then_fallback(monkeypatch, loader, "built for TensorFlow 2.0.0")


def test_missing_build_record(monkeypatch, tmp_path):
    copy_library(tmp_path)
    (tmp_path / op_library.BUILD_INFO_NAME).unlink()
    loader = op_library.OpLibraryLoader(library_dir=tmp_path)
    assert_one_warning_then_fallback(monkeypatch, loader, "version is unknown")


def test_stale_sources(monkeypatch, tmp_path):
    copy_library(tmp_path, source_hash="0" * 64)
    loader = op_library.OpLibraryLoader(library_dir=tmp_path)
    assert_one_warning_then_fallback(monkeypatch, loader, "is stale")


def test_environment_variable_forces_the_fallback(monkeypatch):
    monkeypatch.setenv(op_library.DISABLE_ENV_VAR, "1")
    loader = op_library.OpLibraryLoader()
    assert loader.module() is not None  # loaded, but not used
    assert_one_warning_then_fallback(monkeypatch, loader, "KERAS_NDSRU_DISABLE_FUSED")
    monkeypatch.setenv(op_library.DISABLE_ENV_VAR, "0")
    assert loader.status().path == "fused"


def test_build_record_matches_this_checkout():
    info = json.loads((op_library.LIBRARY_DIR / op_library.BUILD_INFO_NAME).read_text())
    assert info["tf_version"] == tf.__version__
    assert info["source_hash"] == op_library.source_hash()
    assert fused_kernel_status().cuda == info["cuda"]
    # With nvcc and the CUDA sources present, the CUDA kernels are compiled
    # in, and this very library loaded here on tensorflow-cpu.
    has_cuda_sources = all(
        (op_library.SOURCE_DIR / "kernels" / name).exists()
        for name in ("sru_kernels.cu", "sru_kernels_gpu.cc")
    )
    if shutil.which("nvcc") and has_cuda_sources and info["cuda_requested"]:
        assert info["cuda"], info["cuda_note"]


NO_CUDA_MESSAGE = "a GPU is visible but the op library was built without CUDA"


def test_status_says_a_gpu_is_visible_without_initializing_the_runtime(
    monkeypatch, fake_gpu, loaded_loader
):
    loaded_loader(cuda=False)
    fake_gpu()

    def initializes_the_runtime(device_type=None):
        raise AssertionError("status() must not list logical devices")

    monkeypatch.setattr(tf.config, "list_logical_devices", initializes_the_runtime)
    status = fused_kernel_status()
    assert status.path == "fused" and not status.cuda
    assert NO_CUDA_MESSAGE in status.reason and "loaded" in status.reason
    fake_gpu(visible=False)
    assert NO_CUDA_MESSAGE not in fused_kernel_status().reason
