"""Lazy, version-checked loaders of the fused SRU op libraries, one per
framework.

Each Keras backend has its own library next to the others in
`keras_ndsru/_ops/`, built by `python -m keras_ndsru.ops.build`
(`scripts/build_ops.py` in a checkout; nothing compiles at import time) from
the same kernels (`custom_ops/sru/kernels`), with its own build record:

| backend | library | build record | loaded with |
|---|---|---|---|
| tensorflow | `_sru_ops.so` | `build_info.json` | `tf.load_op_library` |
| torch | `_sru_torch.so` | `build_info_torch.json` | `torch.ops.load_library` |
| jax | `_sru_jax.so` | `build_info_jax.json` | `ctypes` + `jax.ffi` |

A record names the framework version the library was built against and a
hash of its sources. The same policy holds on every backend; the loader:

- loads a library at most once per process, on first use (loading two
  copies of the same ops breaks TensorFlow, and re-registers operators in
  PyTorch);
- refuses a missing library, a library built for another release of its
  framework (`tensorflow_release`: major.minor, or the exact version of a
  pre-release; `framework_release` for PyTorch and jaxlib, which also
  ignores local labels such as `+cpu`), or one built from other sources than
  the current ones; the fused path then reports why, and the dispatch in
  `sru_recurrence.py` warns once and runs the fallback (or raises when
  `use_fused_kernel=True`);
- honours `KERAS_NDSRU_DISABLE_FUSED=1`, which forces the fallback;
- has the framework's wrapper register what the library alone does not:
  the TensorFlow gradient (`sru_fused.py`), PyTorch's autograd formula and
  fake kernels (`sru_fused_torch.py`), JAX's FFI targets
  (`sru_fused_jax.py`).

`fused_kernel_status()` says which path runs on a backend and why.

This module imports only the standard library at import time; a loader
imports its framework when it is first used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

DISABLE_ENV_VAR = "KERAS_NDSRU_DISABLE_FUSED"
LIBRARY_DIR = Path(__file__).resolve().parent.parent / "_ops"
# The TensorFlow library (its names predate the other frameworks').
LIBRARY_NAME = "_sru_ops.so"
BUILD_INFO_NAME = "build_info.json"
# The libraries' sources: subfolders of custom_ops/sru with these suffixes.
# kernels/ holds the framework-free kernels every library compiles.
TENSORFLOW_SOURCE_SUBDIRS = ("ops", "kernels")
TORCH_SOURCE_SUBDIRS = ("kernels", "torch")
JAX_SOURCE_SUBDIRS = ("kernels", "jax")
# Every subfolder of sources (a wheel carries them all).
SOURCE_SUBDIRS = ("ops", "kernels", "torch", "jax")
SOURCE_SUFFIXES = (".cc", ".h", ".cu")


def _checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or
    None for an installed wheel."""
    root = Path(__file__).resolve().parent.parent.parent
    sru = root / "custom_ops" / "sru"
    return (
        root if all((sru / sub).is_dir() for sub in TENSORFLOW_SOURCE_SUBDIRS) else None
    )


CHECKOUT_ROOT = _checkout_root()
# The C++/CUDA sources of the library: custom_ops/sru in a checkout; in an
# installed wheel, the copy of its subfolders that setup.py packs into
# keras_ndsru/_ops_src.
SOURCE_DIR = (
    CHECKOUT_ROOT / "custom_ops" / "sru"
    if CHECKOUT_ROOT is not None
    else Path(__file__).resolve().parent.parent / "_ops_src"
)

BUILD_COMMAND = "python -m keras_ndsru.ops.build"
BUILD_HINT = f"Build it with `{BUILD_COMMAND}` (see docs/fused_op.md)."


class FusedKernelWarning(UserWarning):
    """Warns that the fused SRU op cannot run and the fallback is used, or
    that it runs on the CPU although a GPU is visible."""


class FusedKernelStatus(NamedTuple):
    """Which SRU recurrence runs on a Keras backend, and why.

    Attributes:
        path: `"fused"` when the fused op is loaded and enabled, else
            `"fallback"` (the `keras.ops` recurrence).
        reason: a human-readable explanation.
        library: path of the op library file.
        cuda: whether the loaded library contains the CUDA kernels.
        backend: the Keras backend this status is for.
    """

    path: str
    reason: str
    library: str
    cuda: bool
    backend: str = "tensorflow"


def source_hash(
    source_dir: Path = SOURCE_DIR, subdirs: tuple = TENSORFLOW_SOURCE_SUBDIRS
) -> str | None:
    """SHA-256 of a library's C++/CUDA sources (those in `subdirs` of
    `source_dir`; the TensorFlow library's by default), or None without
    sources."""
    files = sorted(
        p
        for sub in subdirs
        if (source_dir / sub).is_dir()
        for p in (source_dir / sub).iterdir()
        if p.suffix in SOURCE_SUFFIXES
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.parent.name}/{path.name}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def tensorflow_release(version: str) -> tuple[int, int] | str:
    """The part of a TensorFlow version an op library is tied to.

    Custom ops link against TensorFlow's C++ ABI, which TensorFlow keeps
    within a release series (2.21.0, 2.21.1, ...), as TF Addons' and
    tensorflow-text's wheels assume. Pre-releases and nightlies promise
    nothing, so there the whole version counts.

    Args:
        version: a TensorFlow version, e.g. `"2.21.0"` or `"2.22.0rc1"`.

    Returns:
        `(major, minor)` for a final release, else `version` itself.
    """
    match = re.fullmatch(r"(\d+)\.(\d+)\.\d+", version)
    return (int(match[1]), int(match[2])) if match else version


def framework_release(version: str) -> tuple[int, int] | str:
    """`tensorflow_release` for PyTorch and jaxlib: their wheels add local
    labels (`2.13.0+cpu`, `2.13.0+cu130`) that do not change the C++ API the
    library was compiled against, so the label is ignored."""
    return tensorflow_release(version.split("+", 1)[0])


def tensorflow_requirement(version: str) -> str:
    """The PEP 440 specifier of the TensorFlow versions that can load an op
    library built against `version`: `">=2.21,<2.22"` for 2.21.x,
    `"==2.22.0rc1"` for a pre-release. Platform wheels pin their TensorFlow
    extras with it (setup.py)."""
    release = tensorflow_release(version)
    if isinstance(release, str):
        return f"=={version}"
    major, minor = release
    return f">={major}.{minor},<{major}.{minor + 1}"


def fused_disabled_by_env() -> bool:
    return os.environ.get(DISABLE_ENV_VAR, "").strip().lower() not in (
        "",
        "0",
        "false",
        "no",
    )


class Framework(NamedTuple):
    """What the loader needs to know about one framework's op library.

    Attributes:
        backend: the Keras backend name (`"tensorflow"`, `"torch"`, `"jax"`).
        display: the framework's name in messages.
        library_name: the library's file name in the library folder.
        build_info_name: its build record's file name.
        version_key: the build record's key of the framework version.
        source_subdirs: the subfolders of `custom_ops/sru` it is built from.
        version: returns the running framework's version (imports it).
        release: the part of a version the library is tied to.
        load: loads the library file and returns the object the wrapper
            calls (a module of ops, `torch.ops.keras_ndsru`, the library).
        gpu_present: whether the framework sees a GPU.
        on_gpu_without_cuda: what happens on a GPU when the library has no
            CUDA kernels, for `no_cuda_kernels_note`.
    """

    backend: str
    display: str
    library_name: str
    build_info_name: str
    version_key: str
    source_subdirs: tuple
    version: Callable[[], str]
    release: Callable[[str], object]
    load: Callable[[Path], object]
    gpu_present: Callable[[], bool]
    on_gpu_without_cuda: str


def _tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__


def _load_tensorflow(path: Path):
    import tensorflow as tf

    module = tf.load_op_library(str(path))
    # The op's gradient comes with the op, whoever loads the library (the
    # dispatch, or a process serving a SavedModel that contains the op).
    from keras_ndsru.ops import sru_fused

    sru_fused.register_gradient(module)
    return module


def _gpu_present() -> bool:
    """Whether the machine has a GPU TensorFlow can use. The physical list:
    unlike the logical one, it does not initialize the TensorFlow runtime,
    which would freeze the user's device settings."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _torch_version() -> str:
    import torch

    return torch.__version__


def _load_torch(path: Path):
    import torch

    torch.ops.load_library(str(path))
    from keras_ndsru.ops import sru_fused_torch

    sru_fused_torch.register_autograd()
    return torch.ops.keras_ndsru


def _torch_gpu_present() -> bool:
    import torch

    return torch.cuda.is_available()


def _jaxlib_version() -> str:
    import jaxlib

    return jaxlib.__version__


def _load_jax(path: Path):
    from keras_ndsru.ops import sru_fused_jax

    return sru_fused_jax.register_targets(path)


def _jax_gpu_present() -> bool:
    import jax

    return jax.default_backend() == "gpu"


_ON_GPU_REFERENCE = (
    "SRU layers on the GPU run the keras.ops recurrence instead (one "
    "warning). Rebuild the library with nvcc on PATH for the fused CUDA "
    "kernels."
)

TENSORFLOW = Framework(
    backend="tensorflow",
    display="TensorFlow",
    library_name=LIBRARY_NAME,
    build_info_name=BUILD_INFO_NAME,
    version_key="tf_version",
    source_subdirs=TENSORFLOW_SOURCE_SUBDIRS,
    version=_tensorflow_version,
    release=tensorflow_release,
    load=_load_tensorflow,
    gpu_present=_gpu_present,
    on_gpu_without_cuda=(
        "so the fused SRU op runs on the CPU with copies between GPU and host "
        "memory around it. Rebuild the library with nvcc on PATH, or pass "
        "use_fused_kernel=False to run the keras.ops recurrence on the GPU."
    ),
)
TORCH = Framework(
    backend="torch",
    display="PyTorch",
    library_name="_sru_torch.so",
    build_info_name="build_info_torch.json",
    version_key="torch_version",
    source_subdirs=TORCH_SOURCE_SUBDIRS,
    version=_torch_version,
    release=framework_release,
    load=_load_torch,
    gpu_present=_torch_gpu_present,
    on_gpu_without_cuda=_ON_GPU_REFERENCE,
)
JAX = Framework(
    backend="jax",
    display="jaxlib",
    library_name="_sru_jax.so",
    build_info_name="build_info_jax.json",
    version_key="jaxlib_version",
    source_subdirs=JAX_SOURCE_SUBDIRS,
    version=_jaxlib_version,
    release=framework_release,
    load=_load_jax,
    gpu_present=_jax_gpu_present,
    on_gpu_without_cuda=_ON_GPU_REFERENCE,
)
FRAMEWORKS = {f.backend: f for f in (TENSORFLOW, TORCH, JAX)}


class OpLibraryLoader:
    """Loads one framework's op library from `library_dir` once and
    remembers the outcome.

    The process uses one instance per framework (`default_loader(backend)`);
    tests build others pointing at broken directories.

    Args:
        library_dir: the folder of the library and its build record.
            Defaults to `keras_ndsru/_ops/`.
        source_dir: the sources it must have been built from. Defaults to
            `custom_ops/sru` (a checkout) or the copy a wheel carries.
        framework: which library. Defaults to `TENSORFLOW`.
    """

    def __init__(
        self,
        library_dir: Path = LIBRARY_DIR,
        source_dir: Path = SOURCE_DIR,
        framework: Framework = TENSORFLOW,
    ):
        self.library_dir = Path(library_dir)
        self.source_dir = Path(source_dir)
        self.framework = framework
        self._lock = threading.Lock()
        self._loaded = False
        self._module = None
        self._reason = ""
        self._cuda = False
        self._cuda_note = None
        self._warned: set[str] = set()

    @property
    def library_path(self) -> Path:
        return self.library_dir / self.framework.library_name

    @property
    def build_info_path(self) -> Path:
        return self.library_dir / self.framework.build_info_name

    def module(self):
        """The loaded op module, or None when the library cannot be used."""
        # The lock only for the first load: the dispatch asks on every call,
        # and `_loaded` is set after the outcome it guards.
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    outcome = self._load()
                    self._module, self._reason, self._cuda, self._cuda_note = outcome
                    self._loaded = True
        return self._module

    def forget_failure(self) -> None:
        """Lets the next use retry after a failed load (e.g. once the library
        has been built). A loaded library is kept: it is never loaded twice."""
        with self._lock:
            if self._module is None:
                self._loaded = False

    def check(self) -> str | None:
        """Why the library cannot be used (without loading it), or None."""
        return self._check_build_info()[0]

    def ready(self) -> bool:
        """Whether the fused op runs: `status().path == "fused"`, without
        composing the status (the dispatch asks on every call)."""
        return self.module() is not None and not fused_disabled_by_env()

    def status(self) -> FusedKernelStatus:
        module = self.module()
        backend = self.framework.backend
        if fused_disabled_by_env():
            return FusedKernelStatus(
                "fallback",
                f"the fused SRU op is disabled by {DISABLE_ENV_VAR}="
                f"{os.environ[DISABLE_ENV_VAR]!r}",
                str(self.library_path),
                self._cuda,
                backend,
            )
        path = "fused" if module is not None else "fallback"
        reason = self._reason
        if module is not None and not self._cuda and self.framework.gpu_present():
            reason = f"{reason}; but {self.no_cuda_kernels_note()}"
        return FusedKernelStatus(
            path, reason, str(self.library_path), self._cuda, backend
        )

    @property
    def cuda(self) -> bool:
        """Whether the loaded library has CUDA kernels (False until loaded)."""
        return self._cuda

    def no_cuda_kernels_note(self) -> str:
        """Says that a GPU is visible but the loaded library is CPU-only."""
        why = self._cuda_note or "nvcc is not on PATH"
        return (
            f"a GPU is visible but the op library was built without CUDA "
            f"kernels ({BUILD_COMMAND}: {why}), "
            f"{self.framework.on_gpu_without_cuda}"
        )

    def warn_once(self, key: str, message: Callable[[], str]) -> None:
        """Emits one `FusedKernelWarning` per loader (i.e. per process) and
        `key`, saying `message()`: composed only then, as the callers ask on
        every call."""
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(message(), FusedKernelWarning, stacklevel=4)

    def warn_fallback_once(self) -> None:
        """Warns once that the fallback runs instead of the fused op, and why."""
        self.warn_once(
            "fallback",
            lambda: (
                f"The fused SRU op cannot run, using the slower keras.ops "
                f"recurrence instead: {self.status().reason}"
            ),
        )

    def _check_build_info(self) -> tuple[str | None, dict]:
        """An error text when the recorded build does not match, else None."""
        framework = self.framework
        name = framework.display
        if not self.library_path.exists():
            return (
                f"the op library {self.library_path} does not exist. {BUILD_HINT}",
                {},
            )
        try:
            info = json.loads(self.build_info_path.read_text())
        except (OSError, ValueError) as e:
            return (
                f"the build record {self.build_info_path} is missing or "
                f"unreadable ({e}); the library's {name} version is unknown. "
                f"{BUILD_HINT}",
                {},
            )
        running = framework.version()
        built_for = info.get(framework.version_key)
        if not isinstance(built_for, str) or framework.release(
            built_for
        ) != framework.release(running):
            return (
                f"the op library {self.library_path} was built for {name} "
                f"{built_for}, but {name} {running} is running (a "
                f"custom op loads only in the {name} release it was built "
                f"against). Rebuild it for this {name} with "
                f"`{BUILD_COMMAND}` (needs g++), or install the keras-ndsru "
                f"wheel built for {name} {running} (see docs/deploy.md).",
                info,
            )
        current = source_hash(self.source_dir, framework.source_subdirs)
        if current is not None and info.get("source_hash") != current:
            return (
                f"the op library is stale: the sources in {self.source_dir} "
                f"changed since it was built. Rebuild it: "
                f"`{BUILD_COMMAND}`.",
                info,
            )
        return None, info

    def _load(self):
        error, info = self._check_build_info()
        if error is not None:
            return None, error, False, None
        try:
            module = self.framework.load(self.library_path)
        except Exception as e:  # noqa: BLE001 - any load failure means fallback
            return (
                None,
                f"loading {self.library_path} failed: {type(e).__name__}: {e}",
                False,
                None,
            )
        cuda = bool(info.get("cuda"))
        where = "CPU and CUDA kernels" if cuda else "CPU kernels"
        reason = (
            f"the fused SRU op is loaded from {self.library_path} ({where}, "
            f"built for {self.framework.display} "
            f"{info.get(self.framework.version_key)})"
        )
        return module, reason, cuda, info.get("cuda_note")


_default_loader = OpLibraryLoader()
_other_loaders = {
    framework.backend: OpLibraryLoader(framework=framework)
    for framework in (TORCH, JAX)
}


def _current_backend() -> str:
    import keras

    return keras.backend.backend()


def default_loader(backend: str | None = None) -> OpLibraryLoader | None:
    """The process-wide loader of a Keras backend's op library, used by
    `sru_recurrence`.

    Args:
        backend: `"tensorflow"`, `"torch"` or `"jax"`; defaults to `None`,
            the running Keras backend.

    Returns:
        The loader, or None for a backend without a fused op (e.g. numpy).
    """
    backend = backend or _current_backend()
    if backend == "tensorflow":
        return _default_loader
    return _other_loaders.get(backend)


def fused_kernel_status(backend: str | None = None) -> FusedKernelStatus:
    """Reports whether the fused SRU op runs, and why (or why not).

    Loads the backend's op library on first call (once per process).

    Args:
        backend: the Keras backend to report on; defaults to `None`, the
            running one. Asking about another backend imports its framework.

    Returns:
        A `FusedKernelStatus(path, reason, library, cuda, backend)` where
        `path` is `"fused"` or `"fallback"`.

    Example:

    >>> import keras_ndsru
    >>> keras_ndsru.ops.fused_kernel_status().path in ("fused", "fallback")
    True
    """
    backend = backend or _current_backend()
    loader = default_loader(backend)
    if loader is None:
        return FusedKernelStatus(
            "fallback",
            f"the fused SRU op exists for the tensorflow, torch and jax "
            f"backends only. Received: backend={backend!r}",
            "",
            False,
            backend,
        )
    return loader.status()
