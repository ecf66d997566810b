"""Registers the fused SRU op with TensorFlow when `keras_ndsru` is imported.

A SavedModel exported from a model with `SRU(use_fused_kernel=True)` holds the
op `KerasNdsru>SruForward`, and TensorFlow loads such a graph only in a
process where the op is registered. `import keras_ndsru` registers it: on the
TensorFlow backend it loads the op library once, silently, if the library is
built and was built for the running TensorFlow. In every other case (another
backend, `KERAS_NDSRU_DISABLE_FUSED=1`, no library, a build for another
TensorFlow, a failed load) nothing happens here; the SRU layers say why, once,
when they first fall back. Models exported with the default
`use_fused_kernel="auto"` hold no custom op and need none of this.
"""

from __future__ import annotations

import keras

from keras_ndsru.ops import op_library


def register_fused_op() -> bool:
    """Loads the op library if it can be used; returns whether it is loaded.

    Returns:
        True when the fused op is registered with TensorFlow in this process.
    """
    if keras.backend.backend() != "tensorflow" or op_library.fused_disabled_by_env():
        return False
    loader = op_library.default_loader()
    if loader.check() is not None:
        return False
    return loader.module() is not None
