"""What the VNN-COMP benchmark scripts share: instances, the tools' command
lines, timed runs, counterexample re-checks, verdicts and tables.

Used by ``benchmarks/vnncomp.py`` (any VNN-COMP benchmark folder, ours against
alpha-beta-CROWN and nnenum) and ``benchmarks/vnncomp_acasxu.py`` (ACAS Xu
against nnenum, with its Def. 1 queries and Dask mode).

Every tool runs as its own process in a new session, with
``OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=MKL_NUM_THREADS=1``, its output in a log
file next to its result file. Measured per run:

- wall: seconds from starting the process to its exit, start-up included;
  overrun is ``wall - timeout``. A session still alive ``GRACE`` seconds past
  the timeout is killed (every process in it) and the run is a ``timeout``.
- CPU: user + system seconds of the process and its waited-for descendants
  (``RUSAGE_CHILDREN`` before and after).
- peak memory: the larger of (a) the kernel's high-water resident set of the
  largest single process of the tree, which GNU time (``/usr/bin/time -f %M``,
  from ``wait4``) reports when it wraps the command, and (b) the largest sum
  over all live processes of the session of their proportional set sizes
  (``Pss`` of ``/proc/PID/smaps_rollup``: pages shared after a fork count
  once; the resident set where it is missing), sampled every
  ``SAMPLE_SECONDS``. (a) is exact for one process; (b) sees tools that run
  several processes at once but can miss a spike shorter than the interval.
  Either is skipped where it is not available (no ``/usr/bin/time``, no
  ``/proc``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# The re-check reads VNN-LIB through keras_ndsru, whose import may load TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_NNENUM = REPO / ".venv-nnenum"
DEFAULT_ABCROWN_SCRIPT = SHARED / "peers" / "abcrown" / "run_instance.sh"
DEFAULT_REFERENCE = SHARED / "vnncomp" / "reference_2021.csv"
GRACE = 30.0  # seconds past the timeout before a session is killed
SAMPLE_SECONDS = 0.2  # how often the process tree's memory is sampled
DECIDED = ("sat", "unsat")
# Re-checks that show a real counterexample ("channel-first": only when its
# values are read channel-first, see Checker).
CONFIRMED = ("exact", "tolerance", "channel-first")
THREADS = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")
_ASSIGNMENT = re.compile(r"\(X_(\d+)\s+([^)\s]+)\)")


@dataclasses.dataclass(frozen=True)
class Instance:
    """One instance of a benchmark's CSV.

    ``name`` identifies it in logs and tables (``mnist-net_256x2/prop_0_0.03``),
    ``group`` is what tables summarize by (the network, or ACAS Xu's property),
    ``csv_onnx``/``csv_vnnlib`` the paths as the CSV writes them (the key into
    ``reference_2021.csv``), ``row`` its 0-based line in the CSV.
    """

    onnx: Path
    vnnlib: Path
    timeout: float
    name: str
    group: str
    benchmark: str = ""
    csv_onnx: str = ""
    csv_vnnlib: str = ""
    row: int = 0


@dataclasses.dataclass
class Run:
    """One tool on one instance."""

    tool: str
    instance: str
    result: str
    wall: float
    cpu: float | None
    counterexample: list | None = None
    checked: str | None = None  # the counterexample's re-check: Checker's words
    note: str = ""
    reported: float | None = None  # the tool's own seconds (printed by it)
    timeout: float | None = None  # the timeout it ran with
    peak_mb: float | None = None  # peak resident memory, MiB (module docstring)

    @property
    def overrun(self) -> float | None:
        return None if self.timeout is None else self.wall - self.timeout


_RUN_FIELDS = {f.name for f in dataclasses.fields(Run)}


# -- instances ----------------------------------------------------------------


def default_naming(onnx: str, vnnlib: str) -> tuple[str, str]:
    """``(name, group)``: ``network/property`` by file stems, grouped by network."""
    net = Path(onnx).stem
    return f"{net}/{Path(vnnlib).stem}", net


def read_instances(
    folder: Path,
    naming: Callable[[str, str], tuple[str, str]] = default_naming,
    benchmark: str | None = None,
) -> list[Instance]:
    """Every line of ``<benchmark>_instances.csv`` (the last one too, where
    the file has no final newline); paths are relative to ``folder``."""
    folder = Path(folder)
    benchmark = benchmark or folder.resolve().name
    path = folder / f"{benchmark}_instances.csv"
    out = []
    with open(path, newline="") as file:
        for row in csv.reader(file):
            if not row or not row[0].strip():
                continue
            onnx, vnnlib, timeout = (v.strip() for v in row[:3])
            name, group = naming(onnx, vnnlib)
            out.append(
                Instance(
                    folder / onnx,
                    folder / vnnlib,
                    float(timeout),
                    name,
                    group,
                    benchmark,
                    onnx,
                    vnnlib,
                    len(out),
                )
            )
    names = [i.name for i in out]
    if len(set(names)) < len(names):  # stems collide: name by the CSV's paths
        out = [dataclasses.replace(i, name=f"{i.csv_onnx}/{i.csv_vnnlib}") for i in out]
    return out


def spread(count: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(count)`` (the middle of each
    of ``k`` equal strata), deterministic."""
    if k <= 0 or k >= count:
        return list(range(count))
    return [(2 * i + 1) * count // (2 * k) for i in range(k)]


def select(
    instances: list[Instance],
    spec: str = "",
    *,
    limit: int = 0,
    per_group: int = 0,
    sample: int = 0,
    anchored: Callable[[str], bool] = lambda part: False,
) -> list[Instance]:
    """Filters, in this order: ``spec``, comma-separated substrings of names
    (a part for which ``anchored`` is true must end the name) or CSV row
    ranges ``a-b``; the first ``per_group`` of each group; ``sample`` spread
    evenly over what is left; the first ``limit``."""
    chosen = list(instances)
    if spec:
        keep = set()
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            if re.fullmatch(r"\d+(-\d+)?", part):
                lo, _, hi = part.partition("-")
                keep |= set(range(int(lo), int(hi or lo) + 1))
                continue
            pattern = re.escape(part) + ("$" if anchored(part) else "")
            keep |= {i.row for i in chosen if re.search(pattern, i.name)}
        chosen = [i for i in chosen if i.row in keep]
    if per_group:
        seen: dict = {}
        kept = []
        for inst in chosen:
            seen[inst.group] = seen.get(inst.group, 0) + 1
            if seen[inst.group] <= per_group:
                kept.append(inst)
        chosen = kept
    if sample:
        chosen = [chosen[k] for k in spread(len(chosen), sample)]
    return chosen[:limit] if limit else chosen


def cap_timeouts(instances: list[Instance], cap: float | None) -> list[Instance]:
    if not cap:
        return instances
    return [dataclasses.replace(i, timeout=min(i.timeout, cap)) for i in instances]


def _csv_path(text: str) -> str:
    return os.path.normpath(text.strip())


class Reference:
    """``reference_2021.csv``: per instance (benchmark, onnx and vnnlib paths
    as the benchmark's CSV writes them), the verdict the VNN-COMP 2021 tools
    agreed on (``reference``: sat, unsat, ``none`` where no tool decided,
    ``contested`` where they disagreed) and each tool's verdict and seconds
    (``<tool>_verdict``, ``<tool>_time``; ``-`` where it has none)."""

    def __init__(self, path: Path = DEFAULT_REFERENCE):
        self.path = Path(path)
        self.rows = {}
        if self.path.exists():
            with open(self.path, newline="") as file:
                for row in csv.DictReader(file):
                    key = (row["benchmark"], _csv_path(row["onnx"]))
                    self.rows[(*key, _csv_path(row["vnnlib"]))] = row

    def row(self, inst: Instance) -> dict | None:
        key = (inst.benchmark, _csv_path(inst.csv_onnx), _csv_path(inst.csv_vnnlib))
        return self.rows.get(key)

    def verdicts(self, instances) -> dict:
        """Instance name -> the agreed verdict, for the instances it has."""
        rows = {i.name: self.row(i) for i in instances}
        return {name: row["reference"] for name, row in rows.items() if row}

    def recorded_runs(self, instances, tool: str, label: str) -> dict:
        """``tool``'s 2021 answers as runs of a tool named ``label`` (wall:
        its recorded seconds, NaN where it has none; timeout: 2021's)."""
        runs = {}
        for inst in instances:
            row = self.row(inst)
            if row is None:
                continue
            verdict = row.get(f"{tool}_verdict", "").strip()
            seconds = row.get(f"{tool}_time", "").strip()
            result = verdict if verdict in ("sat", "unsat", "timeout") else "unknown"
            if verdict in ("", "-"):
                result = "error"
            runs[(label, inst.name)] = Run(
                label,
                inst.name,
                result,
                float(seconds) if seconds else float("nan"),
                None,
                timeout=float(row["timeout"]),
                note="" if result != "error" else "no 2021 result",
            )
        return runs


# -- the tools ----------------------------------------------------------------


def read_assignment(text: str) -> list[float] | None:
    """The inputs ``(X_i v)`` of a VNN-COMP counterexample, in index order."""
    values = {int(k): float(v) for k, v in _ASSIGNMENT.findall(text)}
    if not values or sorted(values) != list(range(len(values))):
        return None
    return [values[i] for i in range(len(values))]


class Ours:
    """``python -m keras_ndsru.verify vnncomp`` in this checkout."""

    name = "ours"

    def __init__(self, workers=1, engine=None, device=None):
        self.workers = workers
        self.engine, self.device = engine, device

    def skip_reason(self):
        return None

    def command(self, inst, out):
        cmd = [sys.executable, "-m", "keras_ndsru.verify", "vnncomp"]
        cmd += [str(inst.onnx), str(inst.vnnlib), "--timeout", f"{inst.timeout:g}"]
        cmd += ["--out", str(out), "--workers", str(self.workers)]
        if self.engine:
            cmd += ["--engine", self.engine]
        if self.device:
            cmd += ["--device", self.device]
        return cmd

    def env(self, out):
        return {}

    def startup(self):
        """The command line's own start-up: ``-m keras_ndsru.verify`` loads no
        Keras (``import keras_ndsru.verify.cli`` from ``-c`` would)."""
        return [sys.executable, "-m", "keras_ndsru.verify", "vnncomp", "--help"]

    def reported(self, stdout):
        """The seconds the command prints (loading the network included)."""
        found = re.search(r"^(?:sat|unsat|timeout|unknown) ([\d.]+) s$", stdout, re.M)
        return float(found.group(1)) if found else None

    def parse(self, out, stdout):
        text = out.read_text() if out.exists() else ""
        first = text.split("\n", 1)[0].strip()
        if first not in ("sat", "unsat", "timeout", "unknown"):
            return "error", None
        return first, read_assignment(text) if first == "sat" else None


class Nnenum:
    """``python -m nnenum.nnenum NET PROP T RESULT PROCESSES`` from its venv.

    It prints its counterexample (``Input: [...]``) only for networks with
    at most 10 inputs: on image networks its ``sat`` comes without one.
    """

    name = "nnenum"

    def __init__(self, venv=DEFAULT_NNENUM, processes=1):
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

    def env(self, out):
        return {}

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
        text = re.sub(r"np\.float\d+\(([^)]*)\)", r"\1", found.group(1))
        return "sat", [float(v) for v in text.split(",")]


class AbCrown:
    """alpha-beta-CROWN on the CPU through ``../shared/peers/abcrown/run_instance.sh``
    (its VNN-COMP 2021 configuration for the benchmark, one thread, MIP with 1
    process). The script prints ``result:``, ``tool_s:`` and ``wall_s:`` last;
    with ``ABCROWN_RESULT`` set it keeps the result file, whose counterexample
    lists the inputs as the tool's PyTorch model takes them."""

    name = "abcrown"
    CONFIGS = ("acasxu", "mnistfc", "oval21", "cifar10_resnet")

    def __init__(self, benchmark, script=DEFAULT_ABCROWN_SCRIPT, home=None):
        self.benchmark = benchmark
        self.script = Path(script)
        default_home = Path.home() / ".cache" / "abcrown"
        self.home = Path(home or os.environ.get("ABCROWN_HOME") or default_home)
        self.python = self.home / "venv" / "bin" / "python"
        self.verifier = self.home / "src" / "alpha-beta-CROWN" / "complete_verifier"

    def skip_reason(self):
        if self.benchmark not in self.CONFIGS:
            return (
                f"abcrown skipped: the runner has no 2021 configuration for "
                f"benchmark {self.benchmark!r} (only {', '.join(self.CONFIGS)})"
            )
        if not self.script.exists():
            return f"abcrown skipped: no runner script at {self.script}"
        if not self.python.exists() or not (self.verifier / "abcrown.py").exists():
            return (
                f"abcrown skipped: not installed at {self.home} (ABCROWN_HOME; "
                "see ../shared/peers/README.md: setup.sh)"
            )
        return None

    def command(self, inst, out):
        return [
            "bash",
            str(self.script),
            self.benchmark,
            str(inst.onnx),
            str(inst.vnnlib),
            f"{inst.timeout:g}",
        ]

    def env(self, out):
        return {"ABCROWN_RESULT": str(out), "ABCROWN_HOME": str(self.home)}

    def startup(self):
        code = f"import sys; sys.path.insert(0, {str(self.verifier)!r}); import abcrown"
        return [str(self.python), "-c", code]

    def reported(self, stdout):
        """Its own timer (``tool_s``, from after loading the model and property)."""
        found = re.findall(r"^tool_s: ([\d.]+)", stdout, re.M)
        return float(found[-1]) if found else None

    def parse(self, out, stdout):
        found = re.findall(r"^result: (\w+)", stdout, re.M)
        result = found[-1] if found else "error"
        if result not in ("sat", "unsat", "timeout", "unknown"):
            return "error", None
        if result != "sat" or not out.exists():
            return result, None
        return "sat", read_assignment(out.read_text())


# -- timed runs ---------------------------------------------------------------


def _cpu_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def session_processes(sid: int) -> list[tuple[int, int]]:
    """``(pid, resident bytes)`` of every live process in session ``sid``."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = []
    try:
        entries = os.scandir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                data = file.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()  # from field 3, "state"
        if len(fields) > 21 and int(fields[3]) == sid:
            out.append((int(entry.name), int(fields[21]) * page))
    return out


def proportional_bytes(pid: int, rss: int) -> int:
    """The process's proportional set size (its private pages plus its share
    of pages shared with others, e.g. after a fork), or ``rss`` where the
    kernel does not report it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as file:
            for line in file:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss


class TreePeak(threading.Thread):
    """Samples the summed proportional memory of one session's processes."""

    def __init__(self, sid: int):
        super().__init__(daemon=True)
        self.sid, self.peak = sid, 0
        self.done = threading.Event()

    def run(self):
        while True:
            processes = session_processes(self.sid)
            total = sum(proportional_bytes(pid, rss) for pid, rss in processes)
            self.peak = max(self.peak, total)
            if self.done.wait(SAMPLE_SECONDS):
                return

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def kill_session(sid: int) -> None:
    """SIGKILL to every process of the session (a tool's workers may sit in
    process groups of their own)."""
    for pid, _ in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(sid, signal.SIGKILL)
    except OSError:
        pass


def _gnu_time_bytes(path: Path) -> int:
    """The ``%M`` (KiB) that GNU time wrote last in ``path`` (after any
    "Command exited with non-zero status" line), in bytes."""
    try:
        lines = path.read_text().split()
    except OSError:
        return 0
    return int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else 0


def run_tool(tool, inst: Instance, workdir: Path) -> Run:
    """Runs ``tool`` on ``inst`` in its own session, timed (module docstring)."""
    stem = f"{tool.name}_{inst.name.replace('/', '_')}"
    out, log, mem = (workdir / f"{stem}{ext}" for ext in (".txt", ".log", ".mem"))
    for path in (out, mem):
        path.unlink(missing_ok=True)
    command = tool.command(inst, out)
    if GNU_TIME:
        command = [GNU_TIME, "-f", "%M", "-o", str(mem), *command]
    env = {**os.environ, **THREADS, **tool.env(out)}
    with open(log, "w") as stdout_file:
        cpu0, start = _cpu_children(), time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdout=stdout_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        sampler = TreePeak(proc.pid)
        sampler.start()
        killed = False
        try:
            proc.wait(timeout=inst.timeout + GRACE)
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            proc.wait()
            killed = True
        wall = time.perf_counter() - start
        cpu = _cpu_children() - cpu0
        peak = max(sampler.stop(), _gnu_time_bytes(mem))
    stdout = log.read_text(errors="replace")
    run = Run(
        tool.name,
        inst.name,
        "timeout",
        wall,
        cpu,
        timeout=inst.timeout,
        peak_mb=peak / 2**20 if peak else None,
    )
    if killed:
        run.note = f"killed {GRACE:g} s past the timeout"
        return run
    run.result, run.counterexample = tool.parse(out, stdout)
    run.reported = tool.reported(stdout)
    if run.result == "error":
        # The last line that says something (not alpha-beta-CROWN's summary).
        summary = ("config:", "result:", "tool_s:", "wall_s:")
        lines = [
            line.strip()
            for line in stdout.splitlines()
            if line.strip() and not line.startswith(summary)
        ]
        run.note = (lines[-1] if lines else f"exit status {proc.returncode}")[:200]
    return run


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
    condition, e.g. a box bound rounded to float32 the wrong way),
    "channel-first" (it fails as given, but holds exactly or within the
    tolerance when its values are read channel-first, ``(C, H, W)``, for a
    network whose input is channel-last, ``(1, H, W, C)``; VNN-LIB orders
    the inputs as the ONNX input is laid out, so as given it is wrong), or
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
        node = self.session(inst.onnx).get_inputs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in node.shape]
        values = np.asarray(values, np.float64)
        if values.size != int(np.prod(shape)):
            return "fails"
        found = self._check(inst, values, shape)
        if found == "fails" and len(shape) == 4 and shape[3] < min(shape[1:3]):
            _, height, width, channels = shape
            nhwc = values.reshape(channels, height, width).transpose(1, 2, 0)
            if self._check(inst, nhwc.ravel(), shape) != "fails":
                return "channel-first"
        return found

    def _check(self, inst, values, shape) -> str:
        from keras_ndsru.verify.formats.vnnlib import read_vnnlib

        session = self.session(inst.onnx)
        node = session.get_inputs()[0]
        dtype = np.float64 if node.type == "tensor(double)" else np.float32
        x = values.astype(dtype)
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


# -- logs and the run loop ----------------------------------------------------


def load_runs(path: Path) -> dict:
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                fields = json.loads(line)
                run = Run(**{k: v for k, v in fields.items() if k in _RUN_FIELDS})
                runs[(run.tool, run.instance)] = run
    return runs


def run_all(instances, tools, checker, log_path: Path, resume: bool) -> dict:
    """Runs every tool on every instance; the order rotates per instance, so
    each tool goes first equally often (two tools: they alternate). With
    ``resume``, a logged run with the same timeout is reused."""
    done = load_runs(log_path) if resume else {}
    if not resume:
        log_path.unlink(missing_ok=True)
    workdir = log_path.parent / "out"
    workdir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for k, inst in enumerate(instances):
        shift = k % len(tools)
        order = tools[shift:] + tools[:shift]
        line = [f"[{k + 1}/{len(instances)}] {inst.name}"]
        for tool in order:
            run = done.get((tool.name, inst.name))
            if run is not None and run.timeout not in (None, inst.timeout):
                run = None  # logged with another timeout
            if run is None:
                run = run_tool(tool, inst, workdir)
                if run.result == "sat" and run.counterexample is not None:
                    run.checked = checker(inst, run.counterexample)
                with open(log_path, "a") as file:
                    file.write(json.dumps(dataclasses.asdict(run)) + "\n")
            runs[(tool.name, inst.name)] = run
            line.append(f"{tool.name} {run.result}{check_mark(run)} {run.wall:.2f}s")
        print("  ".join(line), flush=True)
    return runs


def check_mark(run: Run) -> str:
    return {
        "fails": " (counterexample FAILS)",
        "tolerance": " (counterexample only within 1e-6)",
        "channel-first": " (counterexample only when read channel-first)",
    }.get(run.checked, "")


# -- verdicts -----------------------------------------------------------------


@dataclasses.dataclass
class Judgement:
    """Per tool its wrong verdicts; the unexplained disagreements; notes."""

    wrong: dict
    disagree: list
    notes: list

    @property
    def failed(self) -> bool:
        return any(self.wrong.values()) or bool(self.disagree)


def judge(instances, tools, runs, reference: dict | None = None) -> Judgement:
    """A verdict is *wrong* when it is a ``sat`` whose counterexample fails
    the re-check, an ``unsat`` where some tool's counterexample checks, or a
    decided verdict against ``reference`` (instance name -> ``sat``/``unsat``,
    anything else is no reference) that no checked counterexample overturns.
    Decided verdicts that differ with neither are a *disagreement*."""
    reference = reference or {}
    wrong = {tool.name: [] for tool in tools}
    disagree, notes = [], []
    names = [tool.name for tool in tools]
    for inst in instances:
        got = {t: runs[(t, inst.name)] for t in names if (t, inst.name) in runs}
        expected = reference.get(inst.name)
        confirmed = [
            t for t, r in got.items() if r.result == "sat" and r.checked in CONFIRMED
        ]
        for t, run in got.items():
            if run.result == "sat" and run.checked == "fails":
                wrong[t].append(inst.name)
            elif run.result == "sat" and run.checked is None:
                if expected == "unsat" and not confirmed:
                    wrong[t].append(inst.name)
            elif run.result == "unsat" and (confirmed or expected == "sat"):
                wrong[t].append(inst.name)
            if run.checked == "channel-first":
                notes.append(
                    f"{t}'s counterexample on {inst.name} fails as given and holds "
                    "when its values are read channel-first"
                )
        if confirmed and expected == "unsat":
            notes.append(
                f"{inst.name}: the reference says unsat, but {', '.join(confirmed)} "
                "gave a counterexample that re-checks"
            )
        decided = {t: run.result for t, run in got.items() if run.result in DECIDED}
        settled = confirmed or expected in DECIDED
        if len(set(decided.values())) > 1 and not settled:
            disagree.append((inst.name, decided))
    return Judgement(wrong, disagree, notes)


# -- tables -------------------------------------------------------------------


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def own_seconds(run, startup_wall: float) -> float:
    """The seconds a tool printed for its work; where it printed none (nnenum
    when it proves a property before enumerating), its process wall time less
    its measured start-up, as VNN-COMP subtracts a tool's overhead."""
    if run.reported is not None:
        return run.reported
    return max(run.wall - startup_wall, 1e-3)


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


SUMMARY_HEADER = [
    "tool",
    "decided",
    "decided by T+1 s",
    "sat/unsat",
    "sat counterexample exact/1e-6/none/fails",
    "timeout/unknown/error",
    "wrong",
    "total s",
    "median s",
    "max s",
    "max overrun s",
    "runs > T+1 s",
    "peak MiB",
    "CPU s",
    "own total s",
    "own median s",
]


def summary_row(name, mine, wrong, startup=None) -> list[str]:
    """One tool's line of ``SUMMARY_HEADER`` (plus start-up, if measured)."""
    timed = [r for r in mine if not math.isnan(r.wall)]  # a record may have none
    walls = [r.wall for r in timed] or [float("nan")]
    over = [r.overrun for r in timed if r.overrun is not None]
    peaks = [r.peak_mb for r in mine if r.peak_mb is not None]
    cpus = [r.cpu for r in mine if r.cpu is not None]
    own = [own_seconds(r, (startup or (0.0, 0.0))[0]) for r in timed]
    sat = [r for r in mine if r.result == "sat"]
    unsat = sum(r.result == "unsat" for r in mine)
    checks = ("exact", "tolerance", None, "fails")
    on_time = sum(
        r.result in DECIDED and r.overrun is not None and r.overrun <= 1.0
        for r in timed
    )
    row = [
        name,
        f"{len(sat) + unsat}/{len(mine)}",
        str(on_time),
        f"{len(sat)}/{unsat}",
        "/".join(str(sum(r.checked == c for r in sat)) for c in checks),
        "/".join(str(sum(r.result == w for r in mine)) for w in ("timeout", "unknown"))
        + f"/{sum(r.result not in (*DECIDED, 'timeout', 'unknown') for r in mine)}",
        str(len(wrong)),
        f"{sum(walls):.1f}",
        f"{statistics.median(walls):.2f}",
        f"{max(walls):.2f}",
        _fmt(max(over) if over else None, "+.2f"),
        str(sum(o > 1.0 for o in over)) if over else "-",
        _fmt(max(peaks) if peaks else None, ".0f"),
        _fmt(sum(cpus) if cpus else None, ".1f"),
        f"{sum(own):.1f}",
        _fmt(statistics.median(own) if own else None, ".2f"),
    ]
    if startup is not None:
        row.append(f"{startup[0]:.2f} / {startup[1]:.2f}")
    return row


def summary_table(instances, tools, runs, judgement, startup=None) -> str:
    header = SUMMARY_HEADER + (["start-up wall / CPU s"] if startup else [])
    rows = []
    for tool in tools:
        mine = [
            runs[(tool.name, i.name)] for i in instances if (tool.name, i.name) in runs
        ]
        if not mine:
            continue
        measured = (startup or {}).get(tool.name)
        row = summary_row(tool.name, mine, judgement.wrong[tool.name], measured)
        if startup and measured is None:  # a tool whose runs were read
            row.append("-")
        rows.append(row)
    return table(header, rows)


SUMMARY_NOTE = (
    "(decided by T+1 s: decided with the process ended by timeout + 1 s; "
    "total/median/max: wall-clock seconds per process, start-up included; "
    "overrun: wall - timeout; peak: the larger of GNU time's maximum resident "
    "set of the largest process and the largest sampled sum of proportional "
    "set sizes over the process tree; CPU: user + system of the process and "
    "its children; own: the seconds the tool prints itself (ours from loading "
    "the network, nnenum's 'Runtime' of its enumeration, alpha-beta-CROWN's "
    "tool_s from after loading); where it printed none, the process wall time "
    "less the tool's start-up when measured)"
)


def per_group(instances, tools, runs, label) -> str:
    groups = list(dict.fromkeys(i.group for i in instances))
    if label == "property":  # prop_1 ... prop_10 in numeric order
        groups.sort(key=lambda p: (len(p), p))
    rows = []
    for group in groups:
        members = [i for i in instances if i.group == group]
        row = [group, str(len(members))]
        for tool in tools:
            mine = [
                runs[(tool.name, i.name)]
                for i in members
                if (tool.name, i.name) in runs
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
    header = [label, "instances"]
    for tool in tools:
        header += [
            f"{tool.name} decided (sat/unsat)",
            f"{tool.name} total s",
            f"{tool.name} max s",
        ]
    return table(header, rows)


def judgement_lines(judgement: Judgement) -> list[str]:
    lines = [
        f"WRONG ({tool}): {', '.join(names)}"
        for tool, names in judgement.wrong.items()
        if names
    ]
    lines += [f"DISAGREEMENT on {name}: {got}" for name, got in judgement.disagree]
    return lines + [f"note: {note}" for note in judgement.notes]
