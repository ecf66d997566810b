"""Deciding a property of a `Graph` over a box: attack, alpha-CROWN, then
branch and bound over ReLU splits (beta-CROWN).

The stages of alpha-beta-CROWN for inputs with many dimensions (images):

1. PGD (`attack.pgd`): a candidate counterexample, re-checked by the
   caller's ``confirm`` (float64 and onnxruntime).
2. CROWN bounds of every pre-activation in float64 (sound, once), then
   alpha-CROWN (`bounds.optimize.root_bounds`) in the working precision,
   the intermediate bounds optimized too; the tightened pre-activation
   bounds are recomputed in float64 with the slopes found, so that every
   bound the search uses is sound.
3. If some disjunct is not excluded: `bab.search`, attacks between rounds.

A proof counts only when its bound is positive in float64 (`bab`); the
working precision (float32 by default, on a GPU when one is available) only
decides where to look.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch

from keras_ndsru.verify.bounds import crown
from keras_ndsru.verify.bounds import optimize as opt
from keras_ndsru.verify.bounds.spec import OutputSpec
from keras_ndsru.verify.graph.max_as_relu import maxpool_as_relus
from keras_ndsru.verify.graph.operators import Relax
from keras_ndsru.verify.outcomes.outcome import Method, Outcome, Reason, Status
from keras_ndsru.verify.properties.spec import project_l1
from keras_ndsru.verify.search import attack, bab

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class GraphOptions:
    """Settings of the graph engine.

    Args:
        device: "auto" (CUDA when available, else CPU), "cpu" or "cuda".
            Defaults to "auto".
        dtype: working precision, "float32" or "float64". Defaults to
            "float32".
        root: the root's alpha-CROWN steps. Defaults to
            ``Settings(iterations=50)``.
        bab: the search's settings. Defaults to `bab.BabOptions()`.
        restarts, steps: PGD starting points and steps. Defaults to 64, 100.
        seed: random seed of the attacks. Defaults to 0.
    """

    device: str = "auto"
    dtype: str = "float32"
    root: opt.Settings = dataclasses.field(
        default_factory=lambda: opt.Settings(iterations=50)
    )
    bab: bab.BabOptions = dataclasses.field(default_factory=bab.BabOptions)
    restarts: int = 64
    steps: int = 100
    seed: int = 0

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def region_box(graph, region) -> tuple[np.ndarray, np.ndarray]:
    """The region's box (intersected with the graph's input domain); an
    L_1 ball's box is the L_inf box around it (the ball is added by
    `input_boxes`)."""
    if region.copies != 1 or region.a_ub is not None:
        raise ValueError(
            "The graph engine decides one copy over a box or an L_1 ball (two "
            "copies go through `two_copies`; no general input constraints). "
            f"Received: copies={region.copies}, "
            f"a_ub={'set' if region.a_ub is not None else None}"
        )
    return in_domain(graph, region.lower, region.upper)


def in_domain(graph, lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """The box ``[lower, upper]`` intersected with the graph's input domain."""
    if graph.input_domain is not None:
        lower = np.maximum(lower, graph.input_domain[0])
        upper = np.minimum(upper, graph.input_domain[1])
    return lower, upper


def _round_out(value: torch.Tensor, exact: torch.Tensor, down: bool):
    """``value`` (``exact`` cast to a lower precision) moved one ulp outwards
    where the cast moved it inwards."""
    if down:
        inward = value.double() > exact
        step = torch.nextafter(value, value.new_tensor(-torch.inf))
    else:
        inward = value.double() < exact
        step = torch.nextafter(value, value.new_tensor(torch.inf))
    return torch.where(inward, step, value)


def outward(bounds: list, dtype) -> list:
    """float64 bounds in ``dtype``, rounded outwards (still sound)."""
    return [
        None
        if b is None
        else (
            _round_out(b[0].to(dtype), b[0], down=True),
            _round_out(b[1].to(dtype), b[1], down=False),
        )
        for b in bounds
    ]


@dataclasses.dataclass
class L1Ball:
    """``sum(|x - center|[mask]) <= radius`` on flat inputs (NumPy)."""

    center: np.ndarray
    radius: float
    mask: np.ndarray

    @classmethod
    def of(cls, region) -> L1Ball | None:
        """A one-copy region's L_1 ball (on every coordinate), or None."""
        if not region.l1_ball:
            return None
        center = np.asarray(region.center, np.float64)
        return cls(center, float(region.radius), np.ones(center.shape, bool))

    def project(self, point: np.ndarray) -> np.ndarray:
        """``point`` with its masked coordinates moved onto the ball (the
        Euclidean projection, scaled a hair inside for rounding)."""
        diff = point[self.mask] - self.center[self.mask]
        if np.abs(diff).sum() <= self.radius:
            return point
        diff = project_l1(diff, self.radius)[0]
        total = np.abs(diff).sum()
        if total > self.radius:
            diff *= self.radius / total * (1.0 - 1e-12)
        point = point.copy()
        point[self.mask] = self.center[self.mask] + diff
        return point


def input_boxes(graph, region, device, dtype, l1=None) -> tuple:
    """The region's box in float64 and in ``dtype`` (rounded outwards), with
    the L_1 ball ``l1`` (an `L1Ball`; default: the region's own, if any).

    Returns:
        ``(lower, upper, box64, box)``: NumPy float64 bounds ``(n,)`` and
        two `crown.Box` of the graph's input shape with a batch axis of 1.
    """
    lower, upper = region_box(graph, region)
    shape = (1, *graph.input_shape)
    ball64 = ball = None
    l1 = l1 if l1 is not None else L1Ball.of(region)
    if l1 is not None:
        center = torch.as_tensor(l1.center, device=device)
        mask = torch.as_tensor(l1.mask, device=device)
        ball64 = crown.Ball(center, float(l1.radius), mask)
        # The working precision's ball is slightly larger (a guide only).
        ball = crown.Ball(
            center.to(dtype),
            float(np.nextafter(np.float32(l1.radius), np.inf)),
            mask,
        )
    box64 = crown.Box(
        torch.as_tensor(lower, device=device).reshape(shape),
        torch.as_tensor(upper, device=device).reshape(shape),
        ball64,
    )
    ((low, high),) = outward([(box64.lower, box64.upper)], dtype)
    return lower, upper, box64, crown.Box(low, high, ball)


class _Run:
    """One property's decision: the boxes, the clock and the re-checks."""

    def __init__(self, graph, prop, deadline, options, confirm, l1=None):
        self.graph = graph
        self.deadline = deadline
        self.options = options
        self.confirm = confirm
        self.start = time.time()
        self.dtype = getattr(torch, options.dtype)
        self.spec = OutputSpec.from_property(prop)
        self.l1 = l1 if l1 is not None else L1Ball.of(prop.region)
        self.lower, self.upper, self.box64, self.box = input_boxes(
            graph, prop.region, options.torch_device(), self.dtype, self.l1
        )
        self.generator = torch.Generator().manual_seed(options.seed)
        self.attacks = 0

    def outcome(self, status, **fields) -> Outcome:
        return Outcome(status, seconds=time.time() - self.start, **fields)

    def check(self, point):
        """``(disjunct, point)`` when ``point`` (clipped) is a confirmed
        counterexample, else None."""
        point = np.clip(point, self.lower, self.upper)
        if self.l1 is not None:
            # The center is in the box: the projection stays in it.
            point = np.clip(self.l1.project(point), self.lower, self.upper)
        found = _violated(self.graph, self.spec, point)
        if found is not None and (self.confirm is None or self.confirm(found, point)):
            return found, point
        return None

    def attack(self):
        """PGD, more starts on each call (up to 4x); a confirmed
        counterexample or None."""
        self.attacks += 1
        x, margin = attack.pgd(
            self.graph,
            self.box.lower,
            self.box.upper,
            self.spec,
            restarts=self.options.restarts * min(self.attacks, 4),
            steps=self.options.steps,
            generator=self.generator,
            deadline=self.deadline,
        )
        if margin > 0:
            return None
        return self.check(x.detach().double().cpu().numpy().reshape(-1))

    def root(self):
        """alpha-CROWN at the root: ``(bounds64, bounds, rows, alphas,
        values64)``, the float64 disjunct values certified."""
        with torch.no_grad():
            bounds64 = crown.intermediate_bounds(
                self.graph, self.box64, deadline=self.deadline
            )
        bounds = outward(bounds64, self.dtype)
        logger.debug("float64 CROWN bounds after %.2f s", time.time() - self.start)
        rows, alphas, _, middle = opt.root_bounds(
            self.graph,
            self.box,
            bounds,
            self.spec,
            self.options.root,
            deadline=self.deadline,
        )
        if middle:
            bounds64 = _recompute(self.graph, self.box64, bounds64, middle)
            bounds = outward(bounds64, self.dtype)
        problem = bab.Problem(
            self.graph, self.box, bounds, self.spec, self.box64, bounds64
        )
        rows64 = problem.certify(bab._root(problem, rows, problem.compact(alphas)))
        rows = torch.minimum(rows, rows64.to(self.dtype))
        return bounds64, bounds, rows, alphas, self.spec.disjunct_values(rows64)

    def search(self, bounds64, bounds, rows, alphas, values) -> list[Outcome]:
        """Branch and bound, one search per disjunct not excluded, the worst
        root bound first (the likeliest to be violated), each over its own
        rows as alpha-beta-CROWN does per target: a domain's work grows with
        the rows it bounds."""
        spec = self.spec
        lows = {d: v for d, v in enumerate(values) if v > 0}
        leaves = 0
        for d in sorted(set(range(spec.disjuncts)) - set(lows), key=values.__getitem__):
            mine = torch.as_tensor(spec.owner == d, device=rows.device)
            result = bab.search(
                bab.Problem(
                    self.graph, self.box, bounds, spec.restrict(d), self.box64, bounds64
                ),
                rows[:, mine],
                {r: a[:, mine] for r, a in alphas.items()},
                self.deadline,
                self.options.bab,
                attack=self.attack,
                check=self.check,
            )
            leaves += result.domains
            if result.found is not None:
                disjunct, point = result.found
                return [
                    self.outcome(
                        Status.VIOLATED,
                        disjunct=disjunct,
                        method=Method.BAB,
                        x=point.reshape(1, -1),
                        leaves=leaves,
                    )
                ]
            if not result.proved:
                timeout = time.time() >= self.deadline
                return [
                    self.outcome(
                        Status.UNKNOWN,
                        disjunct=d,
                        reason=Reason.TIMEOUT if timeout else Reason.TOLERANCE,
                        lower=result.lower,
                        leaves=leaves,
                    )
                ]
            lows[d] = result.lower
        return [
            self.outcome(
                Status.SAFE,
                disjunct=i,
                method=Method.BAB,
                lower=min(lows.values()),
                leaves=leaves,
            )
            for i in range(spec.disjuncts)
        ]


def decide_graph(
    graph,
    prop,
    deadline: float,
    options: GraphOptions | None = None,
    confirm=None,
    l1: L1Ball | None = None,
) -> list[Outcome]:
    """Decides ``prop`` (a box region) on ``graph``.

    Args:
        graph: a `Graph`.
        prop: a `properties.spec.Property` with a box region.
        deadline: a `time.time()` value.
        options: a `GraphOptions`. Defaults to `GraphOptions()`.
        confirm: optional ``confirm(disjunct, x) -> bool`` re-checking a
            candidate counterexample ``x`` ``(n,)`` exactly.
        l1: an `L1Ball` intersected with the box (e.g. on some coordinates
            only), instead of the region's own. Defaults to None.

    Returns:
        One `Outcome` per disjunct when proved; else one `Outcome` (the
        violated disjunct, or `UNKNOWN` with its reason).
    """
    # Max-pooling as ReLUs: splittable, and affine once split (leaf LPs).
    graph = maxpool_as_relus(graph)
    run = _Run(graph, prop, deadline, options or GraphOptions(), confirm, l1)
    found = run.attack()
    logger.debug("attack done after %.2f s", time.time() - run.start)
    if found is not None:
        return [
            run.outcome(
                Status.VIOLATED,
                disjunct=found[0],
                method=Method.ATTACK,
                x=found[1].reshape(1, -1),
            )
        ]
    if time.time() > deadline:
        return [run.outcome(Status.UNKNOWN, reason=Reason.TIMEOUT)]
    bounds64, bounds, rows, alphas, values64 = run.root()
    values = values64[0].tolist()
    logger.debug("root bounds per disjunct: %s", [f"{v:.4g}" for v in values])
    if min(values) > 0:
        return [
            run.outcome(Status.SAFE, disjunct=i, method=Method.CROWN, lower=min(values))
            for i in range(run.spec.disjuncts)
        ]
    return run.search(bounds64, bounds, rows, alphas, values)


def _violated(graph, spec, point) -> int | None:
    """The first disjunct that holds at ``point`` in float64, or None."""
    y = torch.as_tensor(graph.forward(point[None]))
    values = spec.margins(y)[0]
    hits = torch.nonzero(values <= 0).flatten()
    return int(hits[0]) if hits.numel() else None


def _recompute(graph, box64, bounds64, middle) -> list:
    """The pre-activation bounds in float64 with alpha-CROWN's slopes."""
    selection = {}
    for (p, _), alpha in middle.items():
        selection.setdefault(p, alpha.shape[1] // 2)
    chosen = crown.unstable_selection(graph, bounds64)
    # The slopes were made for the float32 selection; recompute only where
    # the float64 selection has the same size (it is the same set then).
    usable = {p: chosen[p] for p in chosen if selection.get(p) == chosen[p].numel()}
    fixed = {p: bounds64[p] for p in chosen}

    def relax_for(p, r):
        alpha = middle.get((p, r))
        if alpha is None or p not in usable:
            return None
        return Relax(alpha=alpha.to(torch.float64))

    with torch.no_grad():
        return (
            crown.intermediate_bounds(
                graph, box64, fixed=fixed, relax_for=relax_for, selection=usable
            )
            if usable
            else bounds64
        )
