"""Token ids, embedding rows and length-bucketed batches (examples/_text_inputs.py)."""

import numpy as np
from _text_inputs import (
    OOV,
    PAD,
    bucketed_batches,
    build_vocabulary,
    embedding_matrix,
    encode_texts,
    tokenize,
)


def test_tokenize_keeps_contractions_and_punctuation():
    assert tokenize("It's a re-imagining , isn't it? wo n't") == [
        "it's", "a", "re-imagining", ",", "isn't", "it", "?", "wo", "n't",
    ]  # fmt: skip


def test_vocabulary_and_truncation():
    tokens = [["b", "a", "b"], ["c", "b", "a", "a", "d"], ["z"]]
    vocabulary = build_vocabulary(tokens, max_size=4, extra_words=["q", "a"])
    assert vocabulary == [PAD, OOV, "a", "b", "q"]
    encoded = encode_texts(tokens, vocabulary, max_length=4)
    assert [row.tolist() for row in encoded.ids] == [[3, 2, 3], [1, 3, 2, 2], [1]]
    assert (encoded.truncated, encoded.longest) == (1, 5)
    assert (encoded.oov_tokens, encoded.tokens) == (3, 9)


def test_batches_are_padded_to_their_own_longest_row():
    lengths = [1, 2, 3, 30, 31, 32, 2, 33]
    sequences = [np.arange(1, n + 1, dtype=np.int32) for n in lengths]
    labels = np.arange(len(lengths))
    batches = list(bucketed_batches(sequences, labels, 3).as_numpy_iterator())
    seen = []
    for x, y in batches:
        longest = max(lengths[i] for i in y)
        assert x.shape == (len(y), longest)  # padded per batch, not to 33
        for row, i in zip(x, y):
            np.testing.assert_array_equal(row[: lengths[i]], sequences[i])
            assert not row[lengths[i] :].any()
        seen.extend(y.tolist())
    assert sorted(seen) == list(range(len(lengths)))
    assert len(batches) == bucketed_batches(sequences, labels, 3).cardinality()
    assert {x.shape[1] for x, _ in batches} < {3, 2, 33, 32, 31, 30, 1}


def test_shuffled_batches_are_reproducible_and_reshuffled():
    sequences = [np.full(n % 5 + 1, n + 1, np.int32) for n in range(40)]
    dataset = bucketed_batches(sequences, np.arange(40), 4, shuffle_seed=3)
    first = [y.tolist() for _, y in dataset.as_numpy_iterator()]
    second = [y.tolist() for _, y in dataset.as_numpy_iterator()]
    again = bucketed_batches(sequences, np.arange(40), 4, shuffle_seed=3)
    assert [y.tolist() for _, y in again.as_numpy_iterator()] == first
    assert first != second


def test_embedding_matrix_rows_are_unit_norm_and_pad_is_zero():
    vocabulary = [PAD, OOV, "film", "dull"]
    matrix = embedding_matrix(vocabulary, {"film": np.array([0, 3, 4], "f")}, 3)
    np.testing.assert_array_equal(matrix[0], 0)
    np.testing.assert_allclose(np.linalg.norm(matrix[1:], axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(matrix[2], [0, 0.6, 0.8], rtol=1e-6)


def test_fit_on_the_repeated_batches_sees_one_shuffle_per_epoch():
    """What benchmarks/sst_accuracy.py relies on: Keras' fit over
    `.repeat()` with the cardinality as steps per epoch trains on the same
    batches, in the same order, as one iterator over the repeated dataset."""
    import keras
    import tensorflow as tf

    seen = []

    class Recorder(keras.Model):
        def train_step(self, data):
            seen.append(data[1].numpy().tolist())
            return {"steps": tf.constant(1.0)}

    rng = np.random.default_rng(0)
    sequences = [np.arange(1, n + 1, dtype=np.int32) for n in rng.integers(1, 30, 60)]
    inputs = keras.Input((None,), dtype="int32")
    model = Recorder(inputs, keras.layers.Embedding(32, 2)(inputs))
    model.compile(run_eagerly=True)
    train = bucketed_batches(sequences, np.arange(60), 8, shuffle_seed=3)
    steps = int(train.cardinality())
    model.fit(train.repeat(), steps_per_epoch=steps, epochs=3, shuffle=False, verbose=0)
    again = bucketed_batches(sequences, np.arange(60), 8, shuffle_seed=3)
    stream = again.repeat().as_numpy_iterator()
    assert seen == [next(stream)[1].tolist() for _ in range(3 * steps)]
    assert seen[:steps] != seen[steps : 2 * steps]  # reshuffled every epoch
