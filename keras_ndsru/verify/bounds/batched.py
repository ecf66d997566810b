"""Bounds over many input boxes at once, for batched input splitting.

Hidden layers get *forward symbolic intervals* (ReluVal/Neurify, Wang et
al., USENIX Security 2018 and NeurIPS 2018): every pre-activation ``z`` has a
linear lower and upper function of the input, valid on its box. An unstable
ReLU with bounds ``[l, u]`` is relaxed above by its chord ``s (z - l)``,
``s = u / (u - l)``, and below by ``s z`` (parallel to the chord). With few
inputs (ACAS Xu has 5) these functions are small, ``(boxes, n + 1, width)``,
and one layer is one matrix product for the whole batch.

Output rows get a *backward* pass (CROWN/DeepPoly back-substitution, Zhang et
al., NeurIPS 2018; Singh et al., POPL 2019) from those layer bounds: the
rows' coefficients are pushed through every relaxed layer down to the input,
each choosing the relaxation side by sign.

A disjunct of several rows is unsafe where *all* rows are ``<= rhs``; its
margin ``max_i (mat_i @ y - rhs_i)`` is at least ``sum_i lam_i (mat_i @ y -
rhs_i)`` for any convex weights ``lam``. `optimized_bounds` improves ``lam``
per box together with the lower ReLU slopes: close to the LP over the rows
jointly, which the best single row is not (ACAS Xu property 2).

Every bound here is sound for its box whatever the choices (slopes in
[0, 1], any ``lam`` in the simplex); choices only change tightness.
"""

from __future__ import annotations

import time

import numpy as np

from keras_ndsru.verify.bounds.symbolic import Relaxation, activated, unstable

_CHUNK = 64  # boxes per back-substitution chunk


def _concretize(coef, const, mid, rad):
    """Lower bound of ``coef . x + const`` over boxes; coef ``(B, n, k)``."""
    centre = np.matmul(mid[:, None, :], coef)[:, 0]
    spread = np.matmul(rad[:, None, :], np.abs(coef))[:, 0]
    return const + centre - spread


def _backward(network, relaxations, boxes, lam, offset, mid, rad):
    """Lower bounds of rows ``lam . a + offset`` per box, ``a`` the
    activations of layer ``len(relaxations) - 1``: ``boxes`` indexes the
    boxes, ``lam`` ``(len(boxes), R, width)``, ``offset`` ``(len(boxes), R)``;
    returns ``(len(boxes), R)``."""
    count, rows = offset.shape
    for m in range(len(relaxations) - 1, -1, -1):
        relax = relaxations[m]
        negative = lam < 0
        shift = relax.shift[boxes][:, :, None]
        offset = offset + np.matmul(np.where(negative, lam, 0.0), shift)[:, :, 0]
        slope = relax.slope[boxes][:, None, :]
        lam = lam * np.where(negative, slope, relax.low_slope[boxes][:, None, :])
        offset = offset + lam @ network.biases[m]
        w = network.weights[m]
        lam = (lam.reshape(-1, w.shape[0]) @ w).reshape(count, rows, w.shape[1])
    centre = np.matmul(lam, mid[boxes][:, :, None])[:, :, 0]
    spread = np.matmul(np.abs(lam), rad[boxes][:, :, None])[:, :, 0]
    return offset + centre - spread


def hidden_bounds(network, lower, upper, known=None, backward: bool = True):
    """Pre-activation bounds of every hidden layer over each box.

    Forward symbolic intervals for all neurons; the neurons they leave
    unstable are then bounded by a backward pass (tighter, and paid only
    where it can matter).

    Args:
        network: a `ReluNetwork`.
        lower, upper: boxes, ``(B, n)`` each.
        known: optional bounds already proven for each box (e.g. its parent
            box's, of a superset), in the returned format; each layer is
            intersected with them before it is used. Relaxation heuristics
            are not monotone, so a half box can otherwise get looser bounds
            than the whole.
        backward: back-substitute the unstable neurons (False: forward
            intervals only, much cheaper and looser). Defaults to True.

    Returns:
        One ``(lower, upper)`` pair of ``(B, width)`` arrays per hidden layer.
    """
    lower = np.asarray(lower, np.float64)
    upper = np.asarray(upper, np.float64)
    count, n = lower.shape
    mid, rad = 0.5 * (lower + upper), 0.5 * (upper - lower)
    w0, b0 = network.weights[0], network.biases[0]
    # (B, n + 1, width): rows are input coefficients, the last the constant.
    eq_low = np.empty((count, n + 1, w0.shape[0]))
    eq_low[:, :n] = w0.T
    eq_low[:, n] = b0
    eq_up = eq_low.copy()
    out, relaxations = [], []
    z_low = _concretize(eq_low[:, :n], eq_low[:, n], mid, rad)
    z_up = -_concretize(-eq_up[:, :n], -eq_up[:, n], mid, rad)
    hidden = len(network.weights) - 1
    for k in range(hidden):
        if known is not None:
            z_low = np.maximum(z_low, known[k][0])
            z_up = np.minimum(z_up, known[k][1])
        if k and backward:
            # Back-substitute the neurons still unstable, both sides at once.
            open_ = unstable(z_low, z_up)
            counts = open_.sum(1)
            w, b = network.weights[k], network.biases[k]
            # Boxes with similar counts together, each chunk padded to its
            # largest count (small chunks also stay in cache).
            by_count = np.argsort(counts, kind="stable")
            for begin in range(0, count, _CHUNK):
                boxes = by_count[begin : begin + _CHUNK]
                most = int(counts[boxes[-1]])
                if most == 0:
                    continue
                # Each box's open neurons first.
                order = np.argsort(~open_[boxes], axis=1, kind="stable")[:, :most]
                lam = w[order]  # (chunk, most, width)
                lam = np.concatenate([lam, -lam], axis=1)
                offset = np.concatenate([b[order], -b[order]], axis=1)
                value = _backward(network, relaxations, boxes, lam, offset, mid, rad)
                rows, slots = np.nonzero(
                    np.arange(most)[None, :] < counts[boxes][:, None]
                )
                at, neurons = boxes[rows], order[rows, slots]
                z_low[at, neurons] = np.maximum(z_low[at, neurons], value[rows, slots])
                z_up[at, neurons] = np.minimum(
                    z_up[at, neurons], -value[rows, most + slots]
                )
        z_up = np.maximum(z_up, z_low)
        out.append((z_low, z_up))
        if k == hidden - 1:
            break
        relax = Relaxation(z_low, z_up)
        relaxations.append(relax)
        # Forward: the chord above, the parallel line s z below.
        a_up = eq_up * relax.slope[:, None, :]
        a_up[:, n] += relax.shift
        a_low = eq_low * relax.slope[:, None, :]
        w, b = network.weights[k + 1], network.biases[k + 1]
        w_pos, w_neg = np.maximum(w, 0.0).T, np.minimum(w, 0.0).T
        width = w.shape[0]
        flat_low = a_low.reshape(-1, a_low.shape[2])
        flat_up = a_up.reshape(-1, a_up.shape[2])
        eq_low = (flat_low @ w_pos + flat_up @ w_neg).reshape(count, n + 1, width)
        eq_up = (flat_up @ w_pos + flat_low @ w_neg).reshape(count, n + 1, width)
        eq_low[:, n] += b
        eq_up[:, n] += b
        new_low = _concretize(eq_low[:, :n], eq_low[:, n], mid, rad)
        new_up = -_concretize(-eq_up[:, :n], -eq_up[:, n], mid, rad)
        # Plain interval arithmetic on the activations, where it is tighter.
        act_low, act_up = activated(z_low, z_up)
        z_low = np.maximum(new_low, act_low @ w_pos + act_up @ w_neg + b)
        z_up = np.minimum(new_up, act_up @ w_pos + act_low @ w_neg + b)
    return out


def row_bounds(network, layers, lower, upper, mat, const):
    """Lower bounds of ``mat @ N(x) + const`` per box and row (backward pass).

    Args:
        network: a `ReluNetwork`.
        layers: `hidden_bounds` of the same boxes.
        lower, upper: the boxes, ``(B, n)`` each.
        mat: rows on the outputs, ``(r, n_out)`` for every box or
            ``(B, r, n_out)`` per box.
        const: ``(r,)`` or ``(B, r)``.

    Returns:
        ``(value, coef, offset)``: ``value`` ``(B, r)`` the lower bounds, and
        ``coef . x + offset`` (``(B, r, n)``, ``(B, r)``) a linear lower bound
        of each row valid on its box (``value`` is its minimum there).
    """
    lower = np.asarray(lower, np.float64)
    upper = np.asarray(upper, np.float64)
    count = lower.shape[0]
    mat = np.asarray(mat, np.float64)
    rows = mat.shape[-2]
    width = network.weights[-1].shape[1]
    lam = np.broadcast_to(mat @ network.weights[-1], (count, rows, width)).copy()
    offset = np.broadcast_to(mat @ network.biases[-1] + const, (count, rows)).copy()
    for m in range(len(layers) - 1, -1, -1):
        relax = Relaxation(*layers[m])
        slope, shift, low_slope = relax.slope, relax.shift, relax.low_slope
        pos, neg = np.maximum(lam, 0.0), np.minimum(lam, 0.0)
        offset += np.matmul(neg, shift[:, :, None])[:, :, 0]
        lam = pos * low_slope[:, None, :] + neg * slope[:, None, :]
        offset += lam @ network.biases[m]
        w = network.weights[m]
        lam = (lam.reshape(-1, w.shape[0]) @ w).reshape(count, rows, w.shape[1])
    mid, rad = 0.5 * (lower + upper), 0.5 * (upper - lower)
    coef_t = np.swapaxes(lam, 1, 2)
    value = _concretize(coef_t, offset, mid, rad)
    return value, lam, offset


def minimizer(coef, lower, upper):
    """The box vertex minimising ``coef . x``: ``coef`` ``(B, n)``."""
    return np.where(coef > 0, lower, upper)


def optimized_bounds(
    network,
    layers,
    lower,
    upper,
    mat,
    rhs,
    steps: int = 20,
    target=np.inf,
    deadline: float = np.inf,
):
    """Lower bounds of ``max_i (mat_i @ N(x) - rhs_i)`` per box, optimized.

    One backward pass of the combined row ``sum_i w_i mat_i`` (``w`` convex
    weights), whose lower ReLU slopes ``alpha`` in [0, 1] and weights ``w``
    are improved by projected gradient ascent (alpha-CROWN, Xu et al., ICLR
    2021; the weights as in its multi-row extension). The gradient comes from
    one forward pass of the relaxed network at the bound's minimizing vertex
    (envelope theorem): ``d bound / d alpha_j = lam_j z_j`` and
    ``d bound / d w_i = mat_i @ y - rhs_i`` there. For fixed layer bounds the
    optimum is the triangle relaxation's LP value; every iterate is a sound
    bound, and the best one per box is returned.

    Args:
        network, layers, lower, upper: as in `row_bounds`.
        mat, rhs: one disjunct's rows ``(r, n_out)`` and ``(r,)``.
        steps: gradient steps (0: the area heuristic and, for several rows,
            weights 0.9 on the best single row). Defaults to 20.
        target: a box stops improving once its bound exceeds this (a proof
            needs no more). Defaults to inf.
        deadline: `time.time()` after which no more steps are taken (the
            bound so far is sound). Defaults to inf.

    Returns:
        ``(value, coef, offset)``: ``value`` ``(B,)``, and a linear lower
        bound ``coef . x + offset`` of the margin (``(B, n)``, ``(B,)``) whose
        box minimizer is a candidate counterexample and whose coefficients
        rank the input dimensions for splitting.
    """
    lower = np.asarray(lower, np.float64)
    upper = np.asarray(upper, np.float64)
    count, n = lower.shape
    rows = mat.shape[0]
    hidden = len(layers)
    relax = [Relaxation(*layers[m]) for m in range(hidden)]
    state = {
        "lower": lower,
        "upper": upper,
        "slope": [r.slope for r in relax],
        "shift": [r.shift for r in relax],
        "unstable": [r.unstable for r in relax],
        "alpha": [r.low_slope.copy() for r in relax],
    }
    weights = np.full((count, rows), 1.0 / rows)
    if rows > 1:
        # Start near the best single row.
        value, _, _ = row_bounds(network, layers, lower, upper, mat, -rhs)
        weights = np.zeros((count, rows))
        weights[np.arange(count), np.argmax(value, axis=1)] = 1.0
        weights = 0.9 * weights + 0.1 / rows
    state["weights"] = weights
    best = np.full(count, -np.inf)
    best_coef = np.zeros((count, n))
    best_offset = np.zeros(count)
    active = np.arange(count)
    w_last, b_last = network.weights[-1], network.biases[-1]
    for step in range(steps + 1):
        slope, shift, alpha = state["slope"], state["shift"], state["alpha"]
        row = state["weights"] @ mat  # (B, n_out)
        lam = row @ w_last
        offset = row @ b_last - state["weights"] @ rhs
        coefs = [None] * hidden
        for m in range(hidden - 1, -1, -1):
            coefs[m] = lam
            negative = lam < 0
            offset = offset + np.einsum(
                "ij,ij->i", np.where(negative, lam, 0.0), shift[m]
            )
            lam = lam * np.where(negative, slope[m], alpha[m])
            offset = offset + lam @ network.biases[m]
            lam = lam @ network.weights[m]
        x = np.where(lam > 0, state["lower"], state["upper"])
        value = offset + np.einsum("ij,ij->i", lam, x)
        better = value > best[active]
        hit = active[better]
        best[hit] = value[better]
        best_coef[hit], best_offset[hit] = lam[better], offset[better]
        if step == steps or time.time() >= deadline:
            break
        # The relaxed network at the minimizer: gradients of the bound.
        a = x
        size = 1.0 / (1.0 + step)
        for m in range(hidden):
            z = a @ network.weights[m].T + network.biases[m]
            c = coefs[m]
            grad = np.where(state["unstable"][m] & (c > 0), c * z, 0.0)
            scale = np.abs(grad).max(1, keepdims=True) + 1e-30
            chosen = np.where(c > 0, alpha[m], np.where(c < 0, slope[m], 0.0))
            a = chosen * z + np.where(c < 0, shift[m], 0.0)
            alpha[m] = np.clip(alpha[m] + size * grad / scale, 0.0, 1.0)
        if rows > 1:
            weights = state["weights"]
            y = a @ w_last.T + b_last
            grad_w = y @ mat.T - rhs
            spread = np.abs(grad_w - (weights * grad_w).sum(1, keepdims=True))
            scale = spread.max(1, keepdims=True) + 1e-30
            weights = weights * np.exp(np.clip(2.0 * size * grad_w / scale, -30, 30))
            state["weights"] = weights / weights.sum(1, keepdims=True)
        # Boxes already past the target need no more steps.
        going = best[active] <= target
        if not going.all():
            if not going.any():
                break
            active = active[going]
            for key, item in state.items():
                state[key] = (
                    [v[going] for v in item] if isinstance(item, list) else item[going]
                )
    return best, best_coef, best_offset
