"""SRU models leave the training script: SavedModel export, TFLite.

A model exported with the layer's defaults must load and run where only
TensorFlow is installed (TF Serving cannot load our op library); the fused
op stays in the graphs that train. `use_fused_kernel=True` opts into the
fused op in exported graphs too, for a server that loads our library.
"""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ndsru import SRU
from keras_ndsru.ops import fused_kernel_status

FUSED_OP = b"KerasNdsru>SruForward"

needs_fused = pytest.mark.skipif(
    fused_kernel_status().path != "fused",
    reason="the fused op library is not built (scripts/build_ops.py)",
)


def randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    for variable in layer.trainable_variables:
        variable.assign(rng.normal(scale=0.5, size=variable.shape))


def sru_model(use_fused_kernel="auto"):
    """Masked tokens, a bidirectional SRU returning sequences, a stacked SRU
    returning its last output, as users build text classifiers."""
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(inputs)
    x = SRU(
        6, return_sequences=True, bidirectional=True, use_fused_kernel=use_fused_kernel
    )(x)
    x = SRU(5, use_fused_kernel=use_fused_kernel)(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    for i, layer in enumerate(model.layers[1:]):
        randomize(layer, seed=i)
    return model


def tokens(seed=9):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, size=(3, 7)).astype("int32")
    x[0, 4:] = 0  # right-padded rows
    x[2, 2:] = 0
    return x


def run_without_keras_ndsru(script: str, *args) -> str:
    """Runs `script` in a fresh Python where `import keras_ndsru` fails, as
    in a serving process that has TensorFlow only."""
    blocker = textwrap.dedent(
        """
        import sys

        class _NoKerasNdsru:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "keras_ndsru":
                    raise ImportError("keras_ndsru is not installed here")

        sys.meta_path.insert(0, _NoKerasNdsru())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def saved_graph(path) -> bytes:
    return (path / "saved_model.pb").read_bytes()


def test_default_export_is_plain_tensorflow(tmp_path):
    model, x = sru_model(), tokens()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", np.asarray(model(x)))
    model.export(str(tmp_path / "model"), verbose=False)
    assert FUSED_OP not in saved_graph(tmp_path / "model")
    out = run_without_keras_ndsru(
        """
        import numpy as np
        import tensorflow as tf

        root = sys.argv[1]
        x = np.load(f"{root}/x.npy")
        loaded = tf.saved_model.load(f"{root}/model")
        served = loaded.serve(tf.constant(x))
        np.testing.assert_allclose(served, np.load(f"{root}/want.npy"), atol=1e-5)
        assert "keras_ndsru" not in sys.modules
        print("ok")
        """,
        tmp_path,
    )
    assert out.strip().endswith("ok")


@needs_fused
def test_fused_export_is_opt_in_and_loads_after_import_keras_ndsru(tmp_path):
    model, x = sru_model(use_fused_kernel=True), tokens()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", np.asarray(model(x)))
    model.export(str(tmp_path / "model"), verbose=False)
    assert FUSED_OP in saved_graph(tmp_path / "model")
    script = """
        import sys
        import numpy as np
        import tensorflow as tf

        root = sys.argv[1]
        try:
            tf.saved_model.load(f"{root}/model")
        except Exception as error:  # without the op library: not registered
            assert "KerasNdsru>SruForward" in str(error), error
        else:
            raise AssertionError("loaded without the op library")
        import keras_ndsru  # noqa: F401  -- registers the op, nothing else
        x = np.load(f"{root}/x.npy")
        loaded = tf.saved_model.load(f"{root}/model")
        served = loaded.serve(tf.constant(x))
        np.testing.assert_allclose(served, np.load(f"{root}/want.npy"), atol=1e-5)
        print("ok")
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


@needs_fused
@pytest.mark.parametrize("use_fused_kernel", ["auto", True])
def test_training_graphs_run_the_fused_op(use_fused_kernel):
    """ "auto" keeps the fused op where it pays (graphs that train, eager
    calls) and out of inference graphs, which are what exports save."""
    layer = SRU(4, return_sequences=True, use_fused_kernel=use_fused_kernel)
    layer(np.ones((2, 3, 4), "float32"))
    assert "KerasNdsru>SruForward" in graph_ops(layer, training=True)
    inference_is_fused = use_fused_kernel is True
    for training in (False, None):
        in_graph = "KerasNdsru>SruForward" in graph_ops(layer, training)
        assert in_graph == inference_is_fused


@pytest.mark.parametrize("use_fused_kernel", ["auto", False])
def test_inference_graphs_hold_no_tensor_lists(use_fused_kernel):
    """Inference graphs run the reference recurrence in its loop without
    TensorLists, which the TFLite converter lowers for a `None` batch and
    length (tests/deploy runs the models); graphs that train on the
    reference keep `tf.scan`, unchanged."""
    layer = SRU(
        4,
        return_sequences=True,
        bidirectional=True,
        use_fused_kernel=use_fused_kernel,
    )
    layer(np.ones((2, 3, 4), "float32"))
    for training in (False, None):
        ops = graph_ops(layer, training)
        assert not any("TensorList" in op for op in ops), ops
    if use_fused_kernel is False:
        assert "TensorListReserve" in graph_ops(layer, training=True)


def graph_ops(layer, training) -> set[str]:
    """Op types of `layer` traced with `training` on a `None` batch and
    length, nested functions included."""
    spec = tf.TensorSpec((None, None, 4), tf.float32)
    graph = tf.function(lambda x: layer(x, training=training))
    graph = graph.get_concrete_function(spec).graph.as_graph_def()
    names = {node.op for node in graph.node}
    for function in graph.library.function:
        names.update(node.op for node in function.node_def)
    return names


def test_tflite_converts_the_default_model_to_builtin_ops():
    """A fixed batch of one and length, as TFLite shapes used to need (a
    `None` batch and length run too: tests/deploy)."""
    model, x = sru_model(), tokens()
    want = np.asarray(model(x))
    fixed = keras.Model(*_with_fixed_input(model, x.shape[1]))
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(fixed).convert()
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner()
    (name,) = runner.get_input_details()
    outputs = [
        next(iter(runner(**{name: row[None]}).values()))[0] for row in x
    ]  # batch of one: the converter fixes the batch size to 1
    np.testing.assert_allclose(np.stack(outputs), want, atol=1e-5)


def _with_fixed_input(model, steps):
    inputs = keras.Input((steps,), dtype="int32", batch_size=1)
    return inputs, model(inputs)
