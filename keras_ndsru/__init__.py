"""keras-ndsru: ND-Adam, Simple Recurrent Units, regularized softmax and
robustness verification of ReLU networks, for Keras 3.

The public API lives here. Importing the package loads no compiled op library
and no tensorflow-datasets: the fused SRU op is loaded lazily on first use.
"""

from keras_ndsru import layers, losses, ops, verify
from keras_ndsru.callbacks.effective_learning_rate import EffectiveLearningRate
from keras_ndsru.layers.bn_softmax import BNSoftmax
from keras_ndsru.layers.logit_l2 import LogitL2
from keras_ndsru.layers.sru import SRU
from keras_ndsru.layers.sru_official import from_official_sru
from keras_ndsru.optimizers.nd_adam import NDAdam
from keras_ndsru.optimizers.vector_partition import vector_axes_for_model

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
