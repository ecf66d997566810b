"""Verdicts returned by the verification queries."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class VerificationResult:
    """The verdict of one robustness query.

    Attributes:
        robust: `True` when proven, `False` when refuted by ``counterexample``,
            `None` when undecided (timeout, or a margin within the numerical
            tolerance that could not be settled).
        counterexample: for `False`, an input with the model's input shape
            (Def. 1 and 3) or a pair stacked on a new first axis (Def. 2),
            re-checked on the real model; otherwise `None`.
        seconds: wall-clock time of the query.
        label: the label of ``x0`` (Def. 1) or `None`.
        definition: 1, 2 or 3 (the paper's definitions).
        delta, eps, norm: the query's parameters.
        bound: the smallest proven margin lower bound over all disjuncts when
            robust (how far from the decision boundary the proof is).
        details: one `outcome.Outcome` per decided disjunct (status, method,
            seconds, ...), by disjunct index.
    """

    robust: bool | None
    counterexample: np.ndarray | None
    seconds: float
    label: int | None = None
    definition: int = 1
    delta: float = 0.0
    eps: float | None = None
    norm: str = "inf"
    bound: float | None = None
    details: list = dataclasses.field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "robust", False: "not robust", None: "unknown"}[self.robust]

    def __repr__(self) -> str:
        return (
            f"VerificationResult(robust={self.robust}, definition={self.definition}, "
            f"delta={self.delta}, eps={self.eps}, norm={self.norm!r}, "
            f"label={self.label}, seconds={self.seconds:.3f})"
        )
