"""``python -m keras_ndsru.verify``: see `keras_ndsru.verify.cli`."""

import sys

from keras_ndsru.verify.cli import main

sys.exit(main())
