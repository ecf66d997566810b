"""Independent NumPy transcription of the SRU (arXiv 1709.02755, eqs. (1)-(4)).

Written step by step with explicit loops, per row and direction, so that it
shares no code (and no vectorization trick) with `keras_ndsru`. Used as the
oracle of tests/ops/test_sru_reference.py and tests/layers/test_sru*.py
(pytest puts `tests/`, the directory of the root conftest, on `sys.path`).
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sru_direction(
    u, xh, v_f, v_r, b_f, b_r, c0, valid, alpha, backward, zero_output_for_mask=True
):
    """One direction for one row.

    Args:
        u: (time, 3, units): W x_t, W_f x_t, W_r x_t.
        xh: (time, units) highway input.
        valid: (time,) booleans.
        zero_output_for_mask: h at an invalid step is 0 when True, else the
            h of the last valid step this direction processed before it (0
            before the first), Keras' RNN default.

    Returns:
        h (time, units), h_last, c_last.
    """
    steps = u.shape[0]
    c = np.array(c0, dtype=np.float64)
    h_seq = np.zeros((steps, c.shape[0]))
    h_last = np.zeros_like(c)
    order = range(steps - 1, -1, -1) if backward else range(steps)
    for t in order:
        if not valid[t]:
            if not zero_output_for_mask:
                h_seq[t] = h_last
            continue
        c_prev = c
        f = sigmoid(u[t, 1] + v_f * c_prev + b_f)  # eq. (1)
        c = f * c_prev + (1.0 - f) * u[t, 0]  # eq. (2)
        r = sigmoid(u[t, 2] + v_r * c_prev + b_r)  # eq. (3)
        h = r * c + (1.0 - r) * xh[t] * alpha  # eq. (4)
        h_seq[t] = h
        h_last = h
    return h_seq, h_last, c


def sru_numpy(
    u,
    x_highway,
    weight_c,
    bias,
    c0=None,
    mask=None,
    alpha=1.0,
    direction="forward",
    zero_output_for_mask=True,
):
    """The recurrence with the layout of `keras_ndsru.ops.sru_reference`."""
    u = np.asarray(u, np.float64)
    xh = np.asarray(x_highway, np.float64)
    n_dir = 2 if direction == "bidirectional" else 1
    batch, steps = u.shape[:2]
    units = u.shape[-1] // (3 * n_dir)
    weight_c = np.asarray(weight_c, np.float64).reshape(n_dir, 2, units)
    bias = np.asarray(bias, np.float64).reshape(n_dir, 2, units)
    c0 = np.zeros((batch, n_dir * units)) if c0 is None else np.asarray(c0, np.float64)
    mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
    h = np.zeros((batch, steps, n_dir * units))
    h_last = np.zeros((batch, n_dir * units))
    c_last = np.zeros((batch, n_dir * units))
    for b in range(batch):
        for k in range(n_dir):
            backward = direction == "backward" or k == 1
            cols = slice(k * units, (k + 1) * units)
            hs, hl, cl = sru_direction(
                u[b, :, 3 * k * units : 3 * (k + 1) * units].reshape(steps, 3, units),
                xh[b, :, cols],
                weight_c[k, 0],
                weight_c[k, 1],
                bias[k, 0],
                bias[k, 1],
                c0[b, cols],
                mask[b],
                alpha,
                backward,
                zero_output_for_mask,
            )
            h[b, :, cols], h_last[b, cols], c_last[b, cols] = hs, hl, cl
    return h, h_last, c_last


def layer_numpy(layer, x, mask=None, c0=None):
    """A built `keras_ndsru.SRU` in NumPy float64: returns (output, c_last).

    Reads the layer's config and weights only, and maps them onto
    `sru_numpy`: layer norm, projection, highway input and alpha transcribed
    from eqs. (1)-(4) and Sec. 3.2.

    go_backwards is transcribed literally, as Keras defines it: the layer run
    on the time-reversed input (and mask). Masked steps of the output
    sequence follow the layer's `zero_output_for_mask`.
    """
    weights = {w.name: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    x = np.asarray(x, np.float64)
    mask = np.ones(x.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    if layer.go_backwards:
        x, mask = x[:, ::-1], mask[:, ::-1]
    n_dir = 2 if layer.bidirectional else 1
    units = layer.units
    inputs = x
    if layer.layer_norm:
        mean = x.mean(-1, keepdims=True)
        std = np.sqrt(x.var(-1, keepdims=True) + 1e-5)
        inputs = (x - mean) / std * weights["gamma"] + weights["beta"]
    if layer.projection_size:
        inputs = inputs @ weights["projection_kernel"]
    z = inputs @ weights["kernel"]
    u = z[..., : n_dir * 3 * units]
    x_highway = z[..., n_dir * 3 * units :]
    if x.shape[-1] == units and not layer.highway_projection:
        x_highway = np.concatenate([x] * n_dir, axis=-1)
    alpha = np.sqrt(1 + 2 * np.exp(layer.highway_bias)) if layer.rescale else 1.0
    direction = "bidirectional" if n_dir == 2 else "forward"
    h, h_last, c_last = sru_numpy(
        u,
        x_highway,
        weights["weight_c"],
        weights["bias"],
        c0,
        mask,
        alpha,
        direction,
        layer.zero_output_for_mask,
    )
    return (h if layer.return_sequences else h_last), c_last
