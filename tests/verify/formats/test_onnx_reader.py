"""ONNX affine/ReLU chains read by `load_onnx` (NumPy fast path, or the graph
reader and `chain_from_graph`) agree with onnxruntime; graphs that are not
chains and unsupported ops are one-line errors naming the node."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx_build import node, save  # noqa: E402

from keras_ndsru.verify.formats import onnx_graph  # noqa: E402
from keras_ndsru.verify.formats.onnx_reader import OnnxError, load_onnx  # noqa: E402
from keras_ndsru.verify.graph.chain import NotAChain, chain_from_graph  # noqa: E402


def assert_matches_onnxruntime(path, count=64):
    net = load_onnx(path)
    session = ort.InferenceSession(str(path))
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    rng = np.random.default_rng(0)
    for _ in range(count):
        x = rng.normal(size=shape).astype(np.float32)
        expected = session.run(None, {"x": x})[0].ravel()
        got = net(x.astype(np.float64).ravel())
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    return net


def dense_model(tmp_path):
    nodes = [
        node("Sub", ["x", "mean"], ["a"]),
        node("Flatten", ["a"], ["b"], axis=1),
        node("MatMul", ["b", "w1"], ["c"]),
        node("Add", ["c", "b1"], ["d"]),
        node("Relu", ["d"], ["e"]),
        node("Gemm", ["e", "w2", "b2"], ["f"], transB=1, alpha=0.5, beta=2.0),
        node("Relu", ["f"], ["g"]),
        node("Mul", ["g", "scale"], ["h"]),
        node("Div", ["h", "div"], ["i"]),
        node("Neg", ["i"], ["j"]),
        node("Sub", ["shift", "j"], ["y"]),
    ]
    consts = {
        "mean": (1, 1, 1, 5),
        "w1": (5, 7),
        "b1": (7,),
        "w2": (6, 7),
        "b2": (6,),
        "scale": (6,),
        "div": np.full(6, 3.0),
        "shift": (1, 6),
    }
    path = save(tmp_path, "dense", nodes, [1, 1, 1, 5], [1, 6], consts)
    return path


def test_dense_ops(tmp_path, monkeypatch):
    path = dense_model(tmp_path)
    # The same weights through the graph reader (one meaning per operator).
    reference = chain_from_graph(onnx_graph.load_onnx_graph(path))

    def no_graph(*args):
        raise AssertionError("the fast path must not build a graph")

    monkeypatch.setattr(onnx_graph, "load_onnx_graph", no_graph)
    net = assert_matches_onnxruntime(path)
    assert net.input_shape == (1, 1, 5) and net.n_outputs == 6
    assert net.hidden_sizes == [7, 6]
    for mine, theirs in zip(
        net.weights + net.biases, reference.weights + reference.biases
    ):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_conv_batchnorm_pooling(tmp_path):
    nodes = [
        node("Conv", ["x", "k1", "c1"], ["a"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        node("BatchNormalization", ["a", "g", "be", "m", "v"], ["b"], epsilon=1e-3),
        node("Relu", ["b"], ["d"]),
        node(
            "Conv", ["d", "k2"], ["e"], group=4, kernel_shape=[2, 2], dilations=[1, 1]
        ),
        node(
            "AveragePool",
            ["e"],
            ["f"],
            kernel_shape=[2, 2],
            pads=[1, 1, 0, 0],
            count_include_pad=0,
        ),
        node("Relu", ["f"], ["g2"]),
        node("Flatten", ["g2"], ["h"]),
        node("Gemm", ["h", "w", "bias"], ["y"]),
    ]
    consts = {
        "k1": (4, 2, 3, 3),
        "c1": (4,),
        "g": np.linspace(0.5, 1.5, 4),
        "be": (4,),
        "m": (4,),
        "v": np.linspace(0.5, 2.0, 4),
        "k2": (4, 1, 2, 2),
        "w": (100, 3),
        "bias": (3,),
    }
    path = save(tmp_path, "conv", nodes, [1, 2, 6, 6], [1, 3], consts)
    net = assert_matches_onnxruntime(path)  # through the graph reader
    assert net.hidden_sizes == [144, 100]


def test_max_pooling_is_not_a_chain(tmp_path):
    nodes = [
        node("Conv", ["x", "k"], ["a"], auto_pad="SAME_UPPER", strides=[2, 2]),
        node("Relu", ["a"], ["b"]),
        node(
            "MaxPool",
            ["b"],
            ["c"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            ceil_mode=1,
        ),
        node(
            "AveragePool",
            ["b"],
            ["d"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        ),
        node("GlobalAveragePool", ["d"], ["e"]),
        node("GlobalMaxPool", ["c"], ["f"]),
        node("Concat", ["e", "f"], ["g"], axis=1),
        node("Flatten", ["g"], ["h"]),
        node("MatMul", ["h", "w"], ["y"]),
    ]
    consts = {"k": (2, 1, 3, 3), "w": (4, 2)}
    path = save(tmp_path, "pools", nodes, [1, 1, 7, 7], [1, 2], consts)
    with pytest.raises(NotAChain, match=r"node '\w+' is a MaxPool, not affine or ReLU"):
        load_onnx(path)


def residual_model(tmp_path, residual):
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Gather", ["s", "index"], ["n"], axis=0),
        node("Unsqueeze", ["n", "axes"], ["n1"]),
        node("Concat", ["n1", "minus_one"], ["shape"], axis=0),
        node("Reshape", ["x", "shape"], ["flat"]),
        node("Gemm", ["flat", "w1", "b1"], ["a"]),
        node("Relu", ["a"], ["r1"]),
        node("Gemm", ["r1", "w2", "b2"], ["b"]),
        node("Add", ["b", "r1" if residual else "b2"], ["c"]),
        node("Relu", ["c"], ["r2"]),
        node("Sub", ["r2", "a" if residual else "b2"], ["d"]),
        node("Transpose", ["d"], ["e"], perm=[1, 0]),
        node("Squeeze", ["e", "axis1"], ["f"]),
        node("Unsqueeze", ["f", "zero"], ["g"]),
        node("Gemm", ["g", "w3"], ["y"]),
    ]
    consts = {
        "zero": [0],
        "index": 0,
        "axes": [0],
        "axis1": [1],
        "minus_one": [-1],
        "w1": (6, 4),
        "b1": (4,),
        "w2": (4, 4),
        "b2": (4,),
        "w3": (4, 3),
    }
    return save(tmp_path, "residual", nodes, [1, 2, 3], [1, 3], consts)


def test_transpose_and_folded_shape_ops(tmp_path):
    net = assert_matches_onnxruntime(residual_model(tmp_path, residual=False))
    assert net.hidden_sizes == [4, 4]


def test_residual_connection_is_not_a_chain(tmp_path):
    with pytest.raises(NotAChain, match="residual connection"):
        load_onnx(residual_model(tmp_path, residual=True))


@pytest.mark.parametrize(
    "bad, op",
    [
        (node("Softmax", ["a"], ["y"]), "Softmax"),
        (node("Mul", ["a", "a"], ["y"]), "Mul"),
    ],
)
def test_unsupported_nodes_are_one_line_naming_node_and_op(tmp_path, bad, op):
    nodes = [node("Gemm", ["x", "w"], ["a"]), bad]
    path = save(tmp_path, "bad", nodes, [1, 3], [1, 3], {"w": (3, 3)})
    with pytest.raises(OnnxError) as error:
        load_onnx(path)
    message = str(error.value)
    assert f"node '{bad.name}' (op {op})" in message and "\n" not in message
    assert message.startswith(str(path)) and message.endswith(f"op_type='{op}'")


def test_unreadable_and_multi_input_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(OnnxError, match="not a readable ONNX model"):
        load_onnx(junk)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_onnx(tmp_path / "none.onnx")


def test_acasxu_onnx_matches_onnxruntime(shared_data):
    path = shared_data("vnncomp/acasxu/ACASXU_run2a_1_1_batch_2000.onnx")
    session = ort.InferenceSession(str(path))
    net = load_onnx(path)
    assert net.hidden_sizes == [50] * 6 and net.n_inputs == 5
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-0.5, 0.5, size=(32, 1, 1, 1, 5))
    for xi in x.astype(np.float32):
        expected = session.run(None, {name: xi})[0].ravel()
        np.testing.assert_allclose(
            net(xi.ravel().astype(np.float64)), expected, rtol=1e-5, atol=1e-6
        )
