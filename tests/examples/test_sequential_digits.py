"""The offline demo, one epoch of tiny models on the real digits."""

import json

import pytest
import sequential_digits


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sequential_digits.main(["--help"])
    assert exit_info.value.code == 0
    assert "--lr-ndadam" in capsys.readouterr().out


def test_demo_trains_four_models_and_writes_table_json_plots(
    assert_png, digits_data_dir, tmp_path, capsys
):
    results = sequential_digits.main(
        [
            "--data-dir", digits_data_dir, "--epochs", "1", "--units", "8",
            "--filters", "4", "--batch-size", "256", "--verbose", "0",
            "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert (results["train_size"], results["test_size"]) == (1438, 359)
    labels = list(results["runs"])
    assert len(labels) == 4
    assert [r["optimizer"] for r in results["runs"].values()] == [
        "ndadam", "adam", "ndadam", "ndadam",
    ]  # fmt: skip
    for run in results["runs"].values():
        assert 0.0 <= run["test_accuracy"] <= 1.0
        assert run["history"]["effective_learning_rate"][0] > 0
    with open(results["json"]) as file:
        saved = json.load(file)
    assert saved["runs"][labels[0]]["test_accuracy"] == pytest.approx(
        results["runs"][labels[0]]["test_accuracy"]
    )
    for path in results["plots"]:
        assert_png(path)
    printed = capsys.readouterr().out
    assert all(label in printed for label in labels)
    assert "sequential_digits_accuracy.png" in printed
