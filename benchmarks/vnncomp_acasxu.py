"""VNN-COMP's ACAS Xu category: our verifier against nnenum, instance by instance.

The category (``acasxu_instances.csv``: 45 networks, properties 1-10, 186
instances, 116 s each) runs through both tools' VNN-COMP command lines on this
machine, one process at a time, with the same timeout: ours
(``python -m keras_ndsru.verify vnncomp NET PROP --timeout T --out RESULT``,
``--workers`` processes, 1 by default) and nnenum
(``python -m nnenum.nnenum NET PROP T RESULT PROCESSES`` from its own virtual
environment, ``--nnenum-processes``, 1 by default). Both get
``OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1``; which tool goes
first alternates per instance. Per run: the verdict (``unsat``, ``sat``,
``timeout``, ``unknown``, ``error``), wall-clock seconds of the process and its
CPU seconds (user + system, children included). A process still alive 30 s
after its timeout is killed (``timeout``).

Every ``sat`` counterexample (ours from the result file, nnenum's from its
``Input: [...]`` line) is re-checked with onnxruntime: the point, in the
graph's input precision, must lie in the property's input box and its
onnxruntime outputs must satisfy one unsafe case, exactly; one that does
only within 1e-6 (nnenum rounds the box to float32, which can move a bound
outwards) is reported as such. A ``sat`` that fails the check, or a verdict
contradicted by the other tool's checked counterexample, is *wrong*; two
decided verdicts that differ without such evidence are a *disagreement*.
Either makes the exit status 1. Per tool also: the largest overrun past the
timeout and the peak memory of its process tree (how both are measured:
``benchmarks/vnncomp_common.py``, which this script shares with
``benchmarks/vnncomp.py``, the same comparison on any VNN-COMP benchmark).

Start-up: each tool's interpreter start-up and imports are measured once
(median of 3: ``python -m keras_ndsru.verify vnncomp --help``, the command
line's own path, which loads no Keras; ``python -c 'import nnenum.nnenum'``)
and reported. The "own" columns are
the seconds each tool prints for its work (ours: from loading the network to
the verdict; nnenum: its enumeration's "Runtime"; where a tool prints none,
as nnenum when it proves a property before enumerating, the process wall time
less its start-up), i.e. without the start-up, as VNN-COMP subtracts a tool's
overhead.

``--def1`` adds Def. 1 queries (Katz et al., arXiv 1709.02802: the advisory,
argmin of the outputs, must not change in an L_inf ball) on several ACAS Xu
networks, written as VNN-LIB files (one disjunct ``Y_j <= Y_label`` per other
output) so that both tools read the same query; the robust proofs (both
``unsat``) are compared by geometric mean.

nnenum (https://github.com/stanleybak/nnenum, GPL-3.0) is never vendored: it is
installed into its own environment, e.g. (it needs numpy < 2.3, whose
``np.dot`` would raise the floating-point errors nnenum turns on)::

    python3 -m venv .venv-nnenum
    .venv-nnenum/bin/pip install "numpy<2.3" scipy threadpoolctl swiglpk \\
        termcolor onnx onnxruntime skl2onnx
    .venv-nnenum/bin/pip install --no-deps PATH/TO/nnenum-checkout

Without it (``--nnenum-venv``), the nnenum columns are skipped with the reason.

    .venv/bin/python benchmarks/vnncomp_acasxu.py [--acasxu DIR]
        [--instances prop_1,3_3/prop_9,0-44] [--per-prop K] [--limit N]
        [--results DIR] [--resume] [--no-nnenum] [--def1 | --def1-only]

Results go to ``--results`` (default ``results/vnncomp_acasxu``) as JSON lines,
one per run; ``--resume`` reuses the runs already there.

On a cluster (``pip install "dask[distributed]"``): start a scheduler and
workers on machines that share this checkout's environment and the ACAS Xu
folder (``dask scheduler``; ``dask worker tcp://HOST:8786 --nworkers 8
--nthreads 1``), then ``--dask tcp://HOST:8786`` runs our instances as Dask
tasks (each one `run_instance` inside a worker, timed there; nnenum is not
run), or ``--dask local:4`` on a local cluster of 4 worker processes. Inside
one instance, ``--workers`` (or `run_instance(executor=...)`) spreads the
disjuncts and input regions over any `concurrent.futures.Executor`, e.g.
``Client(...).get_executor(pure=False)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
from vnncomp_common import (
    DEFAULT_NNENUM,
    REPO,
    SUMMARY_NOTE,
    Checker,
    Instance,
    Nnenum,
    Ours,
    Run,
    judge,
    judgement_lines,
    own_seconds,
    per_group,
    run_all,
    select,
    startup_seconds,
    summary_table,
    table,
)
from vnncomp_common import read_instances as read_benchmark

DEFAULT_ACASXU = REPO.parent / "shared" / "vnncomp" / "acasxu"
DEFAULT_RESULTS = REPO / "results" / "vnncomp_acasxu"

# The normalized input domain of the ACAS Xu networks (the .nnet headers'
# min/max through their mean/range normalization): rho, theta, psi, v_own, v_int.
DOMAIN = (
    np.array([-0.328422877, -0.5, -0.5, -0.5, -0.5]),
    np.array([0.679857769, 0.5, 0.5, 0.5, 0.5]),
)
# Def. 1 points (normalized): the five of benchmarks/verify_acasxu.py and five more.
DEF1_POINTS = np.array(
    [
        [0.00, 0.00, 0.00, 0.00, 0.00],
        [0.20, -0.10, 0.20, 0.10, -0.20],
        [-0.20, 0.30, -0.30, -0.25, 0.25],
        [0.50, -0.35, 0.40, 0.30, 0.10],
        [-0.30, 0.05, -0.05, 0.40, -0.40],
        [0.10, 0.20, -0.20, -0.10, 0.30],
        [-0.10, -0.30, 0.10, 0.20, -0.10],
        [0.35, 0.15, 0.35, -0.30, -0.25],
        [0.60, 0.40, -0.40, 0.00, 0.20],
        [-0.25, -0.20, 0.45, -0.40, 0.00],
    ]
)
# The 90-query set of issue 14 (networks, 10 points, deltas), so that its
# numbers (nnenum 2x faster on the robust proofs) can be compared.
DEF1_NETS = ("1_1", "3_3", "5_7")
DEF1_DELTAS = (0.01, 0.03, 0.05)


# -- instances ----------------------------------------------------------------


def acasxu_naming(onnx: str, vnnlib: str) -> tuple[str, str]:
    """``("1_1/prop_2", "prop_2")``: network and property, grouped by property."""
    net = re.search(r"_(\d_\d)_batch", onnx).group(1)
    prop = Path(vnnlib).stem
    return f"{net}/{prop}", prop


def read_instances(folder: Path) -> list[Instance]:
    return read_benchmark(folder, acasxu_naming, "acasxu")


def select_acasxu(instances, spec, per_prop, limit):
    """Filters: comma-separated substrings of names (``prop_2``, ``3_3/prop_9``;
    ``prop_1`` matches ``prop_1`` only) or CSV row ranges ``a-b``."""
    return select(
        instances,
        spec,
        limit=limit,
        per_group=per_prop,
        anchored=lambda part: part.startswith("prop"),
    )


# -- Def. 1 queries -----------------------------------------------------------


def def1_vnnlib(lower, upper, label, outputs=5) -> str:
    """VNN-LIB text: inputs in the box; unsafe iff some ``Y_j <= Y_label``."""
    lines = [f"; Def. 1: the argmin advisory {label} must not change"]
    lines += [f"(declare-const X_{i} Real)" for i in range(lower.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(outputs)]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        lines += [
            f"(assert (>= X_{i} {float(lo)!r}))",
            f"(assert (<= X_{i} {float(hi)!r}))",
        ]
    cases = [f"    (and (<= Y_{j} Y_{label}))" for j in range(outputs) if j != label]
    lines += ["(assert (or", *cases, "))"]
    return "\n".join(lines) + "\n"


def def1_instances(folder: Path, workdir: Path, timeout: float) -> list[Instance]:
    """Writes the Def. 1 queries as VNN-LIB files (box rounded inwards to
    float32, the graphs' input precision) and returns them as instances."""
    from keras_ndsru.verify.formats.onnx_reader import load_onnx

    out = []
    workdir.mkdir(parents=True, exist_ok=True)
    for net_name in DEF1_NETS:
        onnx = folder / f"ACASXU_run2a_{net_name}_batch_2000.onnx"
        net = load_onnx(onnx)
        for p, x0 in enumerate(DEF1_POINTS):
            label = int(np.argmin(net(x0)))
            for delta in DEF1_DELTAS:
                lower = np.maximum(x0 - delta, DOMAIN[0]).astype(np.float32)
                upper = np.minimum(x0 + delta, DOMAIN[1]).astype(np.float32)
                lower = np.where(
                    lower < np.maximum(x0 - delta, DOMAIN[0]),
                    np.nextafter(lower, np.float32(np.inf)),
                    lower,
                )
                upper = np.where(
                    upper > np.minimum(x0 + delta, DOMAIN[1]),
                    np.nextafter(upper, np.float32(-np.inf)),
                    upper,
                )
                name = f"{net_name}/def1_p{p + 1}_d{delta:g}"
                path = workdir / f"def1_{net_name}_p{p + 1}_d{delta:g}.vnnlib"
                path.write_text(
                    def1_vnnlib(
                        lower.astype(np.float64), upper.astype(np.float64), label
                    )
                )
                out.append(Instance(onnx, path, timeout, name, f"d{delta:g}"))
    return out


# -- a Dask cluster (ours only) ------------------------------------------------


def _remote_instance(onnx, vnnlib, timeout):
    """One instance inside a Dask worker: (result, counterexample, wall, CPU)."""
    from keras_ndsru.verify.vnncomp import run_instance

    cpu0, start = time.process_time(), time.perf_counter()
    answer = run_instance(onnx, vnnlib, timeout)
    cex = None
    if answer.counterexample is not None:
        cex = [float(v) for v in answer.counterexample]
    return answer.result, cex, time.perf_counter() - start, time.process_time() - cpu0


def run_on_dask(instances, address, checker, log_path):
    """Our instances as tasks on a Dask cluster (``local:N`` starts N local
    worker processes); timings are taken inside the workers."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if address.startswith("local:"):
        cluster = LocalCluster(
            n_workers=int(address.split(":", 1)[1]),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        address = cluster
    client = Client(address)
    log_path.unlink(missing_ok=True)
    runs = {}
    try:
        futures = {
            client.submit(
                _remote_instance, str(i.onnx), str(i.vnnlib), i.timeout, pure=False
            ): i
            for i in instances
        }
        for future in as_completed(futures):
            inst = futures[future]
            result, cex, wall, cpu = future.result()
            run = Run("ours", inst.name, result, wall, cpu, cex, note="dask")
            run.timeout = inst.timeout
            if result == "sat" and cex is not None:
                run.checked = checker(inst, cex)
            runs[("ours", inst.name)] = run
            with open(log_path, "a") as file:
                file.write(json.dumps(dataclasses.asdict(run)) + "\n")
            print(f"{inst.name}  ours {result} {wall:.2f}s (in a worker)", flush=True)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return runs


# -- reporting ----------------------------------------------------------------


def report(title, instances, tools, runs, startup):
    judgement = judge(instances, tools, runs)
    print(f"\n## {title}: {len(instances)} instances\n")
    print(summary_table(instances, tools, runs, judgement, startup))
    print(f"\n{SUMMARY_NOTE}\n")
    print(per_group(instances, tools, runs, "property"))
    for line in judgement_lines(judgement):
        print(f"\n{line}")
    return judgement


def geometric_mean(values):
    return (
        math.exp(sum(math.log(v) for v in values) / len(values))
        if values
        else float("nan")
    )


def def1_report(instances, tools, runs, startup):
    if len(tools) < 2:
        return
    a, b = tools[0].name, tools[1].name
    both = [
        i
        for i in instances
        if runs.get((a, i.name))
        and runs.get((b, i.name))
        and runs[(a, i.name)].result == "unsat"
        and runs[(b, i.name)].result == "unsat"
    ]
    if not both:
        print("\nNo Def. 1 query was proven robust by both tools.")
        return
    # The proofs that take work: either tool prints >= 0.3 s for it. On the
    # others both finish in a fraction of the start-up's run-to-run noise,
    # and nnenum prints its runtime to 0.1 s (or none, when its prefilter
    # proves the property before enumerating).
    hard = [
        i for i in both if max(runs[(t, i.name)].reported or 0.0 for t in (a, b)) >= 0.3
    ]
    measures = [
        ("process wall", both, lambda run, over: run.wall),
        ("process wall - start-up", both, lambda run, over: run.wall - over),
        ("own seconds", both, own_seconds),
        ("own seconds, proofs where one tool needs >= 0.3 s", hard, own_seconds),
        ("process CPU", both, lambda run, over: run.cpu),
    ]
    lines = []
    for label, queries, measure in measures:
        if not queries:
            continue
        gm = {}
        for t in (a, b):
            over = startup.get(t, (0.0, 0.0))[0]
            values = [max(measure(runs[(t, i.name)], over), 1e-3) for i in queries]
            gm[t] = geometric_mean(values)
        lines.append(
            [
                label,
                str(len(queries)),
                f"{gm[a]:.3f}",
                f"{gm[b]:.3f}",
                f"{gm[b] / gm[a]:.2f}",
            ]
        )
    print("\nDef. 1 robust proofs (both unsat), geometric means of seconds:\n")
    print(table(["measure", "queries", a, b, f"{b}/{a}"], lines))


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acasxu", type=Path, default=DEFAULT_ACASXU)
    parser.add_argument("--instances", default="", help="e.g. prop_1,3_3/prop_9,0-44")
    parser.add_argument(
        "--per-prop", type=int, default=0, help="first K of each property"
    )
    parser.add_argument("--limit", type=int, default=0, help="first N instances")
    parser.add_argument("--timeout", type=float, default=None, help="override the CSV")
    parser.add_argument("--workers", type=int, default=1, help="our processes")
    parser.add_argument("--nnenum-venv", type=Path, default=DEFAULT_NNENUM)
    parser.add_argument("--nnenum-processes", type=int, default=1)
    parser.add_argument("--no-nnenum", action="store_true")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--resume", action="store_true", help="reuse logged runs")
    parser.add_argument("--def1", action="store_true", help="also Def. 1 queries")
    parser.add_argument("--def1-only", action="store_true")
    parser.add_argument("--def1-timeout", type=float, default=60.0)
    parser.add_argument(
        "--dask",
        default=None,
        help="run our instances on a Dask scheduler (ADDRESS, or local:N)",
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.acasxu / "acasxu_instances.csv").exists():
        print(f"{args.acasxu}: no acasxu_instances.csv (VNN-COMP's ACAS Xu folder)")
        return 2
    if args.dask:
        instances = select_acasxu(
            read_instances(args.acasxu), args.instances, args.per_prop, args.limit
        )
        args.results.mkdir(parents=True, exist_ok=True)
        runs = run_on_dask(
            instances, args.dask, Checker(), args.results / "dask_runs.jsonl"
        )
        judgement = report(
            f"ACAS Xu on Dask ({args.dask})", instances, [Ours()], runs, {}
        )
        return 1 if judgement.failed else 0
    tools = [Ours(args.workers)]
    nnenum = Nnenum(args.nnenum_venv, args.nnenum_processes)
    reason = "nnenum skipped: --no-nnenum" if args.no_nnenum else nnenum.skip_reason()
    if reason:
        print(reason)
    else:
        tools.append(nnenum)
    args.results.mkdir(parents=True, exist_ok=True)
    startup = {tool.name: startup_seconds(tool) for tool in tools}
    for name, (wall, cpu) in startup.items():
        print(f"start-up of {name}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    checker = Checker()
    failed = False
    if not args.def1_only:
        instances = select_acasxu(
            read_instances(args.acasxu), args.instances, args.per_prop, args.limit
        )
        if args.timeout:
            instances = [
                dataclasses.replace(i, timeout=args.timeout) for i in instances
            ]
        runs = run_all(
            instances, tools, checker, args.results / "runs.jsonl", args.resume
        )
        judgement = report("ACAS Xu (VNN-COMP)", instances, tools, runs, startup)
        failed |= judgement.failed
    if args.def1 or args.def1_only:
        queries = def1_instances(args.acasxu, args.results / "def1", args.def1_timeout)
        runs = run_all(
            queries, tools, checker, args.results / "def1_runs.jsonl", args.resume
        )
        judgement = report("Def. 1 on ACAS Xu networks", queries, tools, runs, startup)
        def1_report(queries, tools, runs, startup)
        failed |= judgement.failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
