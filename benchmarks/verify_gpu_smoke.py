"""The verifier's GPU smoke run: a few VNN-COMP instances through the command
line with ``--device cuda``, verdicts against the 2021 reference.

The lent GPU machines have PyTorch with CUDA, onnx and onnxruntime, but
neither Keras nor TensorFlow, and no copy of ``../shared``: stage the
instances here first, into the git-ignored ``results/verify_smoke``, and
carry that folder::

    .venv/bin/python benchmarks/verify_gpu_smoke.py --stage   # here
    python3 benchmarks/verify_gpu_smoke.py                    # there (run_gpu_check.sh)

Each instance runs as ``python -m keras_ndsru.verify vnncomp NET PROP
--timeout T --device DEVICE`` from the checkout (``PYTHONPATH`` set). A table
of verdict, expected verdict and seconds is printed; the exit status is 1
when a verdict contradicts the reference (a timeout is not wrong), 2 when
nothing is staged.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "results" / "verify_smoke"
SHARED = Path(os.environ.get("KERAS_NDSRU_SHARED", REPO.parent / "shared")) / "vnncomp"
# (benchmark, network, property): one per benchmark family, decided by
# alpha-beta-CROWN in 2021 within seconds.
INSTANCES = (
    ("mnistfc", "mnist-net_256x2.onnx", "prop_0_0.03.vnnlib"),
    ("mnistfc", "mnist-net_256x2.onnx", "prop_7_0.05.vnnlib"),
    (
        "oval21",
        "nets/cifar_base_kw.onnx",
        "vnnlib/cifar_base_kw-img4549-eps0.00392156862745098.vnnlib",
    ),
    (
        "cifar10_resnet",
        "onnx/resnet_2b.onnx",
        "vnnlib_properties_pgd_filtered/resnet2b_pgd_filtered/prop_2_eps_0.008.vnnlib",
    ),
)


def stage() -> int:
    """Copies the instances and their reference verdicts into ``STAGE``."""
    reference = {}
    with open(SHARED / "reference_2021.csv") as file:
        for row in csv.DictReader(file):
            reference[(row["benchmark"], row["onnx"], row["vnnlib"])] = row["reference"]
    STAGE.mkdir(parents=True, exist_ok=True)
    rows = []
    for bench, net, prop in INSTANCES:
        for name in (net, prop):
            target = STAGE / bench / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SHARED / bench / name, target)
        expected = reference.get((bench, net, prop), "none")
        rows.append([bench, net, prop, expected])
    with open(STAGE / "manifest.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    size = sum(p.stat().st_size for p in STAGE.rglob("*") if p.is_file())
    print(f"staged {len(rows)} instances in {STAGE} ({size / 2**20:.1f} MiB)")
    return 0


def run(device: str, timeout: float) -> int:
    manifest = STAGE / "manifest.csv"
    if not manifest.exists():
        print(f"{manifest}: nothing staged (run --stage where ../shared exists)")
        return 2
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    print("| instance | device | verdict | expected | seconds |\n|---|---|---|---|---|")
    wrong = 0
    with open(manifest) as file:
        rows = list(csv.reader(file))
    for bench, net, prop, expected in rows:
        out = STAGE / "result.txt"
        out.unlink(missing_ok=True)
        start = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "keras_ndsru.verify", "vnncomp"]
            + [str(STAGE / bench / net), str(STAGE / bench / prop)]
            + ["--timeout", f"{timeout:g}", "--out", str(out), "--device", device],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        )
        seconds = time.time() - start
        verdict = out.read_text().split("\n", 1)[0] if out.exists() else "error"
        if verdict == "error":
            print((done.stderr or done.stdout).strip()[-500:], file=sys.stderr)
        bad = (
            verdict in ("sat", "unsat")
            and expected in ("sat", "unsat")
            and verdict != expected
        )
        wrong += bad
        name = f"{bench}/{Path(net).stem}/{Path(prop).stem}"
        mark = " WRONG" if bad else ""
        print(f"| {name} | {device} | {verdict}{mark} | {expected} | {seconds:.1f} |")
    return 1 if wrong else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", action="store_true", help="copy the instances here")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.stage:
        return stage()
    return run(args.device, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
