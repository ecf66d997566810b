"""Shared pytest set-up: quiet TensorFlow logs, a fixed Keras backend."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Never probe the network for TFDS downloads from the test suite.
os.environ.setdefault("KERAS_NDSRU_OFFLINE", "1")

import keras  # noqa: E402
import pytest  # noqa: E402
from shared_data import shared_path  # noqa: E402  (tests/support)


@pytest.fixture
def shared_data():
    """`shared_data("acasxu/x.nnet")`: the path under ../shared, or a skip."""
    return shared_path


@pytest.fixture
def mixed_precision():
    """Runs a test under the mixed_float16 policy, then restores the policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(previous)
