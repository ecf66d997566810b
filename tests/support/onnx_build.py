"""Small ONNX models for the reader tests, written with onnx.helper."""

import numpy as np
from onnx import TensorProto, checker, helper, numpy_helper, save_model

F = TensorProto.FLOAT


def save(tmp_path, name, nodes, input_shape, output_shape, consts, opset=13):
    """Writes a one-input (``x``), one-output (``y``) ONNX model; returns its
    path. ``consts`` maps names to a shape (random normal float32 values),
    an array (float32) or a list/int (int64)."""
    rng = np.random.default_rng(sum(name.encode()))
    initializers = [
        numpy_helper.from_array(
            (
                rng.normal(size=spec) if isinstance(spec, tuple) else np.asarray(spec)
            ).astype(np.int64 if isinstance(spec, (list, int)) else np.float32),
            key,
        )
        for key, spec in consts.items()
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", F, input_shape)],
        [helper.make_tensor_value_info("y", F, output_shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    save_model(model, path)
    return path


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"{op}_{outputs[0]}", **attrs)
