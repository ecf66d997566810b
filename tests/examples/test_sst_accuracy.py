"""benchmarks/sst_accuracy.py as a user runs it."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "sst_accuracy.py"


def test_missing_data_is_one_line(tmp_path):
    missing = tmp_path / "sst"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(missing)]
        + ["--out", str(tmp_path / "out"), "--task", "sst2", "--models", "sru"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: {missing}/stsa.binary.train: cannot be read (No such file or "
        f"directory). Received: path='{missing}/stsa.binary.train'"
    )
