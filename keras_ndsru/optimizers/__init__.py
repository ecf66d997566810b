"""Optimizers: ND-Adam (arXiv 1709.04546) and its weight-vector partition."""

from keras_ndsru.optimizers.nd_adam import NDAdam
from keras_ndsru.optimizers.vector_partition import (
    PartitionRules,
    automatic_axes,
    variable_path,
    vector_axes_for_model,
    weight_vectors,
)

__all__ = [
    "NDAdam",
    "PartitionRules",
    "automatic_axes",
    "variable_path",
    "vector_axes_for_model",
    "weight_vectors",
]
