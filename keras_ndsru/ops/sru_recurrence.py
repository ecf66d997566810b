"""Dispatch of the SRU recurrence: the fused op when it can run, else the
`tf.function`-compatible reference in `sru_reference.py`.

PROVISIONAL: the fused path is being wired in (issue 5); today every call
runs the reference recurrence.
"""

from __future__ import annotations

from keras_ndsru.ops.sru_reference import SRUOutputs, sru_reference


def sru_recurrence(
    u,
    x_highway,
    weight_c,
    bias,
    c0=None,
    mask=None,
    alpha: float = 1.0,
    direction: str = "forward",
    use_fused_kernel="auto",
) -> SRUOutputs:
    """Runs the SRU recurrence; arguments and outputs as `sru_reference`."""
    del use_fused_kernel
    return sru_reference(u, x_highway, weight_c, bias, c0, mask, alpha, direction)
