"""SRU layers (fused op) trained with NDAdam under tf.distribute strategies.

Each check runs in a subprocess (`_*_check.py` next to this file; they share
the training run in `_sru_training.py`): logical devices must be configured,
and a multi-worker strategy created, before TensorFlow initializes.
"""

from pathlib import Path

import pytest
from backend_subprocess import run_json  # tests/support is on pythonpath

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-5


def test_fused_sru_and_ndadam_under_mirrored_strategy():
    """Two logical CPUs: same weights as one device, and the op's forward
    and gradient kernels placed on both replicas' devices."""
    result = run_json([HERE / "_mirrored_fused_check.py"])
    assert result["replicas"] == 2
    assert result["fused"] == "fused"
    devices = {device.rsplit("/", 1)[-1] for _, device in result["fused_op_devices"]}
    assert devices == {"device:CPU:0", "device:CPU:1"}, result
    assert sorted(result["fused_op_devices"]) == sorted(
        [op, f"/job:localhost/replica:0/task:0/{device}"]
        for op in ("KerasNdsru>SruBackward", "KerasNdsru>SruForward")
        for device in sorted(devices)
    ), result
    assert result["max_change_by_training"] > 1e-3, result
    assert result["max_diff_vs_single_device"] < TOLERANCE, result
    assert result["unit_norm_error"] < 1e-6, result


@pytest.mark.slow
def test_two_workers_match_one_worker_with_the_same_global_batch():
    """MultiWorkerMirroredStrategy, two processes on localhost (about 30 s)."""
    result = run_json([HERE / "_multi_worker_check.py"])
    for report in result["workers"]:
        assert report["replicas"] == 2, result
        assert report["fused"] == "fused", result
        assert report["fused_ops_in_train_step"] == [
            "KerasNdsru>SruBackward",
            "KerasNdsru>SruForward",
        ], result
        assert report["unit_norm_error"] < 1e-6, result
        # Keras 3's fit fails under this strategy (keras-team/keras#20585);
        # any other error would be ours.
        error = report["keras_fit_error"]
        assert error is None or error.startswith(result["known_keras_fit_error"])
    assert result["max_change_by_training"] > 1e-3, result
    assert result["max_diff_between_workers"] == 0.0, result
    assert result["max_diff_vs_one_worker"] < TOLERANCE, result
    if result["keras_fit_max_diff_vs_one_worker"] is not None:
        assert result["keras_fit_max_diff_vs_one_worker"] < TOLERANCE, result
