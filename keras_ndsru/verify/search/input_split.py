"""Input splitting on batches of boxes: all open disjuncts of a property at once.

For networks with few inputs (ACAS Xu: 5) the fastest complete method is
branch and bound on the *input* box (ReluVal, Neurify; alpha-beta-CROWN's
input split for ACAS Xu): bound the margin on a box; a positive bound proves
every input in it, a point with a non-positive margin refutes, and anything
else is halved along the dimension that matters most for the bound. Here a
whole batch of boxes is bounded with one pass of matrix products
(`keras_ndsru.verify.bounds.batched`), the boxes with the lowest bounds first
(best first, which finds counterexamples early), and a box is bounded once
for every disjunct still open on it (its hidden-layer bounds are shared).
Each bounded box also offers two counterexample candidates, the vertex that
minimizes its margin bound and its centre, and every round the lowest boxes
seed a short gradient descent (`keras_ndsru.verify.search.falsify`). Boxes that are
still open at ``max_depth`` go to the MILP (`keras_ndsru.verify.search.milp`).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from keras_ndsru.verify.bounds import batched as bb
from keras_ndsru.verify.outcomes.outcome import Reason, Status
from keras_ndsru.verify.search.falsify import falsify


@dataclasses.dataclass
class SplitStats:
    """What one search did: boxes bounded, rounds, MILPs at the depth limit."""

    boxes: int = 0
    rounds: int = 0
    milps: int = 0
    max_depth: int = 0


@dataclasses.dataclass
class DisjunctResult:
    """One disjunct's result: a `Status` and what supports it."""

    status: Status
    lower: float | None = None
    x: np.ndarray | None = None
    margin: float | None = None
    reason: Reason | None = None


_FIELDS = (
    "lower",
    "upper",
    "open",
    "key",
    "margin",
    "depth",
    "vertex",
    "smear",
    "layers",
)


class _Pool:
    """Open boxes as arrays: the box, the disjuncts open on it, its priority
    (lowest margin bound), its proven margin bounds and hidden-layer bounds
    (children inherit both: a half box is bounded at least as well)."""

    def __init__(self, n, disjuncts, neurons):
        self.lower = np.empty((0, n))
        self.upper = np.empty((0, n))
        self.open = np.empty((0, disjuncts), bool)
        self.key = np.empty(0)
        self.margin = np.empty((0, disjuncts))
        self.depth = np.empty(0, int)
        self.vertex = np.empty((0, n))
        self.smear = np.empty((0, n))
        self.layers = np.empty((0, 2 * neurons))

    def __len__(self):
        return self.key.size

    def push(self, **fields):
        for f in _FIELDS:
            setattr(self, f, np.concatenate([getattr(self, f), fields[f]]))

    def pop(self, count):
        """The ``count`` boxes of lowest key, removed from the pool."""
        if count < len(self):
            take = np.argpartition(self.key, count)[:count]
            keep = np.ones(len(self), bool)
            keep[take] = False
        else:
            take, keep = np.arange(len(self)), np.zeros(len(self), bool)
        out = {f: getattr(self, f)[take] for f in _FIELDS}
        for f in _FIELDS:
            setattr(self, f, getattr(self, f)[keep])
        return out


def _pack(layers):
    return np.concatenate([v for pair in layers for v in pair], axis=1)


def _unpack(flat, sizes):
    out, start = [], 0
    for size in sizes:
        out.append(
            (flat[:, start : start + size], flat[:, start + size : start + 2 * size])
        )
        start += 2 * size
    return out


def search(
    network,
    prop,
    indices,
    deadline: float,
    tol: float = 1e-6,
    batch: int = 256,
    max_depth: int = 40,
    leaf_milp=None,
    seed: int = 0,
    tries: int = 5,
):
    """Decides disjuncts ``indices`` of ``prop`` (a box region) by splitting.

    Args:
        network: a `ReluNetwork`.
        prop: a `spec.Property` whose region is a plain box (one copy).
        indices: the disjuncts to decide.
        deadline: `time.time()` by which to stop.
        tol: the margin a proof must exceed. Defaults to 1e-6.
        batch: boxes split per round. Defaults to 256.
        max_depth: boxes this deep go to ``leaf_milp``. Defaults to 40.
        leaf_milp: ``leaf_milp(index, region) -> dict`` with a ``status``
            (and ``lower``/``x``/``margin``), or None to leave such boxes
            unknown.
        seed: the descent's random seed. Defaults to 0.
        tries: dimensions tried per split (the best pair of halves is
            kept). Defaults to 5.

    Returns:
        ``(results, stats)``: one `DisjunctResult` per index, a `SplitStats`.
    """
    region = prop.region
    indices = list(indices)
    count, n = len(indices), region.n
    sizes = [b.size for b in network.biases[:-1]]
    width = np.maximum(region.upper - region.lower, 1e-300)
    rng = np.random.default_rng(seed)
    stats = SplitStats()
    proven = np.full(count, np.inf)  # the smallest proven bound per disjunct
    results: list = [None] * count
    pool = _Pool(n, count, sum(sizes))

    def bound(box):
        """Margin bounds of the open disjuncts of every box; tighter than the
        bounds the boxes inherited, never looser."""
        known = _unpack(box["layers"], sizes) if box["layers"].size else None
        layers = bb.hidden_bounds(network, box["lower"], box["upper"], known)
        values = np.full(box["open"].shape, np.inf)
        coefs = np.zeros(box["open"].shape + (n,))
        for j in range(count):
            rows = np.nonzero(box["open"][:, j])[0]
            if rows.size == 0:
                continue
            disjunct = prop.disjuncts[indices[j]]
            value, coef, _ = bb.optimized_bounds(
                network,
                [(lo[rows], hi[rows]) for lo, hi in layers],
                box["lower"][rows],
                box["upper"][rows],
                disjunct.mat,
                disjunct.rhs,
                target=tol,
                deadline=deadline,
            )
            values[rows, j], coefs[rows, j] = value, coef
        values = np.maximum(values, box["margin"])
        box["margin"], box["layers"] = values, _pack(layers)
        box["key"] = np.where(box["open"], values, np.inf).min(1)
        return coefs

    def unsafe_at(points):
        """(position in indices, x, margin) of the first refuting point, or None."""
        points = region.project(points.reshape(-1, 1, n))
        margins = prop.margins(network, points)[:, indices]
        hits = np.argwhere(margins <= 0)
        for row, which in hits:
            if region.contains(points[row]):
                return int(which), points[row], float(margins[row, which])
        return None

    def refuted(which, x, margin):
        for j in range(count):
            if results[j] is None:
                results[j] = DisjunctResult(Status.UNKNOWN, reason=Reason.SKIPPED)
        results[which] = DisjunctResult(Status.VIOLATED, x=x, margin=margin)
        return results, stats

    def settle(box, coefs):
        """Closes proven disjuncts, tries candidates, sends deep boxes to the
        MILP and pools the rest; a refutation if one is found."""
        stats.boxes += box["key"].size
        stats.max_depth = max(stats.max_depth, int(box["depth"].max()))
        open_, values = box["open"], box["margin"]
        candidates = [0.5 * (box["lower"] + box["upper"])]
        for j in range(count):
            done = open_[:, j] & (values[:, j] > tol)
            if done.any():
                proven[j] = min(proven[j], float(values[done, j].min()))
            open_[done, j] = False
            live = np.nonzero(open_[:, j])[0]
            candidates.append(
                bb.minimizer(coefs[live, j], box["lower"][live], box["upper"][live])
            )
        found = unsafe_at(np.concatenate(candidates))
        if found:
            return found
        worst = np.argmin(np.where(open_, values, np.inf), axis=1)
        coef = coefs[np.arange(worst.size), worst]
        box["vertex"] = bb.minimizer(coef, box["lower"], box["upper"])
        box["smear"] = np.abs(coef) * (box["upper"] - box["lower"])
        alive = open_.any(1)
        deep = alive & (box["depth"] >= max_depth)
        for b in np.nonzero(deep)[0]:
            sub = region.with_box(box["lower"][b], box["upper"][b])
            for j in np.nonzero(open_[b])[0]:
                if leaf_milp is None or time.time() >= deadline:
                    results[j] = DisjunctResult(Status.UNKNOWN, reason=Reason.TOLERANCE)
                    continue
                stats.milps += 1
                answer = leaf_milp(indices[j], sub)
                if answer["status"] is Status.VIOLATED:
                    return j, answer["x"], answer["margin"]
                if answer["status"] is Status.SAFE:
                    proven[j] = min(proven[j], answer["lower"])
                elif results[j] is None:
                    results[j] = DisjunctResult(
                        Status.UNKNOWN, reason=answer.get("reason")
                    )
        keep = alive & ~deep
        pool.push(**{f: box[f][keep] for f in _FIELDS})
        return None

    root = {
        "lower": region.lower[None],
        "upper": region.upper[None],
        "open": np.ones((1, count), bool),
        "margin": np.full((1, count), -np.inf),
        "depth": np.zeros(1, int),
        "vertex": region.lower[None],
        "smear": np.zeros((1, n)),
        "layers": np.empty((1, 0)),
    }
    found = settle(root, bound(root))
    if found:
        return refuted(*found)
    while len(pool):
        if time.time() >= deadline:
            break
        stats.rounds += 1
        parents = pool.pop(batch)
        # A short descent from the centres and vertices of the lowest boxes.
        order = np.argsort(parents["key"])[:16]
        centres = 0.5 * (parents["lower"][order] + parents["upper"][order])
        seeds = np.concatenate([centres, parents["vertex"][order]])
        open_any = np.nonzero(parents["open"][order].any(0))[0]
        x, value, which = falsify(
            network,
            prop,
            disjuncts=[indices[j] for j in open_any],
            rng=rng,
            samples=0,
            restarts=len(seeds),
            steps=20,
            seeds=list(seeds[:, None, :]),
            deadline=deadline,
        )
        if value <= 0 and region.contains(x):
            return refuted(indices.index(which), x, value)
        # Halve every box along its ``tries`` most promising dimensions (by
        # smear), bound all halves, and keep per box the pair that leaves the
        # least total shortfall below zero.
        size = parents["key"].size
        k = min(tries, n)
        relative = (parents["upper"] - parents["lower"]) / width
        rank = parents["smear"] + 1e-12 * relative
        dims = np.argsort(-rank, axis=1)[:, :k]  # (size, k)
        children = {
            f: np.tile(parents[f], (2 * k,) + (1,) * (parents[f].ndim - 1))
            for f in _FIELDS
            if f != "key"
        }
        children["depth"] = children["depth"] + 1
        rows = np.arange(size)
        for t in range(k):
            d = dims[:, t]
            mid = 0.5 * (parents["lower"][rows, d] + parents["upper"][rows, d])
            children["upper"][2 * t * size + rows, d] = mid
            children["lower"][(2 * t + 1) * size + rows, d] = mid
        coefs = bound(children)
        shortfall = np.minimum(children["key"], 0.0).reshape(k, 2, size).sum(1)
        tie = relative[rows[None, :], dims.T]
        best = np.argmax(shortfall + 1e-12 * tie, axis=0)
        take = np.concatenate([2 * best * size + rows, (2 * best + 1) * size + rows])
        kept = {f: children[f][take] for f in _FIELDS}
        coefs = coefs[take]
        found = settle(kept, coefs)
        if found:
            return refuted(*found)
    still_open = pool.open.any(0)
    for j in range(count):
        if results[j] is not None:
            continue
        if still_open[j]:
            results[j] = DisjunctResult(Status.UNKNOWN, reason=Reason.TIMEOUT)
        else:
            results[j] = DisjunctResult(Status.SAFE, lower=float(proven[j]))
    return results, stats
