"""Optimizers: ND-Adam (arXiv 1709.04546)."""

from keras_ndsru.optimizers.nd_adam import NDAdam, vector_axes_for_model

__all__ = ["NDAdam", "vector_axes_for_model"]
