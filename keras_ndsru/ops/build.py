"""Builds the fused SRU op library: keras_ndsru/_ops/_sru_ops.so.

Run it as `python -m keras_ndsru.ops.build` (any install: the sources come with
the package) or `python scripts/build_ops.py` (a source checkout). It
compiles the op sources (`custom_ops/sru/{ops,kernels}` in a checkout, their
copy in `keras_ndsru/_ops_src/` in an installed wheel; see
`op_library.SOURCE_DIR`; op definitions and C++ CPU kernels) with g++ and the
flags TensorFlow reports (`tf.sysconfig`), C++17, -O3. When `nvcc` is on PATH
and the CUDA sources exist, it also compiles the CUDA kernels (sm_75 .. sm_90
plus compute_90 PTX) and their TensorFlow wrapper with GOOGLE_CUDA=1, and links
cudart statically; the library then still loads on tensorflow-cpu, where the
GPU kernels are simply never chosen. If the CUDA part fails to build, the
library is built CPU-only with a message saying why.

Next to the library it writes build_info.json (TensorFlow version, a hash of
the sources, the git commit and the compile commands); the loader in
keras_ndsru/ops/op_library.py refuses a library whose record does not match.
Running it again skips an up-to-date build (use --force to rebuild).

The library goes to `keras_ndsru/_ops/` of the package that runs this module
(`--library-dir` elsewhere: setup.py compiles the op into a wheel that way);
object files to `build/sru_ops/` in a checkout, else to
`keras_ndsru/_ops/build/` (`--build-dir`).

Usage:
    python -m keras_ndsru.ops.build [--cpu-only] [--force] [--jobs N]
        [--library-dir DIR] [--build-dir DIR]
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

from keras_ndsru.ops import op_library

SRC = op_library.SOURCE_DIR
# The checkout's root (for `build/` and the git commit), or None when installed.
ROOT = op_library.CHECKOUT_ROOT
CPU_SOURCES = [SRC / "ops" / "sru_ops.cc", SRC / "kernels" / "sru_kernels.cc"]
CUDA_SOURCE = SRC / "kernels" / "sru_kernels.cu"
CUDA_WRAPPER = SRC / "kernels" / "sru_kernels_gpu.cc"
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


def log(message: str) -> None:
    print(f"[build_ops] {message}", flush=True)


def tf_flags() -> tuple[list[str], list[str], str, str]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return (
        list(tf.sysconfig.get_compile_flags()),
        list(tf.sysconfig.get_link_flags()),
        tf.__version__,
        tf.version.GIT_VERSION,
    )


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


def cuda_commands(
    nvcc: str, cuda_home: Path, tf_compile: list[str], build_dir: Path
) -> tuple[list[list[str]], list[Path], list[str]]:
    """The compile commands and objects of the CUDA part, and link flags."""
    gencode = []
    for arch in CUDA_ARCHS:
        gencode += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    gencode += [
        "-gencode",
        f"arch=compute_{CUDA_ARCHS[-1]},code=compute_{CUDA_ARCHS[-1]}",
    ]
    cu_obj = build_dir / "sru_kernels.cu.o"
    wrapper_obj = build_dir / "sru_kernels_gpu.o"
    abi = [f for f in tf_compile if f.startswith("-D_GLIBCXX_USE_CXX11_ABI")]
    nvcc_cmd = [
        nvcc,
        "-std=c++17",
        "-O3",
        "-DNDEBUG",
        "-Xcompiler",
        "-fPIC",
        *abi,
        *gencode,
        "-c",
        str(CUDA_SOURCE),
        "-o",
        str(cu_obj),
    ]
    wrapper_cmd = [
        CPU_COMPILER,
        *CXX_FLAGS,
        *tf_compile,
        "-DGOOGLE_CUDA=1",
        f"-I{cuda_home / 'include'}",
        "-c",
        str(CUDA_WRAPPER),
        "-o",
        str(wrapper_obj),
    ]
    link = [
        f"-L{cuda_home / 'lib64'}",
        "-lcudart_static",
        "-ldl",
        "-lrt",
        "-lpthread",
    ]
    return [nvcc_cmd, wrapper_cmd], [cu_obj, wrapper_obj], link


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


def is_up_to_date(library_dir: Path, want_cuda: bool) -> bool:
    info_path = library_dir / op_library.BUILD_INFO_NAME
    if not (library_dir / op_library.LIBRARY_NAME).exists():
        return False
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return (
        info.get("tf_version") == tf.__version__
        and info.get("source_hash") == op_library.source_hash(SRC)
        and bool(info.get("cuda_requested")) == want_cuda
    )


def build(
    cpu_only: bool = False,
    force: bool = False,
    jobs: int | None = None,
    library_dir: Path | None = None,
    build_dir: Path | None = None,
) -> Path:
    """Builds the library if needed and returns its path.

    Args:
        cpu_only: skip the CUDA kernels even when nvcc is on PATH.
        force: rebuild even when the library is up to date.
        jobs: parallel compiles; defaults to `None`, all CPUs.
        library_dir: where the library and its build_info.json go; defaults
            to `None`, `keras_ndsru/_ops/` of this package.
        build_dir: where object files go; defaults to `None`, `build/sru_ops/`
            in a checkout, else `keras_ndsru/_ops/build/`.
    """
    jobs = jobs or os.cpu_count() or 1
    library_dir = Path(library_dir or op_library.LIBRARY_DIR)
    build_dir = Path(build_dir or BUILD_DIR)
    nvcc = None if cpu_only else shutil.which("nvcc")
    cuda_home = find_cuda_home(nvcc) if nvcc else None
    cuda_reason = None
    if cpu_only:
        cuda_reason = "--cpu-only"
    elif not nvcc:
        cuda_reason = "nvcc is not on PATH"
    elif cuda_home is None:
        cuda_reason = f"no CUDA tree with include/cuda_runtime.h found for {nvcc}"
    elif not (CUDA_SOURCE.exists() and CUDA_WRAPPER.exists()):
        cuda_reason = f"{CUDA_SOURCE.name} or {CUDA_WRAPPER.name} is missing"
    want_cuda = cuda_reason is None
    missing = [str(p) for p in CPU_SOURCES if not p.exists()]
    if missing:
        raise SystemExit(
            f"[build_ops] the op sources are missing ({', '.join(missing)}): "
            f"reinstall keras-ndsru from a wheel or sdist that contains them, or "
            f"build from a source checkout. Received: source_dir={SRC}"
        )

    with build_lock(build_dir):
        if not force and is_up_to_date(library_dir, want_cuda):
            log(f"up to date: {library_dir / op_library.LIBRARY_NAME}")
            return library_dir / op_library.LIBRARY_NAME
        return _build_locked(nvcc, cuda_home, cuda_reason, jobs, library_dir, build_dir)


def _build_locked(
    nvcc: str | None,
    cuda_home: Path | None,
    cuda_reason: str | None,
    jobs: int,
    library_dir: Path,
    build_dir: Path,
) -> Path:
    want_cuda = cuda_reason is None
    if shutil.which(CPU_COMPILER) is None:
        raise SystemExit(
            f"[build_ops] {CPU_COMPILER} is not on PATH: install a C++ compiler, or "
            f"install the keras-ndsru wheel built for your TensorFlow (see "
            f"docs/deploy.md). Received: PATH={os.environ.get('PATH', '')}"
        )
    start = time.monotonic()
    tf_compile, tf_link, tf_version, tf_git = tf_flags()
    source_hash = op_library.source_hash(SRC)
    commands, objects = [], []
    for src in CPU_SOURCES:
        obj = build_dir / (src.stem + ".o")
        commands.append(
            [CPU_COMPILER, *CXX_FLAGS, *tf_compile, "-c", str(src), "-o", str(obj)]
        )
        objects.append(obj)
    cuda_link: list[str] = []
    n_cpu = len(commands)
    compiled = [src.name for src in CPU_SOURCES]
    if cuda_reason is None:
        cmds, objs, cuda_link = cuda_commands(nvcc, cuda_home, tf_compile, build_dir)
        commands += cmds
        objects += objs
        compiled += [CUDA_SOURCE.name, CUDA_WRAPPER.name]
        log(f"CPU and CUDA kernels ({nvcc}, sm_{'/'.join(CUDA_ARCHS)})")
    else:
        log(f"CPU kernels only: {cuda_reason}")
    log(
        f"compiling {', '.join(compiled)} from {SRC} against TensorFlow "
        f"{tf_version} ({jobs} parallel jobs)"
    )

    errors = run_all(commands, jobs)
    for err in errors[:n_cpu]:
        if err:
            raise SystemExit(f"[build_ops] compiling the CPU kernels failed:\n{err}")
    if any(errors[n_cpu:]):
        cuda_reason = "the CUDA build failed (see above); CPU-only library built"
        log(next(e for e in errors[n_cpu:] if e))
        log(cuda_reason)
        objects, cuda_link = objects[:n_cpu], []

    library_dir.mkdir(parents=True, exist_ok=True)
    target = library_dir / op_library.LIBRARY_NAME
    # Link to a new file and rename: a process that has the old library
    # mapped keeps its copy instead of crashing.
    tmp = target.with_suffix(f".so.tmp{os.getpid()}")
    link_cmd = [CPU_COMPILER, "-shared", *map(str, objects), "-o", str(tmp), *tf_link]
    link_cmd += cuda_link
    proc = subprocess.run(link_cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SystemExit(
            f"[build_ops] linking failed:\n$ {' '.join(link_cmd)}\n{proc.stderr}"
        )
    os.replace(tmp, target)
    seconds = time.monotonic() - start
    info = {
        "tf_version": tf_version,
        "tf_git_version": tf_git,
        "source_hash": source_hash,
        "git_commit": git_commit(),
        "cuda": cuda_reason is None,
        "cuda_requested": want_cuda,
        "cuda_note": cuda_reason,
        "cuda_archs": CUDA_ARCHS if cuda_reason is None else [],
        "compile_commands": commands if cuda_reason is None else commands[:n_cpu],
        "link_command": link_cmd,
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "build_seconds": round(seconds, 1),
    }
    info_path = library_dir / op_library.BUILD_INFO_NAME
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    kind = "CPU + CUDA" if cuda_reason is None else "CPU-only"
    log(f"built {target} ({kind}) in {seconds:.0f} s")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        help=f"where the library goes (default: {op_library.LIBRARY_DIR})",
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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
