"""The fused SRU op on the torch and JAX backends (PyTorch custom operators,
XLA FFI), against the NumPy transcription of eqs. (1)-(4) and its central
differences.

Each backend runs `_sru_fused_check.py` in a subprocess with TensorFlow
made unimportable: torch with this environment's Python, JAX with the
Python of `.venv-jax/` (its own environment, so that JAX's numpy and
ml_dtypes do not change TensorFlow's; `scripts/setup.sh` creates it). The
subprocess first builds the backend's op library when it is missing or
stale (`python -m keras_ndsru.ops.build --framework BACKEND`, a no-op when up
to date), as tests/ops/conftest.py does for TensorFlow.

Here each case's inputs are run through `sru_numpy` (outputs) and its
central differences (gradients of the same random linear loss), and the
layer is rebuilt from its config and weights and run through
`layer_numpy`.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from backend_subprocess import run_json, run_script  # tests/support is on pythonpath
from central_differences import central_differences
from sru_numpy import layer_numpy, sru_numpy

from keras_ndsru import SRU

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JAX_PYTHON = ROOT / ".venv-jax" / "bin" / "python"
# Outputs and gradients of each dtype against the float64 oracle: float64
# exactly up to rounding; float32 state; float16/bfloat16 storage (h and
# the u / x_highway gradients are rounded to it, and so is the gradient of
# h before the kernels see it, which every gradient depends on).
OUTPUT_TOL = {"float64": 1e-12, "float32": 2e-6, "float16": 2e-3, "bfloat16": 1.6e-2}
GRAD_TOL = {"float64": 1e-7, "float32": 2e-4, "float16": 4e-3, "bfloat16": 3e-2}
NAMES = ("u", "x_highway", "weight_c", "bias", "c0")


def _python(backend) -> str:
    if backend == "torch":
        pytest.importorskip("torch")
        return sys.executable
    if not JAX_PYTHON.exists():
        pytest.skip(f"no JAX environment: {JAX_PYTHON} (bash scripts/setup.sh)")
    return str(JAX_PYTHON)


@pytest.fixture(scope="module", params=["torch", "jax"])
def checked(request, tmp_path_factory):
    """(backend, the check's JSON result, its arrays)."""
    backend = request.param
    python = _python(backend)
    build = ["-m", "keras_ndsru.ops.build", "--framework", backend]
    run_script(build, backend=backend, timeout=600, python=python)
    npz = tmp_path_factory.mktemp(backend) / "check.npz"
    env = {"JAX_ENABLE_X64": "1"} if backend == "jax" else {}
    result = run_json(
        [HERE / "_sru_fused_check.py", npz], backend, 600, env=env, python=python
    )
    with np.load(npz) as data:
        arrays = dict(data)
    return backend, result, arrays


def _case_inputs(arrays, name):
    inputs = {
        k: arrays[f"{name}/{k}"].astype(np.float64)  # central differences
        for k in NAMES
        if f"{name}/{k}" in arrays
    }
    return inputs, arrays.get(f"{name}/mask")


def test_outputs_match_the_oracle(checked):
    backend, result, arrays = checked
    for name, case in result["cases"].items():
        dtype, direction = case["dtype"], case["direction"]
        inputs, mask = _case_inputs(arrays, name)
        want = sru_numpy(**inputs, mask=mask, alpha=case["alpha"], direction=direction)
        state = "float64" if dtype == "float64" else "float32"
        assert case["out_dtypes"] == [dtype, dtype, state], name
        for i, expected in enumerate(want):
            got = arrays[f"{name}/out{i}"]
            tol = OUTPUT_TOL[dtype if i < 2 else state]
            np.testing.assert_allclose(
                got, expected, rtol=tol, atol=tol, err_msg=f"{backend} {name} out{i}"
            )
        if mask is not None:  # padded steps output zeros
            h = arrays[f"{name}/out0"]
            assert not np.any(h[~mask]), name


def test_gradients_match_central_differences(checked):
    """Every input's gradient; all entries of the float64 cases, 60 random
    entries per input of the others."""
    backend, result, arrays = checked
    rng = np.random.default_rng(0)
    for name, case in result["cases"].items():
        dtype = case["dtype"]
        inputs, mask = _case_inputs(arrays, name)
        weights = [arrays[f"{name}/loss_weights{i}"] for i in range(3)]

        def loss(inputs=inputs, mask=mask, case=case, weights=weights):
            outputs = sru_numpy(
                **inputs, mask=mask, alpha=case["alpha"], direction=case["direction"]
            )
            return sum(float(np.sum(o * w)) for o, w in zip(outputs, weights))

        for k, value in inputs.items():
            got = arrays[f"{name}/grad_{k}"]
            indices = list(np.ndindex(value.shape))
            if dtype != "float64" and len(indices) > 60:
                picked = rng.choice(len(indices), 60, replace=False)
                indices = [indices[i] for i in picked]
            want = central_differences(loss, value, indices)
            got = np.array([got[i] for i in indices])
            scale = max(1.0, float(np.max(np.abs(want))))
            tol = GRAD_TOL[dtype]
            np.testing.assert_allclose(
                got,
                want,
                rtol=tol,
                atol=tol * scale,
                err_msg=f"{backend} {name} grad {k}",
            )


def test_layer_matches_the_oracle(checked):
    """Bidirectional, right-padded mask with an empty row, initial state."""
    backend, result, arrays = checked
    layer = SRU.from_config(result["layer_config"])
    x = arrays["layer/x"]
    layer.build((None, *x.shape[1:]))
    layer.set_weights([arrays[f"layer/weight{i}"] for i in range(len(layer.weights))])
    want_output, want_state = layer_numpy(
        layer, x, arrays["layer/mask"], arrays["layer/c0"]
    )
    np.testing.assert_allclose(arrays["layer/output"], want_output, atol=1e-5)
    np.testing.assert_allclose(arrays["layer/state"], want_state, atol=1e-5)


def test_loader_policy(checked):
    backend, result, _ = checked
    status = result["status"]
    assert status["path"] == "fused" and status["backend"] == backend, status
    assert "loaded" in status["reason"]
    assert result["will_use_auto"] is True
    # The FFI call and the custom operators compile: layers stay jit-able.
    assert result["supports_jit"] is True and result["layer_supports_jit"] is True
    assert result["warnings_on_fused_path"] == []
    name = {"torch": "PyTorch", "jax": "jaxlib"}[backend]
    for tag, reason in (
        ("disabled", "KERAS_NDSRU_DISABLE_FUSED='1'"),
        ("missing", "does not exist"),
        ("other_version", f"was built for {name} 0.1.0"),
    ):
        assert result[f"{tag}_status"] == "fallback"
        assert result[f"{tag}_diff"] == 0.0  # the reference's numbers
        (warning,) = result[f"{tag}_warnings"]  # one per process
        assert reason in warning
        assert reason in result[f"{tag}_true_error"]
    assert result["fused_after_restore"] == "fused"
    assert result["tensorflow_imported"] is False


def test_mask_that_is_not_right_padded(checked):
    _, result, _ = checked
    assert result["ragged_auto_diff"] == 0.0  # "auto" ran the reference
    assert "right-padded mask" in result["ragged_true_error"]


def test_compiles(checked):
    """torch.compile(fullgraph=True) through AOT autograd, and
    torch.library.opcheck; jax.jit with the FFI call in the HLO."""
    backend, result, _ = checked
    assert result["compiled_diff"] < 1e-5
    if backend == "torch":
        assert set(result["opcheck"].values()) == {"SUCCESS"}, result["opcheck"]
    else:
        assert result["ffi_calls_in_hlo"] >= 2  # forward and backward


def test_fit(checked):
    backend, result, _ = checked
    losses = result["fit_losses"]
    assert losses[-1] < 0.8 * losses[0], losses
    # jit_compile="auto" compiles on JAX, where the layer supports it.
    assert result["fit_jit_compile"] is (backend == "jax")
