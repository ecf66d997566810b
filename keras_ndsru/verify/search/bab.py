"""Branch and bound over ReLU splits, with beta-CROWN bounds, in batches.

The search of alpha-beta-CROWN (Wang et al., NeurIPS 2021; Xu et al., ICLR
2021) on a `Graph`: a *domain* is the input box with some unstable ReLU
neurons fixed active (``z >= 0``) or inactive (``z <= 0``). Each round takes
the ``batch`` domains with the worst bounds, splits each on the neuron its
branching score ranks first (BaBSR's intercept score: Bunel et al., "Branch
and Bound for Piecewise Linear Neural Network Verification", JMLR 2020,
Sec. 5.1), bounds all children at once with their slopes and split
multipliers optimized (`bounds.optimize`), and keeps the children not yet
proved. The children inherit their parent's slopes and multipliers (warm
start) and its bounds (a child is a subset). A PGD attack runs before the
search and again between rounds.

Soundness: every domain proved in the working precision (float32) is
re-bounded in float64, with float64 pre-activation bounds of the root and
the same slopes and multipliers (any values in range give a valid bound),
and counts as proved only if that bound is positive too.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from keras_ndsru.verify.bounds import optimize as opt
from keras_ndsru.verify.bounds.crown import Box
from keras_ndsru.verify.bounds.spec import OutputSpec


@dataclasses.dataclass
class BabOptions:
    """Settings of the search.

    Args:
        batch: domains split per round. Defaults to 64.
        settings: the optimized bounds' steps per round.
        memory: bytes of stored slopes and multipliers before domains are
            stored without them (they restart from the root's). Defaults
            to 2 GiB.
        attack_every: seconds between PGD attacks during the search.
            Defaults to 10.
    """

    batch: int = 64
    settings: opt.Settings = dataclasses.field(default_factory=opt.Settings)
    memory: int = 2 << 30
    attack_every: float = 10.0


@dataclasses.dataclass
class BabOutcome:
    """What the search concluded.

    Attributes:
        proved: True when every domain was proved (the property holds).
        lower: the smallest proved bound (proved), or the worst open one.
        found: a confirmed counterexample ``(disjunct, x)`` from an attack
            or a leaf LP, or None.
        domains: domains bounded.
        exhausted: open domains with no neuron left to split that no LP
            decided.
    """

    proved: bool
    lower: float
    found: tuple | None = None
    domains: int = 0
    exhausted: int = 0


class Problem:
    """Everything fixed during one search.

    Args:
        graph: the network.
        box: the input box (working precision).
        bounds: pre-activation bounds of the root (working precision).
        spec: the rows.
        box64, bounds64: the same in float64, for re-certification.
    """

    def __init__(self, graph, box: Box, bounds, spec: OutputSpec, box64: Box, bounds64):
        self.graph, self.box, self.bounds, self.spec = graph, box, bounds, spec
        self.box64, self.bounds64 = box64, bounds64
        self.relus = graph.splittable()
        self.sizes = [math.prod(graph.nodes[r].shape) for r in self.relus]
        self.offsets = np.cumsum([0] + self.sizes)

    def bound(self, alphas, splits, betas, record=None):
        return opt.output_bounds(
            self.graph, self.box, self.bounds, self.spec, alphas, splits, betas, record
        )

    def certify(self, alphas, splits, betas) -> torch.Tensor:
        """Float64 row bounds with the given parameters."""
        cast = lambda d: {r: t.to(torch.float64) for r, t in d.items()}  # noqa: E731
        with torch.no_grad():
            return opt.output_bounds(
                self.graph,
                self.box64,
                self.bounds64,
                self.spec,
                cast(alphas),
                splits,
                cast(betas),
            )

    def branch_scores(self, splits, record) -> torch.Tensor:
        """BaBSR intercept scores ``(batch, neurons)``; -inf where no split."""
        scores = []
        for r, _size in zip(self.relus, self.sizes):
            p = self.graph.nodes[r].inputs[0]
            lower, upper = self.bounds[p]
            batch = splits[r].shape[0]
            lower = lower.expand(batch, *lower.shape[1:]).reshape(batch, -1)
            upper = upper.expand(batch, *upper.shape[1:]).reshape(batch, -1)
            A = record[r].reshape(batch, record[r].shape[1], -1)
            open_ = (lower < 0) & (upper > 0) & (splits[r].reshape(batch, -1) == 0)
            width = torch.where(open_, upper - lower, torch.ones_like(upper))
            intercept = -lower * upper / width
            negative = (-A).clamp(min=0).sum(1)
            score = negative * intercept + 1e-4 * A.abs().sum(1) * torch.minimum(
                upper, -lower
            )
            scores.append(torch.where(open_, score, torch.full_like(score, -torch.inf)))
        return torch.cat(scores, 1)

    def locate(self, flat: int) -> tuple[int, int]:
        """Global neuron number -> (ReLU node, flat index in it)."""
        k = int(np.searchsorted(self.offsets, flat, side="right") - 1)
        return self.relus[k], int(flat - self.offsets[k])


@dataclasses.dataclass
class Domains:
    """A batch of domains as tensors (``n`` of them).

    Attributes:
        splits: per ReLU node, ``(n, *shape)`` int8 of -1, 0, +1.
        alphas, betas: per ReLU node, ``(n, rows, *shape)``, or None (lean).
        rows: best row bounds ``(n, rows)``.
        branch: the neuron each will be split on (global number), -1 none.
    """

    splits: dict
    alphas: dict | None
    betas: dict | None
    rows: torch.Tensor
    branch: torch.Tensor

    def __len__(self) -> int:
        return self.rows.shape[0]

    def take(self, index) -> Domains:
        pick = lambda d: None if d is None else {r: t[index] for r, t in d.items()}  # noqa: E731
        return Domains(
            pick(self.splits),
            pick(self.alphas),
            pick(self.betas),
            self.rows[index],
            self.branch[index],
        )

    @staticmethod
    def join(parts: list) -> Domains:
        parts = [p for p in parts if len(p)] or parts[:1]
        lean = any(p.alphas is None for p in parts)
        cat = lambda name: (  # noqa: E731
            None
            if lean and name != "splits"
            else {
                r: torch.cat([getattr(p, name)[r] for p in parts])
                for r in parts[0].splits
            }
        )
        return Domains(
            cat("splits"),
            cat("alphas"),
            cat("betas"),
            torch.cat([p.rows for p in parts]),
            torch.cat([p.branch for p in parts]),
        )

    def nbytes(self) -> int:
        total = 0
        for d in (self.alphas, self.betas):
            if d is not None:
                total += sum(t.numel() * t.element_size() for t in d.values())
        return total

    def lean(self) -> Domains:
        return Domains(self.splits, None, None, self.rows, self.branch)


def search(
    problem: Problem,
    root_rows: torch.Tensor,
    root_alphas: dict,
    deadline: float,
    options: BabOptions,
    attack=None,
    check=None,
) -> BabOutcome:
    """Branch and bound from the root domain.

    Args:
        problem: the fixed parts.
        root_rows: the root's row bounds ``(1, rows)``.
        root_alphas: the root's optimized output slopes.
        deadline: a `time.time()` value.
        options: settings.
        attack: optional ``attack() -> (disjunct, x) or None`` (a confirmed
            counterexample), run between rounds.
        check: optional ``check(x) -> (disjunct, x) or None`` confirming a
            leaf LP's minimizer ``x`` (flat, float64).

    Returns:
        A `BabOutcome`.
    """
    graph, spec = problem.graph, problem.spec
    like = problem.box.lower
    splits = {
        r: torch.zeros((1, *graph.nodes[r].shape), dtype=torch.int8, device=like.device)
        for r in problem.relus
    }
    betas = {r: torch.zeros_like(a) for r, a in root_alphas.items()}
    root = Domains(
        splits, dict(root_alphas), betas, root_rows, torch.zeros(1, dtype=torch.long)
    )
    root = _with_branches(problem, root)
    store, visited, exhausted = root, 1, 0
    worst_proved = math.inf
    last_attack = time.time()
    while len(store):
        if time.time() > deadline:
            return BabOutcome(False, _worst(spec, store.rows), None, visited, exhausted)
        if attack is not None and time.time() - last_attack > options.attack_every:
            found = attack()
            last_attack = time.time()
            if found is not None:
                return BabOutcome(False, -math.inf, found, visited, exhausted)
        priority = opt.score(spec, store.rows)
        order = torch.argsort(priority)
        picked, rest = (
            store.take(order[: options.batch]),
            store.take(order[options.batch :]),
        )
        stuck = picked.branch < 0
        if stuck.any():
            # No neuron left to split: the network is affine there, one LP each.
            for k in torch.nonzero(stuck).flatten().tolist():
                verdict, found = _leaf(problem, picked.take([k]), check)
                if found is not None:
                    return BabOutcome(False, -math.inf, found, visited, exhausted)
                if verdict is None:
                    exhausted += 1
                else:
                    worst_proved = min(worst_proved, verdict)
            picked = picked.take(torch.nonzero(~stuck).flatten())
            if not len(picked):
                store = rest
                if not len(store):
                    break
                continue
        children = _split(problem, picked, root_alphas)
        rows, alphas, betas = _bound(problem, children, deadline, options)
        rows = torch.maximum(rows, children.rows)
        children = Domains(children.splits, alphas, betas, rows, children.branch)
        visited += len(children)
        proved = (spec.disjunct_values(rows) > 0).all(1)
        if proved.any():
            index = torch.nonzero(proved).flatten()
            done = children.take(index)
            rows64 = problem.certify(
                done.alphas or _fresh(root_alphas, len(done)),
                done.splits,
                done.betas or _zeros_like(_fresh(root_alphas, len(done))),
            )
            ok = (spec.disjunct_values(rows64.to(rows.dtype)) > 0).all(1)
            if ok.any():
                worst_proved = min(
                    worst_proved, float(spec.disjunct_values(rows64[ok]).amin(1).min())
                )
            # What float64 could not confirm stays open, with its float64 bounds.
            rows[index[~ok]] = rows64[~ok].to(rows.dtype)
            proved[index[~ok]] = False
        open_ = children.take(torch.nonzero(~proved).flatten())
        if len(open_):
            open_ = _with_branches(problem, open_)
        store = Domains.join([rest, open_])
        if store.alphas is not None and store.nbytes() > options.memory:
            store = store.lean()
    if exhausted:
        return BabOutcome(False, 0.0, None, visited, exhausted)
    return BabOutcome(True, worst_proved, None, visited, 0)


def _leaf(problem: Problem, domain: Domains, check):
    """``(bound, found)`` of a domain with every ReLU decided: its proved
    bound (or None), or a confirmed counterexample."""
    from keras_ndsru.verify.search import leaf_lp

    if not leaf_lp.supported(problem.graph):
        return None, None
    values = problem.spec.disjunct_values(domain.rows)[0]
    open_ = [d for d in range(problem.spec.disjuncts) if not values[d] > 0]
    lower, x = leaf_lp.decide_leaf(problem, domain.splits, open_)
    if x is not None and check is not None:
        found = check(x)
        if found is not None:
            return None, found
    if all(v > 0 for v in lower.values()):
        return min(lower.values()), None
    return None, None


def _worst(spec, rows) -> float:
    return float(spec.disjunct_values(rows).amin(1).min()) if rows.numel() else 0.0


def _fresh(root_alphas, n) -> dict:
    return {r: a.expand(n, *a.shape[1:]).clone() for r, a in root_alphas.items()}


def _zeros_like(d) -> dict:
    return {r: torch.zeros_like(t) for r, t in d.items()}


def _split(problem: Problem, parents: Domains, root_alphas) -> Domains:
    """Two children per parent: its branching neuron active, then inactive."""
    n = len(parents)
    twice = torch.cat([torch.arange(n), torch.arange(n)])
    children = parents.take(twice)
    children = Domains(
        {r: s.clone() for r, s in children.splits.items()},
        children.alphas,
        children.betas,
        children.rows,
        children.branch,
    )
    side = torch.cat([torch.ones(n), -torch.ones(n)]).to(torch.int8)
    for k, flat in enumerate(parents.branch.tolist() * 2):
        r, j = problem.locate(flat)
        children.splits[r].view(2 * n, -1)[k, j] = side[k]
    if children.alphas is None:
        alphas = _fresh(root_alphas, 2 * n)
        children = Domains(
            children.splits, alphas, _zeros_like(alphas), children.rows, children.branch
        )
    return children


def _bound(problem: Problem, children: Domains, deadline, options):
    """Optimized bounds of the children: ``(rows, alphas, betas)``."""
    alphas = {
        r: a.detach().clone().requires_grad_(True) for r, a in children.alphas.items()
    }
    betas = {
        r: b.detach().clone().requires_grad_(True) for r, b in children.betas.items()
    }
    settings = options.settings
    params = [
        (a, *problem.graph.nodes[r].op.alpha_range(), settings.lr_alpha)
        for r, a in alphas.items()
    ] + [(b, 0.0, math.inf, settings.lr_beta) for b in betas.values()]

    def evaluate():
        return problem.bound(alphas, children.splits, betas)

    rows, kept = opt.optimize(evaluate, params, problem.spec, settings, deadline)
    names = list(alphas)
    best_alphas = {r: kept[i] for i, r in enumerate(names)}
    best_betas = {r: kept[len(names) + i] for i, r in enumerate(names)}
    return rows, best_alphas, best_betas


def _with_branches(problem: Problem, domains: Domains) -> Domains:
    """Chooses each domain's next branching neuron (one record pass)."""
    record = {}
    n = len(domains)
    alphas = domains.alphas
    with torch.no_grad():
        problem.bound(alphas, domains.splits, domains.betas, record=record)
        scores = problem.branch_scores(domains.splits, record)
    best, at = scores.max(1)
    branch = torch.where(torch.isfinite(best), at, torch.full_like(at, -1))
    del n
    return Domains(domains.splits, domains.alphas, domains.betas, domains.rows, branch)
