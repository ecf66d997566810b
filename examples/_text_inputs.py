"""Model inputs from texts: token ids, embedding rows, batches by length.

Helpers of `examples/text_classification.py` and `benchmarks/sst_accuracy.py`.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAD, OOV = "", "[UNK]"  # Vocabulary indices 0 (masked) and 1.
_TOKEN = re.compile(r"\w+(?:[-']\w+)*|'\w*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (with inner - and ', e.g. `n't`) and punctuation."""
    return _TOKEN.findall(text.lower())


def build_vocabulary(
    token_lists: Iterable[Sequence[str]],
    max_size: int | None = None,
    extra_words: Iterable[str] = (),
    min_count: int = 1,
) -> list[str]:
    """`[PAD, OOV]`, then the words seen at least `min_count` times by falling
    frequency (ties: alphabetical), at most `max_size` entries in all, then
    `extra_words` not yet in it."""
    counts = collections.Counter(token for tokens in token_lists for token in tokens)
    words = sorted(
        (word for word, count in counts.items() if count >= min_count),
        key=lambda word: (-counts[word], word),
    )
    if max_size is not None:
        words = words[: max(0, max_size - 2)]
    known = set(words)
    extra = sorted(set(extra_words) - known - {PAD, OOV})
    return [PAD, OOV, *words, *extra]


@dataclass
class EncodedTexts:
    """Token ids of each text (no padding) and what truncation did."""

    ids: list[np.ndarray]
    truncated: int
    longest: int
    oov_tokens: int
    tokens: int


def encode_texts(
    token_lists: Sequence[Sequence[str]],
    vocabulary: Sequence[str],
    max_length: int | None = None,
) -> EncodedTexts:
    index = {word: i for i, word in enumerate(vocabulary)}
    ids, truncated, longest, oov, total = [], 0, 0, 0, 0
    for tokens in token_lists:
        row = np.array([index.get(token, 1) for token in tokens] or [1], np.int32)
        longest = max(longest, len(row))
        oov += int(np.sum(row == 1))
        total += len(row)
        if max_length is not None and len(row) > max_length:
            row = row[:max_length]
            truncated += 1
        ids.append(row)
    return EncodedTexts(ids, truncated, longest, oov, total)


def embedding_matrix(
    vocabulary: Sequence[str],
    vectors: dict[str, np.ndarray],
    dim: int,
    seed: int = 0,
) -> np.ndarray:
    """Rows of unit L2 norm: the pretrained vector of each word, or (words
    without one) uniform in [-0.25, 0.25] before normalization, as the SRU
    paper's code; row 0 (padding) is zero."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.25, 0.25, (len(vocabulary), dim)).astype(np.float32)
    for i, word in enumerate(vocabulary):
        if word in vectors:
            matrix[i] = vectors[word]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms > 0, norms, 1.0)
    matrix[0] = 0.0
    return matrix


def length_boundaries(longest: int, buckets: int = 16) -> list[int]:
    """Bucket boundaries every `ceil(longest / buckets)` tokens."""
    step = max(1, math.ceil(longest / buckets))
    return list(range(step + 1, longest + 1, step))


def bucketed_batches(
    sequences: Sequence[np.ndarray],
    labels: np.ndarray,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
):
    """A `tf.data.Dataset` of `(ids, labels)` batches, each padded with 0 to
    the length of its own longest row.

    Rows of similar length are batched together (`bucket_by_sequence_length`),
    so padding stays small. With `shuffle_seed`, every pass over the dataset
    is reshuffled (deterministically from the seed, in the order of the
    passes); without it, the order is fixed. Its cardinality (the batches of
    one pass) is known. For training, `.repeat()` it and iterate it once with
    that many steps per epoch: Keras' `fit` creates a new iterator for each
    epoch and one more at its end, each of which starts a new shuffle.
    """
    import tensorflow as tf

    lengths = np.array([len(row) for row in sequences], np.int32)
    padded = np.zeros((len(sequences), lengths.max(initial=1)), np.int32)
    for row, ids in zip(padded, sequences):
        row[: len(ids)] = ids
    dataset = tf.data.Dataset.from_tensor_slices(
        (padded, lengths, labels.astype(np.int32))
    )
    if shuffle_seed is not None:
        dataset = dataset.shuffle(
            len(labels), seed=shuffle_seed, reshuffle_each_iteration=True
        )
    dataset = dataset.map(lambda ids, length, label: (ids[:length], label))
    boundaries = length_boundaries(int(lengths.max(initial=1)))
    dataset = dataset.bucket_by_sequence_length(
        lambda ids, label: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    # The batch count does not depend on the order: Keras then knows the
    # epoch length (progress bars, no "ran out of data" warning).
    count = num_batches(lengths, boundaries, batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(count)).prefetch(2)


def num_batches(lengths: np.ndarray, boundaries: Sequence[int], batch_size: int) -> int:
    """Batches that `bucket_by_sequence_length` makes: bucket `i` holds the
    lengths in `[boundaries[i - 1], boundaries[i])`, batched separately."""
    buckets = np.searchsorted(boundaries, lengths, side="right")
    sizes = np.bincount(buckets, minlength=len(boundaries) + 1)
    return int(np.sum(-(-sizes // batch_size)))
