"""keras-ndsru: ND-Adam, Simple Recurrent Units, regularized softmax and
robustness verification of ReLU networks, for Keras 3.

The public API lives here. Importing the package loads no tensorflow-datasets.
On the TensorFlow backend it registers the fused SRU op when its library is
built for the running TensorFlow (silently; see `ops/registration.py`), so
that SavedModels exported with `SRU(use_fused_kernel=True)` load after
`import keras_ndsru` alone.

One exception: in the verifier's command line (``python -m
keras_ndsru.verify``, ``keras-ndsru-verify``) the Keras side is loaded only
when first used, so that deciding an ONNX network imports no Keras or
TensorFlow (seconds per process).
"""

import os as _os
import sys as _sys

from keras_ndsru import verify

__version__ = "0.1.0"

# The Keras side of the API, loaded by `_load_keras_api` (it imports Keras and
# so the backend, TensorFlow by default: seconds).
_KERAS_API = (
    "BNSoftmax",
    "EffectiveLearningRate",
    "LogitL2",
    "NDAdam",
    "SRU",
    "from_official_sru",
    "layers",
    "losses",
    "ops",
    "vector_axes_for_model",
)


def _load_keras_api() -> None:
    """Imports the Keras side of the API and registers the fused op."""
    import importlib

    # Submodules by name: `from keras_ndsru import layers` would ask this
    # module's __getattr__ first, i.e. this function again.
    layers, losses, ops = (
        importlib.import_module(f"keras_ndsru.{name}")
        for name in ("layers", "losses", "ops")
    )
    from keras_ndsru.callbacks.effective_learning_rate import EffectiveLearningRate
    from keras_ndsru.layers.bn_softmax import BNSoftmax
    from keras_ndsru.layers.logit_l2 import LogitL2
    from keras_ndsru.layers.sru import SRU
    from keras_ndsru.layers.sru_official import from_official_sru
    from keras_ndsru.ops.registration import register_fused_op
    from keras_ndsru.optimizers.nd_adam import NDAdam
    from keras_ndsru.optimizers.vector_partition import vector_axes_for_model

    globals().update(
        BNSoftmax=BNSoftmax,
        EffectiveLearningRate=EffectiveLearningRate,
        LogitL2=LogitL2,
        NDAdam=NDAdam,
        SRU=SRU,
        from_official_sru=from_official_sru,
        layers=layers,
        losses=losses,
        ops=ops,
        vector_axes_for_model=vector_axes_for_model,
    )
    register_fused_op()


def _started_as_verifier() -> bool:
    """Whether this process runs the verifier's command line
    (``python -m keras_ndsru.verify ...`` or ``keras-ndsru-verify ...``)."""
    argv = list(getattr(_sys, "orig_argv", ()))
    module = ""
    for i, arg in enumerate(argv):
        if arg == "-m" and i + 1 < len(argv):
            module = argv[i + 1]
            break
        if arg.startswith("-m") and len(arg) > 2:
            module = arg[2:]
            break
    script = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    return module.startswith("keras_ndsru.verify") or script == "keras-ndsru-verify"


def __getattr__(name: str):
    if name in _KERAS_API:
        _load_keras_api()
        return globals()[name]
    raise AttributeError(f"module 'keras_ndsru' has no attribute {name!r}")


if not _started_as_verifier():
    _load_keras_api()

__all__ = [
    "__version__",
    "BNSoftmax",
    "EffectiveLearningRate",
    "LogitL2",
    "NDAdam",
    "SRU",
    "from_official_sru",
    "layers",
    "losses",
    "ops",
    "vector_axes_for_model",
    "verify",
]
