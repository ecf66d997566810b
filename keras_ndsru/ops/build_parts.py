"""What each framework's SRU op library is compiled from and with.

Every library compiles the framework-free CPU kernels
(`custom_ops/sru/kernels/sru_cpu.cc`) and, with nvcc, the CUDA kernels
(`kernels/sru_kernels.cu`), plus its own glue:

- TensorFlow (`_sru_ops.so`): the op definitions (`ops/sru_ops.cc`) and the
  OpKernels (`kernels/sru_kernels.cc`, CUDA: `kernels/sru_kernels_gpu.cc`
  with `-DGOOGLE_CUDA=1`), with the flags of `tf.sysconfig`.
- PyTorch (`_sru_torch.so`): the custom operators on PyTorch's stable C++
  ABI (`torch/sru_torch_ops.cc`, CUDA: `torch/sru_torch_cuda.cc`), against
  torch's headers, linked to `libtorch_cpu` and `libc10`.
- JAX (`_sru_jax.so`): the XLA FFI handlers (`jax/sru_jax_ffi.cc`, CUDA:
  `jax/sru_jax_ffi_cuda.cc`) against jaxlib's FFI headers
  (`jax.ffi.include_dir()`); header-only, linked to nothing of jaxlib.

`part(backend)` returns a `Part` for the installed framework (it imports the
framework to read its flags); `installed_backends()` says which are there.
Used by `build.py`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NamedTuple

from keras_ndsru.ops import op_library

SRC = op_library.SOURCE_DIR
CPU_KERNELS = SRC / "kernels" / "sru_cpu.cc"
CUDA_SOURCE = SRC / "kernels" / "sru_kernels.cu"
# Import name of each backend's framework.
MODULES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}


class Part(NamedTuple):
    """One framework's library.

    Attributes:
        framework: its `op_library.Framework` (names, version key, sources).
        cpu_sources: the C++ sources of the CPU library.
        cuda_glue: the C++ source that registers the CUDA kernels, compiled
            with `cuda_glue_flags` (and the CUDA include folder) when nvcc is
            there.
        compile_flags: the framework's compiler flags (include folders,
            defines).
        link_flags: the framework's linker flags.
        record: the build record's framework fields (its version, ...).
        cuda_glue_flags: extra flags of the CUDA glue.
    """

    framework: op_library.Framework
    cpu_sources: list[Path]
    cuda_glue: Path
    compile_flags: list[str]
    link_flags: list[str]
    record: dict
    cuda_glue_flags: list[str] = []


def installed_backends() -> list[str]:
    """The backends whose framework is importable here, without importing
    them."""
    return [b for b, m in MODULES.items() if importlib.util.find_spec(m) is not None]


def part(backend: str) -> Part:
    """The `Part` of `backend` (`"tensorflow"`, `"torch"` or `"jax"`)."""
    return {"tensorflow": _tensorflow, "torch": _torch, "jax": _jax}[backend]()


def _tensorflow() -> Part:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return Part(
        framework=op_library.TENSORFLOW,
        cpu_sources=[
            SRC / "ops" / "sru_ops.cc",
            SRC / "kernels" / "sru_kernels.cc",
            CPU_KERNELS,
        ],
        cuda_glue=SRC / "kernels" / "sru_kernels_gpu.cc",
        compile_flags=list(tf.sysconfig.get_compile_flags()),
        link_flags=list(tf.sysconfig.get_link_flags()),
        record={
            "tf_version": tf.__version__,
            "tf_git_version": tf.version.GIT_VERSION,
        },
        cuda_glue_flags=["-DGOOGLE_CUDA=1"],
    )


def _torch() -> Part:
    import torch

    root = Path(torch.__file__).resolve().parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return Part(
        framework=op_library.TORCH,
        cpu_sources=[SRC / "torch" / "sru_torch_ops.cc", CPU_KERNELS],
        cuda_glue=SRC / "torch" / "sru_torch_cuda.cc",
        compile_flags=[f"-I{root / 'include'}", f"-D_GLIBCXX_USE_CXX11_ABI={abi}"],
        # No rpath: the library is loaded by torch, whose libraries are
        # then already in the process.
        link_flags=[f"-L{root / 'lib'}", "-ltorch_cpu", "-lc10"],
        record={"torch_version": torch.__version__},
    )


def _jax() -> Part:
    import jax
    import jaxlib

    return Part(
        framework=op_library.JAX,
        cpu_sources=[SRC / "jax" / "sru_jax_ffi.cc", CPU_KERNELS],
        cuda_glue=SRC / "jax" / "sru_jax_ffi_cuda.cc",
        # -isystem: no warnings from jaxlib's headers.
        compile_flags=["-isystem", str(jax.ffi.include_dir())],
        link_flags=["-lpthread"],
        record={"jaxlib_version": jaxlib.__version__, "jax_version": jax.__version__},
    )
