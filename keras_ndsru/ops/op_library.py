"""Lazy, version-checked loader of the fused SRU op library.

The library `keras_ndsru/_ops/_sru_ops.so` is built by
`python -m keras_ndsru.ops.build` (`scripts/build_ops.py` in a checkout;
nothing compiles at import time), or comes compiled in a platform wheel
(setup.py), together with `build_info.json`, which records the TensorFlow
version it was built against and a hash of its sources. The loader:

- loads the library at most once per process, on first use (loading two
  copies of the same ops breaks TensorFlow);
- refuses a missing library, a library built for another TensorFlow release
  (`tensorflow_release`: major.minor, or the exact version of a pre-release),
  or one built from other sources than the current ones; the fused path then
  reports why, and the dispatch in `sru_recurrence.py` warns once and runs
  the fallback (or raises when `use_fused_kernel=True`);
- honours `KERAS_NDSRU_DISABLE_FUSED=1`, which forces the fallback;
- has the op's wrapper (`sru_fused.py`) register its gradient once the
  library is loaded.

`fused_kernel_status()` says which path runs and why.

This module imports only the standard library at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

DISABLE_ENV_VAR = "KERAS_NDSRU_DISABLE_FUSED"
LIBRARY_DIR = Path(__file__).resolve().parent.parent / "_ops"
LIBRARY_NAME = "_sru_ops.so"
BUILD_INFO_NAME = "build_info.json"
# The library's sources: these subfolders of custom_ops/sru, these suffixes.
SOURCE_SUBDIRS = ("ops", "kernels")
SOURCE_SUFFIXES = (".cc", ".h", ".cu")


def _checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or
    None for an installed wheel."""
    root = Path(__file__).resolve().parent.parent.parent
    sru = root / "custom_ops" / "sru"
    return root if all((sru / sub).is_dir() for sub in SOURCE_SUBDIRS) else None


CHECKOUT_ROOT = _checkout_root()
# The C++/CUDA sources of the library: custom_ops/sru in a checkout; in an
# installed wheel, the copy of its ops/ and kernels/ that setup.py packs into
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
    """Which SRU recurrence runs, and why.

    Attributes:
        path: `"fused"` when the fused op is loaded and enabled, else
            `"fallback"` (the `keras.ops` recurrence).
        reason: a human-readable explanation.
        library: path of the op library file.
        cuda: whether the loaded library contains the CUDA kernels.
    """

    path: str
    reason: str
    library: str
    cuda: bool


def source_hash(source_dir: Path = SOURCE_DIR) -> str | None:
    """SHA-256 of the library's C++/CUDA sources, or None without sources."""
    files = sorted(
        p
        for sub in SOURCE_SUBDIRS
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


class OpLibraryLoader:
    """Loads the op library from `library_dir` once and remembers the outcome.

    The process uses one instance (`default_loader()`); tests build others
    pointing at broken directories.
    """

    def __init__(self, library_dir: Path = LIBRARY_DIR, source_dir: Path = SOURCE_DIR):
        self.library_dir = Path(library_dir)
        self.source_dir = Path(source_dir)
        self._lock = threading.Lock()
        self._loaded = False
        self._module = None
        self._reason = ""
        self._cuda = False
        self._cuda_note = None
        self._warned: set[str] = set()

    @property
    def library_path(self) -> Path:
        return self.library_dir / LIBRARY_NAME

    def module(self):
        """The loaded op module, or None when the library cannot be used."""
        with self._lock:
            if not self._loaded:
                self._module, self._reason, self._cuda, self._cuda_note = self._load()
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

    def status(self) -> FusedKernelStatus:
        module = self.module()
        if fused_disabled_by_env():
            return FusedKernelStatus(
                "fallback",
                f"the fused SRU op is disabled by {DISABLE_ENV_VAR}="
                f"{os.environ[DISABLE_ENV_VAR]!r}",
                str(self.library_path),
                self._cuda,
            )
        path = "fused" if module is not None else "fallback"
        reason = self._reason
        if module is not None and not self._cuda and _gpu_present():
            reason = f"{reason}; but {self.no_cuda_kernels_note()}"
        return FusedKernelStatus(path, reason, str(self.library_path), self._cuda)

    def no_cuda_kernels_note(self) -> str:
        """Says that a GPU is visible but the loaded library is CPU-only."""
        why = self._cuda_note or "nvcc is not on PATH"
        return (
            f"a GPU is visible but the op library was built without CUDA "
            f"kernels ({BUILD_COMMAND}: {why}), so the fused SRU op runs "
            f"on the CPU with copies between GPU and host memory around it. "
            f"Rebuild the library with nvcc on PATH, or pass "
            f"use_fused_kernel=False to run the keras.ops recurrence on the GPU."
        )

    def warn_once(self, key: str, message: str) -> None:
        """Emits one `FusedKernelWarning` per loader (i.e. per process) and
        `key`."""
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        warnings.warn(message, FusedKernelWarning, stacklevel=4)

    def warn_fallback_once(self, reason: str) -> None:
        """Warns once that the fallback runs instead of the fused op."""
        self.warn_once(
            "fallback",
            f"The fused SRU op cannot run, using the slower keras.ops "
            f"recurrence instead: {reason}",
        )

    def _check_build_info(self) -> tuple[str | None, dict]:
        """An error text when the recorded build does not match, else None."""
        import tensorflow as tf

        info_path = self.library_dir / BUILD_INFO_NAME
        if not self.library_path.exists():
            return (
                f"the op library {self.library_path} does not exist. {BUILD_HINT}",
                {},
            )
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as e:
            return (
                f"the build record {info_path} is missing or unreadable ({e}); "
                f"the library's TensorFlow version is unknown. {BUILD_HINT}",
                {},
            )
        built_for = info.get("tf_version")
        if not isinstance(built_for, str) or tensorflow_release(
            built_for
        ) != tensorflow_release(tf.__version__):
            return (
                f"the op library {self.library_path} was built for TensorFlow "
                f"{built_for}, but TensorFlow {tf.__version__} is running (a "
                f"custom op loads only in the TensorFlow release it was built "
                f"against). Rebuild it for this TensorFlow with "
                f"`{BUILD_COMMAND}` (needs g++), or install the keras-ndsru "
                f"wheel built for TensorFlow {tf.__version__} (see "
                f"docs/deploy.md).",
                info,
            )
        current = source_hash(self.source_dir)
        if current is not None and info.get("source_hash") != current:
            return (
                f"the op library is stale: the sources in {self.source_dir} "
                f"changed since it was built. Rebuild it: "
                f"`{BUILD_COMMAND}`.",
                info,
            )
        return None, info

    def _load(self):
        import tensorflow as tf

        error, info = self._check_build_info()
        if error is not None:
            return None, error, False, None
        try:
            module = tf.load_op_library(str(self.library_path))
        except Exception as e:  # noqa: BLE001 - any load failure means fallback
            return (
                None,
                f"loading {self.library_path} failed: {type(e).__name__}: {e}",
                False,
                None,
            )
        # The op's gradient comes with the op, whoever loads the library (the
        # dispatch, or a process serving a SavedModel that contains the op).
        from keras_ndsru.ops import sru_fused

        sru_fused.register_gradient(module)
        cuda = bool(info.get("cuda"))
        where = "CPU and CUDA kernels" if cuda else "CPU kernels"
        reason = (
            f"the fused SRU op is loaded from {self.library_path} ({where}, "
            f"built for TensorFlow {info.get('tf_version')})"
        )
        return module, reason, cuda, info.get("cuda_note")


def _gpu_present() -> bool:
    """Whether the machine has a GPU TensorFlow can use. The physical list:
    unlike the logical one, it does not initialize the TensorFlow runtime,
    which would freeze the user's device settings."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


_default_loader = OpLibraryLoader()


def default_loader() -> OpLibraryLoader:
    """The process-wide loader used by `sru_recurrence`."""
    return _default_loader


def fused_kernel_status() -> FusedKernelStatus:
    """Reports whether the fused SRU op runs, and why (or why not).

    Loads the op library on first call (once per process).

    Returns:
        A `FusedKernelStatus(path, reason, library, cuda)` where `path` is
        `"fused"` or `"fallback"`.

    Example:

    >>> import keras_ndsru
    >>> keras_ndsru.ops.fused_kernel_status().path in ("fused", "fallback")
    True
    """
    return _default_loader.status()
