"""A property's unsafe rows as tensors, and how row bounds prove disjuncts.

A `properties.spec.Property` holds iff no input of its region satisfies any
disjunct ``mat @ y <= rhs`` (all rows). Over a set of inputs, a disjunct is
excluded once *one* of its rows has a positive lower bound of
``mat_i @ y - rhs_i``; the property once every disjunct is. Disjuncts are
indexed by ``owner`` (the disjunct of each row).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass
class OutputSpec:
    """Rows ``mat @ y - rhs`` over the flat output, grouped into disjuncts.

    Attributes:
        mat: ``(rows, n_outputs)``, float64 NumPy.
        rhs: ``(rows,)``.
        owner: ``(rows,)`` disjunct index of each row.
        disjuncts: the number of disjuncts.
    """

    mat: np.ndarray
    rhs: np.ndarray
    owner: np.ndarray
    disjuncts: int

    @classmethod
    def from_property(cls, prop, indices=None) -> OutputSpec:
        """The rows of ``prop``'s disjuncts ``indices`` (default: all)."""
        indices = range(len(prop.disjuncts)) if indices is None else indices
        chosen = [prop.disjuncts[i] for i in indices]
        return cls(
            np.concatenate([d.mat for d in chosen]).astype(np.float64),
            np.concatenate([d.rhs for d in chosen]).astype(np.float64),
            np.repeat(np.arange(len(chosen)), [d.mat.shape[0] for d in chosen]),
            len(chosen),
        )

    def restrict(self, disjunct: int) -> OutputSpec:
        """The rows of one disjunct, as a spec of its own."""
        mine = self.owner == disjunct
        return OutputSpec(
            self.mat[mine], self.rhs[mine], np.zeros(int(mine.sum()), np.int64), 1
        )

    @property
    def rows(self) -> int:
        return self.mat.shape[0]

    def owner_tensor(self, device) -> torch.Tensor:
        return torch.as_tensor(self.owner, device=device)

    def disjunct_values(self, rows: torch.Tensor) -> torch.Tensor:
        """Per disjunct, the largest of its rows' values: ``(batch, disjuncts)``
        from ``(batch, rows)`` (a disjunct is excluded when this is > 0; at a
        point, it holds when this is <= 0)."""
        owner = self.owner_tensor(rows.device).expand(rows.shape[0], -1)
        out = rows.new_full((rows.shape[0], self.disjuncts), -torch.inf)
        return out.scatter_reduce(1, owner, rows, reduce="amax")

    def margins(self, y: torch.Tensor) -> torch.Tensor:
        """``(batch, disjuncts)`` margins at flat outputs ``y`` ``(batch, n)``."""
        mat = torch.as_tensor(self.mat, dtype=y.dtype, device=y.device)
        rhs = torch.as_tensor(self.rhs, dtype=y.dtype, device=y.device)
        return self.disjunct_values(y @ mat.T - rhs)
