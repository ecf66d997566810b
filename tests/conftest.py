"""Shared pytest set-up: quiet TensorFlow logs, a fixed Keras backend."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Never probe the network for TFDS downloads from the test suite.
os.environ.setdefault("KERAS_NDSRU_OFFLINE", "1")
