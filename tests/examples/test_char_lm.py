"""Character LM: windows, and one epoch on a tiny local text."""

import math

import char_lm
import numpy as np
import pytest
import tensorflow_datasets as tfds


def test_windows_pair_each_character_with_the_next():
    inputs, targets = char_lm.windows(np.arange(11), 3)
    np.testing.assert_array_equal(inputs, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(targets, inputs + 1)
    with pytest.raises(ValueError, match="too short"):
        char_lm.windows(np.arange(3), 3)


def test_one_epoch_reports_bits_per_character(assert_png, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("abcd efgh " * 60)
    results = char_lm.main(
        ["--text", str(text), "--epochs", "1", "--layers", "2", "--units", "8"]
        + ["--embed-dim", "4", "--seq-len", "8", "--batch-size", "64"]
        + ["--verbose", "0", "--out", str(tmp_path)]
    )
    # 9 characters + the unknown slot; after one tiny epoch the model is
    # close to uniform, i.e. log2(10) bits, not ln(10) nats.
    assert results["vocab_size"] == 10
    assert results["test_bpc"] == pytest.approx(math.log2(10), abs=0.5)
    history = results["history"]
    assert history["bpc"][0] == pytest.approx(history["loss"][0] / math.log(2))
    assert_png(results["plots"][0])


def test_mocked_tfds_text_uses_its_three_splits(online, tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        results = char_lm.main(
            ["--dataset", "tiny_shakespeare", "--data-dir", str(tmp_path / "tfds")]
            + ["--epochs", "1", "--layers", "1", "--units", "4", "--embed-dim", "4"]
            + ["--seq-len", "4", "--verbose", "0", "--out", str(tmp_path)]
        )
    assert set(results["characters"]) == {"train", "validation", "test"}
    assert all(count > 4 for count in results["characters"].values())
    assert results["source"] == "tiny_shakespeare"
