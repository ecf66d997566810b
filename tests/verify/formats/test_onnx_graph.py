"""ONNX models read into a `Graph` agree with onnxruntime on random inputs,
their bounds contain sampled outputs, and unsupported nodes are one line."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from graph_nets import assert_bounds_contain_samples  # noqa: E402
from onnx_build import node, save  # noqa: E402

from keras_ndsru.verify.formats.onnx_graph import OnnxError, load_onnx_graph  # noqa: E402


def check(path, count=16, eps=0.1):
    """Outputs equal onnxruntime's; CROWN bounds of a box contain samples."""
    graph = load_onnx_graph(path)
    session = ort.InferenceSession(str(path))
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, *shape)).astype(np.float32)
    expected = np.stack([session.run(None, {"x": xi})[0].ravel() for xi in x])
    got = graph.forward(x.reshape(count, -1).astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    assert_bounds_contain_samples(graph, x[:1].astype(np.float64), eps)
    return graph


def test_dense_ops_and_activations(tmp_path):
    nodes = [
        node("Sub", ["x", "mean"], ["a"]),
        node("Flatten", ["a"], ["b"], axis=1),
        node("MatMul", ["b", "w1"], ["c"]),
        node("Add", ["c", "b1"], ["d"]),
        node("Relu", ["d"], ["e"]),
        node("Gemm", ["e", "w2", "b2"], ["f"], transB=1, alpha=0.5, beta=2.0),
        node("LeakyRelu", ["f"], ["g"], alpha=0.1),
        node("Sigmoid", ["g"], ["g2"]),
        node("Mul", ["g2", "scale"], ["h"]),
        node("Div", ["h", "div"], ["i"]),
        node("Tanh", ["i"], ["i2"]),
        node("Neg", ["i2"], ["j"]),
        node("Dropout", ["j"], ["j2"]),
        node("Identity", ["j2"], ["j3"]),
        node("Sub", ["shift", "j3"], ["y"]),
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
    graph = check(save(tmp_path, "dense", nodes, [1, 1, 1, 5], [1, 6], consts))
    assert graph.input_shape == (1, 1, 1, 5) and graph.n_outputs == 6


def test_matmul_by_vectors_on_either_side(tmp_path):
    nodes = [
        node("Reshape", ["x", "shape"], ["a"]),  # (3, 4)
        node("MatMul", ["a", "v"], ["b"]),  # (3,)
        node("MatMul", ["m", "b"], ["c"]),  # (2,)
        node("Relu", ["c"], ["d"]),
        node("MatMul", ["d", "w"], ["e"]),  # (2,) @ (2, 3) -> (3,)
        node("MatMul", ["u", "a"], ["f"]),  # (3,) @ (3, 4) -> (4,)
        node("Slice", ["f", "starts", "ends"], ["g"]),  # (3,)
        node("Add", ["e", "g"], ["h"]),
        node("Unsqueeze", ["h", "zero"], ["y"]),
    ]
    consts = {
        "shape": [3, 4],
        "v": (4,),
        "m": (2, 3),
        "w": (2, 3),
        "u": (3,),
        "starts": [1],
        "ends": [4],
        "zero": [0],
    }
    check(save(tmp_path, "vectors", nodes, [1, 12], [1, 3], consts))


def test_conv_batchnorm_pooling_pad(tmp_path):
    nodes = [
        node("Pad", ["x", "pads", "value"], ["p"], mode="constant"),
        node("Conv", ["p", "k1", "c1"], ["a"], pads=[1, 0, 0, 1], kernel_shape=[3, 3]),
        node("BatchNormalization", ["a", "g", "be", "m", "v"], ["b"], epsilon=1e-3),
        node("Relu", ["b"], ["c"]),
        node("MaxPool", ["c"], ["d"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        node("Conv", ["d", "k2"], ["e"], group=4, kernel_shape=[2, 2]),
        node(
            "AveragePool",
            ["e"],
            ["f"],
            kernel_shape=[2, 2],
            pads=[1, 1, 0, 0],
            count_include_pad=0,
        ),
        node("Relu", ["f"], ["g2"]),
        node("GlobalAveragePool", ["g2"], ["ga"]),
        node("GlobalMaxPool", ["g2"], ["gm"]),
        node("Concat", ["ga", "gm", "extra"], ["h0"], axis=1),
        node("Flatten", ["h0"], ["h"]),
        node("Gemm", ["h", "w", "bias"], ["y"]),
    ]
    consts = {
        "pads": [0, 0, 1, 0, 0, 0, 0, 1],
        "value": np.array(0.25),
        "k1": (4, 2, 3, 3),
        "c1": (4,),
        "g": np.linspace(0.5, 1.5, 4),
        "be": (4,),
        "m": (4,),
        "v": np.linspace(0.5, 2.0, 4),
        "k2": (4, 1, 2, 2),
        "extra": (1, 2, 1, 1),
        "w": (10, 3),
        "bias": (3,),
    }
    check(save(tmp_path, "conv", nodes, [1, 2, 6, 6], [1, 3], consts))


def test_residual_transpose_gather_split_and_folded_shape_ops(tmp_path):
    nodes = [
        node("Shape", ["x"], ["s"]),
        node("Gather", ["s", "index"], ["n"], axis=0),
        node("Unsqueeze", ["n", "axes"], ["n1"]),
        node("Concat", ["n1", "minus_one"], ["shape"], axis=0),
        node("Reshape", ["x", "shape"], ["flat"]),
        node("Gemm", ["flat", "w1", "b1"], ["a"]),
        node("Relu", ["a"], ["r1"]),
        node("Gemm", ["r1", "w2", "b2"], ["b"]),
        node("Add", ["b", "r1"], ["c"]),
        node("Relu", ["c"], ["r2"]),
        node("Sub", ["r2", "a"], ["d"]),
        node("Transpose", ["d"], ["e"], perm=[1, 0]),
        node("Split", ["e", "sizes"], ["e1", "e2"], axis=0),
        node("Gather", ["e1", "pick"], ["e3"], axis=0),
        node("Concat", ["e3", "e2"], ["e4"], axis=0),
        node("Squeeze", ["e4", "axis1"], ["f"]),
        node("Unsqueeze", ["f", "zero"], ["g"]),
        node("Gemm", ["g", "w3"], ["y"]),
    ]
    consts = {
        "zero": [0],
        "index": 0,
        "axes": [0],
        "axis1": [1],
        "minus_one": [-1],
        "sizes": [2, 2],
        "pick": [1, 0, 1],
        "w1": (6, 4),
        "b1": (4,),
        "w2": (4, 4),
        "b2": (4,),
        "w3": (5, 3),
    }
    check(save(tmp_path, "residual", nodes, [1, 2, 3], [1, 3], consts))


@pytest.mark.parametrize(
    "bad, op, why",
    [
        (node("Mul", ["a", "a"], ["y"]), "Mul", "not linear"),
        (node("Softmax", ["a"], ["y"]), "Softmax", "not supported"),
        (node("Pad", ["a", "pads"], ["y"], mode="reflect"), "Pad", "constant only"),
    ],
)
def test_unsupported_nodes_are_one_line_naming_node_and_op(tmp_path, bad, op, why):
    nodes = [node("Gemm", ["x", "w"], ["a"]), bad]
    consts = {"w": (3, 3), "pads": [0, 0, 0, 0]}
    path = save(tmp_path, "bad", nodes, [1, 3], [1, 3], consts)
    with pytest.raises(OnnxError) as error:
        load_onnx_graph(path)
    message = str(error.value)
    assert f"node '{bad.name}' (op {op})" in message and why in message
    assert "\n" not in message and message.endswith(f"op_type='{op}'")


def test_unreadable_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(OnnxError, match="not a readable ONNX model"):
        load_onnx_graph(junk)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_onnx_graph(tmp_path / "none.onnx")


@pytest.mark.parametrize(
    "name",
    [
        "mnistfc/mnist-net_256x4.onnx",
        "oval21/nets/cifar_deep_kw.onnx",
        "cifar10_resnet/onnx/resnet_2b.onnx",
        "acasxu/ACASXU_run2a_1_1_batch_2000.onnx",
    ],
)
def test_benchmark_networks_match_onnxruntime(shared_data, name):
    path = shared_data(f"vnncomp/{name}")
    graph = load_onnx_graph(path)
    session = ort.InferenceSession(str(path))
    x = np.random.default_rng(0).uniform(0, 1, size=(8, *graph.input_shape))
    input_name = session.get_inputs()[0].name
    expected = np.stack(
        [session.run(None, {input_name: xi.astype(np.float32)})[0].ravel() for xi in x]
    )
    np.testing.assert_allclose(
        graph.forward(x.reshape(8, -1)), expected, rtol=1e-4, atol=1e-5
    )
