"""`import keras_ndsru` registers the fused op with TensorFlow, silently and
only when it can: checked in fresh processes."""

import pytest
from backend_subprocess import run_json

from keras_ndsru.ops import fused_kernel_status

CHECK = """
import json, sys
import keras_ndsru
from keras_ndsru.ops import op_library
print(json.dumps({
    "loaded": op_library.default_loader()._loaded,
    "tensorflow_imported": "tensorflow" in sys.modules,
}))
"""


def _run(tmp_path, backend="tensorflow", **env):
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    return run_json([script], backend=backend, env=env)


@pytest.mark.skipif(
    fused_kernel_status().path != "fused", reason="the op library is not built"
)
def test_import_loads_a_usable_library(tmp_path):
    assert _run(tmp_path)["loaded"] is True


def test_disabled_by_the_environment(tmp_path):
    assert _run(tmp_path, KERAS_NDSRU_DISABLE_FUSED="1")["loaded"] is False


@pytest.mark.torch
def test_other_backends_load_neither_the_library_nor_tensorflow(tmp_path):
    pytest.importorskip("torch")
    result = _run(tmp_path, backend="torch")
    assert result == {"loaded": False, "tensorflow_imported": False}
