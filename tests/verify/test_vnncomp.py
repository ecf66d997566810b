"""VNN-COMP instances (ONNX + VNN-LIB): results checked by brute force and
onnxruntime, the result file's format, and the `vnncomp` command line."""

import re

import numpy as np
import pytest
from verify_brute import min_local

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from keras_ndsru.verify import cli  # noqa: E402
from keras_ndsru.verify.vnncomp import run_instance  # noqa: E402

LOWER, UPPER = np.array([-1.0, -0.5]), np.array([0.5, 1.0])


def tiny_onnx(path, leaky=None):
    """y = W2 relu(W1 x + b1) + b2, 2 -> 6 -> 2 (LeakyRelu of slope ``leaky``
    if given); returns the weights of the equivalent pure ReLU chain."""
    rng = np.random.default_rng(5)
    w1, b1 = rng.normal(size=(2, 6)), rng.normal(size=6) * 0.3
    w2, b2 = rng.normal(size=(6, 2)), rng.normal(size=2) * 0.3
    consts = {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="g1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu")
        if leaky is None
        else helper.make_node("LeakyRelu", ["h"], ["r"], name="leaky", alpha=leaky),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="g2"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    as64 = {k: v.astype(np.float32).astype(np.float64) for k, v in consts.items()}
    w1, b1, w2 = as64["w1"].T, as64["b1"], as64["w2"].T
    if leaky is not None:  # leaky(z) = relu(z) - a relu(-z)
        alpha = float(np.float32(leaky))
        w1, b1, w2 = (
            np.vstack([w1, -w1]),
            np.concatenate([b1, -b1]),
            np.hstack([w2, -alpha * w2]),
        )
    return [w1, w2], [b1, as64["b2"]]


def vnnlib_text(threshold):
    lines = [f"(declare-const X_{i} Real)" for i in range(2)]
    lines += [f"(declare-const Y_{i} Real)" for i in range(2)]
    for i in range(2):
        lines += [f"(assert (>= X_{i} {LOWER[i]}))", f"(assert (<= X_{i} {UPPER[i]}))"]
    lines.append(f"(assert (>= Y_0 {float(threshold)!r}))")  # unsafe: Y_0 this large
    return "\n".join(lines) + "\n"


def parse_result(text):
    first, *rest = text.splitlines()
    values = dict(re.findall(r"\((\w+) ([^)]+)\)", "\n".join(rest)))
    return first, values


@pytest.fixture(params=[None, 0.1], ids=["relu-chain", "leaky-graph"])
def instance(tmp_path, request):
    """The tiny network: a ReLU chain (input splitting), or with LeakyRelu
    (not a chain: the automatic engine takes the graph)."""
    weights, biases = tiny_onnx(tmp_path / "net.onnx", leaky=request.param)
    # The exact max of Y_0 over the box, from the brute-force oracle.
    centre, radius = (LOWER + UPPER) / 2, (UPPER - LOWER) / 2
    scale = radius.max() / radius  # min_local takes a ball: stretch inputs
    stretched = [weights[0] / scale, weights[1]]
    shift = biases[0] + weights[0] @ centre - stretched[0] @ (centre * scale)
    worst = -min_local(
        stretched,
        [shift, biases[1]],
        centre * scale,
        radius.max(),
        "inf",
        [(np.array([-1.0, 0.0]), 0.0)],
    )
    return tmp_path, worst


def test_unsat_and_sat_against_brute_force(instance):
    folder, worst = instance
    net = folder / "net.onnx"
    (folder / "safe.vnnlib").write_text(vnnlib_text(worst + 0.05))
    (folder / "unsafe.vnnlib").write_text(vnnlib_text(worst - 0.05))
    safe = run_instance(net, folder / "safe.vnnlib", timeout=30)
    assert safe.result == "unsat" and safe.text() == "unsat\n"
    unsafe = run_instance(net, folder / "unsafe.vnnlib", timeout=30)
    assert unsafe.result == "sat"
    first, values = parse_result(unsafe.text())
    assert first == "sat" and set(values) == {"X_0", "X_1", "Y_0", "Y_1"}
    x = np.array([float(values["X_0"]), float(values["X_1"])], np.float32)
    assert np.all(x >= LOWER) and np.all(x <= UPPER)
    session = ort.InferenceSession(str(net))
    y = session.run(None, {"x": x[None]})[0][0]
    assert y[0] >= worst - 0.05
    np.testing.assert_allclose(y, [float(values["Y_0"]), float(values["Y_1"])])


def test_command_line_writes_the_result_file(instance, capsys):
    folder, worst = instance
    prop = folder / "p.vnnlib"
    prop.write_text(vnnlib_text(worst - 0.05))
    out = folder / "result.txt"
    code = cli.main(
        [
            "vnncomp",
            str(folder / "net.onnx"),
            str(prop),
            "--timeout",
            "20",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and out.read_text().startswith("sat\n((X_0 ")
    assert capsys.readouterr().out.startswith("sat ")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["net.onnx", "missing.vnnlib", "--timeout", "5"],
            "missing.vnnlib: VNN-LIB property file not found",
        ),
        (["net.onnx", "bad.vnnlib", "--timeout", "5"], "bad.vnnlib:5: expected"),
        (
            ["net.onnx", "p.vnnlib", "--timeout", "0"],
            "--timeout must be a positive number",
        ),
        (["net.onnx", "wide.vnnlib", "--timeout", "5"], "the network has 2 inputs"),
        (
            ["net.onnx", "p.vnnlib", "--timeout", "5", "--out", "no/such/r.txt"],
            "no/such/r.txt: the result file's folder does not exist",
        ),
    ],
)
def test_command_line_errors_are_one_line(instance, capsys, monkeypatch, args, message):
    folder, worst = instance
    monkeypatch.chdir(folder)
    (folder / "p.vnnlib").write_text(vnnlib_text(worst))
    (folder / "bad.vnnlib").write_text(
        vnnlib_text(worst).replace("(assert (>= X_0", "(assert (>= X_0 (", 1)
    )
    (folder / "wide.vnnlib").write_text(
        "(declare-const X_2 Real)\n" + vnnlib_text(worst)
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["vnncomp", *args])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert info.value.code == 2 and message in last, last


def test_split_engine_on_a_graph_is_one_line(tmp_path, capsys):
    tiny_onnx(tmp_path / "net.onnx", leaky=0.1)
    (tmp_path / "p.vnnlib").write_text(vnnlib_text(0.0))
    args = [str(tmp_path / "net.onnx"), str(tmp_path / "p.vnnlib"), "--timeout", "20"]
    with pytest.raises(SystemExit) as info:
        cli.main(["vnncomp", *args, "--engine", "split"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert info.value.code == 2
    assert (
        "--engine split needs an affine/ReLU chain: node 'leaky' is a LeakyReLU" in last
    )
    assert cli.main(["vnncomp", *args]) in (0, 1)  # auto: the graph engine


def test_acasxu_instances(shared_data):
    folder = shared_data("vnncomp/acasxu")
    safe = run_instance(
        folder / "ACASXU_run2a_1_1_batch_2000.onnx", folder / "prop_1.vnnlib", 60
    )
    assert safe.result == "unsat"
    net = folder / "ACASXU_run2a_1_9_batch_2000.onnx"
    unsafe = run_instance(net, folder / "prop_7.vnnlib", 60)
    assert unsafe.result == "sat"
    x = unsafe.counterexample.astype(np.float32)
    session = ort.InferenceSession(str(net))
    name = session.get_inputs()[0].name
    y = session.run(None, {name: x.reshape(1, 1, 1, 5)})[0].ravel()
    # prop 7 unsafe: strong left (Y_3) or strong right (Y_4) is minimal.
    assert y[3] <= y[:3].min() or y[4] <= y[:3].min()
    assert np.all(x >= [-0.328422877, -0.499999896, -0.499999896, -0.5, -0.5])
    assert np.all(x <= [0.679857769, 0.499999896, 0.499999896, 0.5, 0.5])
