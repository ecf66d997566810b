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
Either makes the exit status 1.

Start-up: each tool's interpreter start-up and imports are measured once
(``python -c 'import ...'``, median of 3) and reported. The "own" columns are
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
import csv
import dataclasses
import json
import math
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ACASXU = REPO.parent / "shared" / "vnncomp" / "acasxu"
DEFAULT_NNENUM = REPO / ".venv-nnenum"
DEFAULT_RESULTS = REPO / "results" / "vnncomp_acasxu"
GRACE = 30.0  # seconds past the timeout before a process is killed
DECIDED = ("sat", "unsat")
THREADS = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}

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


@dataclasses.dataclass(frozen=True)
class Instance:
    """One instance: ``name`` like ``1_1/prop_2``, ``prop`` like ``prop_2``."""

    onnx: Path
    vnnlib: Path
    timeout: float
    name: str
    prop: str


@dataclasses.dataclass
class Run:
    """One tool on one instance."""

    tool: str
    instance: str
    result: str
    wall: float
    cpu: float
    counterexample: list | None = None
    checked: str | None = None  # the counterexample's re-check: Checker's words
    note: str = ""
    reported: float | None = None  # the tool's own seconds (printed by it)


# -- the tools ----------------------------------------------------------------


class Ours:
    name = "ours"

    def __init__(self, workers=1):
        self.workers = workers

    def skip_reason(self):
        return None

    def command(self, inst, out):
        cmd = [sys.executable, "-m", "keras_ndsru.verify", "vnncomp"]
        cmd += [str(inst.onnx), str(inst.vnnlib), "--timeout", f"{inst.timeout:g}"]
        return cmd + ["--out", str(out), "--workers", str(self.workers)]

    def startup(self):
        return [sys.executable, "-c", "import keras_ndsru.verify.cli"]

    def reported(self, stdout):
        """The seconds the command prints (loading the network included)."""
        found = re.search(r"^(?:sat|unsat|timeout|unknown) ([\d.]+) s$", stdout, re.M)
        return float(found.group(1)) if found else None

    def parse(self, out, stdout):
        text = out.read_text() if out.exists() else ""
        first = text.split("\n", 1)[0].strip()
        if first not in ("sat", "unsat", "timeout", "unknown"):
            return "error", None
        if first != "sat":
            return first, None
        values = dict(re.findall(r"\(X_(\d+) ([^)\s]+)\)", text))
        return "sat", [float(values[str(i)]) for i in range(len(values))]


class Nnenum:
    name = "nnenum"

    def __init__(self, venv, processes=1):
        self.python = Path(venv) / "bin" / "python"
        self.processes = processes

    def skip_reason(self):
        if not self.python.exists():
            return (
                f"nnenum skipped: no virtual environment at {self.python.parent.parent}"
            )
        probe = subprocess.run(
            [str(self.python), "-c", "import nnenum.nnenum"],
            capture_output=True,
            text=True,
        )
        if probe.returncode:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            return (
                f"nnenum skipped: 'import nnenum.nnenum' fails in {self.python}: {last}"
            )
        return None

    def command(self, inst, out):
        cmd = [str(self.python), "-m", "nnenum.nnenum", str(inst.onnx)]
        return cmd + [
            str(inst.vnnlib),
            f"{inst.timeout:g}",
            str(out),
            str(self.processes),
        ]

    def startup(self):
        return [str(self.python), "-c", "import nnenum.nnenum"]

    def reported(self, stdout):
        """Its "Runtime:" lines, summed (enumeration only, one per input box)."""
        found = re.findall(r"Runtime: (?:[\d.]+ min \()?([\d.]+) sec", stdout)
        return sum(float(v) for v in found) if found else None

    def parse(self, out, stdout):
        word = out.read_text().strip() if out.exists() else ""
        result = {"holds": "unsat", "violated": "sat", "timeout": "timeout"}.get(word)
        if result is None:
            return ("unknown" if word else "error"), None
        if result != "sat":
            return result, None
        found = re.search(r"Input: \[([^\]]*)\]", stdout)
        if not found:
            return "sat", None
        return "sat", [float(v) for v in found.group(1).split(",")]


def _cpu_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(tool, inst, workdir) -> Run:
    """Runs ``tool`` on ``inst`` in its own process (group), timed."""
    out = workdir / f"{tool.name}_{inst.name.replace('/', '_')}.txt"
    out.unlink(missing_ok=True)
    env = {**os.environ, **THREADS}
    cpu0, start = _cpu_children(), time.perf_counter()
    proc = subprocess.Popen(
        tool.command(inst, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    note = ""
    try:
        stdout, _ = proc.communicate(timeout=inst.timeout + GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
        note = "killed"
    wall = time.perf_counter() - start
    cpu = _cpu_children() - cpu0
    if note:
        return Run(tool.name, inst.name, "timeout", wall, cpu, note=note)
    result, cex = tool.parse(out, stdout or "")
    if result == "error":
        note = (stdout or "").strip().splitlines()[-1:] or [""]
        note = note[0][:200]
    reported = tool.reported(stdout or "")
    return Run(
        tool.name,
        inst.name,
        result,
        wall,
        cpu,
        counterexample=cex,
        note=note,
        reported=reported,
    )


def startup_seconds(tool, repeats=3):
    """Median (wall, CPU) seconds of the tool's interpreter start-up and imports."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu0, start = _cpu_children(), time.perf_counter()
        subprocess.run(
            tool.startup(), capture_output=True, env={**os.environ, **THREADS}, cwd=REPO
        )
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu_children() - cpu0)
    return statistics.median(walls), statistics.median(cpus)


# -- counterexample re-check --------------------------------------------------


class Checker:
    """Re-checks a counterexample on the ONNX graph with onnxruntime.

    Returns "exact" (in the input box and unsafe, with no tolerance),
    "tolerance" (only within ``TOLERANCE`` of the box or of the unsafe
    condition, e.g. a box bound rounded to float32 the wrong way), or
    "fails".
    """

    TOLERANCE = 1e-6

    def __init__(self):
        import onnxruntime

        self.ort = onnxruntime
        self.sessions, self.properties = {}, {}

    def session(self, onnx):
        if onnx not in self.sessions:
            options = self.ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.sessions[onnx] = self.ort.InferenceSession(str(onnx), options)
        return self.sessions[onnx]

    def __call__(self, inst, values) -> str:
        from keras_ndsru.verify.formats.vnnlib import read_vnnlib

        session = self.session(inst.onnx)
        node = session.get_inputs()[0]
        dtype = np.float64 if node.type == "tensor(double)" else np.float32
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in node.shape]
        x = np.asarray(values, np.float64).astype(dtype)
        y = np.asarray(session.run(None, {node.name: x.reshape(shape)})[0], np.float64)
        y = y.ravel()
        key = (inst.vnnlib, x.size, y.size)
        if key not in self.properties:
            self.properties[key] = read_vnnlib(inst.vnnlib, x.size, y.size)
        point = x.astype(np.float64)
        best = "fails"
        for prop in self.properties[key]:
            rows, rhs, _ = prop.rows()
            margin = np.maximum.reduceat(rows @ y - rhs, prop.row_starts()).min()
            region = prop.region
            outside = max(
                float(np.max(region.lower - point, initial=0.0)),
                float(np.max(point - region.upper, initial=0.0)),
            )
            if region.a_ub is not None:
                excess = region.a_ub @ point - region.b_ub
                outside = max(outside, float(np.max(excess, initial=0.0)))
            if outside == 0.0 and margin <= 0:
                return "exact"
            if outside <= self.TOLERANCE and margin <= self.TOLERANCE:
                best = "tolerance"
        return best


# -- instances ----------------------------------------------------------------


def read_instances(folder: Path) -> list[Instance]:
    out = []
    with open(folder / "acasxu_instances.csv") as file:
        for row in csv.reader(file):
            if not row or not row[0].strip():
                continue
            onnx, vnnlib, timeout = (v.strip() for v in row[:3])
            net = re.search(r"_(\d_\d)_batch", onnx).group(1)
            prop = Path(vnnlib).stem
            out.append(
                Instance(
                    folder / onnx,
                    folder / vnnlib,
                    float(timeout),
                    f"{net}/{prop}",
                    prop,
                )
            )
    return out


def select(instances, spec, per_prop, limit):
    """Filters: comma-separated substrings of names (``prop_2``, ``3_3/prop_9``;
    ``prop_1`` matches ``prop_1`` only) or CSV row ranges ``a-b``."""
    chosen = list(enumerate(instances))
    if spec:
        keep = set()
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            if re.fullmatch(r"\d+(-\d+)?", part):
                lo, _, hi = part.partition("-")
                keep |= set(range(int(lo), int(hi or lo) + 1))
                continue
            for i, inst in chosen:
                pattern = re.escape(part) + (r"$" if part.startswith("prop") else "")
                if re.search(pattern, inst.name):
                    keep.add(i)
        chosen = [(i, inst) for i, inst in chosen if i in keep]
    if per_prop:
        seen: dict = {}
        kept = []
        for i, inst in chosen:
            seen[inst.prop] = seen.get(inst.prop, 0) + 1
            if seen[inst.prop] <= per_prop:
                kept.append((i, inst))
        chosen = kept
    instances = [inst for _, inst in chosen]
    return instances[:limit] if limit else instances


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


# -- running and reporting ----------------------------------------------------


def load_runs(path: Path) -> dict:
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                run = Run(**json.loads(line))
                runs[(run.tool, run.instance)] = run
    return runs


def run_all(instances, tools, checker, log_path, resume):
    """Runs every tool on every instance (alternating which goes first)."""
    done = load_runs(log_path) if resume else {}
    if not resume:
        log_path.unlink(missing_ok=True)
    workdir = log_path.parent / "out"
    workdir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for k, inst in enumerate(instances):
        order = tools if k % 2 == 0 else tools[::-1]
        line = [f"[{k + 1}/{len(instances)}] {inst.name}"]
        for tool in order:
            run = done.get((tool.name, inst.name))
            if run is None:
                run = run_tool(tool, inst, workdir)
                if run.result == "sat" and run.counterexample is not None:
                    run.checked = checker(inst, run.counterexample)
                with open(log_path, "a") as file:
                    file.write(json.dumps(dataclasses.asdict(run)) + "\n")
            runs[(tool.name, inst.name)] = run
            mark = {
                "fails": " (counterexample FAILS)",
                "tolerance": " (counterexample only within 1e-6)",
            }.get(run.checked, "")
            line.append(f"{tool.name} {run.result}{mark} {run.wall:.2f}s")
        print("  ".join(line), flush=True)
    return runs


def judge(instances, tools, runs):
    """Per tool, the names of its wrong verdicts; and the disagreements."""
    wrong = {tool.name: [] for tool in tools}
    disagree = []
    names = [tool.name for tool in tools]
    for inst in instances:
        got = {t: runs[(t, inst.name)] for t in names if (t, inst.name) in runs}
        for t, run in got.items():
            if run.result == "sat" and run.checked == "fails":
                wrong[t].append(inst.name)
        confirmed = [
            t
            for t, run in got.items()
            if run.result == "sat" and run.checked in ("exact", "tolerance")
        ]
        for t, run in got.items():
            if run.result == "unsat" and confirmed:
                wrong[t].append(inst.name)
        decided = {t: run.result for t, run in got.items() if run.result in DECIDED}
        if len(set(decided.values())) > 1 and not confirmed:
            disagree.append((inst.name, decided))
    return wrong, disagree


def own_seconds(run, startup_wall: float) -> float:
    """The seconds a tool printed for its work; where it printed none (nnenum
    when it proves a property before enumerating), its process wall time less
    its measured start-up, as VNN-COMP subtracts a tool's overhead."""
    if run.reported is not None:
        return run.reported
    return max(run.wall - startup_wall, 1e-3)


def summary_rows(instances, tools, runs, wrong, startup):
    rows = []
    for tool in tools:
        mine = [
            runs[(tool.name, i.name)] for i in instances if (tool.name, i.name) in runs
        ]
        if not mine:
            continue
        walls = [r.wall for r in mine]
        over = startup.get(tool.name, (0.0, 0.0))
        own = [own_seconds(r, over[0]) for r in mine]
        sat = sum(r.result == "sat" for r in mine)
        unsat = sum(r.result == "unsat" for r in mine)
        rows.append(
            [
                tool.name,
                f"{sat + unsat}/{len(mine)}",
                f"{sat}/{unsat}",
                "/".join(
                    str(sum(r.result == "sat" and r.checked == c for r in mine))
                    for c in ("exact", "tolerance", None)
                ),
                str(len(mine) - sat - unsat),
                str(len(wrong[tool.name])),
                f"{sum(walls):.1f}",
                f"{statistics.median(walls):.2f}",
                f"{max(walls):.2f}",
                f"{sum(r.cpu for r in mine):.1f}",
                f"{sum(own):.1f}",
                f"{statistics.median(own):.2f}",
                f"{max(own):.2f}",
                f"{over[0]:.2f} / {over[1]:.2f}",
            ]
        )
    return rows


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def per_property(instances, tools, runs):
    props = sorted({i.prop for i in instances}, key=lambda p: (len(p), p))
    rows = []
    for prop in props:
        group = [i for i in instances if i.prop == prop]
        row = [prop, str(len(group))]
        for tool in tools:
            mine = [
                runs[(tool.name, i.name)] for i in group if (tool.name, i.name) in runs
            ]
            if not mine:
                row += ["-", "-", "-"]
                continue
            sat = sum(r.result == "sat" for r in mine)
            unsat = sum(r.result == "unsat" for r in mine)
            row += [
                f"{sat + unsat} ({sat}/{unsat})",
                f"{sum(r.wall for r in mine):.1f}",
                f"{max(r.wall for r in mine):.2f}",
            ]
        rows.append(row)
    header = ["property", "instances"]
    for tool in tools:
        header += [
            f"{tool.name} decided (sat/unsat)",
            f"{tool.name} total s",
            f"{tool.name} max s",
        ]
    return table(header, rows)


def geometric_mean(values):
    return (
        math.exp(sum(math.log(v) for v in values) / len(values))
        if values
        else float("nan")
    )


def report(title, instances, tools, runs, startup):
    wrong, disagree = judge(instances, tools, runs)
    header = [
        "tool",
        "decided",
        "sat/unsat",
        "sat checked exact/1e-6/none",
        "timeout/unknown/error",
        "wrong",
        "total s",
        "median s",
        "max s",
        "CPU s",
        "own total s",
        "own median s",
        "own max s",
        "start-up wall / CPU s",
    ]
    print(f"\n## {title}: {len(instances)} instances\n")
    print(table(header, summary_rows(instances, tools, runs, wrong, startup)))
    print(
        "\n(total/median/max: wall-clock seconds per process, start-up included; "
        "CPU: user + system of the process and its children; own: the seconds the "
        "tool prints itself, ours from loading the network, nnenum's 'Runtime' of "
        "its enumeration; where it printed none, the process wall time less the "
        "tool's start-up)\n"
    )
    print(per_property(instances, tools, runs))
    for tool in tools:
        if wrong[tool.name]:
            print(f"\nWRONG ({tool.name}): {', '.join(wrong[tool.name])}")
    for name, decided in disagree:
        print(f"\nDISAGREEMENT on {name}: {decided}")
    return wrong, disagree


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
        instances = select(
            read_instances(args.acasxu), args.instances, args.per_prop, args.limit
        )
        args.results.mkdir(parents=True, exist_ok=True)
        runs = run_on_dask(
            instances, args.dask, Checker(), args.results / "dask_runs.jsonl"
        )
        wrong, disagree = report(
            f"ACAS Xu on Dask ({args.dask})", instances, [Ours()], runs, {}
        )
        return 1 if any(wrong.values()) or disagree else 0
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
        instances = select(
            read_instances(args.acasxu), args.instances, args.per_prop, args.limit
        )
        if args.timeout:
            instances = [
                dataclasses.replace(i, timeout=args.timeout) for i in instances
            ]
        runs = run_all(
            instances, tools, checker, args.results / "runs.jsonl", args.resume
        )
        wrong, disagree = report("ACAS Xu (VNN-COMP)", instances, tools, runs, startup)
        failed |= any(wrong.values()) or bool(disagree)
    if args.def1 or args.def1_only:
        queries = def1_instances(args.acasxu, args.results / "def1", args.def1_timeout)
        runs = run_all(
            queries, tools, checker, args.results / "def1_runs.jsonl", args.resume
        )
        wrong, disagree = report(
            "Def. 1 on ACAS Xu networks", queries, tools, runs, startup
        )
        def1_report(queries, tools, runs, startup)
        failed |= any(wrong.values()) or bool(disagree)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
