"""Opening an ONNX file for the readers: one-line errors, the constants, the
single input's shape, without building anything (torch-free).

Both readers start here: `onnx_graph.load_onnx_graph` (the graph engine)
and `onnx_reader.load_onnx` (the dense chain for few inputs).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from keras_ndsru.verify.formats.errors import OnnxError


@dataclasses.dataclass
class OnnxModel:
    """An ONNX model of one input and one output, opened.

    Attributes:
        path: the file, as given.
        model: the `onnx.ModelProto`.
        constants: initializers by name, as NumPy arrays.
        input_name, output_name: the graph's input and output.
        input_dims: the input's shape, symbolic axes as 1.
    """

    path: str
    model: object
    constants: dict
    input_name: str
    output_name: str
    input_dims: tuple

    @property
    def nodes(self):
        return self.model.graph.node

    @property
    def opset(self) -> int:
        return {o.domain: o.version for o in self.model.opset_import}.get("", 13)


def _load(path, **kwargs):
    import onnx

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: ONNX file not found. Received: path={path!r}")
    try:
        return onnx.load(path, **kwargs)
    except Exception as error:  # noqa: BLE001 -- any parse failure is one line
        raise OnnxError(
            f"{path}: not a readable ONNX model ({type(error).__name__}). "
            f"Received: path={path!r}"
        ) from None


def _dims(value) -> tuple:
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
        for d in value.type.tensor_type.shape.dim
    )


def open_onnx(path) -> OnnxModel:
    """Loads ``path`` and checks it has one input and one output.

    Raises:
        FileNotFoundError: no such file.
        OnnxError: an unreadable file, or not one input and one output.
    """
    from onnx import numpy_helper

    model = _load(path)
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise OnnxError(
            f"{os.fspath(path)}: expected one input and one output. Received: "
            f"inputs={[i.name for i in inputs]}, "
            f"outputs={[o.name for o in graph.output]}"
        )
    return OnnxModel(
        os.fspath(path),
        model,
        {k: np.asarray(v) for k, v in constants.items()},
        inputs[0].name,
        graph.output[0].name,
        _dims(inputs[0]),
    )


def input_size(path) -> int:
    """The number of elements of the model's (first non-constant) input,
    symbolic axes counted as 1, read without building anything.

    Raises:
        OnnxError: an unreadable file.
    """
    model = _load(path, load_external_data=False)
    constants = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name not in constants:
            return math.prod(_dims(value))
    return 0
