"""Typed outcomes: what deciding one disjunct, or one property, produced."""

from __future__ import annotations

import dataclasses
import enum

import numpy as np


class Status(enum.Enum):
    """The decision for a disjunct or a property.

    ``SAFE``: proven, no input of the region is unsafe (VNN-COMP ``unsat``).
    ``VIOLATED``: a counterexample, re-checked on the real network (``sat``).
    ``UNKNOWN``: neither (see `Reason`).
    """

    SAFE = "safe"
    VIOLATED = "violated"
    UNKNOWN = "unknown"


class Reason(enum.Enum):
    """Why a disjunct stayed `Status.UNKNOWN`."""

    TIMEOUT = "timeout"
    TOLERANCE = "tolerance"  # the proven bound is within tol of 0, no witness
    NOT_CONFIRMED = "not confirmed by the model"
    SKIPPED = "skipped"  # another disjunct already refuted the property


class Method(str, enum.Enum):
    """The stage that decided a disjunct (`keras_ndsru.verify.search.decide`)."""

    FALSIFY = "falsify"
    BOUNDS = "bounds"
    VERTEX = "vertex"
    SPLIT = "split"
    MILP = "milp"
    ATTACK = "attack"  # PGD on the graph
    CROWN = "alpha-crown"  # optimized bounds of the whole region
    BAB = "bab"  # branch and bound over ReLU splits (beta-CROWN)

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass
class Outcome:
    """The decision for one disjunct of a property.

    Attributes:
        status: a `Status`.
        disjunct: index of the disjunct in its property.
        method: the `Method` that decided it.
        description: the disjunct's description.
        lower: a proven lower bound of the margin (`SAFE`: ``> tol``).
        x: the counterexample ``(copies, n)`` (`VIOLATED`).
        margin: the margin at ``x`` (``<= 0``).
        reason: a `Reason` (`UNKNOWN`).
        seconds: wall-clock time spent on this disjunct.
        pid: the process that decided it.
        binaries, nodes: MILP size and branch-and-bound nodes.
        leaves, milps: input-splitting leaves bounded and MILPs solved.
    """

    status: Status
    disjunct: int = 0
    method: Method = Method.BOUNDS
    description: str = ""
    lower: float | None = None
    x: np.ndarray | None = None
    margin: float | None = None
    reason: Reason | None = None
    seconds: float = 0.0
    pid: int | None = None
    binaries: int = 0
    nodes: int = 0
    leaves: int = 0
    milps: int = 0


@dataclasses.dataclass
class PropertyOutcome:
    """The decision for a whole `spec.Property`.

    Attributes:
        status: `SAFE` when every disjunct is proven, `VIOLATED` when one has a
            confirmed counterexample, else `UNKNOWN`.
        counterexample: the input ``(copies, n)`` (`VIOLATED`), else `None`.
        outputs: the network's stacked outputs at the counterexample.
        bound: the smallest proven margin bound over the disjuncts (`SAFE`).
        seconds: wall-clock time of the property.
        outcomes: one `Outcome` per decided disjunct, by disjunct index.
    """

    status: Status
    counterexample: np.ndarray | None = None
    outputs: np.ndarray | None = None
    bound: float | None = None
    seconds: float = 0.0
    outcomes: list = dataclasses.field(default_factory=list)
