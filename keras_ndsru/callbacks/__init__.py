"""Callbacks: the effective learning rate of weight vectors (arXiv 1709.04546)."""

from keras_ndsru.callbacks.effective_learning_rate import EffectiveLearningRate

__all__ = ["EffectiveLearningRate"]
