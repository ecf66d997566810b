"""Keras' masked-output convention, read off Keras' own recurrent layers.

With `return_sequences=True` and a mask, `keras.layers.LSTM`/`GRU` output at
a masked step either 0 (`zero_output_for_mask=True`) or the output of the
last valid step processed before it (the default; 0 before the first one).
Rather than transcribing that rule, these helpers run Keras' layer on the
same mask and record, step by step, which valid step's output it returned:
an SRU is then held to the sources Keras' class produced, not to our reading
of Keras' documentation.
"""

from __future__ import annotations

import keras
import numpy as np

ZERO = -1


def output_sources(outputs, mask) -> np.ndarray:
    """`(batch, time)` ints: for each step of a `return_sequences` output,
    the valid step whose output it is (itself where valid), or `ZERO`.

    Args:
        outputs: `(batch, time, units)` outputs of a Keras RNN layer.
        mask: `(batch, time)` booleans in the outputs' time order (flipped
            for `go_backwards`, whose output sequence is reversed).
    """
    outputs, mask = np.asarray(outputs), np.asarray(mask, bool)
    sources = np.full(mask.shape, ZERO)
    for row, step in np.ndindex(mask.shape):
        if mask[row, step]:
            assert np.any(outputs[row, step] != 0.0), "a valid output is 0"
            sources[row, step] = step
        elif np.any(outputs[row, step] != 0.0):
            (source,) = [
                s
                for s in np.flatnonzero(mask[row])
                if np.array_equal(outputs[row, s], outputs[row, step])
            ]
            sources[row, step] = source
    return sources


def keras_sources(
    keras_class, mask, zero_output_for_mask: bool, go_backwards: bool = False
) -> np.ndarray:
    """`output_sources` of `keras_class` (e.g. `keras.layers.LSTM`), random
    weights, on random inputs with `mask`, in its output's time order."""
    mask = np.asarray(mask, bool)
    x = np.random.default_rng(0).normal(size=(*mask.shape, 3)).astype("float32")
    layer = keras_class(
        4,
        return_sequences=True,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
        bias_initializer="random_normal",
    )
    outputs = layer(x, mask=mask)
    return output_sources(outputs, mask[:, ::-1] if go_backwards else mask)


def sru_sources(
    keras_class,
    mask,
    zero_output_for_mask: bool,
    go_backwards: bool = False,
    bidirectional: bool = False,
) -> list[np.ndarray]:
    """The sources Keras' convention gives each direction of an SRU's
    output sequence, in that output's time order: one array, or two (the
    forward half, then the backward half) for `bidirectional=True`.

    A bidirectional layer is its forward half and a `go_backwards` half
    flipped back in time (as `keras.layers.Bidirectional` builds it);
    `go_backwards` runs the layer on the reversed input and returns the
    reversed sequence.
    """
    mask = np.asarray(mask, bool)
    if not bidirectional:
        return [keras_sources(keras_class, mask, zero_output_for_mask, go_backwards)]
    if go_backwards:
        mask = mask[:, ::-1]
    steps = mask.shape[1]
    forward = keras_sources(keras_class, mask, zero_output_for_mask)
    reversed_ = keras_sources(keras_class, mask, zero_output_for_mask, True)
    backward = np.where(reversed_ == ZERO, ZERO, steps - 1 - reversed_)[:, ::-1]
    return [forward, backward]


def assert_outputs_follow(outputs, sources: list[np.ndarray]) -> None:
    """Each step of `outputs` (`(batch, time, n_dir * units)`) is exactly the
    output of its source step in its direction's half, or 0."""
    outputs = np.asarray(outputs)
    halves = np.split(outputs, len(sources), axis=-1)
    for half, source in zip(halves, sources):
        rows = np.arange(source.shape[0])[:, None]
        picked = half[rows, np.maximum(source, 0)]
        want = np.where((source == ZERO)[..., None], 0.0, picked)
        np.testing.assert_array_equal(half, want)


def check_like_keras(sru_layer, keras_class, x, mask) -> None:
    """An SRU returning sequences follows `keras_class` on `mask`: the
    masked steps repeat (or zero) exactly the outputs Keras' layer would."""
    assert sru_layer.return_sequences
    outputs = sru_layer(x, mask=mask)
    sources = sru_sources(
        keras_class,
        mask,
        sru_layer.zero_output_for_mask,
        sru_layer.go_backwards,
        sru_layer.bidirectional,
    )
    assert_outputs_follow(keras.ops.convert_to_numpy(outputs), sources)
