"""Properties as data: an input region and an unsafe output condition.

Every property the verifier decides compiles into one `Property`: a `Region`
of inputs and a disjunction of `Disjunct`s, each a conjunction of linear
output constraints ``mat @ y <= rhs`` (the ``Specification(mat, rhs)`` of
nnenum, Bak et al., "Improved Geometric Path Enumeration for Verifying ReLU
Neural Networks", CAV 2020). The property holds iff no input of the region
satisfies any disjunct. Reluplex's robustness definitions (Katz et al., arXiv
1709.02802, Defs. 1-3; `keras_ndsru.verify.properties.definitions`) and VNN-LIB files
(`keras_ndsru.verify.formats.vnnlib`) both compile into it.

The region's geometry lives here too: exact membership, projection, sampling,
and the concretization of a linear function over the region (what bound
propagation needs).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

NORMS = ("inf", "1")


@dataclasses.dataclass(frozen=True, eq=False)
class Region:
    """Inputs ``x`` of shape ``(copies, n)``: ``copies`` network copies' inputs.

    Every copy lies in the box ``[lower, upper]``. With ``radius`` set, one
    copy also satisfies ``||x - center|| <= radius`` in ``norm`` (the L_inf
    ball is then also the box, rounded inwards), and two copies satisfy
    ``||x_1 - x_0|| <= radius`` (Def. 2). Optional general linear constraints
    ``a_ub @ x.ravel() <= b_ub`` (VNN-LIB inputs that are not bounds) are
    enforced exactly by the MILP and by membership; bound propagation uses the
    box and the ball only, which is sound (a superset).

    Args:
        lower, upper: 1-D arrays ``(n,)`` of the box, ``lower <= upper``.
        copies: 1, or 2 for a pair of inputs. Defaults to 1.
        norm: "inf" or "1", the norm of the distance constraint.
            Defaults to "inf".
        radius: the distance bound, or `None` for a plain box. Defaults to None.
        center: the ball's centre (one copy). Defaults to None.
        a_ub, b_ub: linear constraints over the flattened ``(copies * n,)``
            input, or `None`. Defaults to None.
    """

    lower: np.ndarray
    upper: np.ndarray
    copies: int = 1
    norm: str = "inf"
    radius: float | None = None
    center: np.ndarray | None = None
    a_ub: np.ndarray | None = None
    b_ub: np.ndarray | None = None

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"norm must be 'inf' or '1'. Received: norm={self.norm!r}")
        if self.copies not in (1, 2):
            raise ValueError(f"copies must be 1 or 2. Received: copies={self.copies}")
        if self.lower.shape != self.upper.shape or self.lower.ndim != 1:
            raise ValueError(
                "lower and upper must be 1-D arrays of one shape. Received: "
                f"lower.shape={self.lower.shape}, upper.shape={self.upper.shape}"
            )

    @property
    def n(self) -> int:
        return self.lower.shape[0]

    @property
    def l1_ball(self) -> bool:
        """Whether one copy is confined to an L_1 ball (beyond its box)."""
        return self.copies == 1 and self.norm == "1" and self.center is not None

    def with_box(self, lower: np.ndarray, upper: np.ndarray) -> Region:
        return dataclasses.replace(self, lower=lower, upper=upper)

    def key(self) -> tuple:
        """A hashable identity (the LP-tightened bounds are cached under it)."""
        parts = [self.lower, self.upper]
        parts += [p for p in (self.center, self.a_ub, self.b_ub) if p is not None]
        return (
            tuple(np.ascontiguousarray(p, np.float64).tobytes() for p in parts),
            self.copies,
            self.norm,
            self.radius,
        )

    # -- exact membership and projection -------------------------------------

    def contains(self, x: np.ndarray) -> bool:
        """Exact (float64) membership of one point ``(copies, n)``."""
        x = np.asarray(x, np.float64).reshape(self.copies, self.n)
        if np.any(x < self.lower) or np.any(x > self.upper):
            return False
        if self.a_ub is not None and np.any(self.a_ub @ x.ravel() > self.b_ub):
            return False
        if self.radius is None:
            return True
        if self.copies == 1:
            if self.center is None:
                return True
            diff = np.abs(x[0] - self.center)
        else:
            diff = np.abs(x[1] - x[0])
        return bool((diff.sum() if self.norm == "1" else diff.max()) <= self.radius)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Maps a batch ``(batch, copies, n)`` into the region (or next to it:
        general linear constraints are not projected onto; `contains` decides).
        """
        x = np.clip(x, self.lower, self.upper)
        if self.radius is None:
            return x
        if self.copies == 1:
            if self.l1_ball:
                diff = project_l1(x[:, 0] - self.center, self.radius)
                x[:, 0] = self._inside_l1(
                    self.center, np.clip(self.center + diff, self.lower, self.upper)
                )
            return x
        if self.norm == "inf":
            lo = np.maximum(x[:, 0] - self.radius, self.lower)
            hi = np.minimum(x[:, 0] + self.radius, self.upper)
            x[:, 1] = np.clip(x[:, 1], lo, hi)
        else:
            diff = project_l1(x[:, 1] - x[:, 0], self.radius)
            x[:, 1] = self._inside_l1(
                x[:, 0], np.clip(x[:, 0] + diff, self.lower, self.upper)
            )
        return x

    def _inside_l1(self, center, point):
        """Pulls points a hair towards ``center`` where rounding left their L_1
        distance just above the radius (the box is convex: they stay in it)."""
        for step in range(1, 4):
            over = np.abs(point - center).sum(-1) > self.radius
            if not over.any():
                break
            anchor = center[over] if center.ndim == 2 else center
            point[over] = anchor + (point[over] - anchor) * (1.0 - 1e-9 * step)
        return point

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Random points and box corners (or ball vertices), projected:
        ``(batch, copies, n)``."""
        n = self.n
        if self.l1_ball:
            direction = rng.laplace(size=(count, n))
            direction /= np.abs(direction).sum(1, keepdims=True)
            radius = self.radius * rng.uniform(size=(count, 1)) ** (1.0 / n)
            x = (self.center + radius * direction)[:, None]
            vertices = self.center + self.radius * np.concatenate(
                [np.eye(n), -np.eye(n)]
            )
            x = np.concatenate([x, vertices[:, None]])
        else:
            x = rng.uniform(self.lower, self.upper, size=(count, 1, n))
            if self.copies == 1 and n <= 10:
                corners = np.array(list(itertools.product([0.0, 1.0], repeat=n)))
            else:
                corners = rng.integers(0, 2, size=(min(count, 1024), n)).astype(float)
            if self.copies == 1:
                corner_pts = self.lower + corners * (self.upper - self.lower)
                x = np.concatenate([x, corner_pts[:, None]])
        if self.copies == 2:
            if self.norm == "inf":
                step = self.radius * rng.choice([-1.0, 1.0], size=x[:, 0].shape)
            else:
                step = rng.laplace(size=x[:, 0].shape)
                step *= self.radius / np.abs(step).sum(1, keepdims=True)
            x = np.concatenate([x, (x[:, 0] + step)[:, None]], axis=1)
        return self.project(x)

    # -- one copy's set, for bound propagation --------------------------------

    def minimize(self, coef: np.ndarray, const: np.ndarray) -> np.ndarray:
        """Lower bound of ``coef @ x + const`` per row over one copy's set."""
        pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
        value = const + pos @ self.lower + neg @ self.upper
        if self.l1_ball:
            ball = const + coef @ self.center - self.radius * np.abs(coef).max(1)
            value = np.maximum(value, ball)
        return value

    def minimizer(self, coef: np.ndarray) -> np.ndarray:
        """A point of one copy's set where ``coef @ x`` (one row) is small."""
        if not self.l1_ball:
            return np.where(coef > 0, self.lower, self.upper)
        x = self.center.copy()
        i = int(np.argmax(np.abs(coef)))
        x[i] -= self.radius * np.sign(coef[i])
        return np.clip(x, self.lower, self.upper)

    def split(self, dim: int) -> tuple[Region, Region]:
        """The two halves of the box along ``dim``."""
        mid = 0.5 * (self.lower[dim] + self.upper[dim])
        left_upper, right_lower = self.upper.copy(), self.lower.copy()
        left_upper[dim], right_lower[dim] = mid, mid
        return self.with_box(self.lower, left_upper), self.with_box(
            right_lower, self.upper
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Disjunct:
    """One unsafe case: ``mat @ y <= rhs`` (every row), ``y`` the outputs of
    all copies stacked ``(copies * n_out,)``.

    Its *margin* at ``y`` is ``max_i (mat_i @ y - rhs_i)``: the case holds iff
    the margin is ``<= 0``; a proof shows the margin ``> 0`` on the region.
    """

    mat: np.ndarray
    rhs: np.ndarray
    description: str = ""

    def __post_init__(self):
        if self.mat.ndim != 2 or self.rhs.shape != (self.mat.shape[0],):
            raise ValueError(
                "Expected mat (rows, outputs) and rhs (rows,). Received: "
                f"mat.shape={self.mat.shape}, rhs.shape={self.rhs.shape}"
            )

    def margin(self, y: np.ndarray) -> np.ndarray:
        """Margins of a batch of stacked outputs ``(batch, copies * n_out)``."""
        return (y @ self.mat.T - self.rhs).max(axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class Property:
    """A region and the disjunction of unsafe cases: it holds iff no input
    of ``region`` satisfies any of ``disjuncts``."""

    region: Region
    disjuncts: tuple[Disjunct, ...]
    description: str = ""

    def __post_init__(self):
        if not self.disjuncts:
            raise ValueError(
                "A property needs at least one unsafe case. Received: disjuncts=()"
            )
        object.__setattr__(self, "disjuncts", tuple(self.disjuncts))
        rows = np.concatenate([d.mat for d in self.disjuncts])
        rhs = np.concatenate([d.rhs for d in self.disjuncts])
        starts = np.cumsum([0] + [d.mat.shape[0] for d in self.disjuncts[:-1]])
        object.__setattr__(self, "_rows", (rows, rhs, starts))

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All disjuncts' rows stacked: ``(mat, rhs, owner)``, ``owner[i]``
        the index of the disjunct that row ``i`` belongs to."""
        rows, rhs, starts = self._rows
        owner = np.repeat(np.arange(len(self.disjuncts)), np.diff([*starts, len(rhs)]))
        return rows, rhs, owner

    def row_starts(self) -> np.ndarray:
        """Index of each disjunct's first row in `rows` (for reductions)."""
        return self._rows[2]

    def outputs(self, network, x: np.ndarray) -> np.ndarray:
        """Stacked outputs of every copy for a batch ``(batch, copies, n)``."""
        x = np.asarray(x, np.float64)
        return np.concatenate(
            [network.forward(x[:, k]) for k in range(self.region.copies)], axis=1
        )

    def margins(self, network, x: np.ndarray) -> np.ndarray:
        """Margins of every disjunct at a batch ``(batch, copies, n)``: (batch, D)."""
        rows, rhs, starts = self._rows
        values = self.outputs(network, x) @ rows.T - rhs
        return np.maximum.reduceat(values, starts, axis=1)

    def violated_by(self, network, x: np.ndarray) -> int | None:
        """The first disjunct that one point ``(copies, n)`` satisfies exactly
        (in the region, margin ``<= 0`` in float64), or `None`."""
        x = np.asarray(x, np.float64).reshape(1, self.region.copies, self.region.n)
        if not self.region.contains(x[0]):
            return None
        hits = np.nonzero(self.margins(network, x)[0] <= 0)[0]
        return int(hits[0]) if hits.size else None


def project_l1(v: np.ndarray, radius: float) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the L_1 ball (Duchi et al.)."""
    v = np.atleast_2d(v)
    out = v.copy()
    norms = np.abs(v).sum(1)
    for i in np.nonzero(norms > radius)[0]:
        u = np.sort(np.abs(v[i]))[::-1]
        css = np.cumsum(u)
        k = np.arange(1, u.size + 1)
        rho = np.nonzero(u * k > css - radius)[0][-1]
        theta = (css[rho] - radius) / (rho + 1.0)
        out[i] = np.sign(v[i]) * np.maximum(np.abs(v[i]) - theta, 0.0)
    # Rounding may leave the sum a hair above the radius: shrink onto it.
    sums = np.abs(out).sum(1)
    over = sums > radius
    out[over] *= (radius / sums[over] * (1 - 1e-12))[:, None]
    return out
