"""TFDS datasets for the offline default data of the examples.

Importing this module imports tensorflow-datasets and registers the builders
(`"ndsru_digits"`); the top-level `keras_ndsru` package does not import it.
"""

from keras_ndsru.datasets.digits import NdsruDigits
from keras_ndsru.datasets.loading import (
    OFFLINE_DEFAULT,
    DatasetUnavailableError,
    load,
    network_available,
)

__all__ = [
    "OFFLINE_DEFAULT",
    "DatasetUnavailableError",
    "NdsruDigits",
    "load",
    "network_available",
]
