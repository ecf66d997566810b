"""Builds the fused SRU op library of this checkout (keras_ndsru/_ops/).

A thin wrapper of `python -m keras_ndsru.ops.build`, which holds the build
logic so that an installed keras-ndsru can build its op too. Needs the
package installed (the README's set-up installs it editable).

Usage:
    .venv/bin/python scripts/build_ops.py [--cpu-only] [--force] [--jobs N]
"""

import sys

from keras_ndsru.ops.build import main

if __name__ == "__main__":
    sys.exit(main())
