"""An installed wheel (not a source checkout) can build and load its op.

`pip install keras-ndsru` installs no compiled op: the wheel carries the op's
sources (setup.py) and `python -m keras_ndsru.ops.build` compiles them into
the installed package. This builds a wheel from a copy of the project,
installs it into a temporary directory, builds the op there (CPU only: about
10 s on 2 cores) and runs the fused SRU layer against the fallback from that
installation, in subprocesses away from this checkout.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keras_ndsru.ops import op_library

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import json, numpy as np, keras, keras_ndsru
from keras_ndsru.ops import fused_kernel_status
status = fused_kernel_status()
x = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
mask = np.arange(5)[None, :] < np.array([5, 3, 1])[:, None]
out = {}
for fused in (True, False):
    layer = keras_ndsru.SRU(4, return_sequences=True, bidirectional=True,
                            use_fused_kernel=fused, seed=1)
    layer.build(x.shape)
    for w in layer.weights:
        w.assign(np.random.default_rng(2).normal(scale=0.5, size=w.shape))
    out[fused] = np.asarray(layer(x, mask=mask))
print("RESULT " + json.dumps({
    "package": keras_ndsru.__file__,
    "path": status.path,
    "library": status.library,
    "max_diff": float(np.abs(out[True] - out[False]).max()),
}))
"""


def _copy_project(dest: Path) -> None:
    """What a wheel is built from: metadata, package, op sources."""
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "_ops", "*.egg-info")
    shutil.copytree(ROOT / "keras_ndsru", dest / "keras_ndsru", ignore=ignore)
    for sub in ("ops", "kernels"):
        shutil.copytree(
            ROOT / "custom_ops" / "sru" / sub, dest / "custom_ops" / "sru" / sub
        )


def _run(args, cwd, env=None, timeout=300):
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"$ {' '.join(map(str, args))}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_installed_wheel_builds_and_runs_its_op(tmp_path):
    project, wheels, site = tmp_path / "project", tmp_path / "wheels", tmp_path / "site"
    project.mkdir()
    _copy_project(project)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(
        [*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", wheels], project
    )
    (wheel,) = wheels.glob("keras_ndsru-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        f"keras_ndsru/_ops_src/{p.parent.name}/{p.name}"
        for sub in ("ops", "kernels")
        for p in (ROOT / "custom_ops" / "sru" / sub).iterdir()
        if p.suffix in (".cc", ".h", ".cu")
    }
    assert sources <= names, sources - names
    assert "keras_ndsru/ops/build.py" in names
    assert not [n for n in names if n.startswith("keras_ndsru/_ops/")], (
        "a wheel must not carry a compiled op"
    )

    _run([*pip, "install", "--no-deps", "--target", site, wheel], tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(op_library.DISABLE_ENV_VAR, None)
    build_log = _run(
        [sys.executable, "-m", "keras_ndsru.ops.build", "--cpu-only", "--jobs", "2"],
        tmp_path,
        env,
    )
    library = site / "keras_ndsru" / "_ops" / op_library.LIBRARY_NAME
    assert library.exists(), build_log
    info = json.loads((library.parent / op_library.BUILD_INFO_NAME).read_text())
    # Built from the packed copy of the sources: same hash as this checkout's.
    assert info["source_hash"] == op_library.source_hash()
    assert info["git_commit"] is None and info["cuda"] is False
    # A second run finds it up to date.
    assert "up to date" in _run(
        [sys.executable, "-m", "keras_ndsru.ops.build", "--cpu-only"], tmp_path, env
    )

    out = _run([sys.executable, "-c", CHECK], tmp_path, env)
    result = json.loads(out.split("RESULT ", 1)[1])
    assert result["package"].startswith(str(site)), result
    assert result["path"] == "fused" and result["library"] == str(library), result
    assert result["max_diff"] < 1e-5, result
