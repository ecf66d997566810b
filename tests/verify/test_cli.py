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
