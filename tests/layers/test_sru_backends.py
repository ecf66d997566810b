"""keras_ndsru.SRU on a non-TensorFlow Keras backend (torch), against the
NumPy transcription of eqs. (1)-(4), on both paths: the fused PyTorch
operators (the torch op library, built first when missing or stale) and the
keras.ops recurrence (`KERAS_NDSRU_DISABLE_FUSED=1`).

The torch side runs in a subprocess (`_sru_torch_backend_check.py`, with
TensorFlow made unimportable) since this process runs Keras on TensorFlow.
It returns the layers' configs, weights, inputs, outputs and autograd
gradients; here each layer is rebuilt from them and run through
`layer_numpy` of tests/sru_numpy.py, and its gradients are compared with central
differences of that oracle. The fused op itself (every dtype and direction,
compilation, the loader's policy) is checked in tests/backends/.
"""

from pathlib import Path

import numpy as np
import pytest
from backend_subprocess import run_json, run_script  # tests/ is on pythonpath
from central_differences import central_differences
from sru_numpy import layer_numpy, sru_numpy

from keras_ndsru import SRU

HERE = Path(__file__).resolve().parent


def _run_torch_check(npz_path, path):
    if path == "fused":
        build = ["-m", "keras_ndsru.ops.build", "--framework", "torch"]
        run_script(build, backend="torch", timeout=600)
        env = {"KERAS_NDSRU_DISABLE_FUSED": "0"}
    else:
        env = {"KERAS_NDSRU_DISABLE_FUSED": "1"}
    script = HERE / "_sru_torch_backend_check.py"
    return run_json([script, npz_path], backend="torch", env=env)


def _rebuild(config, arrays, prefix, input_shape):
    """The torch layer rebuilt here (TensorFlow backend) with its weights."""
    layer = SRU.from_config(config)
    layer.build(input_shape)
    layer.set_weights(
        [arrays[f"{prefix}/weight{i}"] for i in range(len(layer.weights))]
    )
    return layer


def _check_oracle_cases(configs, arrays):
    for name, entry in configs.items():
        if name in ("grad", "dropout"):
            continue
        x = arrays[f"{name}/x"]
        mask, c0 = arrays.get(f"{name}/mask"), arrays.get(f"{name}/c0")
        layer = _rebuild(entry["config"], arrays, name, (None,) + x.shape[1:])
        want_output, want_state = layer_numpy(layer, x, mask, c0)
        mixed = layer.dtype_policy.name == "mixed_float16"
        # float16 matmuls vs float64; else float32 vs float64.
        tol = dict(rtol=1e-2, atol=1e-2) if mixed else dict(rtol=1e-5, atol=1e-5)
        want_dtypes = ["torch.float16" if mixed else "torch.float32", "torch.float32"]
        assert entry["dtypes"] == want_dtypes, name
        np.testing.assert_allclose(
            arrays[f"{name}/output"], want_output, **tol, err_msg=name
        )
        np.testing.assert_allclose(
            arrays[f"{name}/state"], want_state, **tol, err_msg=name
        )


def _check_recurrence_gradients(arrays):
    """`sru_recurrence` on torch, float64 throughout, vs central differences
    of `sru_numpy` with respect to each of its inputs."""
    names = ("u", "x_highway", "weight_c", "bias", "c0")
    inputs = {name: arrays[f"recurrence/{name}"].copy() for name in names}
    loss_weights = [arrays[f"recurrence/loss_weights{i}"] for i in range(3)]

    def loss():
        outputs = sru_numpy(
            **inputs,
            mask=arrays["recurrence/mask"],
            alpha=1.3,
            direction="bidirectional",
        )
        return sum(float(np.sum(o * w)) for o, w in zip(outputs, loss_weights))

    for name in names:
        want = central_differences(loss, inputs[name])
        assert np.max(np.abs(want)) > 0.1, name
        np.testing.assert_allclose(
            arrays[f"recurrence/grad_{name}"], want, rtol=1e-7, atol=1e-9, err_msg=name
        )


def _check_gradients(config, arrays):
    x = arrays["grad/x"].copy()
    layer = _rebuild(config, arrays, "grad", (None,) + x.shape[1:])
    kernel = layer.kernel.numpy().copy()
    loss_weights, mask = arrays["grad/loss_weights"], arrays["grad/mask"]

    def loss():
        layer.kernel.assign(kernel)
        return float(np.sum(layer_numpy(layer, x, mask)[0] * loss_weights))

    grad_x = central_differences(loss, x)
    grad_kernel = central_differences(loss, kernel)
    assert np.max(np.abs(grad_x)) > 0.1 and np.max(np.abs(grad_kernel)) > 0.1
    # Off TensorFlow, Keras type promotion maps float64 to float32, so
    # `ops.matmul` of two float64 tensors computes in float32 (as in JAX
    # without x64): float32 tolerances, still far below any wrong gradient.
    np.testing.assert_allclose(arrays["grad/grad_x"], grad_x, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(
        arrays["grad/grad_kernel"], grad_kernel, rtol=2e-5, atol=1e-6
    )


def _check_variational_dropout(config, arrays):
    """Each row's output is the oracle's on `x * d` for ONE keep pattern `d`
    of the features (scaled by 1 / (1 - rate)), shared by all time steps."""
    x, output = arrays["dropout/x"], arrays["dropout/output"]
    layer = _rebuild(config, arrays, "dropout", (None,) + x.shape[1:])
    layer.dropout = 0.0  # layer_numpy reads the weights only
    features = x.shape[-1]
    patterns = [
        np.array(bits, np.float64) / (1.0 - config["dropout"])
        for bits in np.ndindex(*(2,) * features)
    ]
    found = []
    for row in range(x.shape[0]):
        matches = [
            tuple(p)
            for p in patterns
            if np.allclose(
                layer_numpy(layer, x[row : row + 1] * p)[0][0],
                output[row],
                rtol=1e-5,
                atol=1e-5,
            )
        ]
        assert len(matches) == 1, (row, matches)
        found.append(matches[0])
    assert len(set(found)) > 1, found  # the rows drew different masks


@pytest.mark.torch
@pytest.mark.parametrize("path", ["fused", "reference"])
def test_torch_backend(tmp_path, path):
    pytest.importorskip("torch")
    npz_path = tmp_path / "sru_torch.npz"
    result = _run_torch_check(npz_path, path)
    assert result["backend"] == "torch"
    assert not result["tensorflow_imported"]
    assert result["supports_jit"] is True
    assert result["direct_h_shape"] == [1, 2, 2]
    if path == "fused":
        assert result["fused_kernel_warnings"] == 0
        assert result["will_use_fused_auto"] is True
        assert result["fused_true_error"] is None
    else:  # "auto" falls back with one warning, True says why it cannot
        assert result["fused_kernel_warnings"] == 1
        assert result["will_use_fused_auto"] is False
        assert "KERAS_NDSRU_DISABLE_FUSED" in result["fused_true_error"]

    with np.load(npz_path) as data:
        arrays = dict(data)
    _check_oracle_cases(result["configs"], arrays)
    assert result["recurrence_dtypes"] == ["torch.float64"] * 3
    _check_recurrence_gradients(arrays)
    _check_gradients(result["configs"]["grad"]["config"], arrays)
    _check_variational_dropout(result["configs"]["dropout"]["config"], arrays)
    assert result["same_seed_diff"] == 0.0
    assert result["inference_vs_training_diff"] > 0.1

    # Stateful: two chunks give the state and last output of one full run.
    assert result["stateful_output_diff"] < 1e-6
    assert result["stateful_state_diff"] < 1e-6
    assert result["stateful_stored_diff"] < 1e-6
    assert result["reset_state_max"] == 0.0
    assert result["zero_steps_shape"] == [2, 0, 3]
    assert result["zero_steps_state_diff"] == 0.0
    assert result["zero_batch_shape"] == [0, 6]

    losses = result["fit_losses"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result["reload_diff"] < 1e-6
