"""Complete robustness verification of ReLU networks (arXiv 1709.02802).

`local_robustness` (Def. 1 and 3), `global_robustness` (Def. 2) and
`max_robust_delta` prove or refute robustness of Keras models (Dense,
Conv1D/Conv2D, pooling, residual Add, BatchNormalization, ReLU/LeakyReLU,
sigmoid/tanh), ONNX graphs (`load_onnx_graph`; `load_onnx` for affine/ReLU
chains) and `.nnet` networks (`load_nnet`). Every query is data: a `Property`
(an input `Region` and unsafe output `Disjunct`s ``mat @ y <= rhs``), decided
by one of two engines. Every model is read once into a `Graph` of operators
(`graph_from_keras`, `load_onnx_graph`); one that is an affine/ReLU chain
becomes a `ReluNetwork` (`from_keras`) for the exact chain engine
(falsification, bound propagation, input splitting, a HiGHS mixed-integer
encoding), any other graph goes to the graph engine (PGD, CROWN,
alpha/beta-CROWN branch and bound; PyTorch, on a GPU when present). VNN-LIB
files (`read_vnnlib`) compile into the same properties; `run_instance`
answers a VNN-COMP instance. HiGHS, SciPy, onnx and PyTorch are imported
only when needed (``pip install keras-ndsru[verify]``).
"""

from keras_ndsru.verify.formats.errors import OnnxError
from keras_ndsru.verify.formats.nnet import NNetNetwork, load_nnet
from keras_ndsru.verify.formats.onnx_reader import load_onnx
from keras_ndsru.verify.formats.vnnlib import read_vnnlib
from keras_ndsru.verify.graph.network import ReluNetwork
from keras_ndsru.verify.outcomes.max_delta_result import MaxDeltaResult
from keras_ndsru.verify.outcomes.outcome import Outcome, PropertyOutcome, Status
from keras_ndsru.verify.outcomes.result import VerificationResult
from keras_ndsru.verify.properties.spec import Disjunct, Property, Region
from keras_ndsru.verify.queries import (
    global_robustness,
    local_robustness,
    max_robust_delta,
)
from keras_ndsru.verify.verifier import check
from keras_ndsru.verify.vnncomp import run_instance

__all__ = [
    "Disjunct",
    "Graph",
    "OnnxError",
    "MaxDeltaResult",
    "NNetNetwork",
    "Outcome",
    "Property",
    "PropertyOutcome",
    "Region",
    "ReluNetwork",
    "Status",
    "VerificationResult",
    "check",
    "from_keras",
    "global_robustness",
    "graph_from_keras",
    "load_nnet",
    "load_onnx",
    "load_onnx_graph",
    "local_robustness",
    "max_robust_delta",
    "read_vnnlib",
    "run_instance",
]


def __getattr__(name):
    # The graph engine needs PyTorch: imported on first use only.
    if name == "Graph":
        from keras_ndsru.verify.graph.graph import Graph

        return Graph
    if name in ("graph_from_keras", "from_keras"):
        from keras_ndsru.verify.formats import keras_graph

        return getattr(keras_graph, name)
    if name == "load_onnx_graph":
        from keras_ndsru.verify.formats.onnx_graph import load_onnx_graph

        return load_onnx_graph
    raise AttributeError(f"module 'keras_ndsru.verify' has no attribute {name!r}")
