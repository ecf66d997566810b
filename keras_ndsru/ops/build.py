"""Builds the fused SRU op libraries into keras_ndsru/_ops/: one per installed
framework (TensorFlow `_sru_ops.so`, PyTorch `_sru_torch.so`, JAX
`_sru_jax.so`), all from the same kernels.

Run it as `python -m keras_ndsru.ops.build` (any install: the sources come with
the package) or `python scripts/build_ops.py` (a source checkout). For each
framework that is importable (or each one named with `--framework`) it
compiles the sources `build_parts.py` lists (`custom_ops/sru/...` in a
checkout, their copy in `keras_ndsru/_ops_src/` in an installed wheel; see
`op_library.SOURCE_DIR`) with g++ and the framework's flags, C++17, -O3. The
framework-free CPU kernels (`kernels/sru_cpu.cc`) are compiled once and linked
into every library. When `nvcc` is on PATH and the CUDA sources exist, it also
compiles the CUDA kernels once (sm_75 .. sm_90 plus compute_90 PTX) and each
framework's CUDA glue, and links cudart statically; a library then still
loads where there is no GPU, whose CUDA kernels are simply never chosen. If
a framework's CUDA part fails to build, its library is built CPU-only with a
message saying why.

Next to each library it writes its build record (`build_info.json`,
`build_info_torch.json`, `build_info_jax.json`: the framework version, a hash
of the sources, the git commit and the compile commands); the loader in
keras_ndsru/ops/op_library.py refuses a library whose record does not match.
Running it again skips an up-to-date library (use --force to rebuild).

The libraries go to `keras_ndsru/_ops/` of the package that runs this module
(`--library-dir` elsewhere: setup.py compiles the op into a wheel that way);
object files to `build/sru_ops/` in a checkout, else to
`keras_ndsru/_ops/build/` (`--build-dir`).

Usage:
    python -m keras_ndsru.ops.build [--framework {tensorflow,torch,jax}]...
        [--cpu-only] [--force] [--jobs N] [--library-dir DIR] [--build-dir DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from keras_ndsru.ops import build_parts, op_library
from keras_ndsru.ops.build_parts import CPU_KERNELS, CUDA_SOURCE, Part

SRC = op_library.SOURCE_DIR
# The checkout's root (for `build/` and the git commit), or None when installed.
ROOT = op_library.CHECKOUT_ROOT
BUILD_DIR = (
    ROOT / "build" / "sru_ops" if ROOT is not None else op_library.LIBRARY_DIR / "build"
)
CPU_COMPILER = "g++"
CXX_FLAGS = [
    "-std=c++17",
    "-O3",
    "-fPIC",
    "-DNDEBUG",
    "-ffp-contract=fast",
    "-fno-math-errno",
    "-Wno-deprecated-declarations",
    "-Wno-interference-size",
]
CUDA_ARCHS = ["75", "80", "86", "89", "90"]
ABI_FLAG = "-D_GLIBCXX_USE_CXX11_ABI"


def log(message: str) -> None:
    print(f"[build_ops] {message}", flush=True)


def find_cuda_home(nvcc: str) -> Path | None:
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    candidates.append(str(Path(os.path.realpath(nvcc)).parent.parent))
    try:  # nvcc may be a wrapper script: ask it where its own tree is.
        out = subprocess.run(
            [nvcc, "--dryrun", "--version"], capture_output=True, text=True
        ).stderr
        for line in out.splitlines():
            if "TOP=" in line:
                candidates.append(line.split("TOP=", 1)[1].strip())
    except OSError:
        pass
    candidates.append("/usr/local/cuda")
    for c in candidates:
        if c and (Path(c) / "include" / "cuda_runtime.h").exists():
            return Path(c)
    return None


def git_commit() -> str | None:
    if ROOT is None:
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_all(commands: list[list[str]], jobs: int) -> list[str | None]:
    """Runs compile commands in parallel; returns an error text or None each."""

    def run(cmd: list[str]) -> str | None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, commands))


def abi_of(flags: list[str]) -> str:
    """The libstdc++ ABI (`"0"` or `"1"`) a framework's flags ask for; g++'s
    default is 1. The shared objects are compiled once per ABI."""
    for flag in flags:
        if flag.startswith(ABI_FLAG + "="):
            return flag.split("=", 1)[1]
    return "1"


def nvcc_command(nvcc: str, abi: str, obj: Path) -> list[str]:
    """Compiles the CUDA kernels (no framework headers) for every arch."""
    gencode = []
    for arch in CUDA_ARCHS:
        gencode += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    gencode += [
        "-gencode",
        f"arch=compute_{CUDA_ARCHS[-1]},code=compute_{CUDA_ARCHS[-1]}",
    ]
    return [
        nvcc,
        "-std=c++17",
        "-O3",
        "-DNDEBUG",
        "-Xcompiler",
        "-fPIC",
        f"{ABI_FLAG}={abi}",
        *gencode,
        "-c",
        str(CUDA_SOURCE),
        "-o",
        str(obj),
    ]


def cuda_link_flags(cuda_home: Path) -> list[str]:
    return [f"-L{cuda_home / 'lib64'}", "-lcudart_static", "-ldl", "-lrt", "-lpthread"]


class _Plan:
    """The objects and compile commands of one part's library."""

    def __init__(self, part: Part, cuda_reason: str | None, build_dir: Path):
        self.part = part
        self.cuda_reason = cuda_reason
        self.want_cuda = cuda_reason is None
        self.commands: dict[Path, list[str]] = {}  # object -> command
        self.cuda_commands: dict[Path, list[str]] = {}
        self.abi = abi_of(part.compile_flags)
        # Framework-free objects are shared by every library of one ABI.
        self.common = build_dir / f"common-abi{self.abi}"
        self.own = build_dir / part.framework.backend
        for src in part.cpu_sources:
            if src == CPU_KERNELS:
                flags, obj = [f"{ABI_FLAG}={self.abi}"], self.common / "sru_cpu.o"
            else:
                flags, obj = part.compile_flags, self.own / (src.stem + ".o")
            self.commands[obj] = [
                CPU_COMPILER,
                *CXX_FLAGS,
                *flags,
                "-c",
                str(src),
                "-o",
                str(obj),
            ]

    def add_cuda(self, nvcc: str, cuda_home: Path) -> None:
        cu_obj = self.common / "sru_kernels.cu.o"
        glue_obj = self.own / (self.part.cuda_glue.stem + ".o")
        self.cuda_commands[cu_obj] = nvcc_command(nvcc, self.abi, cu_obj)
        self.cuda_commands[glue_obj] = [
            CPU_COMPILER,
            *CXX_FLAGS,
            *self.part.compile_flags,
            *self.part.cuda_glue_flags,
            f"-I{cuda_home / 'include'}",
            "-c",
            str(self.part.cuda_glue),
            "-o",
            str(glue_obj),
        ]

    @property
    def sources(self) -> list[str]:
        names = [src.name for src in self.part.cpu_sources]
        if self.cuda_commands:
            names += [CUDA_SOURCE.name, self.part.cuda_glue.name]
        return names


@contextlib.contextmanager
def build_lock(build_dir: Path):
    """Serializes concurrent builds (e.g. pytest-xdist workers)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_up_to_date(library_dir: Path, part: Part, want_cuda: bool) -> bool:
    framework = part.framework
    if not (library_dir / framework.library_name).exists():
        return False
    try:
        info = json.loads((library_dir / framework.build_info_name).read_text())
    except (OSError, ValueError):
        return False
    key = framework.version_key
    return (
        info.get(key) == part.record[key]
        and info.get("source_hash")
        == op_library.source_hash(SRC, framework.source_subdirs)
        and bool(info.get("cuda_requested")) == want_cuda
    )


def build(
    cpu_only: bool = False,
    force: bool = False,
    jobs: int | None = None,
    library_dir: Path | None = None,
    build_dir: Path | None = None,
    frameworks: list[str] | None = None,
) -> dict[str, Path]:
    """Builds the libraries that need it and returns their paths.

    Args:
        cpu_only: skip the CUDA kernels even when nvcc is on PATH.
        force: rebuild even when a library is up to date.
        jobs: parallel compiles; defaults to `None`, all CPUs.
        library_dir: where the libraries and their build records go;
            defaults to `None`, `keras_ndsru/_ops/` of this package.
        build_dir: where object files go; defaults to `None`, `build/sru_ops/`
            in a checkout, else `keras_ndsru/_ops/build/`.
        frameworks: Keras backends to build for (`"tensorflow"`, `"torch"`,
            `"jax"`); defaults to `None`, every installed one.

    Returns:
        `{backend: library path}` of the up-to-date libraries.
    """
    jobs = jobs or os.cpu_count() or 1
    library_dir = Path(library_dir or op_library.LIBRARY_DIR)
    build_dir = Path(build_dir or BUILD_DIR)
    backends = frameworks or build_parts.installed_backends()
    if not backends:
        raise SystemExit(
            "[build_ops] none of TensorFlow, PyTorch and JAX is installed: "
            "nothing to build for. Received: frameworks=[]"
        )
    nvcc = None if cpu_only else shutil.which("nvcc")
    cuda_home = find_cuda_home(nvcc) if nvcc else None
    cuda_reason = None
    if cpu_only:
        cuda_reason = "--cpu-only"
    elif not nvcc:
        cuda_reason = "nvcc is not on PATH"
    elif cuda_home is None:
        cuda_reason = f"no CUDA tree with include/cuda_runtime.h found for {nvcc}"

    built, plans = {}, []
    with build_lock(build_dir):
        for backend in backends:
            part = build_parts.part(backend)
            name = part.framework.display
            missing = [str(p) for p in part.cpu_sources if not p.exists()]
            if missing:
                raise SystemExit(
                    f"[build_ops] the {name} op sources are missing "
                    f"({', '.join(missing)}): reinstall keras-ndsru from a wheel "
                    f"or sdist that contains them, or build from a source "
                    f"checkout. Received: source_dir={SRC}"
                )
            reason = cuda_reason
            if reason is None and not (
                CUDA_SOURCE.exists() and part.cuda_glue.exists()
            ):
                reason = f"{CUDA_SOURCE.name} or {part.cuda_glue.name} is missing"
            target = library_dir / part.framework.library_name
            if not force and is_up_to_date(library_dir, part, reason is None):
                log(f"{name}: up to date: {target}")
                built[backend] = target
                continue
            plan = _Plan(part, reason, build_dir)
            if reason is None:
                plan.add_cuda(nvcc, cuda_home)
            plans.append(plan)
        if plans:
            built.update(_build_locked(plans, cuda_home, jobs, library_dir))
    return built


def _build_locked(
    plans: list[_Plan], cuda_home: Path | None, jobs: int, library_dir: Path
) -> dict[str, Path]:
    if shutil.which(CPU_COMPILER) is None:
        raise SystemExit(
            f"[build_ops] {CPU_COMPILER} is not on PATH: install a C++ compiler, or "
            f"install the keras-ndsru wheel built for your TensorFlow (see "
            f"docs/deploy.md). Received: PATH={os.environ.get('PATH', '')}"
        )
    start = time.monotonic()
    commands: dict[Path, list[str]] = {}
    for plan in plans:
        framework = plan.part.framework
        version = plan.part.record[framework.version_key]
        if plan.want_cuda:
            log(
                f"{framework.display}: CPU and CUDA kernels (sm_{'/'.join(CUDA_ARCHS)})"
            )
        else:
            log(f"{framework.display}: CPU kernels only: {plan.cuda_reason}")
        log(
            f"{framework.display}: compiling {', '.join(plan.sources)} from {SRC} "
            f"against {framework.display} {version} ({jobs} parallel jobs)"
        )
        commands.update(plan.commands)
        commands.update(plan.cuda_commands)
    for obj in commands:
        obj.parent.mkdir(parents=True, exist_ok=True)
    errors = dict(zip(commands, run_all(list(commands.values()), jobs)))

    built = {}
    for plan in plans:
        for obj in plan.commands:
            if errors[obj]:
                raise SystemExit(
                    f"[build_ops] compiling the {plan.part.framework.display} "
                    f"CPU kernels failed:\n{errors[obj]}"
                )
        cuda_errors = [errors[obj] for obj in plan.cuda_commands if errors[obj]]
        if cuda_errors:
            log(cuda_errors[0])
            plan.cuda_reason = (
                "the CUDA build failed (see above); CPU-only library built"
            )
            log(f"{plan.part.framework.display}: {plan.cuda_reason}")
            plan.cuda_commands = {}
        built[plan.part.framework.backend] = _link(
            plan, cuda_home, library_dir, time.monotonic() - start
        )
    return built


def _link(
    plan: _Plan, cuda_home: Path | None, library_dir: Path, seconds: float
) -> Path:
    """Links one library and writes its build record."""
    part, framework = plan.part, plan.part.framework
    library_dir.mkdir(parents=True, exist_ok=True)
    target = library_dir / framework.library_name
    # Link to a new file and rename: a process that has the old library
    # mapped keeps its copy instead of crashing.
    tmp = target.with_suffix(f".so.tmp{os.getpid()}")
    objects = [*plan.commands, *plan.cuda_commands]
    link_cmd = [CPU_COMPILER, "-shared", *map(str, objects), "-o", str(tmp)]
    link_cmd += part.link_flags
    cuda = bool(plan.cuda_commands)
    if cuda:
        link_cmd += cuda_link_flags(cuda_home)
    proc = subprocess.run(link_cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SystemExit(
            f"[build_ops] linking failed:\n$ {' '.join(link_cmd)}\n{proc.stderr}"
        )
    os.replace(tmp, target)
    info = {
        **part.record,
        "source_hash": op_library.source_hash(SRC, framework.source_subdirs),
        "git_commit": git_commit(),
        "cuda": cuda,
        "cuda_requested": plan.want_cuda,
        "cuda_note": plan.cuda_reason,
        "cuda_archs": CUDA_ARCHS if cuda else [],
        "compile_commands": [*plan.commands.values(), *plan.cuda_commands.values()],
        "link_command": link_cmd,
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "build_seconds": round(seconds, 1),
    }
    (library_dir / framework.build_info_name).write_text(
        json.dumps(info, indent=2) + "\n"
    )
    kind = "CPU + CUDA" if cuda else "CPU-only"
    log(f"{framework.display}: built {target} ({kind}) in {seconds:.0f} s")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--framework",
        action="append",
        choices=sorted(build_parts.MODULES),
        help="build for this framework only (repeatable; default: every installed one)",
    )
    parser.add_argument("--cpu-only", action="store_true", help="skip the CUDA kernels")
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when up to date"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="parallel compiles (default: all CPUs)"
    )
    parser.add_argument(
        "--library-dir",
        type=Path,
        default=None,
        help=f"where the libraries go (default: {op_library.LIBRARY_DIR})",
    )
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=None,
        help=f"where object files go (default: {BUILD_DIR})",
    )
    args = parser.parse_args(argv)
    build(
        cpu_only=args.cpu_only,
        force=args.force,
        jobs=args.jobs,
        library_dir=args.library_dir,
        build_dir=args.build_dir,
        frameworks=args.framework,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
