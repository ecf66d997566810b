"""setuptools hook of keras-ndsru: packs the fused SRU op's sources.

Metadata lives in pyproject.toml. A wheel carries no compiled op (it would
be tied to one TensorFlow version and machine); it carries the op's C++/CUDA
sources instead, copied from custom_ops/sru/{ops,kernels} into
keras_ndsru/_ops_src, so that `python -m keras_ndsru.ops.build` compiles the
op after `pip install keras-ndsru`. Editable installs use custom_ops/ in
place.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCES = Path(__file__).resolve().parent / "custom_ops" / "sru"
SUBDIRS = ("ops", "kernels")
SUFFIXES = (".cc", ".h", ".cu")  # those op_library.source_hash covers


class BuildPyWithOpSources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "keras_ndsru" / "_ops_src"
        for sub in SUBDIRS:
            (target / sub).mkdir(parents=True, exist_ok=True)
            for src in sorted((SOURCES / sub).iterdir()):
                if src.suffix in SUFFIXES:
                    shutil.copy2(src, target / sub / src.name)


setup(cmdclass={"build_py": BuildPyWithOpSources})
