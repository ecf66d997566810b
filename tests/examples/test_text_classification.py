"""Text classification on tiny local files and on mocked TFDS data."""

import _common
import _text_inputs
import numpy as np
import pytest
import tensorflow_datasets as tfds
import text_classification

WORDS = {"pos": "good great superb", "neg": "bad awful dull"}
SMALL = ["--epochs", "1", "--units", "4", "--embed-dim", "4", "--verbose", "0"]


def _write(path, count, encoding="utf-8", prefix=b""):
    lines = []
    for i in range(count):
        label = "pos" if i % 2 else "neg"
        lines.append(f"{label} the film was {WORDS[label].split()[i % 3]}\n")
    path.write_bytes(prefix + "".join(lines).encode(encoding))
    return str(path)


@pytest.fixture
def files(tmp_path):
    return {
        "--data": _write(tmp_path / "train.txt", 24),
        "--dev-data": _write(tmp_path / "dev.txt", 8),
        "--test-data": _write(tmp_path / "test.txt", 10),
    }


def _args(files, *extra):
    return [arg for pair in files.items() for arg in pair] + SMALL + list(extra)


def test_cells_side_by_side_with_epoch_chosen_on_dev(
    files, tmp_path, monkeypatch, capsys, assert_png
):
    monkeypatch.chdir(tmp_path)  # the default --out is relative
    results = text_classification.main(
        _args(files, "--cell", "sru", "lstm", "--epochs", "2", "--seeds", "0", "1")
    )
    out = capsys.readouterr().out
    assert results["classes"] == ["neg", "pos"]
    assert "data: 2 classes (neg 12, pos 12 in train); train 24, dev 8, test 10" in out
    assert "SRU recurrence: " in out
    assert "-> 2 run(s) per cell x 2 epochs" in out
    for cell in ("sru", "lstm"):
        runs = results["cells"][cell]["runs"]
        assert [run["seed"] for run in runs] == [0, 1]
        for run in runs:
            dev = run["history"]["val_accuracy"]
            assert run["epoch"] == int(np.argmax(dev)) + 1  # first best dev epoch
            assert run["dev_accuracy"] == max(dev)
            assert run["seconds_per_epoch"] == run["history"]["train_seconds"][1]
        assert f"| {cell} " in results["table"]
    assert results["table"] in out
    assert (
        results["json"]
        == "results/text_classification/train-sru-lstm/text_classification.json"
    )
    assert_png(results["plots"][0])


def test_default_out_names_data_and_cells():
    parser = text_classification.build_parser()
    outs = set()
    for cells in (["sru"], ["lstm"], ["sru", "gru"]):
        args = parser.parse_args(["--data", "a/mr.txt", "--cell", *cells])
        text_classification.check_args(parser, args)
        outs.add(args.out)
    assert outs == {
        "results/text_classification/mr-sru",
        "results/text_classification/mr-lstm",
        "results/text_classification/mr-sru-gru",
    }


def test_messy_files_are_repaired_and_reported(tmp_path, capsys):
    train = tmp_path / "train.txt"
    _write(train, 24, encoding="cp1252", prefix=b"\xef\xbb\xbf")
    with open(train, "ab") as file:
        file.write("pos\nneg un film très ennuyeux\n".encode("cp1252"))
    results = text_classification.main(
        ["--data", str(train), "--test-data", _write(tmp_path / "test.txt", 6)]
        + ["--out", str(tmp_path)]
        + SMALL
    )
    out = capsys.readouterr().out
    assert results["classes"] == ["neg", "pos"]  # the BOM is not in a label
    assert "train.txt: dropped the UTF-8 byte-order mark" in out
    assert "train.txt: not UTF-8 (line 26, byte 0xe8): read as cp1252" in out
    assert "skipped 1 line(s) with a label and no text (line 25)" in out
    data = results["data"]
    assert data["train"]["examples"] + data["dev"]["examples"] == 25


def test_unreadable_file_is_one_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"pos fine\nneg \x81\n")
    monkeypatch.setattr("sys.argv", ["text_classification.py", "--data", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        _common.run_script(text_classification.main)
    message = str(exit_info.value.code)
    assert message.startswith(f"error: {bad}:2: byte 0x81 is not valid UTF-8 nor ")
    assert "\n" not in message


def test_cross_validation_plan_is_printed_first(tmp_path, capsys):
    parser = text_classification.build_parser()
    args = parser.parse_args(["--data", _write(tmp_path / "mr.txt", 40)])
    text_classification.check_args(parser, args)
    corpus = text_classification.load_files(args)
    assert (args.cv, args.seeds) == (10, [0])
    assert len(corpus.splits) == 10
    assert "10-fold cross-validation of" in corpus.plan
    assert "(no --test-data; --cv K sets the folds)" in corpus.plan
    for split in corpus.splits:
        train, dev, test = (
            len(part[1]) for part in (split.train, split.dev, split.test)
        )
        assert (train + dev + test, test) == (40, 4)
        assert dev == 4  # 10% of the fold's training part selects the epoch


def test_cv_runs_fold_by_fold_and_estimates_time(tmp_path, capsys):
    results = text_classification.main(
        ["--data", _write(tmp_path / "train.txt", 40), "--cv", "2", "--cell", "gru"]
        + ["--batch-size", "2", "--out", str(tmp_path)]
        + SMALL
        + ["--epochs", "2"]
    )
    out = capsys.readouterr().out
    runs = results["cells"]["gru"]["runs"]
    assert [run["split"] for run in runs] == ["fold 1/2", "fold 2/2"]
    assert out.count("time estimate (gru): ~") == 1  # once, for 2 folds x 2 epochs
    assert "s per training epoch -> ~" in out and "for its 4 epochs in the plan" in out
    assert out.index("plan: 2-fold cross-validation") < out.index("time estimate")


def test_truncation_is_counted(files, tmp_path, capsys):
    results = text_classification.main(
        _args(files, "--max-length", "3", "--out", str(tmp_path))
    )
    out = capsys.readouterr().out
    assert results["data"]["train"]["truncated"] == 24
    assert "cut to --max-length 3: 24 train, 8 dev, 10 test examples" in out


def test_pretrained_embeddings_are_unit_norm_and_frozen(files, tmp_path, capsys):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("3 4\nthe 2 0 0 0\nfilm 0 3 4 0\nUnseen 1 1 1 1\n")
    results = text_classification.main(
        _args(files, "--embeddings", str(vectors), "--out", str(tmp_path))
    )
    out = capsys.readouterr().out
    assert "embeddings: " in out and "4 dims; 2 of 11 words have a vector" in out
    assert out.count("frozen") == 1
    assert results["data"]["pretrained_words"] == 2

    args = text_classification.build_parser().parse_args(_args(files))
    matrix = _text_inputs.embedding_matrix(
        ["", "[UNK]", "the", "film"], {"film": np.array([0, 3, 4, 0], "f")}, 4
    )
    model = text_classification.build_model(args, "sru", 4, 2, matrix)
    embedding = model.layers[1]
    assert not embedding.trainable
    np.testing.assert_array_equal(embedding.get_weights()[0], matrix)
    assert all("embedding" not in w.path for w in model.trainable_weights)


def test_argument_errors(capsys):
    with pytest.raises(SystemExit):
        text_classification.main(["--cv", "3"])
    assert "--cv, --encoding need --data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        text_classification.main(["--data", "x", "--train-embeddings"])
    assert "--train-embeddings needs --embeddings" in capsys.readouterr().err


def test_mocked_glue_sst2_uses_the_validation_split_as_test(online, tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        results = text_classification.main(
            ["--dataset", "glue/sst2", "--data-dir", str(tmp_path / "tfds")]
            + SMALL
            + ["--cell", "gru", "--seeds", "0", "--out", str(tmp_path)]
        )
    assert results["classes"] == ["negative", "positive"]
    assert "test = its validation split" in results["plan"]
    assert (
        results["data"]["train"]["examples"],
        results["data"]["dev"]["examples"],
    ) == (11, 1)


def test_max_head_ignores_padded_steps():
    x = np.full((2, 3, 2), -1.0, "float32")
    x[0, 0] = [-5.0, -7.0]
    mask = np.array([[True, False, False], [True, True, True]])
    pooled = text_classification.MaskedGlobalMax()(x, mask=mask)
    np.testing.assert_array_equal(pooled, [[-5.0, -7.0], [-1.0, -1.0]])
