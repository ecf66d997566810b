"""SRU recurrence ops: the dispatch (fused op -> keras.ops fallback), the
reference recurrence and the lazy loader of the fused op library. The fused
op's wrapper (`sru_fused`) imports TensorFlow and is not imported here."""

from keras_ndsru.ops.op_library import (
    FusedKernelStatus,
    FusedKernelWarning,
    fused_kernel_status,
)
from keras_ndsru.ops.sru_layout import SRUOutputs
from keras_ndsru.ops.sru_recurrence import sru_recurrence, will_use_fused_kernel
from keras_ndsru.ops.sru_reference import sru_reference

__all__ = [
    "FusedKernelStatus",
    "FusedKernelWarning",
    "SRUOutputs",
    "fused_kernel_status",
    "sru_recurrence",
    "sru_reference",
    "will_use_fused_kernel",
]
