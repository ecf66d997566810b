"""Pure Keras-ops SRU recurrence: the fallback path AND the test oracle.

This is the elementwise part of the Simple Recurrent Unit (Lei et al., 2017,
arXiv 1709.02755, eqs. (1)-(4) with the v-terms of Sec. 3.1 and the scaling
correction of Sec. 3.2). The big matmul `U = x [W W_f W_r]` happens in the
layer, batched over all time steps; this module only runs the recurrence.

Tensor layout (shared with the fused op in `custom_ops/sru`):

- `u`: `(batch, time, n_dir * 3 * units)`. For direction `k` the three blocks
  `u[..., (3k + g) * units:(3k + g + 1) * units]` are `g = 0: W x_t`,
  `g = 1: W_f x_t`, `g = 2: W_r x_t`.
- `x_highway`: `(batch, time, n_dir * units)`, the highway input of each
  direction (`x_t` itself, or its projection when `input_dim != units`).
- `weight_c`, `bias`: `(n_dir * 2 * units,)`, per direction `[v_f | v_r]` and
  `[b_f | b_r]`.
- `c0`: `(batch, n_dir * units)` or `None` (zeros).
- `mask`: `(batch, time)` booleans, True = valid step, or `None`.
- `direction`: `"forward"`, `"backward"` (time runs from the end), or
  `"bidirectional"` (`n_dir = 2`: direction 0 forward, direction 1 backward).

Per direction, unit and valid step (eqs. (1)-(4) of the paper):

    f_t = sigmoid(W_f x_t + v_f * c_{t-1} + b_f)
    r_t = sigmoid(W_r x_t + v_r * c_{t-1} + b_r)
    c_t = f_t * c_{t-1} + (1 - f_t) * (W x_t)
    h_t = r_t * c_t + (1 - r_t) * x_highway_t * alpha

A masked (invalid) step leaves `c` unchanged and outputs `h_t = 0`, or with
`zero_output_for_mask=False` (Keras' RNN default) the last valid `h` its
direction processed before it (0 before the first). `h_last` is
the `h` of the last valid step each direction processed (for the backward
direction that is the first valid position), or 0 when a row has no valid
step; `c_last` is the final cell state. The state is carried in float32
(float64 when `u` is float64) whatever the dtype of `u`.

Backends: under TensorFlow the steps run in `tf.scan` (inside a `tf.cond`
when the number of steps is only known at run time): XLA-compilable, and the
oracle of the fused op. With `for_export=True` they run in a `tf.while_loop`
over chunks of unrolled steps that writes into a preallocated tensor: no
TensorLists, so the TFLite converter lowers it for dynamic shapes. Under the other Keras backends (torch, JAX) the same
step function runs in `keras.ops.scan` and no TensorFlow is imported; their
shapes are always static, so an empty time axis is handled before the scan.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_ndsru.ops.sru_layout import SRUOutputs, num_directions, state_dtype

# Steps unrolled per iteration of the TensorList-free loop: its writes cost
# a pass over the whole output once per chunk, its graph grows with it.
_CHUNK = 16


def _reversed_flags(direction: str) -> list[bool]:
    if direction == "bidirectional":
        return [False, True]
    return [direction == "backward"]


def _to_step_major(x, flags):
    """(batch, time, n_dir, ...) -> (time, batch, n_dir, ...), each direction in
    the order it is processed (reversed directions flipped in time)."""
    parts = []
    for k, rev in enumerate(flags):
        part = x[:, :, k : k + 1]
        parts.append(ops.flip(part, axis=1) if rev else part)
    x = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=2)
    return ops.moveaxis(x, 1, 0)


def _from_step_major(x, flags):
    """Inverse of `_to_step_major`."""
    x = ops.moveaxis(x, 0, 1)
    parts = []
    for k, rev in enumerate(flags):
        part = x[:, :, k : k + 1]
        parts.append(ops.flip(part, axis=1) if rev else part)
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=2)


def sru_reference(
    u,
    x_highway,
    weight_c,
    bias,
    c0=None,
    mask=None,
    alpha: float = 1.0,
    direction: str = "forward",
    zero_output_for_mask: bool = True,
    for_export: bool = False,
) -> SRUOutputs:
    """Runs the SRU recurrence with `keras.ops` (see the module docstring).

    Args:
        u: `(batch, time, n_dir * 3 * units)` precomputed `x [W W_f W_r]`.
        x_highway: `(batch, time, n_dir * units)` highway input.
        weight_c: `(n_dir * 2 * units,)` the `[v_f | v_r]` vectors.
        bias: `(n_dir * 2 * units,)` the `[b_f | b_r]` biases.
        c0: optional `(batch, n_dir * units)` initial cell state.
        mask: optional `(batch, time)` boolean mask, True = valid step. Any
            pattern is supported here (not only right padding).
        alpha: highway scaling `sqrt(1 + 2 exp(highway_bias))` (Sec. 3.2), or 1.
        direction: `"forward"`, `"backward"` or `"bidirectional"`.
        zero_output_for_mask: Whether `h` is 0 at masked steps (True) or
            repeats the last valid output of the direction (False, as Keras'
            RNN layers by default). Defaults to `True`.
        for_export: On TensorFlow, run the steps in a loop without
            TensorList ops, which the TFLite converter lowers to builtin ops
            for any batch size and length (`tf.scan`'s TensorLists need
            static shapes there). Same numbers and, forward, about the same
            speed; the SRU layer sets it in inference graphs, those that
            exporters save. Defaults to `False` (`tf.scan`).

    Returns:
        `SRUOutputs(h, h_last, c_last)`.

    Example:

    >>> import numpy as np
    >>> u = np.zeros((2, 5, 3 * 4), "float32")
    >>> x = np.ones((2, 5, 4), "float32")
    >>> out = sru_reference(u, x, np.zeros(8, "float32"), np.zeros(8, "float32"))
    >>> tuple(out.h.shape)
    (2, 5, 4)
    """
    n_dir = num_directions(direction)
    flags = _reversed_flags(direction)
    on_tensorflow = keras.backend.backend() == "tensorflow"
    if on_tensorflow:
        import tensorflow as tf

        u = tf.convert_to_tensor(u)
    else:
        u = ops.convert_to_tensor(u)
    out_dtype = keras.backend.standardize_dtype(u.dtype)
    dtype = state_dtype(out_dtype)
    batch, steps = ops.shape(u)[0], ops.shape(u)[1]
    units = u.shape[-1] // (3 * n_dir)

    u = ops.reshape(ops.cast(u, dtype), (batch, steps, n_dir, 3, units))
    xh = ops.reshape(ops.cast(x_highway, dtype), (batch, steps, n_dir, units))
    weight_c = ops.reshape(ops.cast(weight_c, dtype), (n_dir, 2, units))
    bias = ops.reshape(ops.cast(bias, dtype), (n_dir, 2, units))
    if c0 is None:
        c0 = ops.zeros((batch, n_dir, units), dtype)
    else:
        c0 = ops.reshape(ops.cast(c0, dtype), (batch, n_dir, units))
    if mask is None:
        mask = ops.ones((batch, steps), "bool")
    mask = ops.cast(mask, "bool")
    mask = ops.repeat(ops.expand_dims(mask, 2), n_dir, axis=2)

    if isinstance(steps, int) and steps == 0:
        empty = ops.zeros((batch, 0, n_dir * units), out_dtype)
        c_last = ops.reshape(c0, (batch, n_dir * units))
        return SRUOutputs(empty, ops.zeros_like(c_last, out_dtype), c_last)

    v_f, v_r = weight_c[:, 0], weight_c[:, 1]
    b_f, b_r = bias[:, 0], bias[:, 1]
    # A Python float goes straight to the state dtype (no float32 rounding).
    if on_tensorflow:
        alpha = (
            tf.cast(alpha, dtype) if tf.is_tensor(alpha) else tf.constant(alpha, dtype)
        )
    elif isinstance(alpha, (int, float, np.number)):
        alpha = ops.convert_to_tensor(float(alpha), dtype)
    else:
        alpha = ops.cast(alpha, dtype)

    def step(carry, inputs):
        c_prev, h_last = carry
        u_t, xh_t, m_t = inputs
        f = ops.sigmoid(u_t[:, :, 1] + v_f * c_prev + b_f)
        r = ops.sigmoid(u_t[:, :, 2] + v_r * c_prev + b_r)
        c = f * c_prev + (1.0 - f) * u_t[:, :, 0]
        h = r * c + (1.0 - r) * xh_t * alpha
        m_t = ops.expand_dims(m_t, -1)
        c = ops.where(m_t, c, c_prev)
        h_last = ops.where(m_t, h, h_last)
        if not zero_output_for_mask:
            return c, h_last, h_last
        return c, h_last, ops.where(m_t, h, ops.zeros_like(h))

    xs = (
        _to_step_major(u, flags),
        _to_step_major(xh, flags),
        _to_step_major(mask, flags),
    )
    if on_tensorflow:
        loop = _chunked_loop_tensorflow if for_export else _scan_tensorflow
        h, h_last, c_last = loop(step, xs, c0, flags, (batch, steps, units), dtype)
    else:
        h, h_last, c_last = _scan_keras(step, xs, c0, flags)
    return SRUOutputs(
        ops.cast(ops.reshape(h, (batch, steps, n_dir * units)), out_dtype),
        ops.cast(ops.reshape(h_last, (batch, n_dir * units)), out_dtype),
        ops.reshape(c_last, (batch, n_dir * units)),
    )


def _scan_tensorflow(step, xs, c0, flags, sizes, dtype):
    """The steps in `tf.scan`: returns `(h, h_last, c_last)`, `h` mapped back
    to `(batch, time, n_dir, units)`; `sizes` is `(batch, steps, units)`."""
    import tensorflow as tf

    batch, steps, units = sizes

    # `tf.scan` rather than `keras.ops.scan`: on this backend the latter
    # stacks the outputs in TensorArrays of the carry's dtype and shape, so
    # `y` must match the carry. This module is the fallback of a TensorFlow
    # custom op, so TensorFlow is a given here.
    zeros = ops.zeros_like(c0)

    def run_scan():
        c_seq, h_last_seq, h = tf.scan(
            lambda acc, inputs: step(acc[:2], inputs),
            xs,
            initializer=(c0, zeros, zeros),
        )
        return _from_step_major(h, flags), h_last_seq[-1], c_seq[-1]

    def no_steps():
        return ops.zeros((batch, 0, len(flags), units), dtype), zeros, c0

    if isinstance(steps, int):
        return run_scan()
    # A time axis known only at run time may be empty, and `tf.scan`
    # cannot stack zero steps of a partly unknown shape.
    return tf.cond(steps > 0, run_scan, no_steps)


def _chunked_loop_tensorflow(step, xs, c0, flags, sizes, dtype):
    """The steps in a `tf.while_loop` without TensorLists: returns `(h,
    h_last, c_last)` as `_scan_tensorflow`, with the same numbers.

    `tf.scan` keeps its inputs and outputs in TensorLists, which the TFLite
    converter lowers to builtin ops only when their element shape is static,
    so not for an unknown batch size. Here each iteration reads a chunk of
    `_CHUNK` steps with `tf.gather`, runs them unrolled and writes their `h`
    into a preallocated tensor with one select: builtin ops (WHILE, GATHER,
    SELECT_V2) for any batch size and length. The time axis is padded to
    whole chunks with masked steps, which leave `c` and `h_last` as they are.
    """
    import tensorflow as tf

    batch, steps, units = sizes
    n_dir = len(flags)
    chunks = (steps + _CHUNK - 1) // _CHUNK
    padding = chunks * _CHUNK - steps

    def in_chunks(x):
        pad = tf.zeros(tf.concat([[padding], tf.shape(x)[1:]], 0), x.dtype)
        x = tf.concat([x, pad], 0)
        return tf.reshape(x, tf.concat([[chunks, _CHUNK], tf.shape(x)[1:]], 0))

    xs = [in_chunks(x) for x in xs]
    zeros = ops.zeros_like(c0)
    h0 = tf.zeros(tf.stack([chunks, _CHUNK, batch, n_dir, units]), dtype)

    def body(i, c, h_last, h):
        chunk = [tf.gather(x, i) for x in xs]
        outputs = []
        for k in range(_CHUNK):
            c, h_last, h_k = step((c, h_last), [x[k] for x in chunk])
            outputs.append(h_k)
        this_chunk = tf.reshape(tf.range(chunks) == i, [-1, 1, 1, 1, 1])
        h = tf.where(this_chunk, tf.stack(outputs)[None], h)
        return i + 1, c, h_last, h

    _, c_last, h_last, h = tf.while_loop(
        lambda i, *_: i < chunks, body, (tf.constant(0), c0, zeros, h0)
    )
    h = tf.reshape(h, tf.stack([chunks * _CHUNK, batch, n_dir, units]))[:steps]
    return _from_step_major(h, flags), h_last, c_last


def _scan_keras(step, xs, c0, flags):
    """The steps in `keras.ops.scan` (torch, JAX): returns `(h, h_last,
    c_last)`. The carry `(c, h_last)` holds what the last step needs and
    the stacked `y` is `h` alone, a structure these backends allow (only the
    TensorFlow backend makes `y` match the carry). Shapes are static here and
    the caller has handled zero steps (torch cannot stack zero outputs)."""

    def keras_step(carry, inputs):
        c, h_last, h = step(carry, inputs)
        return (c, h_last), h

    (c_last, h_last), h = ops.scan(keras_step, (c0, ops.zeros_like(c0)), xs)
    return _from_step_major(h, flags), h_last, c_last
