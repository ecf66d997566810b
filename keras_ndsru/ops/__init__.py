"""SRU recurrence ops: the dispatch (fused op -> keras.ops fallback), the
reference recurrence and the lazy loaders of the fused op libraries
(TensorFlow, PyTorch, JAX). The fused op's wrappers (`sru_fused`,
`sru_fused_torch`, `sru_fused_jax`) import their framework and are not
imported here."""

from keras_ndsru.ops.op_library import (
    FusedKernelStatus,
    FusedKernelWarning,
    fused_kernel_status,
)
from keras_ndsru.ops.sru_layout import SRUOutputs
from keras_ndsru.ops.sru_recurrence import (
    sru_recurrence,
    supports_jit,
    will_use_fused_kernel,
)
from keras_ndsru.ops.sru_reference import sru_reference

__all__ = [
    "FusedKernelStatus",
    "FusedKernelWarning",
    "SRUOutputs",
    "fused_kernel_status",
    "sru_recurrence",
    "sru_reference",
    "supports_jit",
    "will_use_fused_kernel",
]
