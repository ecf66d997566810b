"""SRU models through every export format: converts, runs, same outputs, size.

Each SRU model below is exported with every format that Keras' own
`model.export(format=...)` offers in the pinned Keras (3.15: `tf_saved_model`,
`litert`, `onnx`, `openvino`) and with `tf.lite.TFLiteConverter
.from_keras_model`; the artifact runs in its own runtime (TensorFlow's
SavedModel loader, the LiteRT interpreter of `ai-edge-litert`, ONNX Runtime,
the OpenVINO runtime) and its outputs are compared with the Keras model's on
the same inputs. Formats with dynamic shapes run two input shapes (batch 3 x 7
steps and batch 2 x 12 steps; the max abs difference is over both), the
static-shape rows run the shape they were exported with (3 x 7).

Models (tiny, random weights; token inputs have right-padded rows, 0 = pad):

- `stacked`: two `SRU(8, return_sequences=True)` on float inputs (the output
  is the sequence),
- `bidirectional`: `SRU(8, bidirectional=True)` on float inputs (last output),
- `keras_bidirectional`: `Embedding(mask_zero=True)`, then
  `keras.layers.Bidirectional(SRU(8))` (masked, last output),
- `masked_sequences`: `Embedding(mask_zero=True)`, then
  `SRU(8, bidirectional=True, return_sequences=True)` (masked steps output 0),
- `classifier`: `Embedding(mask_zero=True)`, a bidirectional SRU returning
  sequences, a stacked SRU, `Dense(2)`: masked, bidirectional and stacked,
- `classifier_fused`: the same with `use_fused_kernel=True` (the opt-in that
  puts the custom op `KerasNdsru>SruForward` in exported graphs too),
- `keras_lstm`, `keras_gru`: the classifier with `keras.layers.LSTM` or
  `GRU` in place of SRU, the peers that show which limits belong to Keras'
  recurrent layers as a whole.

OpenVINO runs with `INFERENCE_PRECISION_HINT=f32`: on a CPU with bf16 support
its default hint is bf16, which alone moves the outputs by ~1e-2 (printed
below the table).

Usage:
    .venv/bin/python benchmarks/export_formats.py            # minutes on 2 idle cores
    .venv/bin/python benchmarks/export_formats.py --models classifier \\
        --formats onnx,openvino --json /tmp/export.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_ndsru import SRU  # noqa: E402
from keras_ndsru.ops import fused_kernel_status  # noqa: E402

VOCAB, EMBED, UNITS, FEATURES = 20, 6, 8, 5
SHAPES = [(3, 7), (2, 12)]  # (batch, steps): two shapes for dynamic formats
STATIC_SHAPE = SHAPES[0]
DISTRIBUTIONS = (
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "keras-ndsru",
    "numpy",
    "ai-edge-litert",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "openvino",
)


# -- models ------------------------------------------------------------------


def _tokens_model(body: Callable, fused="auto") -> keras.Model:
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, EMBED, mask_zero=True)(inputs)
    return keras.Model(inputs, body(x, fused))


def _floats_model(body: Callable) -> keras.Model:
    inputs = keras.Input((None, FEATURES))
    return keras.Model(inputs, body(inputs, "auto"))


def _stacked(x, fused):
    x = SRU(UNITS, return_sequences=True, use_fused_kernel=fused)(x)
    return SRU(UNITS, return_sequences=True, use_fused_kernel=fused)(x)


def _bidirectional(x, fused):
    return SRU(UNITS, bidirectional=True, use_fused_kernel=fused)(x)


def _keras_bidirectional(x, fused):
    return keras.layers.Bidirectional(SRU(UNITS, use_fused_kernel=fused))(x)


def _masked_sequences(x, fused):
    return SRU(
        UNITS, bidirectional=True, return_sequences=True, use_fused_kernel=fused
    )(x)


def _classifier(x, fused):
    x = SRU(UNITS, bidirectional=True, return_sequences=True, use_fused_kernel=fused)(x)
    x = SRU(UNITS, use_fused_kernel=fused)(x)
    return keras.layers.Dense(2)(x)


def _keras_rnn(layer_class):
    """The peer: Keras' own LSTM or GRU in the classifier's place."""

    def body(x, fused):
        del fused
        x = keras.layers.Bidirectional(layer_class(UNITS, return_sequences=True))(x)
        x = layer_class(UNITS)(x)
        return keras.layers.Dense(2)(x)

    return body


MODELS: dict[str, Callable[[], keras.Model]] = {
    "stacked": lambda: _floats_model(_stacked),
    "bidirectional": lambda: _floats_model(_bidirectional),
    "keras_bidirectional": lambda: _tokens_model(_keras_bidirectional),
    "masked_sequences": lambda: _tokens_model(_masked_sequences),
    "classifier": lambda: _tokens_model(_classifier),
    "classifier_fused": lambda: _tokens_model(_classifier, fused=True),
    "keras_lstm": lambda: _tokens_model(_keras_rnn(keras.layers.LSTM)),
    "keras_gru": lambda: _tokens_model(_keras_rnn(keras.layers.GRU)),
}


def build_model(name: str, seed: int = 0) -> keras.Model:
    """The named model with random weights (scale 0.5, so that the gates
    are far from their initial values)."""
    model = MODELS[name]()
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(scale=0.5, size=variable.shape))
    return model


def model_inputs(model: keras.Model, shape: tuple[int, int], seed: int = 9):
    """Inputs of `shape` (batch, steps): tokens with right-padded rows (row 0
    half padded, the last row one step long) or float sequences."""
    rng = np.random.default_rng(seed)
    if model.inputs[0].dtype == "int32":
        x = rng.integers(1, VOCAB, size=shape).astype("int32")
        x[0, shape[1] // 2 :] = 0
        x[-1, 1:] = 0
        return x
    return rng.normal(size=(*shape, FEATURES)).astype("float32")


def static_input_spec(model: keras.Model) -> keras.InputSpec:
    dtype = model.inputs[0].dtype
    extra = () if dtype == "int32" else (FEATURES,)
    return keras.InputSpec(shape=(*STATIC_SHAPE, *extra), dtype=dtype)


# -- formats: export, then load and run in the format's runtime ---------------


class ConvertError(Exception):
    """The exporter failed, or wrote an artifact its runtime cannot hold."""


@dataclasses.dataclass
class Format:
    name: str
    suffix: str
    export: Callable[[keras.Model, Path], str | None]  # returns a note
    load: Callable[[Path], Callable[[np.ndarray], np.ndarray]]
    static: bool = False  # runs only STATIC_SHAPE
    requires: tuple[str, ...] = ()  # importable modules the format needs


def _export_saved_model(model, path):
    model.export(str(path), format="tf_saved_model", verbose=False)


def _load_saved_model(path):
    loaded = tf.saved_model.load(str(path))
    return lambda x: loaded.serve(tf.constant(x)).numpy()


def _export_litert(model, path):
    model.export(str(path), format="litert", verbose=False)
    return _flex_note(path)


def _export_litert_static(model, path):
    spec = static_input_spec(model)
    model.export(str(path), format="litert", verbose=False, input_signature=[spec])
    return _flex_note(path)


def _static_model(model):
    """The same layers traced on a fixed input shape: how Keras' LSTM and
    GRU reach TFLite builtin ops, whose loops keep TensorLists that lower
    only with static shapes (SRU's does not need it, see docs/deploy.md)."""
    spec = static_input_spec(model)
    inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype)
    return keras.Model(inputs, model(inputs))


def _export_from_keras_model(model, path):
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _export_from_keras_model_static(model, path):
    _export_from_keras_model(_static_model(model), path)


def _flex_ops(path: Path) -> list[str]:
    """Select-TF ("Flex") ops in a .tflite file: their custom-op codes are
    stored as plain strings in the flatbuffer."""
    return sorted({m.decode() for m in re.findall(rb"Flex\w+", path.read_bytes())})


def _flex_note(path: Path) -> str:
    # Keras' LiteRT export allows SELECT_TF_OPS: a Flex op converts, but runs
    # only with the Flex delegate, which the pip interpreters do not link.
    flex = _flex_ops(path)
    return f"has Select-TF ops {', '.join(flex)}" if flex else ""


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's own, deprecated in favour of LiteRT's
        Interpreter = tf.lite.Interpreter
    return Interpreter


def load_tflite(path):
    interpreter = _interpreter_class()(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(x):
        interpreter.resize_tensor_input(inp["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run


def _export_onnx(model, path):
    model.export(str(path), format="onnx", verbose=False)
    unknown = _non_onnx_ops(path)
    if unknown:
        raise ConvertError(
            f"tf2onnx wrote {', '.join(unknown)} as is: not an ONNX operator"
        )


def _non_onnx_ops(path: Path) -> list[str]:
    import onnx

    def nodes(graph):
        for node in graph.node:
            yield node
            for attribute in node.attribute:
                for sub in [attribute.g, *attribute.graphs]:
                    yield from nodes(sub)

    graph = onnx.load(str(path)).graph
    return sorted(
        {n.op_type for n in nodes(graph) if not onnx.defs.has(n.op_type, n.domain)}
    )


def load_onnx(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _export_openvino(model, path):
    model.export(str(path), format="openvino", verbose=False)


OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def load_openvino(path, config=None):
    import openvino

    compiled = openvino.Core().compile_model(
        str(path), "CPU", OPENVINO_CONFIG if config is None else config
    )
    return lambda x: compiled(x)[0]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format("tf_saved_model", "", _export_saved_model, _load_saved_model),
        Format("litert", ".tflite", _export_litert, load_tflite),
        Format(
            "litert, static shape",
            ".tflite",
            _export_litert_static,
            load_tflite,
            static=True,
        ),
        Format(
            "TFLiteConverter.from_keras_model",
            ".tflite",
            _export_from_keras_model,
            load_tflite,
        ),
        Format(
            "from_keras_model, static shape",
            ".tflite",
            _export_from_keras_model_static,
            load_tflite,
            static=True,
        ),
        Format(
            "onnx",
            ".onnx",
            _export_onnx,
            load_onnx,
            requires=("tf2onnx", "onnx", "onnxruntime"),
        ),
        Format(
            "openvino",
            ".xml",
            _export_openvino,
            load_openvino,
            requires=("openvino",),
        ),
    ]
}
FORMAT_KEYS = {
    "tf_saved_model": "tf_saved_model",
    "litert": "litert",
    "litert_static": "litert, static shape",
    "tflite": "TFLiteConverter.from_keras_model",
    "tflite_static": "from_keras_model, static shape",
    "onnx": "onnx",
    "openvino": "openvino",
}


# -- one measurement -----------------------------------------------------------


@dataclasses.dataclass
class Result:
    format: str
    model: str
    converts: bool
    runs: bool
    max_abs_diff: float | None
    size_bytes: int | None
    note: str
    seconds: float


@contextlib.contextmanager
def quiet_native_stderr():
    """Converters print pages of MLIR and C++ logs to file descriptor 2; the
    exception they raise says the same in Python, so silence the logs."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


KNOWN_REASONS = [
    r"'tf\.TensorList\w+' op requires element_shape to be static",
    r"failed to legalize operation 'tf\.TensorList\w+'",
    r"'tf\.[\w>]+' op is neither a custom op nor a flex op",
    r"No conversion rule found for operations: [^\n]*",
    r"Lowering tensor list ops is failed",
    r"Select TensorFlow op\(s\), included in the given model, is\(are\) not "
    r"supported by this interpreter",
    r"Encountered unresolved custom op: [\w>]+",
    r"Op type not registered '[^']+'",
    r"INVALID_GRAPH[^\n]*",
]


def one_line_reason(error: BaseException) -> str:
    """The sentence of a converter's or runtime's message that says why."""
    text = str(error)
    if isinstance(error, ConvertError):
        return text
    found = [m.group(0) for p in KNOWN_REASONS if (m := re.search(p, text))]
    if found:
        return "; ".join(found[:2])
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:140] if lines else ''}"


def artifact_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    weights = path.with_suffix(".bin")  # OpenVINO keeps the weights apart
    return size + (weights.stat().st_size if path.suffix == ".xml" else 0)


def measure(fmt: Format, model_name: str, out_dir: Path) -> Result:
    started = time.perf_counter()
    model = build_model(model_name)
    shapes = [STATIC_SHAPE] if fmt.static else SHAPES
    inputs = [model_inputs(model, shape) for shape in shapes]
    wanted = [np.asarray(model(x)) for x in inputs]
    slug = re.sub(r"\W+", "_", fmt.name).strip("_")
    path = out_dir / f"{model_name}__{slug}{fmt.suffix}"

    def result(converts, runs, diff, note):
        size = artifact_size(path) if converts and path.exists() else None
        seconds = time.perf_counter() - started
        return Result(fmt.name, model_name, converts, runs, diff, size, note, seconds)

    missing = [m for m in fmt.requires if not _importable(m)]
    if missing:
        return result(False, False, None, f"not installed: {', '.join(missing)}")
    try:
        with quiet_native_stderr():
            note = fmt.export(model, path) or ""
    except Exception as error:  # noqa: BLE001 -- the reason is the result
        converted = isinstance(error, ConvertError) and path.exists()
        return result(converted, False, None, one_line_reason(error))
    try:
        with quiet_native_stderr():
            run = fmt.load(path)
            got = [np.asarray(run(x)) for x in inputs]
    except Exception as error:  # noqa: BLE001
        reason = one_line_reason(error)
        return result(True, False, None, f"{note}: {reason}" if note else reason)
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, wanted))
    return result(True, True, diff, note)


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def openvino_default_precision(out_dir: Path) -> str:
    """What OpenVINO's own CPU precision hint does to the classifier."""
    if not _importable("openvino"):
        return ""
    import openvino

    hint = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    hint = hint.to_string() if hasattr(hint, "to_string") else str(hint)
    path = out_dir / "classifier__openvino.xml"
    if not path.exists():
        return f"OpenVINO CPU default INFERENCE_PRECISION_HINT here: {hint}"
    model = build_model("classifier")
    x = model_inputs(model, SHAPES[0])
    with quiet_native_stderr():
        got = load_openvino(path, config={})(x)
    diff = float(np.max(np.abs(got - np.asarray(model(x)))))
    return (
        f"OpenVINO CPU default INFERENCE_PRECISION_HINT here: {hint}; with it the "
        f"classifier's max abs diff is {diff:.1e} (the table uses f32)."
    )


# -- report --------------------------------------------------------------------


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    found["SRU op"] = fused_kernel_status().path
    found["keras backend"] = keras.backend.backend()
    return found


def markdown_table(results: Sequence[Result]) -> str:
    rows = [
        "| format | model | converts | runs | max abs diff | size | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        diff = "" if r.max_abs_diff is None else f"{r.max_abs_diff:.1e}"
        size = "" if r.size_bytes is None else f"{r.size_bytes / 1024:.0f} KiB"
        rows.append(
            f"| {r.format} | {r.model} | {'yes' if r.converts else 'no'} | "
            f"{'yes' if r.runs else 'no'} | {diff} | {size} | {r.note} |"
        )
    return "\n".join(rows)


SUMMARY_EXTRAS = ("classifier_fused", "keras_lstm", "keras_gru")


def _runs(result: Result | None) -> str:
    return "" if result is None else ("yes" if result.runs else "no")


def summary_table(results: Sequence[Result]) -> str:
    """One row per format: the SRU models on the default path (fused op out
    of inference graphs), then the fused opt-in and the Keras LSTM and GRU
    peers."""
    rows = [
        "| format | SRU models convert | run | max abs diff | size (classifier) "
        "| use_fused_kernel=True runs | keras LSTM runs | keras GRU runs | why not |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r.format for r in results):
        by_model = {r.model: r for r in results if r.format == name}
        sru = [r for m, r in by_model.items() if m not in SUMMARY_EXTRAS]
        diffs = [r.max_abs_diff for r in sru if r.runs]
        classifier = by_model.get("classifier")
        size = classifier.size_bytes if classifier else None
        rows.append(
            f"| {name} | {sum(r.converts for r in sru)}/{len(sru)} "
            f"| {len(diffs)}/{len(sru)} | {f'{max(diffs):.1e}' if diffs else ''} "
            f"| {f'{size / 1024:.0f} KiB' if size else ''} "
            f"| {_runs(by_model.get('classifier_fused'))} "
            f"| {_runs(by_model.get('keras_lstm'))} "
            f"| {_runs(by_model.get('keras_gru'))} "
            f"| {next((r.note for r in sru if not r.runs), '')} |"
        )
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated subset of: {', '.join(MODELS)}",
    )
    parser.add_argument(
        "--formats",
        default=",".join(FORMAT_KEYS),
        help=f"comma-separated subset of: {', '.join(FORMAT_KEYS)}",
    )
    parser.add_argument(
        "--out", type=Path, help="keep the artifacts here (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.formats = args.formats.split(",")
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}")
    for key in args.formats:
        if key not in FORMAT_KEYS:
            parser.error(f"unknown format {key!r}")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    keras.utils.disable_interactive_logging()
    found = versions()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="sru_export_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for key in args.formats:
            for model_name in args.models:
                result = measure(FORMATS[FORMAT_KEYS[key]], model_name, out_dir)
                print(
                    f"  {result.format} / {result.model}: "
                    f"{'runs' if result.runs else 'no'} ({result.seconds:.1f} s)",
                    flush=True,
                )
                results.append(result)
        footnote = (
            openvino_default_precision(out_dir) if "openvino" in args.formats else ""
        )
    finally:
        if args.out is None:
            shutil.rmtree(out_dir, ignore_errors=True)
    print()
    print(markdown_table(results))
    print()
    print(summary_table(results))
    if footnote:
        print()
        print(footnote)
    report = {
        "versions": found,
        "shapes": SHAPES,
        "results": [dataclasses.asdict(r) for r in results],
        "openvino_default_precision": footnote,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
