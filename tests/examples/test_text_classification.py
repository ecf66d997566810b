"""Text classification on tiny local files and on mocked TFDS data."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
import text_classification

WORDS = {"pos": "good great superb", "neg": "bad awful dull"}


def _write(path, count):
    with open(path, "w") as file:
        for i in range(count):
            label = "pos" if i % 2 else "neg"
            file.write(f"{label} the film was {WORDS[label].split()[i % 3]}\n")
    return str(path)


SMALL = ["--epochs", "1", "--units", "4", "--embed-dim", "4", "--max-length", "6"]


def test_read_labeled_lines_and_label_errors(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("pos  a fine film \n\nneg\tdull\n")
    assert text_classification.read_labeled_lines(str(path)) == (
        ["pos", "neg"],
        ["a fine film", "dull"],
    )
    path.write_text("pos fine\nneg\n")
    with pytest.raises(ValueError, match=r"data.txt:2: .*only a label"):
        text_classification.read_labeled_lines(str(path))
    with pytest.raises(ValueError, match="unknown labels=\\['meh'\\]"):
        text_classification.encode_labels(["a", "b"], ["a", "meh"])


def test_folds_partition_the_examples():
    folds = text_classification.folds(23, 4, seed=0)
    assert [len(f) for f in folds] == [6, 6, 6, 5]
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(23))


def test_sru_with_test_file(assert_png, tmp_path, capsys):
    results = text_classification.main(
        ["--data", _write(tmp_path / "train.txt", 24)]
        + ["--test-data", _write(tmp_path / "test.txt", 10)]
        + SMALL
        + ["--verbose", "0", "--out", str(tmp_path)]
    )
    assert results["classes"] == ["neg", "pos"]
    assert len(results["runs"]) == 1
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert results["seconds_per_epoch"] > 0
    assert_png(results["plots"][0])
    assert "test accuracy" in capsys.readouterr().out


def test_lstm_cross_validation(tmp_path):
    results = text_classification.main(
        ["--data", _write(tmp_path / "train.txt", 20), "--cv", "2", "--cell", "lstm"]
        + SMALL
        + ["--verbose", "0", "--out", str(tmp_path)]
    )
    accuracies = [run["test_accuracy"] for run in results["runs"]]
    assert len(accuracies) == 2
    assert results["test_accuracy"] == pytest.approx(np.mean(accuracies))


def test_cv_needs_local_data(capsys):
    with pytest.raises(SystemExit):
        text_classification.main(["--cv", "3"])
    assert "--test-data and --cv need --data" in capsys.readouterr().err


def test_mocked_glue_sst2_uses_the_validation_split(online, tmp_path):
    with tfds.testing.mock_data(num_examples=8):
        results = text_classification.main(
            ["--dataset", "glue/sst2", "--data-dir", str(tmp_path / "tfds")]
            + SMALL
            + ["--cell", "gru", "--verbose", "0", "--out", str(tmp_path)]
        )
    assert results["classes"] == ["negative", "positive"]
    assert 0.0 <= results["test_accuracy"] <= 1.0
