"""keras-ndsru: ND-Adam, Simple Recurrent Units, regularized softmax and
robustness verification of ReLU networks, for Keras 3.

The public API lives here. Importing the package loads no tensorflow-datasets.
On the TensorFlow backend it registers the fused SRU op when its library is
built for the running TensorFlow (silently; see `ops/registration.py`), so
that SavedModels exported with `SRU(use_fused_kernel=True)` load after
`import keras_ndsru` alone.
"""

from keras_ndsru import layers, losses, ops, verify
from keras_ndsru.callbacks.effective_learning_rate import EffectiveLearningRate
from keras_ndsru.layers.bn_softmax import BNSoftmax
from keras_ndsru.layers.logit_l2 import LogitL2
from keras_ndsru.layers.sru import SRU
from keras_ndsru.layers.sru_official import from_official_sru
from keras_ndsru.ops.registration import register_fused_op
from keras_ndsru.optimizers.nd_adam import NDAdam
from keras_ndsru.optimizers.vector_partition import vector_axes_for_model

register_fused_op()

__version__ = "0.1.0"

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
