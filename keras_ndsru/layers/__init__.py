"""Keras layers of keras-ndsru."""

from keras_ndsru.layers.bn_softmax import BNSoftmax
from keras_ndsru.layers.logit_l2 import LogitL2
from keras_ndsru.layers.sru import SRU

__all__ = ["BNSoftmax", "LogitL2", "SRU"]
