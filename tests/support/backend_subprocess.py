"""Runs a check script in a fresh Python with a chosen Keras backend.

The test process runs Keras on TensorFlow and a backend cannot be switched
in-process, so other backends (and multi-device set-ups) are checked in a
subprocess. This folder (`tests/support/`, the NumPy oracles and test
helpers) is put on its PYTHONPATH so that scripts can import the oracles.
Imported by tests through pytest's `pythonpath`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent


def run_script(
    args,
    backend: str = "tensorflow",
    timeout: int = 300,
    env: dict | None = None,
    python: str | None = None,
) -> str:
    """Runs `python *args` with `KERAS_BACKEND=backend` (and the variables in
    `env`), with this Python or `python` (another virtual environment's);
    returns its stdout and fails the test with the end of its output on a
    non-zero exit."""
    env = {
        **os.environ,
        **(env or {}),
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [python or sys.executable, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def run_json(
    args,
    backend: str = "tensorflow",
    timeout: int = 300,
    env: dict | None = None,
    python: str | None = None,
):
    """`run_script`, returning the JSON object on the last line of stdout."""
    out = run_script(args, backend, timeout, env, python)
    return json.loads(out.strip().splitlines()[-1])
