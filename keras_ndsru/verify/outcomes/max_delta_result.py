"""The result of `max_robust_delta`."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class MaxDeltaResult:
    """The largest robust delta at a point, found by binary search.

    Attributes:
        delta: the largest radius proven robust.
        upper: the smallest radius found not robust (with ``counterexample``),
            or undecided, or the search's upper limit when robust there.
        exact: whether ``upper`` is refuted by a counterexample (False when an
            undecided query shrank the interval or the limit was reached).
        counterexample: a counterexample at ``upper``, or `None`.
        seconds: total wall-clock time; queries: every `VerificationResult`.
    """

    delta: float
    upper: float
    exact: bool
    counterexample: np.ndarray | None
    seconds: float
    queries: list = dataclasses.field(default_factory=list)
