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
from keras_ndsru.verify.graph.operators import Relax
from keras_ndsru.verify.outcomes.outcome import Method, Outcome, Reason, Status
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
    """The region's box (intersected with the graph's input domain)."""
    if region.copies != 1 or region.l1_ball or region.a_ub is not None:
        raise ValueError(
            "The graph engine decides box regions (one copy, no L_1 ball, no "
            f"general input constraints). Received: copies={region.copies}, "
            f"norm={region.norm}, a_ub={'set' if region.a_ub is not None else None}"
        )
    lower, upper = region.lower, region.upper
    if graph.input_domain is not None:
        lower = np.maximum(lower, graph.input_domain[0])
        upper = np.minimum(upper, graph.input_domain[1])
    return lower, upper


def outward(bounds: list, dtype) -> list:
    """float64 bounds in ``dtype``, rounded outwards (still sound)."""
    out = []
    for b in bounds:
        if b is None:
            out.append(None)
            continue
        lower, upper = b[0].to(dtype), b[1].to(dtype)
        lower = torch.where(
            lower.double() > b[0],
            torch.nextafter(lower, lower.new_tensor(-torch.inf)),
            lower,
        )
        upper = torch.where(
            upper.double() < b[1],
            torch.nextafter(upper, upper.new_tensor(torch.inf)),
            upper,
        )
        out.append((lower, upper))
    return out


def decide_graph(
    graph,
    prop,
    deadline: float,
    options: GraphOptions | None = None,
    confirm=None,
) -> list[Outcome]:
    """Decides ``prop`` (a box region) on ``graph``.

    Args:
        graph: a `Graph`.
        prop: a `properties.spec.Property` with a box region.
        deadline: a `time.time()` value.
        options: a `GraphOptions`. Defaults to `GraphOptions()`.
        confirm: optional ``confirm(disjunct, x) -> bool`` re-checking a
            candidate counterexample ``x`` ``(n,)`` exactly.

    Returns:
        One `Outcome` per disjunct when proved; else one `Outcome` (the
        violated disjunct, or `UNKNOWN` with its reason).
    """
    options = options or GraphOptions()
    start = time.time()
    device = options.torch_device()
    dtype = getattr(torch, options.dtype)
    spec = OutputSpec.from_property(prop)
    lower, upper = region_box(graph, prop.region)
    shape = (1, *graph.input_shape)
    box64 = crown.Box(
        torch.as_tensor(lower, device=device).reshape(shape),
        torch.as_tensor(upper, device=device).reshape(shape),
    )
    box = crown.Box(box64.lower.to(dtype), box64.upper.to(dtype))
    box = crown.Box(
        torch.where(
            box.lower.double() > box64.lower,
            torch.nextafter(box.lower, box.lower.new_tensor(-torch.inf)),
            box.lower,
        ),
        torch.where(
            box.upper.double() < box64.upper,
            torch.nextafter(box.upper, box.upper.new_tensor(torch.inf)),
            box.upper,
        ),
    )
    generator = torch.Generator().manual_seed(options.seed)
    tries = [0]

    def outcome(status, **fields):
        return Outcome(status, seconds=time.time() - start, **fields)

    def check(point):
        point = np.clip(point, lower, upper)
        found = _violated(graph, spec, point)
        if found is not None and (confirm is None or confirm(found, point)):
            return found, point
        return None

    def run_attack():
        tries[0] += 1
        x, margin = attack.pgd(
            graph,
            box.lower,
            box.upper,
            spec,
            restarts=options.restarts * min(tries[0], 4),
            steps=options.steps,
            generator=generator,
            deadline=deadline,
        )
        if margin > 0:
            return None, margin
        return check(x.detach().double().cpu().numpy().reshape(-1)), margin

    found, _ = run_attack()
    logger.debug("attack done after %.2f s", time.time() - start)
    if found is not None:
        return [
            outcome(
                Status.VIOLATED,
                disjunct=found[0],
                method=Method.ATTACK,
                x=found[1].reshape(1, -1),
            )
        ]
    if time.time() > deadline:
        return [outcome(Status.UNKNOWN, reason=Reason.TIMEOUT)]
    graph64 = graph
    with torch.no_grad():
        bounds64 = crown.intermediate_bounds(graph64, box64, deadline=deadline)
    bounds = outward(bounds64, dtype)
    logger.debug("float64 CROWN bounds after %.2f s", time.time() - start)
    rows, alphas, _, middle = opt.root_bounds(
        graph, box, bounds, spec, options.root, deadline=deadline
    )
    if middle:
        bounds64 = _recompute(graph, box64, bounds64, middle)
        bounds = outward(bounds64, dtype)
    problem = bab.Problem(graph, box, bounds, spec, box64, bounds64)
    rows64 = problem.certify(bab._root(problem, rows, problem.compact(alphas)))
    values64 = spec.disjunct_values(rows64)
    if (values64 > 0).all():
        return [
            outcome(
                Status.SAFE,
                disjunct=i,
                method=Method.CROWN,
                lower=float(values64.min()),
            )
            for i in range(spec.disjuncts)
        ]
    rows = torch.minimum(rows, rows64.to(dtype))

    def attack_again():
        found, _ = run_attack()
        return found

    # One search per disjunct left, each over its own rows (as alpha-beta-CROWN
    # does per target): a domain's work grows with the rows it bounds.
    values = values64[0].tolist()
    lows = {d: v for d, v in enumerate(values) if v > 0}
    logger.debug("root bounds per disjunct: %s", [f"{v:.4g}" for v in values])
    leaves = 0
    # The worst root bound first: the likeliest to be violated.
    for d in sorted(set(range(spec.disjuncts)) - set(lows), key=lambda d: values[d]):
        mine = torch.as_tensor(spec.owner == d, device=rows.device)
        part = spec.restrict(d)
        result = bab.search(
            bab.Problem(graph, box, bounds, part, box64, bounds64),
            rows[:, mine],
            {r: a[:, mine] for r, a in alphas.items()},
            deadline,
            options.bab,
            attack=attack_again,
            check=check,
        )
        leaves += result.domains
        if result.found is not None:
            disjunct, point = result.found
            return [
                outcome(
                    Status.VIOLATED,
                    disjunct=disjunct,
                    method=Method.BAB,
                    x=point.reshape(1, -1),
                    leaves=leaves,
                )
            ]
        if not result.proved:
            reason = Reason.TIMEOUT if time.time() >= deadline else Reason.TOLERANCE
            return [
                outcome(
                    Status.UNKNOWN,
                    disjunct=d,
                    reason=reason,
                    lower=result.lower,
                    leaves=leaves,
                )
            ]
        lows[d] = result.lower
    return [
        outcome(
            Status.SAFE,
            disjunct=i,
            method=Method.BAB,
            lower=min(lows.values()),
            leaves=leaves,
        )
        for i in range(spec.disjuncts)
    ]


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
