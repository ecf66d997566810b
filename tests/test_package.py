"""The package as a whole: every module imports, also under `python -OO`."""

import importlib.util
import pkgutil
import subprocess
import sys

import keras_ndsru

# A backend's fused-op wrapper imports its framework, which this environment
# may lack (JAX has its own, .venv-jax).
NEEDS = {
    "keras_ndsru.ops.sru_fused_jax": "jax",
    "keras_ndsru.ops.sru_fused_torch": "torch",
}
MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(keras_ndsru.__path__, "keras_ndsru.")
    # Entry points run their command when imported as a script only; tfds
    # builders import tensorflow-datasets (an optional extra).
    if not name.endswith("__main__")
    and (name not in NEEDS or importlib.util.find_spec(NEEDS[name]) is not None)
)


def test_every_module_imports_with_docstrings_stripped():
    """`python -OO` strips docstrings (`__doc__` is None): code that edits a
    docstring at import time must not crash there."""
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "import keras_ndsru\n"
        "assert keras_ndsru.NDAdam.__doc__ is None\n"
        "keras_ndsru.NDAdam(); keras_ndsru.SRU(2)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-OO", "-c", code, *MODULES],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "PATH": ""},
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[
        -3000:
    ]


def test_public_api_is_exported():
    for name in keras_ndsru.__all__:
        assert hasattr(keras_ndsru, name), name
