"""Table 1 of Katz et al. (arXiv 1709.02802) on the shared ACAS Xu network.

(delta, eps)-local robustness (Def. 3) at delta = 0.018 for eps in
{0.01, 0.02, 0.03} at 5 points, sequential and with 2 worker processes (the
parallel/sequential time ratio is printed side by side), then Def. 1 (the
advisory = argmin of the outputs must not change) at several deltas. Inputs
are in the network's normalized space, like the paper's.

    .venv/bin/python benchmarks/verify_acasxu.py [--nnet PATH] [--timeout 300]
"""

from __future__ import annotations

import argparse
import pathlib
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from keras_ndsru.verify import load_nnet, local_robustness

DEFAULT_NNET = (
    pathlib.Path(__file__).resolve().parents[2]
    / "shared/acasxu/ACASXU_experimental_v2a_1_1.nnet"
)

# Five normalized inputs (rho, theta, psi, v_own, v_int), spread over the
# normalized domain [-0.328, 0.680] x [-0.5, 0.5]^4 and fixed here so that
# runs are comparable.
POINTS = np.array(
    [
        [0.00, 0.00, 0.00, 0.00, 0.00],
        [0.20, -0.10, 0.20, 0.10, -0.20],
        [-0.20, 0.30, -0.30, -0.25, 0.25],
        [0.50, -0.35, 0.40, 0.30, 0.10],
        [-0.30, 0.05, -0.05, 0.40, -0.40],
    ]
)


def _warm(pool):
    list(pool.map(abs, range(4)))  # start the workers before timing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nnet", default=str(DEFAULT_NNET))
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--delta", type=float, default=0.018)
    args = parser.parse_args(argv)
    net = load_nnet(args.nnet)
    common = dict(label_mode="argmin", timeout=args.timeout)

    print(f"network: {net.name}  {net!r}")
    print("points (normalized):")
    for i, x in enumerate(POINTS):
        print(f"  {i + 1}: {np.array2string(x, precision=2)}")

    undecided = 0
    with ProcessPoolExecutor(2) as pool:
        _warm(pool)
        print(f"\nDef. 3, delta = {args.delta}: robust? and seconds")
        print(
            f"{'point':>5} {'eps':>5} {'robust':>7} {'seq s':>8} {'2 workers s':>12}"
            f" {'seq/par':>8} {'solved by':>24}"
        )
        for eps in (0.01, 0.02, 0.03):
            for i, x in enumerate(POINTS):
                seq = local_robustness(net, x, args.delta, eps=eps, workers=1, **common)
                tick = time.perf_counter()
                par = local_robustness(
                    net, x, args.delta, eps=eps, executor=pool, **common
                )
                par_wall = time.perf_counter() - tick
                if seq.robust != par.robust:
                    raise RuntimeError(f"verdicts differ at point {i + 1}, eps {eps}")
                undecided += seq.robust is None
                methods = sorted({d["method"] for d in seq.details})
                print(
                    f"{i + 1:>5} {eps:>5} {_yes_no(seq.robust):>7} {seq.seconds:>8.3f}"
                    f" {par_wall:>12.3f} {seq.seconds / par_wall:>8.2f}"
                    f" {','.join(methods):>24}",
                    flush=True,
                )

    deltas = (0.005, 0.018, 0.05, 0.1)
    print("\nDef. 1 (advisory = argmin unchanged), sequential: robust? (seconds)")
    print(f"{'point':>5} {'label':>5} " + " ".join(f"{d:>16}" for d in deltas))
    for i, x in enumerate(POINTS):
        cells = []
        for delta in deltas:
            res = local_robustness(net, x, delta, workers=1, **common)
            undecided += res.robust is None
            cells.append(f"{_yes_no(res.robust)} ({res.seconds:.3f})")
            label = res.label
        print(
            f"{i + 1:>5} {label:>5} " + " ".join(f"{c:>16}" for c in cells), flush=True
        )
    print(f"\nundecided queries: {undecided}")
    return 1 if undecided else 0


def _yes_no(robust):
    return {True: "yes", False: "no", None: "unknown"}[robust]


if __name__ == "__main__":
    raise SystemExit(main())
