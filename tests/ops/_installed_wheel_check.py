"""Subprocess check: the fused SRU op of an installed keras-ndsru.

Run by tests/ops/test_build_installed.py with the Python of an environment
where a wheel is installed, away from the checkout. Prints one JSON line.

    python _installed_wheel_check.py fused     # the op runs as installed
        (the TensorFlow op, or with KERAS_BACKEND=torch the PyTorch one)
    python _installed_wheel_check.py rebuild   # the installed op is refused
        (built for another TensorFlow): one warning naming the fix and the
        fallback's numbers; then the fix, `python -m keras_ndsru.ops.build`,
        and the fused op again
"""

import json
import shutil
import subprocess
import sys
import warnings

import keras
import numpy as np

import keras_ndsru
from keras_ndsru.ops import FusedKernelWarning, fused_kernel_status, op_library

X = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
MASK = np.arange(5)[None, :] < np.array([5, 3, 1])[:, None]


def sru_output(use_fused_kernel):
    """A bidirectional, masked SRU with fixed weights on fixed inputs."""
    layer = keras_ndsru.SRU(
        4,
        return_sequences=True,
        bidirectional=True,
        use_fused_kernel=use_fused_kernel,
        seed=1,
    )
    layer.build(X.shape)
    for w in layer.weights:
        w.assign(np.random.default_rng(2).normal(scale=0.5, size=w.shape))
    return keras.ops.convert_to_numpy(layer(X, mask=MASK))


def fused_vs_reference() -> dict:
    status = fused_kernel_status()
    diff = np.abs(sru_output(True) - sru_output(False)).max()
    return {"path": status.path, "library": status.library, "max_diff": float(diff)}


def refused_then_rebuilt() -> dict:
    refused = fused_kernel_status()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = [sru_output("auto") for _ in range(2)]
    messages = [str(w.message) for w in caught if w.category is FusedKernelWarning]
    try:
        sru_output(True)
        error = None
    except RuntimeError as e:
        error = str(e)
    build = subprocess.run(
        [sys.executable, "-m", "keras_ndsru.ops.build", "--cpu-only", "--jobs", "2"],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        raise SystemExit(build.stdout + build.stderr)
    op_library.default_loader().forget_failure()
    return {
        "refused_path": refused.path,
        "refused_reason": refused.reason,
        "warnings": messages,
        "auto_equals_fallback": all(np.array_equal(a, sru_output(False)) for a in auto),
        "fused_true_error": error,
        "build_log": build.stdout,
        **fused_vs_reference(),
    }


if __name__ == "__main__":
    mode = sys.argv[1]
    result = fused_vs_reference() if mode == "fused" else refused_then_rebuilt()
    result["package"] = keras_ndsru.__file__
    result["compilers_on_path"] = [c for c in ("gcc", "g++", "nvcc") if shutil.which(c)]
    print(json.dumps(result))
