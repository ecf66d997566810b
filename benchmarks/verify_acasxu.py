"""Table 1 of Katz et al. (arXiv 1709.02802) on the shared ACAS Xu network.

(delta, eps)-local robustness (Def. 3) at delta = 0.018 for eps in
{0.01, 0.02, 0.03} at 5 points, with the default method (input splitting +
MILP leaves) and with one MILP per disjunct, each sequential and with 2 worker
processes (time ratios side by side); then Def. 1 (the advisory = argmin of
the outputs must not change) at several deltas. Inputs are in the network's
normalized space, like the paper's. Every robust verdict is also checked
against 20000 random points, and every verdict against the other method's.

Peer: when `maraboupy` imports (the `bench` extra), the same 35 queries (20 of
Def. 1, 15 of Def. 3) also run in Marabou, alternating which tool goes first,
both single-threaded and with the same per-query timeout (`--peer-timeout`),
as one Marabou query per disjunct of the violation (a linear output
constraint) with the same explicit input box. Verdicts must agree on every
query both decide; a disagreement is printed and the exit status is 2.

    .venv/bin/python benchmarks/verify_acasxu.py [--nnet PATH] [--timeout 300]
        [--peer-timeout 60] [--no-marabou | --peer-only]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import pathlib
import time
import warnings
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


def _table1(net, args):
    """The seed's Table 1 (ours only); returns the number of undecided queries."""
    rng = np.random.default_rng(0)
    auto = dict(label_mode="argmin", timeout=args.timeout)
    milp = dict(label_mode="argmin", timeout=args.milp_timeout, method="milp")

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
                methods = sorted({str(d.method) for d in seq.details})
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
    return undecided


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nnet", default=str(DEFAULT_NNET))
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--milp-timeout", type=float, default=60.0)
    parser.add_argument("--delta", type=float, default=0.018)
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=60.0,
        help="seconds per query for both tools in the Marabou comparison",
    )
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument(
        "--no-marabou", action="store_true", help="skip the Marabou comparison"
    )
    peer.add_argument(
        "--peer-only", action="store_true", help="run only the Marabou comparison"
    )
    args = parser.parse_args(argv)
    net = load_nnet(args.nnet)
    marabou = None if args.no_marabou else _import_marabou()
    if args.peer_only and marabou is None:
        parser.error("--peer-only needs maraboupy (pip install keras-ndsru[bench])")

    print(f"network: {net!r}")
    print("points (normalized):")
    for i, x in enumerate(POINTS):
        print(f"  {i + 1}: {np.array2string(x, precision=2)}")

    undecided = 0 if args.peer_only else _table1(net, args)
    disagreements = 0
    if marabou is not None:
        disagreements = _marabou_peer(net, args, *marabou)
    elif not args.no_marabou:
        print(
            "\nMarabou comparison skipped: maraboupy is not installed "
            "(pip install keras-ndsru[bench])."
        )
    if disagreements:
        return 2
    return 1 if undecided else 0


PEER_DELTAS = (0.005, 0.018, 0.05, 0.1)  # Def. 1, as in the table above
PEER_EPS = (0.01, 0.02, 0.03)  # Def. 3 at --delta


def _import_marabou():
    """`(MarabouCore, MarabouNetworkNNet)`, or None when maraboupy is missing.

    Not `maraboupy.Marabou`: it imports MarabouNetworkTF, which calls
    `tf.compat.v1.disable_v2_behavior()` for the whole process.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from maraboupy import MarabouCore
            from maraboupy.MarabouNetworkNNet import MarabouNetworkNNet
    except ImportError:
        return None
    return MarabouCore, MarabouNetworkNNet


def _one_blas_thread():
    """Limit NumPy's BLAS to one thread for our side (Marabou gets one too)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _violations(y0, label, eps):
    """The property's violation as disjuncts `sum(c * y[o]) <= rhs`.

    Def. 1 (argmin advisory): `y_j <= y_label` for each `j != label` (a tie
    is a violation, as in `local_robustness`). Def. 3: `y_l >= y0_l + eps` or
    `y_l <= y0_l - eps` for each output `l` (the negation of
    `|y_l - y0_l| < eps`), with `y0` from our float64 forward pass.
    """
    if eps is None:
        return [((j, label), (1.0, -1.0), 0.0) for j in range(y0.size) if j != label]
    out = []
    for k in range(y0.size):
        out.append(((k,), (-1.0,), -(float(y0[k]) + eps)))
        out.append(((k,), (1.0,), float(y0[k]) - eps))
    return out


def _marabou_query(core, mnet, lower, upper, disjuncts, timeout):
    """One Marabou query per disjunct; `(robust, seconds, counterexample)`.

    The clock covers setting the box and the disjunct on a fresh InputQuery
    and `MarabouCore.solve`, not the query's construction from the parsed
    network (~9 ms each; ours is timed without loading the network too).
    Marabou takes whole seconds, so a disjunct gets `ceil` of what is left.
    """
    x_vars = [int(v) for v in np.asarray(mnet.inputVars[0]).flatten()]
    y_vars = [int(v) for v in np.asarray(mnet.outputVars[0]).flatten()]
    seconds, statuses = 0.0, []
    for outs, coeffs, rhs in disjuncts:
        left = timeout - seconds
        if left <= 0:
            statuses.append("TIMEOUT")
            break
        ipq = mnet.getInputQuery()
        tick = time.perf_counter()
        for var, lo, hi in zip(x_vars, lower, upper):
            ipq.setLowerBound(var, float(lo))
            ipq.setUpperBound(var, float(hi))
        eq = core.Equation(core.Equation.LE)
        for o, c in zip(outs, coeffs):
            eq.addAddend(c, y_vars[o])
        eq.setScalar(float(rhs))
        ipq.addEquation(eq)
        options = core.Options()
        options._verbosity = 0
        options._numWorkers = 1
        options._numBlasThreads = 1
        options._snc = False
        options._timeoutInSeconds = max(1, math.ceil(left))
        status, vals, _ = core.solve(ipq, options, "")
        seconds += time.perf_counter() - tick
        statuses.append(status)
        if status == "sat":
            return False, seconds, np.array([vals[v] for v in x_vars])
    robust = True if statuses == ["unsat"] * len(disjuncts) else None
    return robust, seconds, None


def _marabou_peer(net, args, core, nnet_cls):
    """Ours and Marabou side by side on the 35 queries; returns #disagreements."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mnet = nnet_cls(str(args.nnet), normalize=False)
    timeout = args.peer_timeout
    queries = [(i, d, None) for i in range(len(POINTS)) for d in PEER_DELTAS]
    queries += [(i, args.delta, e) for e in PEER_EPS for i in range(len(POINTS))]
    print(
        f"\nMarabou {_marabou_version()} vs ours, same input box, {timeout:g} s per"
        " query each; ours: workers=1 (in-process), HiGHS threads=1, BLAS 1 thread;"
        " Marabou: numWorkers=1, numBlasThreads=1, no SnC, one query per disjunct;"
        f" order alternates per query. Load average {_load()}."
    )
    header = (
        f"{'query':<24} {'ours':>7} {'ours s':>8} {'Marabou':>8} {'Marabou s':>10}"
        f" {'M/ours':>8}  ours decided by"
    )
    print(header)
    rows, disagreements, bad_cex = [], 0, 0
    with _one_blas_thread():
        for q, (i, delta, eps) in enumerate(queries):
            x = POINTS[i]
            lower = np.maximum(x - delta, net.input_domain[0])
            upper = np.minimum(x + delta, net.input_domain[1])
            y0 = net(x)
            disjuncts = _violations(y0, int(np.argmin(y0)), eps)

            def ours(x=x, delta=delta, eps=eps):
                tick = time.perf_counter()
                res = local_robustness(
                    net,
                    x,
                    delta,
                    eps=eps,
                    label_mode="argmin",
                    timeout=timeout,
                    workers=1,
                )
                return res, time.perf_counter() - tick

            def theirs(lower=lower, upper=upper, disjuncts=disjuncts):
                return _marabou_query(core, mnet, lower, upper, disjuncts, timeout)

            if q % 2 == 0:
                (res, our_s), (m_robust, m_s, m_cex) = ours(), theirs()
            else:
                (m_robust, m_s, m_cex), (res, our_s) = theirs(), ours()
            if m_cex is not None and not _refutes(net, m_cex, lower, upper, disjuncts):
                bad_cex += 1
                print(
                    f"  note: Marabou's counterexample {m_cex} does not violate "
                    "the property in our float64 forward pass"
                )
            name = (
                f"Def.1 p{i + 1} d={delta:g}"
                if eps is None
                else f"Def.3 p{i + 1} d={delta:g} e={eps:g}"
            )
            methods = ",".join(sorted({str(d.method) for d in res.details}))
            print(
                f"{name:<24} {_yes_no(res.robust):>7} {our_s:>8.3f}"
                f" {_yes_no(m_robust):>8} {m_s:>10.3f} {_ratio(res.robust, our_s, m_robust, m_s):>8}"
                f"  {methods}",
                flush=True,
            )
            if None not in (res.robust, m_robust) and res.robust != m_robust:
                disagreements += 1
                print(
                    f"!!! DISAGREEMENT on {name}: ours {_yes_no(res.robust)}, "
                    f"Marabou {_yes_no(m_robust)} !!!",
                    flush=True,
                )
            rows.append((eps is None, res.robust, our_s, m_robust, m_s))
    _peer_summary(rows, timeout)
    print(f"load average after: {_load()}")
    if bad_cex:
        print(f"Marabou counterexamples not confirmed in float64: {bad_cex}")
    if disagreements:
        print(f"\n!!! {disagreements} VERDICT DISAGREEMENT(S) WITH MARABOU !!!")
    return disagreements


def _refutes(net, x, lower, upper, disjuncts, tol=1e-6):
    """Whether `x` lies in the box and satisfies some disjunct (float64)."""
    if np.any(x < lower - tol) or np.any(x > upper + tol):
        return False
    y = net(np.clip(x, lower, upper))
    return any(
        sum(c * y[o] for o, c in zip(outs, coeffs)) <= rhs + tol
        for outs, coeffs, rhs in disjuncts
    )


def _peer_summary(rows, timeout):
    def line(title, sel):
        both = [(o, m) for _, ro, o, rm, m in sel if ro is not None and rm is not None]
        gm = math.exp(np.mean([math.log(m / o) for o, m in both])) if both else math.nan
        print(
            f"{title}: {len(sel)} queries; decided ours {sum(r[1] is not None for r in sel)},"
            f" Marabou {sum(r[3] is not None for r in sel)} (timeout {timeout:g} s);"
            f" total ours {sum(r[2] for r in sel):.2f} s, Marabou {sum(r[4] for r in sel):.2f} s;"
            f" geometric-mean Marabou/ours {gm:.1f} over {len(both)} decided by both"
        )

    print()
    line("all", rows)
    line("Def. 1", [r for r in rows if r[0]])
    line("Def. 3", [r for r in rows if not r[0]])
    line("robust (ours)", [r for r in rows if r[1] is True])
    line("not robust (ours)", [r for r in rows if r[1] is False])


def _ratio(ours, our_s, theirs, their_s):
    """Marabou/ours, as a bound (`>`, `<`) when only one of them decided."""
    mark = ""
    if ours is not None and theirs is None:
        mark = ">"
    elif ours is None and theirs is not None:
        mark = "<"
    return f"{mark}{their_s / our_s:.1f}"


def _marabou_version():
    try:
        from importlib.metadata import version

        return version("maraboupy")
    except Exception:  # noqa: BLE001 - the version is only printed
        return "?"


def _load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _yes_no(robust):
    return {True: "yes", False: "no", None: "unknown"}[robust]


if __name__ == "__main__":
    raise SystemExit(main())
