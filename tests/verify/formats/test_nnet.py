"""The .nnet reader against hand-computed values, and the shared ACAS Xu network."""

import numpy as np
import pytest

from keras_ndsru.verify import load_nnet, local_robustness

ACASXU = "acasxu/ACASXU_experimental_v2a_1_1.nnet"  # under ../shared

TINY = """// a hand-made network
// two inputs, one hidden layer of two ReLUs, one output
2,2,1,2,
2,2,1,
0,
-1.0,0.0,
1.0,4.0,
0.0,2.0,10.0,
2.0,4.0,5.0,
1.0,-1.0,
0.5,2.0,
0.5,
-1.0,
3.0,1.0,
0.25,
"""


def test_tiny_network_by_hand(tmp_path):
    path = tmp_path / "tiny.nnet"
    path.write_text(TINY)
    net = load_nnet(path)
    assert net.n_inputs == 2 and net.n_outputs == 1 and net.hidden_sizes == [2]
    # raw (0.5, 3.0) -> normalized ((0.5-0)/2, (3-2)/4) = (0.25, 0.25)
    x = net.normalize_input([0.5, 3.0])
    np.testing.assert_allclose(x, [0.25, 0.25])
    # hidden: relu(0.25 - 0.25 + 0.5) = 0.5, relu(0.125 + 0.5 - 1) = 0
    # output: 3 * 0.5 + 1 * 0 + 0.25 = 1.75; de-normalized 1.75 * 5 + 10
    np.testing.assert_allclose(net(x), [1.75])
    np.testing.assert_allclose(net.evaluate_raw([0.5, 3.0]), [18.75])
    # raw inputs are clipped to [min, max] before normalizing
    np.testing.assert_allclose(net.normalize_input([5.0, -1.0]), [0.5, -0.5])
    lower, upper = net.input_domain
    np.testing.assert_allclose(lower, [-0.5, -0.5])
    np.testing.assert_allclose(upper, [0.5, 0.5])


def test_malformed_file_is_reported(tmp_path):
    path = tmp_path / "bad.nnet"
    path.write_text(TINY.replace("0.5,2.0,\n", "0.5,\n"))
    with pytest.raises(ValueError, match="malformed .nnet"):
        load_nnet(path)
    path.write_text("// nothing\n")
    with pytest.raises(ValueError, match="malformed .nnet.*no header"):
        load_nnet(path)


def test_acasxu_network_and_a_query(shared_data):
    acasxu = shared_data(ACASXU)
    net = load_nnet(acasxu)
    assert net.n_inputs == 5 and net.n_outputs == 5 and net.hidden_sizes == [50] * 6
    # Reference evaluation straight from the text rows, independent of the reader.
    rows = [
        [float(v) for v in line.strip().strip(",").split(",")]
        for line in acasxu.read_text().splitlines()
        if line.strip() and not line.startswith("//")
    ]
    x = np.array([0.1, -0.2, 0.3, 0.0, -0.1])
    h, row = x, 7
    sizes = [int(v) for v in rows[1]]
    for k in range(len(sizes) - 1):
        w = np.array(rows[row : row + sizes[k + 1]])
        b = np.array([r[0] for r in rows[row + sizes[k + 1] : row + 2 * sizes[k + 1]]])
        row += 2 * sizes[k + 1]
        h = w @ h + b
        if k < len(sizes) - 2:
            h = np.maximum(h, 0)
    np.testing.assert_allclose(net(x), h, rtol=1e-12)
    tight = local_robustness(net, x, 0.005, label_mode="argmin", workers=1)
    assert tight.robust is True
    wide = local_robustness(net, x, 0.3, label_mode="argmin", workers=1)
    assert wide.robust is False
    y = net(wide.counterexample)
    assert np.any(np.delete(y, tight.label) <= y[tight.label])
    assert np.abs(wide.counterexample - x).max() <= 0.3


@pytest.mark.parametrize(
    "edit, line, expected",
    [
        # (text replaced, file line of the error, what the message says)
        (("2,2,1,2,", "2,2,"), 3, "4 header values"),
        (("2,2,1,\n0,", "2,2,\n0,"), 4, "3 layer sizes"),
        (("-1.0,0.0,", "-1.0,"), 6, "2 input minimums"),
        (("0.5,2.0,", "0.5,"), 11, "2 weights"),
        (("0.25,", "x,"), 15, "a number"),
    ],
)
def test_malformed_files_name_the_line_and_what_was_expected(
    tmp_path, edit, line, expected
):
    path = tmp_path / "bad.nnet"
    path.write_text(TINY.replace(*edit, 1))
    with pytest.raises(ValueError) as error:
        load_nnet(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: ") and expected in message, message


def test_truncated_file_says_what_is_missing(tmp_path):
    path = tmp_path / "short.nnet"
    path.write_text("\n".join(TINY.splitlines()[:12]))
    with pytest.raises(ValueError, match=r"ends after line 12.*expected"):
        load_nnet(path)
