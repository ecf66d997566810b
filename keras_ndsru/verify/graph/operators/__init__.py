"""The operators of a verification graph, one class each with all its rules
(evaluate, interval bounds, CROWN back-substitution): see `base`."""

from keras_ndsru.verify.graph.operators.activations import (
    LeakyReLU,
    Relax,
    ReLU,
    Sigmoid,
    Tanh,
)
from keras_ndsru.verify.graph.operators.base import (
    Affine,
    Operator,
    UnsupportedOperator,
)
from keras_ndsru.verify.graph.operators.linear import (
    AveragePool,
    Conv,
    MatMul,
    Scale,
)
from keras_ndsru.verify.graph.operators.pooling import MaxPool
from keras_ndsru.verify.graph.operators.shape import (
    Concat,
    Constant,
    Gather,
    Identity,
    Pad,
    Reshape,
    Sum,
    Transpose,
)

__all__ = [
    "Affine",
    "AveragePool",
    "Concat",
    "Constant",
    "Conv",
    "Gather",
    "Identity",
    "LeakyReLU",
    "MatMul",
    "MaxPool",
    "Operator",
    "Pad",
    "ReLU",
    "Relax",
    "Reshape",
    "Scale",
    "Sigmoid",
    "Sum",
    "Tanh",
    "Transpose",
    "UnsupportedOperator",
]
