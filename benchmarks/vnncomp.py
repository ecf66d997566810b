"""A VNN-COMP benchmark, instance by instance: ours, alpha-beta-CROWN and nnenum.

    .venv/bin/python benchmarks/vnncomp.py BENCHMARK_DIR [--tools ours,abcrown,nnenum]
        [--timeout-cap S] [--instances SUBSTR,a-b] [--sample K] [--limit N]
        [--results DIR] [--resume] [--startup] [--engine E] [--device D]

``BENCHMARK_DIR`` is a VNN-COMP benchmark folder (e.g.
``../shared/vnncomp/{acasxu,mnistfc,oval21,cifar10_resnet}``): its name is
the benchmark's, ``<name>_instances.csv`` lists ``onnx,vnnlib,timeout`` per
line (paths relative to the folder; every line is read, the last one too
where the file has no final newline). The generalization of
``benchmarks/vnncomp_acasxu.py``; both share ``benchmarks/vnncomp_common.py``.

Tools (``--tools``, any of them, in this order), each through its own VNN-COMP
command line, one process at a time with the same timeout and
``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``; which tool goes
first rotates per instance. A tool that is not installed is skipped with the
reason.

- ``ours``: ``python -m keras_ndsru.verify vnncomp NET PROP --timeout T --out
  RESULT`` (``--engine``, ``--device``, ``--workers``; by default the
  command's own defaults, auto engine and device, 1 process).
- ``abcrown``: alpha-beta-CROWN on the CPU, ``bash
  ../shared/peers/abcrown/run_instance.sh BENCHMARK NET PROP T`` (its VNN-COMP
  2021 configuration for the benchmark, one thread, MIP with 1 process; see
  ``../shared/peers/README.md``); ``ABCROWN_RESULT`` keeps its result file
  and counterexample. Start-up is 6-8 s of every run.
- ``nnenum``: ``python -m nnenum.nnenum NET PROP T RESULT 1`` from
  ``.venv-nnenum`` (installation: ``benchmarks/vnncomp_acasxu.py``). It
  prints a counterexample only for networks with at most 10 inputs.

``--timeout-cap S`` runs every instance with ``min(CSV timeout, S)``; the
timeouts used are printed with the tables. Selection: ``--instances``
(comma-separated substrings of the names ``network/property``, or 0-based CSV
row ranges ``a-b``), then ``--sample K`` (K instances spread evenly over what
is left, deterministic), then ``--limit N``.

Verdicts: every ``sat`` counterexample is re-checked with onnxruntime in the
network's input precision (exact, only within 1e-6, or fails; one that fails
as given but holds when read channel-first, as alpha-beta-CROWN may list a
channel-last network's inputs, is shown as such). A verdict is *wrong* when
its counterexample fails, when it contradicts a checked counterexample of
another tool, or when it contradicts ``reference_2021.csv`` (the verdict the
VNN-COMP 2021 tools agreed on, matched by benchmark and the CSV's onnx and
vnnlib paths) and no checked counterexample overturns the reference. Decided
verdicts that differ with neither are a *disagreement*. Either makes the
exit status 1. Next to the tools, the ``abcrown 2021`` row holds what
alpha-beta-CROWN answered in 2021 on the same instances (on a GPU, with the
full 2021 timeouts; how many of those answers came within the timeouts used
here is printed below).

Per tool: instances, decided (sat/unsat), timeouts/unknown/errors, wrong, the
total, median and largest wall seconds (start-up included), the largest
overrun past the timeout (wall - timeout), how many runs took longer than
timeout + 1 s, peak memory (the larger of GNU time's maximum resident set of
the largest process and a sum over the live process tree sampled every 0.2 s
from /proc), CPU seconds, and the seconds each tool prints for its own work.
Then per network, and per instance for samples of up to 40.

Results go to ``--results`` (default ``results/vnncomp/<benchmark>``):
``runs.jsonl`` (one JSON line per run; ``--resume`` reuses the runs logged
with the same timeout), ``out/`` (each run's result file and output) and
``report.md`` (the tables printed).
"""

from __future__ import annotations

import argparse
import collections
import io
import math
import sys
from contextlib import redirect_stdout
from pathlib import Path

from vnncomp_common import (
    DEFAULT_ABCROWN_SCRIPT,
    DEFAULT_NNENUM,
    DEFAULT_REFERENCE,
    REPO,
    SUMMARY_NOTE,
    AbCrown,
    Checker,
    Nnenum,
    Ours,
    Reference,
    cap_timeouts,
    judge,
    judgement_lines,
    per_group,
    read_instances,
    run_all,
    select,
    startup_seconds,
    summary_table,
    table,
)

TOOLS = ("ours", "abcrown", "nnenum")
RECORDED = "abcrown 2021"  # alpha-beta-CROWN's 2021 answers, from the reference
PER_INSTANCE_MAX = 40


class Recorded:
    """A tool whose runs are read, not run (``reference_2021.csv``)."""

    def __init__(self, name):
        self.name = name


def make_tools(args, benchmark) -> list:
    """The tools asked for that are installed (the others with the reason)."""
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(wanted) - set(TOOLS))
    if unknown:
        raise SystemExit(
            f"--tools must name some of {', '.join(TOOLS)}. "
            f"Received: --tools={args.tools}"
        )
    made = {
        "ours": lambda: Ours(args.workers, args.engine, args.device),
        "abcrown": lambda: AbCrown(benchmark, args.abcrown_script, args.abcrown_home),
        "nnenum": lambda: Nnenum(args.nnenum_venv, args.nnenum_processes),
    }
    tools = []
    for name in dict.fromkeys(wanted):
        tool = made[name]()
        reason = tool.skip_reason()
        if reason:
            print(reason)
        else:
            tools.append(tool)
    return tools


def timeouts_line(full, used, cap) -> str:
    counts = collections.Counter(
        (f.timeout, u.timeout) for f, u in zip(full, used, strict=True)
    )
    parts = [
        f"{n} x {u:g} s" + (f" (CSV {f:g} s)" if u != f else "")
        for (f, u), n in sorted(counts.items())
    ]
    capped = f", capped by --timeout-cap {cap:g}" if cap else " (the CSV's)"
    return f"timeouts used: {', '.join(parts)}{capped}"


def cell(run) -> str:
    if run is None:
        return "-"
    text = run.result
    if run.result == "sat":
        text += {
            "exact": " (cex exact)",
            "tolerance": " (cex 1e-6)",
            "channel-first": " (cex channel-first)",
            "fails": " (cex FAILS)",
        }.get(run.checked, " (no cex)")
    return text if math.isnan(run.wall) else f"{text} {run.wall:.1f} s"


def per_instance(instances, names, runs, verdicts) -> str:
    rows = [
        [inst.name, f"{inst.timeout:g}", verdicts.get(inst.name, "-")]
        + [cell(runs.get((name, inst.name))) for name in names]
        for inst in instances
    ]
    return table(["instance", "timeout s", "reference 2021", *names], rows)


def report(benchmark, full, instances, tools, runs, reference, cap, startup):
    """Prints the tables; returns the judgement."""
    recorded = reference.recorded_runs(instances, "a-b-CROWN", RECORDED)
    everyone = [*tools, Recorded(RECORDED)] if recorded else list(tools)
    runs = {**runs, **recorded}
    verdicts = reference.verdicts(instances)
    judgement = judge(instances, everyone, runs, verdicts)
    plural = "s" if len(instances) != 1 else ""
    print(f"\n## {benchmark}: {len(instances)} instance{plural}\n")
    print(timeouts_line(full, instances, cap))
    known = collections.Counter(verdicts.values())
    counts = ", ".join(f"{n} {v}" for v, n in sorted(known.items()))
    print(
        f"{reference.path.name}: {len(verdicts)} of them ({counts})\n"
        if verdicts
        else f"{reference.path.name}: none of them\n"
    )
    print(summary_table(instances, everyone, runs, judgement, startup))
    print(f"\n{SUMMARY_NOTE}")
    if recorded:
        within = sum(
            run.result in ("sat", "unsat") and run.wall <= inst.timeout
            for inst in instances
            if (run := runs.get((RECORDED, inst.name)))
        )
        print(
            f"\n{RECORDED}: alpha-beta-CROWN's answers in VNN-COMP 2021 (GPU, "
            f"2021 timeouts, seconds as recorded then); {within} of its decided "
            "instances within the timeouts used here."
        )
    print()
    print(per_group(instances, everyone, runs, "network"))
    if len(instances) <= PER_INSTANCE_MAX:
        print()
        print(per_instance(instances, [t.name for t in everyone], runs, verdicts))
    for line in judgement_lines(judgement):
        print(f"\n{line}")
    return judgement


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark_dir", type=Path, help="a VNN-COMP benchmark folder")
    parser.add_argument("--tools", default=",".join(TOOLS), help="ours,abcrown,nnenum")
    parser.add_argument(
        "--timeout-cap", type=float, default=None, help="cap every timeout at S s"
    )
    parser.add_argument(
        "--instances", default="", help="substrings of names, CSV row ranges a-b"
    )
    parser.add_argument("--sample", type=int, default=0, help="K spread evenly")
    parser.add_argument("--limit", type=int, default=0, help="first N instances")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--resume", action="store_true", help="reuse logged runs")
    parser.add_argument(
        "--startup", action="store_true", help="measure each tool's start-up"
    )
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--engine", default=None, help="ours: auto, split, graph")
    parser.add_argument("--device", default=None, help="ours: auto, cpu, cuda")
    parser.add_argument("--workers", type=int, default=1, help="ours: processes")
    parser.add_argument("--abcrown-script", type=Path, default=DEFAULT_ABCROWN_SCRIPT)
    parser.add_argument(
        "--abcrown-home", type=Path, default=None, help="default: $ABCROWN_HOME"
    )
    parser.add_argument("--nnenum-venv", type=Path, default=DEFAULT_NNENUM)
    parser.add_argument("--nnenum-processes", type=int, default=1)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    folder = args.benchmark_dir
    benchmark = folder.resolve().name
    if not (folder / f"{benchmark}_instances.csv").exists():
        print(f"{folder}: no {benchmark}_instances.csv (a VNN-COMP benchmark folder)")
        return 2
    full = select(
        read_instances(folder),
        args.instances,
        sample=args.sample,
        limit=args.limit,
    )
    if not full:
        print("no instance selected")
        return 2
    instances = cap_timeouts(full, args.timeout_cap)
    tools = make_tools(args, benchmark)
    if not tools:
        print("no tool to run")
        return 2
    results = args.results or REPO / "results" / "vnncomp" / benchmark
    results.mkdir(parents=True, exist_ok=True)
    print(timeouts_line(full, instances, args.timeout_cap))
    startup = None
    if args.startup:
        startup = {tool.name: startup_seconds(tool) for tool in tools}
        for name, (wall, cpu) in startup.items():
            print(f"start-up of {name}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    runs = run_all(instances, tools, Checker(), results / "runs.jsonl", args.resume)
    text = io.StringIO()
    with redirect_stdout(text):
        judgement = report(
            benchmark,
            full,
            instances,
            tools,
            runs,
            Reference(args.reference),
            args.timeout_cap,
            startup,
        )
    print(text.getvalue(), end="")
    command = " ".join(["benchmarks/vnncomp.py", *(argv or sys.argv[1:])])
    (results / "report.md").write_text(f"`{command}`\n{text.getvalue()}")
    return 1 if judgement.failed else 0


if __name__ == "__main__":
    sys.exit(main())
