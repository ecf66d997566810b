"""Row-sparse gradients: the rows of a variable that a gradient touches.

Keras' TensorFlow trainer hands the optimizer a `tf.IndexedSlices` for a
variable read by `tf.gather` (`keras.layers.Embedding`, `ops.take`): one
gradient row per looked-up index, duplicates included. The JAX and torch
trainers give dense arrays for the same lookups, so there a gradient is
never row-sparse.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras


class RowSparse(NamedTuple):
    """A gradient as `values[i]` for row `rows[i]`, every row once."""

    rows: Any
    values: Any


def _indexed_slices_type():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.IndexedSlices


def is_row_sparse(gradient) -> bool:
    """True for a gradient that lists only some rows (`tf.IndexedSlices`)."""
    sparse_type = _indexed_slices_type()
    return sparse_type is not None and isinstance(gradient, sparse_type)


def unique_rows(gradient) -> RowSparse:
    """The touched rows of a row-sparse `gradient`, each once, with the
    gradients of repeated indices summed (what the dense gradient holds in
    those rows). Runs under XLA too: `tf.unique` compiles there with a
    bounded dynamic size."""
    import tensorflow as tf

    rows, position = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
    return RowSparse(rows, values)


def densify(gradient):
    """`gradient` as a dense tensor (unchanged if it is one already)."""
    if is_row_sparse(gradient):
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    return gradient


def gather(variable, rows):
    """`variable[rows]`, reading only those rows."""
    import tensorflow as tf

    if isinstance(variable, keras.Variable):
        variable = variable.value
    return tf.gather(variable, rows)


def at_rows(values, rows):
    """`values` for `rows`, in the form `optimizer.assign*` scatters."""
    import tensorflow as tf

    return tf.IndexedSlices(values, rows)
