"""An SRU model through each format of `model.export(format=...)`, run in
that format's runtime: same outputs as the Keras model.

The SavedModel format (and TFLite from a fixed-shape Keras model) is tested in
tests/layers/test_sru_export.py; benchmarks/export_formats.py measures every
format on more models. The ONNX and OpenVINO tools are optional (the `deploy`
extra): their tests skip when the package is absent.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru import SRU
from keras_ndsru.ops import fused_kernel_status

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import export_formats  # noqa: E402
from export_formats import (  # noqa: E402
    SHAPES,
    VOCAB,
    load_onnx,
    load_openvino,
    load_tflite,
    model_inputs,
)

NOT_INSTALLED = "{} is not installed (pip install keras-ndsru[deploy])"

# The static-shape LiteRT row: the exporter is told STATIC.
STATIC = export_formats.STATIC_SHAPE


def classifier(use_fused_kernel="auto"):
    """Masked tokens, a bidirectional SRU returning sequences, a Keras
    `Bidirectional` SRU stacked on it, a dense head; random weights."""
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(inputs)
    x = SRU(
        6, return_sequences=True, bidirectional=True, use_fused_kernel=use_fused_kernel
    )(x)
    x = keras.layers.Bidirectional(SRU(5, use_fused_kernel=use_fused_kernel))(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(scale=0.5, size=variable.shape))
    model(model_inputs(model, STATIC))  # Keras' ONNX export needs it called once
    return model


def assert_runs_like_keras(model, run, shapes=SHAPES):
    """Right-padded token rows of each shape: the same outputs as Keras."""
    for shape in shapes:
        x = model_inputs(model, shape)
        np.testing.assert_allclose(run(x), model(x), atol=1e-5)


def test_onnx_runs_in_onnxruntime(tmp_path):
    pytest.importorskip("tf2onnx", reason=NOT_INSTALLED.format("tf2onnx"))
    pytest.importorskip("onnxruntime", reason=NOT_INSTALLED.format("onnxruntime"))
    model, path = classifier(), tmp_path / "model.onnx"
    model.export(str(path), format="onnx", verbose=False)
    assert_runs_like_keras(model, load_onnx(path))


def test_openvino_runs_in_f32(tmp_path):
    pytest.importorskip("openvino", reason=NOT_INSTALLED.format("openvino"))
    model, path = classifier(), tmp_path / "model.xml"
    model.export(str(path), format="openvino", verbose=False)
    # On a CPU with bf16 units OpenVINO's default precision hint is bf16,
    # which alone moves these outputs by ~1e-2: the loader asks for f32.
    assert_runs_like_keras(model, load_openvino(path))


def test_litert_with_static_shapes_runs_builtin_ops(tmp_path):
    model, path = classifier(), tmp_path / "model.tflite"
    spec = keras.InputSpec(shape=STATIC, dtype="int32")
    model.export(str(path), format="litert", verbose=False, input_signature=[spec])
    assert b"Flex" not in path.read_bytes()
    assert_runs_like_keras(model, load_tflite(path), shapes=[STATIC])


def sequence_model():
    """Masked tokens, a go_backwards SRU and a stacked SRU both returning
    sequences: the output shows masked steps (Keras' default repeats the
    last valid output there)."""
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(inputs)
    x = SRU(6, return_sequences=True, go_backwards=True)(x)
    model = keras.Model(inputs, SRU(5, return_sequences=True)(x))
    rng = np.random.default_rng(1)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(scale=0.5, size=variable.shape))
    return model


def assert_builtin_ops_only(flatbuffer: bytes):
    """No Select-TF ("Flex") op, which the pip interpreters cannot run, and
    no TensorList left in the file."""
    assert b"Flex" not in flatbuffer
    assert b"TensorList" not in flatbuffer


@pytest.mark.parametrize("build", [classifier, sequence_model])
def test_litert_with_dynamic_shapes_runs_like_keras(tmp_path, build):
    """`model.export(format="litert")` with a `None` batch and length: the
    inference graph's recurrence is a loop without TensorLists, so it
    lowers to builtin ops and runs on two batch sizes and lengths."""
    model, path = build(), tmp_path / "model.tflite"
    model.export(str(path), format="litert", verbose=False)
    assert_builtin_ops_only(path.read_bytes())
    assert_runs_like_keras(model, load_tflite(path))


@pytest.mark.parametrize("build", [classifier, sequence_model])
def test_tflite_from_keras_model_with_dynamic_shapes_runs_like_keras(tmp_path, build):
    """The converter's default (builtin ops only) on the same models."""
    model, path = build(), tmp_path / "model.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert_builtin_ops_only(path.read_bytes())
    assert_runs_like_keras(model, load_tflite(path))


def test_keras_lstm_with_dynamic_shapes_needs_the_flex_delegate(tmp_path):
    """The peer, as docs/deploy.md reports it: Keras' LSTM keeps its loop's
    TensorLists as Select-TF ops, which the pip interpreters cannot run. If
    this starts to run, update docs/deploy.md."""
    model = export_formats.build_model("keras_lstm")
    path = tmp_path / "model.tflite"
    model.export(str(path), format="litert", verbose=False)
    assert b"FlexTensorListReserve" in path.read_bytes()
    with pytest.raises(RuntimeError, match=r"Select TensorFlow op\(s\)"):
        load_tflite(path)(model_inputs(model, STATIC))


needs_fused = pytest.mark.skipif(
    fused_kernel_status().path != "fused",
    reason="the fused op library is not built (scripts/build_ops.py)",
)


@needs_fused
@pytest.mark.parametrize(
    "export_format, suffix, message",
    [
        ("litert", ".tflite", "neither a custom op nor a flex op"),
        ("openvino", ".xml", "No conversion rule found for operations"),
    ],
)
def test_fused_opt_in_does_not_convert(tmp_path, export_format, suffix, message):
    """`use_fused_kernel=True` puts our custom op in the graph: only
    TensorFlow with keras_ndsru imported can run it."""
    if export_format == "openvino":
        pytest.importorskip("openvino", reason=NOT_INSTALLED.format("openvino"))
    model, path = classifier(use_fused_kernel=True), tmp_path / f"model{suffix}"
    with pytest.raises(Exception, match=message):
        model.export(str(path), format=export_format, verbose=False)


@needs_fused
def test_fused_opt_in_exports_an_onnx_file_that_onnxruntime_rejects(tmp_path):
    pytest.importorskip("tf2onnx", reason=NOT_INSTALLED.format("tf2onnx"))
    onnxruntime = pytest.importorskip(
        "onnxruntime", reason=NOT_INSTALLED.format("onnxruntime")
    )
    model, path = classifier(use_fused_kernel=True), tmp_path / "model.onnx"
    model.export(str(path), format="onnx", verbose=False)  # tf2onnx only logs
    with pytest.raises(Exception, match="KerasNdsru>SruForward"):
        onnxruntime.InferenceSession(str(path))


def test_the_benchmark_script_measures_a_format(capsys):
    """benchmarks/export_formats.py runs and reports what it measured."""
    report = export_formats.main(
        ["--models", "masked_sequences", "--formats", "litert"]
    )
    (row,) = report["results"]
    assert row["converts"] and row["runs"] and row["max_abs_diff"] < 1e-5
    assert "| litert | masked_sequences | yes | yes |" in capsys.readouterr().out
