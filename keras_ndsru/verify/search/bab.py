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
import logging
import math
import time

import numpy as np
import torch

from keras_ndsru.verify.bounds import optimize as opt
from keras_ndsru.verify.bounds.crown import Box
from keras_ndsru.verify.bounds.spec import OutputSpec

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class BabOptions:
    """Settings of the search.

    Args:
        batch: domains split per round. Defaults to 256.
        settings: the optimized bounds' steps per round.
        memory: bytes of stored slopes and multipliers before domains are
            stored without them (they restart from the root's). Defaults
            to 2 GiB.
        attack_every: seconds between PGD attacks during the search.
            Defaults to 10.
    """

    batch: int = 256
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

    Slopes are kept only for the neurons unstable at the root (the others
    stay stable in every domain): ``(batch, rows, m_r)`` per ReLU node, and
    split multipliers only for the splits a domain made: ``(batch, rows,
    depth)`` next to its split history.

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
        self.shapes = [graph.nodes[r].shape for r in self.relus]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.offsets = np.cumsum([0] + self.sizes)
        self.unstable = []
        for r in self.relus:
            lower, upper = (b.reshape(-1) for b in bounds[graph.nodes[r].inputs[0]])
            self.unstable.append(torch.nonzero((lower < 0) & (upper > 0)).flatten())

    def compact(self, alphas: dict) -> list:
        """Dense slopes ``(batch, rows, *shape)`` -> kept ``(batch, rows, m_r)``."""
        return [
            alphas[r].reshape(*alphas[r].shape[:2], -1)[:, :, idx]
            for r, idx in zip(self.relus, self.unstable)
        ]

    def dense(self, alphas: list) -> dict:
        out = {}
        for r, shape, size, idx, a in zip(
            self.relus, self.shapes, self.sizes, self.unstable, alphas
        ):
            full = a.new_zeros(*a.shape[:2], size).index_copy(2, idx, a)
            out[r] = full.reshape(*a.shape[:2], *shape)
        return out

    def split_terms(self, slots, index, signs, betas) -> dict:
        """beta-CROWN's ``-beta * s`` per ReLU node ``(batch, rows, *shape)``
        from the history ``(batch, depth)`` and multipliers ``(batch, rows,
        depth)``."""
        out = {}
        if betas is None or betas.shape[2] == 0:
            return out
        values = -betas * signs.unsqueeze(1).to(betas.dtype)
        for k, (r, shape, size) in enumerate(zip(self.relus, self.shapes, self.sizes)):
            mine = slots == k
            if not mine.any():
                continue
            where = torch.where(mine, index, torch.full_like(index, size))
            where = where.unsqueeze(1).expand(-1, betas.shape[1], -1)
            full = betas.new_zeros(*betas.shape[:2], size + 1)
            full = full.scatter_add(
                2, where, torch.where(mine.unsqueeze(1), values, 0.0)
            )
            out[r] = full[:, :, :size].reshape(*betas.shape[:2], *shape)
        return out

    def bound(self, domains: Domains, alphas=None, betas=None, record=None):
        alphas = domains.alphas if alphas is None else alphas
        betas = domains.betas if betas is None else betas
        extras = self.split_terms(domains.slots, domains.index, domains.signs, betas)
        return opt.output_bounds(
            self.graph,
            self.box,
            self.bounds,
            self.spec,
            self.dense(alphas),
            domains.splits,
            extras,
            record,
        )

    def certify(self, domains: Domains) -> torch.Tensor:
        """Float64 row bounds with the domains' parameters."""
        alphas = [a.to(torch.float64) for a in domains.alphas]
        betas = domains.betas.to(torch.float64)
        extras = self.split_terms(domains.slots, domains.index, domains.signs, betas)
        with torch.no_grad():
            return opt.output_bounds(
                self.graph,
                self.box64,
                self.bounds64,
                self.spec,
                self.dense(alphas),
                domains.splits,
                extras,
            )

    def branch_scores(self, splits, record) -> torch.Tensor:
        """BaBSR intercept scores ``(batch, neurons)``; -inf where no split."""
        scores = []
        for r in self.relus:
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

    def locate(self, flat: torch.Tensor):
        """Global neuron numbers -> (ReLU slot, flat index in it), tensors."""
        offsets = torch.as_tensor(self.offsets, device=flat.device)
        slot = torch.searchsorted(offsets, flat, right=True) - 1
        return slot, flat - offsets[slot]


@dataclasses.dataclass
class Domains:
    """A batch of domains as tensors (``n`` of them).

    Attributes:
        splits: per ReLU node, ``(n, *shape)`` int8 of -1, 0, +1.
        alphas: per ReLU slot, slopes ``(n, rows, m_r)`` (`Problem.compact`),
            or None (lean: restart from the root's).
        slots, index, signs: the split history ``(n, depth)``: ReLU slot,
            flat neuron, side (slot -1: padding).
        betas: multipliers ``(n, rows, depth)``, or None (lean: zeros).
        rows: best row bounds ``(n, rows)``.
        branch: the neuron each will be split on (global number), -1 none.
    """

    splits: dict
    alphas: list | None
    slots: torch.Tensor
    index: torch.Tensor
    signs: torch.Tensor
    betas: torch.Tensor | None
    rows: torch.Tensor
    branch: torch.Tensor

    def __len__(self) -> int:
        return self.rows.shape[0]

    def take(self, pick) -> Domains:
        return Domains(
            {r: t[pick] for r, t in self.splits.items()},
            None if self.alphas is None else [a[pick] for a in self.alphas],
            self.slots[pick],
            self.index[pick],
            self.signs[pick],
            None if self.betas is None else self.betas[pick],
            self.rows[pick],
            self.branch[pick],
        )

    @staticmethod
    def join(parts: list) -> Domains:
        parts = [p for p in parts if len(p)] or parts[:1]
        depth = max(p.slots.shape[1] for p in parts)
        parts = [p.deepen(depth) for p in parts]
        lean = any(p.alphas is None for p in parts)
        return Domains(
            {r: torch.cat([p.splits[r] for p in parts]) for r in parts[0].splits},
            None if lean else [torch.cat(a) for a in zip(*[p.alphas for p in parts])],
            torch.cat([p.slots for p in parts]),
            torch.cat([p.index for p in parts]),
            torch.cat([p.signs for p in parts]),
            None if lean else torch.cat([p.betas for p in parts]),
            torch.cat([p.rows for p in parts]),
            torch.cat([p.branch for p in parts]),
        )

    def deepen(self, depth: int) -> Domains:
        """The same domains with the history padded to ``depth``."""
        extra = depth - self.slots.shape[1]
        if extra <= 0:
            return self

        def pad(t, v):
            return torch.cat([t, t.new_full((*t.shape[:-1], extra), v)], -1)

        return dataclasses.replace(
            self,
            slots=pad(self.slots, -1),
            index=pad(self.index, 0),
            signs=pad(self.signs, 0),
            betas=None if self.betas is None else pad(self.betas, 0.0),
        )

    def nbytes(self) -> int:
        total = (
            0 if self.betas is None else self.betas.numel() * self.betas.element_size()
        )
        for a in self.alphas or []:
            total += a.numel() * a.element_size()
        return total

    def lean(self) -> Domains:
        return dataclasses.replace(self, alphas=None, betas=None)


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
    spec = problem.spec
    root = _root(problem, root_rows, problem.compact(root_alphas))
    root_alphas = root.alphas
    root, _ = _with_branches(problem, root)
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
        order = torch.argsort(opt.score(spec, store.rows))
        picked = store.take(order[: options.batch])
        rest = store.take(order[options.batch :])
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
                continue
        children = _bound(
            problem, _split(problem, picked, root_alphas), deadline, options
        )
        visited += len(children)
        if time.time() > deadline:
            # The last round: re-certifying, branching and probing its
            # children (tens of seconds on image networks) would overrun.
            rows = torch.cat([rest.rows, children.rows])
            return BabOutcome(False, _worst(spec, rows), None, visited, exhausted)
        proved = (spec.disjunct_values(children.rows) > 0).all(1)
        if proved.any():
            index = torch.nonzero(proved).flatten()
            rows64 = problem.certify(children.take(index))
            ok = (spec.disjunct_values(rows64) > 0).all(1)
            if ok.any():
                least = spec.disjunct_values(rows64[ok]).amin(1).min()
                worst_proved = min(worst_proved, float(least))
            if not ok.all():
                logger.debug(
                    "bab: %d of %d proofs not confirmed in float64 (worst %.4g)",
                    int((~ok).sum()),
                    len(ok),
                    float(spec.disjunct_values(rows64[~ok]).amin(1).min()),
                )
            # What float64 does not confirm stays open, with its float64 bounds.
            children.rows[index[~ok]] = rows64[~ok].to(children.rows.dtype)
            proved[index[~ok]] = False
        open_ = children.take(torch.nonzero(~proved).flatten())
        if time.time() > deadline:
            rows = torch.cat([rest.rows, open_.rows])
            return BabOutcome(False, _worst(spec, rows), None, visited, exhausted)
        if len(open_):
            open_, corners = _with_branches(problem, open_, deadline=deadline)
            found = _probe(problem, corners, check)
            if found is not None:
                return BabOutcome(False, -math.inf, found, visited, exhausted)
        store = Domains.join([rest, open_])
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "bab: %d bounded, %d open, worst %.4g, depth %d",
                visited,
                len(store),
                _worst(spec, store.rows),
                store.slots.shape[1],
            )
        if store.alphas is not None and store.nbytes() > options.memory:
            store = store.lean()
    if exhausted:
        return BabOutcome(False, 0.0, None, visited, exhausted)
    return BabOutcome(True, worst_proved, None, visited, 0)


def _root(problem: Problem, rows, alphas: list) -> Domains:
    like = problem.box.lower
    splits = {
        r: torch.zeros((1, *shape), dtype=torch.int8, device=like.device)
        for r, shape in zip(problem.relus, problem.shapes)
    }
    empty = torch.zeros((1, 0), dtype=torch.long, device=like.device)
    return Domains(
        splits,
        alphas,
        empty,
        empty,
        empty.to(torch.int8),
        like.new_zeros(1, problem.spec.rows, 0),
        rows,
        torch.zeros(1, dtype=torch.long, device=like.device),
    )


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


def _split(problem: Problem, parents: Domains, root_alphas: list) -> Domains:
    """Two children per parent: its branching neuron active, then inactive;
    they inherit its slopes, multipliers (the new one 0) and bounds."""
    n = len(parents)
    device = parents.rows.device
    children = parents.take(torch.cat([torch.arange(n), torch.arange(n)]).to(device))
    splits = {r: s.clone() for r, s in children.splits.items()}
    side = torch.cat([torch.ones(n), -torch.ones(n)]).to(torch.int8).to(device)
    slot, index = problem.locate(children.branch)
    rows = torch.arange(2 * n, device=device)
    for k, r in enumerate(problem.relus):
        mine = slot == k
        if mine.any():
            splits[r].view(2 * n, -1)[rows[mine], index[mine]] = side[mine]
    alphas = children.alphas
    if alphas is None:
        alphas = [a.expand(2 * n, *a.shape[1:]).clone() for a in root_alphas]
    betas = children.betas
    if betas is None:
        betas = children.rows.new_zeros(
            2 * n, problem.spec.rows, children.slots.shape[1]
        )
    return Domains(
        splits,
        alphas,
        torch.cat([children.slots, slot[:, None]], 1),
        torch.cat([children.index, index[:, None]], 1),
        torch.cat([children.signs, side[:, None]], 1),
        torch.cat([betas, betas.new_zeros(2 * n, betas.shape[1], 1)], 2),
        children.rows,
        children.branch,
    )


def _bound(problem: Problem, children: Domains, deadline, options) -> Domains:
    """The children with optimized slopes, multipliers and bounds (each row
    at least the parent's: a child is a subset)."""
    alphas = [a.detach().clone().requires_grad_(True) for a in children.alphas]
    betas = children.betas.detach().clone().requires_grad_(True)
    settings = options.settings
    params = [
        (a, *problem.graph.nodes[r].op.alpha_range(), settings.lr_alpha)
        for r, a in zip(problem.relus, alphas)
    ] + [(betas, 0.0, math.inf, settings.lr_beta)]

    def evaluate():
        return problem.bound(children, alphas, betas)

    rows, kept = opt.optimize(evaluate, params, problem.spec, settings, deadline)
    return dataclasses.replace(
        children,
        alphas=kept[:-1],
        betas=kept[-1],
        rows=torch.maximum(rows, children.rows),
    )


def _probe(problem: Problem, corners: torch.Tensor, check, limit: int = 4):
    """Evaluates the network at the domains' bound-minimizing corners
    ``(n, *input_shape)``: a corner where a disjunct holds, confirmed by
    ``check``, is a counterexample (alpha-beta-CROWN's upper bound)."""
    if check is None or corners is None or not len(corners):
        return None
    with torch.no_grad():
        y = problem.graph.evaluate(corners).reshape(len(corners), -1)
        margins = problem.spec.margins(y).amin(1)
    for k in torch.argsort(margins)[:limit].tolist():
        if margins[k] > 0:
            break
        found = check(corners[k].double().cpu().numpy().reshape(-1))
        if found is not None:
            return found
    return None


def _with_branches(
    problem: Problem, domains: Domains, candidates: int = 3, deadline=None
):
    """Chooses each domain's next branching neuron: in every ReLU layer the
    ``candidates`` best by BaBSR's score, then the one whose two children's
    bounds (one pass, the parent's slopes) are best in the worse child
    (filtered smart branching: De Palma et al., "Improved Branch and Bound for
    Neural Network Verification via Lagrangian Decomposition", 2021, Sec. 5;
    per layer, as alpha-beta-CROWN's kFSB: BaBSR's score alone favours the
    last layer, whose splits help least).

    Candidates are tried until ``deadline`` (a `time.time()` value or None);
    where none was, BaBSR's best candidate is taken.

    Returns:
        ``(domains, corners)``: the domains with their ``branch`` set, and
        each one's bound-minimizing input corner (for `_probe`).
    """
    record = {}
    with torch.no_grad():
        if domains.alphas is None:
            problem.bound(domains, alphas=[], betas=None, record=record)
        else:
            problem.bound(domains, record=record)
        scores = problem.branch_scores(domains.splits, record)
        tops, ats = [], []
        for begin, end in zip(problem.offsets[:-1], problem.offsets[1:]):
            part = scores[:, int(begin) : int(end)]
            value, where = part.topk(min(candidates, part.shape[1]), dim=1)
            tops.append(value)
            ats.append(where + int(begin))
        top, at = torch.cat(tops, 1), torch.cat(ats, 1)
        k = top.shape[1]
        if k > 1 and domains.alphas is not None:
            # One candidate at a time (2 n children each, not 2 k n at once:
            # memory), until the deadline; BaBSR's best where none was tried.
            n = len(domains)
            worst = top.new_full((n, k), -torch.inf)
            for c in range(k):
                if deadline is not None and time.time() > deadline:
                    break
                trial = dataclasses.replace(domains, branch=at[:, c])
                values = problem.spec.disjunct_values(
                    problem.bound(_split(problem, trial, []))
                ).amin(1)
                worst[:, c] = torch.minimum(values[:n], values[n:])
            worst = torch.where(
                torch.isfinite(top), worst, torch.full_like(worst, -torch.inf)
            )
            best = torch.where(
                torch.isfinite(worst).any(1), worst.argmax(1), top.argmax(1)
            )
            at = at.gather(1, best[:, None])
            top = top.gather(1, best[:, None])
    branch = torch.where(
        torch.isfinite(top[:, 0]), at[:, 0], torch.full_like(at[:, 0], -1)
    )
    corners = None
    if record.get(0) is not None:
        weights = record[0][:, 0]  # (n, *input): the first row's coefficients
        box = problem.box
        corners = torch.where(weights > 0, box.lower, box.upper)
    return dataclasses.replace(domains, branch=branch), corners
