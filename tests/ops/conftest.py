"""Fixtures of the fused SRU op tests: the op library, built if needed."""

import subprocess
import sys
from pathlib import Path

import pytest

from keras_ndsru.ops import op_library

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
