"""Complete robustness verification of ReLU networks (arXiv 1709.02802).

`local_robustness` (Def. 1 and 3), `global_robustness` (Def. 2) and
`max_robust_delta` prove or refute robustness of Keras Dense/ReLU models and
`.nnet` networks (`load_nnet`) with bound propagation, falsification, input
splitting and a HiGHS mixed-integer encoding. HiGHS and SciPy are imported
only when a query runs (``pip install keras-ndsru[verify]``).
"""

from keras_ndsru.verify.keras_reader import from_keras
from keras_ndsru.verify.max_delta_result import MaxDeltaResult
from keras_ndsru.verify.network import ReluNetwork
from keras_ndsru.verify.nnet import NNetNetwork, load_nnet
from keras_ndsru.verify.queries import (
    global_robustness,
    local_robustness,
    max_robust_delta,
)
from keras_ndsru.verify.result import VerificationResult

__all__ = [
    "MaxDeltaResult",
    "NNetNetwork",
    "ReluNetwork",
    "VerificationResult",
    "from_keras",
    "global_robustness",
    "load_nnet",
    "local_robustness",
    "max_robust_delta",
]
