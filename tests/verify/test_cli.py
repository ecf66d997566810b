"""The command line on a .nnet file and a saved Keras model."""

import subprocess
import sys

import numpy as np
import pytest

from keras_ndsru.verify import cli

NNET = """// y = relu(x0) - relu(x1), then two outputs (y, -y)
3,2,2,2,
2,2,2,2,
0,
-1.0,-1.0,
1.0,1.0,
0.0,0.0,0.0,
1.0,1.0,1.0,
1.0,0.0,
0.0,1.0,
0.0,
0.0,
1.0,-1.0,
-1.0,1.0,
0.0,
0.0,
1.0,0.0,
0.0,1.0,
0.0,
0.0,
"""


def test_cli_table_on_nnet(tmp_path, capsys):
    model = tmp_path / "net.nnet"
    model.write_text(NNET)
    points = tmp_path / "points.csv"
    # The label flips where relu(x0) = relu(x1): 0.5 from the first point.
    np.savetxt(points, [[0.5, 0.0], [0.9, -0.5]], delimiter=",")
    code = cli.main([str(model), str(points), "--delta", "0.2", "--max-delta"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split()[:5] == ["point", "delta", "eps", "verdict", "seconds"]
    assert "robust" in out[1] and "not robust" not in out[1]
    assert "[0.1992, 0.2]" in out[1] or "[0.2, 0.2]" in out[1]
    assert "robust" in out[2]
    code = cli.main([str(model), str(points), "--delta", "0.6", "--workers", "1"])
    out = capsys.readouterr().out.splitlines()
    assert "not robust" in out[1]


def test_cli_keras_model_and_npy(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(5, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "p.npy", np.zeros((1, 3)))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_ndsru.verify",
            str(path),
            str(tmp_path / "p.npy"),
            "--delta",
            "0.01",
            "--eps",
            "5",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "robust" in out.splitlines()[-1]


def test_cli_help():
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0


# -- bad input: one line naming the input and the fix, exit status 2 ----------


def _run_cli(tmp_path, capsys, *args, points="0.5,0.0\n", nnet=NNET):
    model = tmp_path / "net.nnet"
    model.write_text(nnet)
    path = tmp_path / "points.csv"
    path.write_text(points)
    with pytest.raises(SystemExit) as info:
        cli.main([str(model), str(path), *args])
    err = capsys.readouterr().err.strip().splitlines()
    return info.value.code, err[-1], str(path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--delta", "-0.01"], "--delta must be a positive number. Received: -0.01"),
        (["--delta", "nan"], "--delta must be a positive number. Received: nan"),
        (["--delta", "0.1", "--eps", "0"], "--eps must be a positive number"),
        (["--delta", "0.1", "--timeout", "-1"], "--timeout must be a positive"),
        (["--delta", "0.1", "--workers", "0"], "--workers must be a positive int"),
        (["--delta", "0.1", "--precision", "0"], "--precision must be a positive"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, capsys, args, message):
    code, last, _ = _run_cli(tmp_path, capsys, *args)
    assert code == 2 and message in last and "Traceback" not in last


def test_points_file_errors_name_the_file_and_line(tmp_path, capsys):
    code, last, path = _run_cli(
        tmp_path, capsys, "--delta", "0.1", points="0.5,0.0\n0.1,oops\n"
    )
    assert code == 2 and f"{path}:2:" in last and "'oops'" in last
    code, last, path = _run_cli(tmp_path, capsys, "--delta", "0.1", points="")
    assert code == 2 and f"{path} holds no points" in last
    code, last, path = _run_cli(tmp_path, capsys, "--delta", "0.1", points="1,2,3\n")
    assert code == 2 and "3 values per point" in last and "2 inputs" in last
    code, last, path = _run_cli(
        tmp_path, capsys, "--delta", "0.1", points="0.5,0.0\n1,2,3\n"
    )
    assert code == 2 and f"{path}:2:" in last


def test_a_csv_header_line_is_skipped_with_a_note(tmp_path, capsys):
    model = tmp_path / "net.nnet"
    model.write_text(NNET)
    path = tmp_path / "points.csv"
    path.write_text("x0,x1\n0.5,0.0\n")
    code = cli.main([str(model), str(path), "--delta", "0.2"])
    captured = capsys.readouterr()
    assert code == 0 and len(captured.out.splitlines()) == 2
    assert f"{path}:1: skipped the header line" in captured.err


def test_missing_and_malformed_model_files(tmp_path, capsys):
    path = tmp_path / "points.csv"
    path.write_text("0.5,0.0\n")
    with pytest.raises(SystemExit) as info:
        cli.main([str(tmp_path / "none.nnet"), str(path), "--delta", "0.1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert info.value.code == 2 and "none.nnet" in err and "not found" in err
    broken = NNET.replace("\n1.0,-1.0,\n", "\n1.0,\n", 1)  # a short weight row
    code, last, _ = _run_cli(tmp_path, capsys, "--delta", "0.1", nnet=broken)
    assert code == 2 and "net.nnet:" in last and "layer 2" in last
