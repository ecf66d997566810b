"""Where the data shared with CI lives: `../shared` beside the checkout.

Tests that need it take the `shared_data` fixture (tests/conftest.py) and
are skipped, with the reason, when the folder or the file is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("KERAS_NDSRU_SHARED", CHECKOUT.parent / "shared"))


def shared_path(relative: str) -> Path:
    """`SHARED / relative`, or skip the calling test saying what is missing."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(
            f"shared data {relative} not found under {SHARED} (set "
            "KERAS_NDSRU_SHARED to the folder that holds it)"
        )
    return path
