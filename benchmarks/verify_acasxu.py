"""Table 1 of Katz et al. (arXiv 1709.02802) on the shared ACAS Xu network.

(delta, eps)-local robustness (Def. 3) at delta = 0.018 for eps in
{0.01, 0.02, 0.03} at 5 points, with the default method (input splitting +
MILP leaves) and with one MILP per disjunct, each sequential and with 2 worker
processes (time ratios side by side); then Def. 1 (the advisory = argmin of
the outputs must not change) at several deltas. Inputs are in the network's
normalized space, like the paper's. Every robust verdict is also checked
against 20000 random points, and every verdict against the other method's.

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


def _timed(net, x, delta, **kwargs):
    tick = time.perf_counter()
    res = local_robustness(net, x, delta, **kwargs)
    return res, time.perf_counter() - tick


def _sampling_check(net, x, delta, eps, res, rng):
    """A robust verdict must survive 20000 random points of the ball."""
    if res.robust is not True:
        return
    lower, upper = net.input_domain
    pts = rng.uniform(
        np.maximum(x - delta, lower), np.minimum(x + delta, upper), size=(20000, x.size)
    )
    y, y0 = net(pts), net(x)
    if eps is None:
        bad = np.any(np.delete(y, res.label, 1) <= y[:, [res.label]], axis=1)
    else:
        bad = np.any(np.abs(y - y0) >= eps, axis=1)
    if bad.any():
        raise RuntimeError(f"sampling refutes a robust verdict at {x}, {delta}, {eps}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nnet", default=str(DEFAULT_NNET))
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--milp-timeout", type=float, default=60.0)
    parser.add_argument("--delta", type=float, default=0.018)
    args = parser.parse_args(argv)
    net = load_nnet(args.nnet)
    rng = np.random.default_rng(0)
    auto = dict(label_mode="argmin", timeout=args.timeout)
    milp = dict(label_mode="argmin", timeout=args.milp_timeout, method="milp")

    print(f"network: {net!r}")
    print("points (normalized):")
    for i, x in enumerate(POINTS):
        print(f"  {i + 1}: {np.array2string(x, precision=2)}")

    undecided = 0
    with ProcessPoolExecutor(2) as pool:
        _warm(pool)
        print(
            f"\nDef. 3, delta = {args.delta}: robust? and seconds, default method "
            "(auto: input splitting) and MILP only, sequential and 2 workers"
        )
        print(
            f"{'point':>5} {'eps':>5} {'robust':>7} {'auto s':>8} {'auto 2w s':>10}"
            f" {'seq/2w':>7} {'milp s':>8} {'milp 2w s':>10} {'seq/2w':>7}"
            f"  decided by"
        )
        for eps in (0.01, 0.02, 0.03):
            for i, x in enumerate(POINTS):
                seq, seq_s = _timed(net, x, args.delta, eps=eps, workers=1, **auto)
                par, par_s = _timed(net, x, args.delta, eps=eps, executor=pool, **auto)
                mseq, mseq_s = _timed(net, x, args.delta, eps=eps, workers=1, **milp)
                mpar, mpar_s = _timed(
                    net, x, args.delta, eps=eps, executor=pool, **milp
                )
                for other in (par, mseq, mpar):
                    if other.robust is not None and other.robust != seq.robust:
                        raise RuntimeError(f"verdicts differ at {i + 1}, eps {eps}")
                _sampling_check(net, x, args.delta, eps, seq, rng)
                undecided += seq.robust is None
                methods = sorted({d["method"] for d in seq.details})
                print(
                    f"{i + 1:>5} {eps:>5} {_yes_no(seq.robust):>7} {seq_s:>8.3f}"
                    f" {par_s:>10.3f} {seq_s / par_s:>7.2f} {mseq_s:>8.3f}"
                    f" {mpar_s:>10.3f} {mseq_s / mpar_s:>7.2f}  {','.join(methods)}",
                    flush=True,
                )
        seq, seq_s = _timed(net, POINTS, args.delta, workers=1, **auto)
        par, par_s = _timed(net, POINTS, args.delta, executor=pool, **auto)
        print(
            f"\nDef. 1, all 5 points in one call, delta = {args.delta}: "
            f"sequential {seq_s:.3f} s, 2 workers {par_s:.3f} s, "
            f"ratio {seq_s / par_s:.2f}"
        )

    deltas = (0.005, 0.018, 0.05, 0.1)
    print(
        "\nDef. 1 (advisory = argmin unchanged), sequential: robust? "
        "(auto s / milp-only s)"
    )
    print(f"{'point':>5} {'label':>5} " + " ".join(f"{d:>22}" for d in deltas))
    for i, x in enumerate(POINTS):
        cells = []
        for delta in deltas:
            res, res_s = _timed(net, x, delta, workers=1, **auto)
            mres, mres_s = _timed(net, x, delta, workers=1, **milp)
            if mres.robust is not None and mres.robust != res.robust:
                raise RuntimeError(f"verdicts differ at {i + 1}, delta {delta}")
            _sampling_check(net, x, delta, None, res, rng)
            undecided += res.robust is None
            milp_cell = f"{mres_s:.2f}" if mres.robust is not None else "timeout"
            cells.append(f"{_yes_no(res.robust)} ({res_s:.2f} / {milp_cell})")
            label = res.label
        print(
            f"{i + 1:>5} {label:>5} " + " ".join(f"{c:>22}" for c in cells), flush=True
        )
    print(f"\nundecided queries (default method): {undecided}")
    return 1 if undecided else 0


def _yes_no(robust):
    return {True: "yes", False: "no", None: "unknown"}[robust]


if __name__ == "__main__":
    raise SystemExit(main())
