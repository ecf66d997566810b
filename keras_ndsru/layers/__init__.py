"""Keras layers of keras-ndsru."""

from keras_ndsru.layers.bn_softmax import BNSoftmax
from keras_ndsru.layers.logit_l2 import LogitL2
from keras_ndsru.layers.sru import SRU
from keras_ndsru.layers.sru_official import from_official_sru

__all__ = ["BNSoftmax", "LogitL2", "SRU", "from_official_sru"]
