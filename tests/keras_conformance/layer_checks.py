"""Public-API stand-ins for `keras.src.testing.TestCase` helpers.

`check_serialization` follows `run_class_serialization_test` and
`run_layer_test` follows the layer checks of Keras' `run_layer_test`, with a
`.keras` save/load round trip added; both use only `keras.*` public APIs.
"""

from __future__ import annotations

import json

import keras
import numpy as np


def _config_json(config) -> str:
    return json.dumps(config, sort_keys=True, default=repr)


def check_serialization(instance):
    """`get_config`/`from_config` and `serialize`/`deserialize` round trips
    give the same config and the same attributes; returns the revived object."""
    config_json = _config_json(instance.get_config())
    attributes = set(dir(instance)) - {"__annotations__"}
    revived = type(instance).from_config(instance.get_config())
    assert _config_json(revived.get_config()) == config_json
    assert set(dir(revived)) - {"__annotations__"} == attributes
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(instance)
    assert _config_json(revived.get_config()) == config_json
    assert set(dir(revived)) - {"__annotations__"} == attributes
    return revived


def _expected_shapes(expected) -> list[tuple]:
    """One shape tuple, or a flat sequence of them, as a list of shapes."""
    if all(d is None or isinstance(d, int) for d in expected):
        return [tuple(expected)]
    return [tuple(shape) for shape in expected]


def _assert_shapes(outputs, expected):
    got = [tuple(x.shape) for x in keras.tree.flatten(outputs)]
    want = _expected_shapes(expected)
    assert len(got) == len(want), f"outputs {got}, expected {want}"
    for g, w in zip(got, want):
        assert len(g) == len(w) and all(e is None or e == d for e, d in zip(w, g)), (
            f"output shapes {got}, expected {want}"
        )


class LayerWrapper(keras.Model):
    """A subclassed model around one layer, as Keras' `run_training_step`."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def call(self, x, training=False):
        return self.layer(x, training=training)


def _sum_loss(y_true, y_pred):
    return keras.ops.sum(y_pred)


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_shape: tuple,
    expected_output_shape,
    expected_num_trainable_weights: int,
    expected_num_non_trainable_weights: int = 0,
    expected_num_losses: int | None = None,
    supports_masking: bool | None = None,
    call_kwargs: dict | None = None,
    tmp_path=None,
):
    """Serialization, build, symbolic and eager calls, the training flag and
    masks, one `fit` step, mixed precision and (with `tmp_path`) a `.keras`
    save/load round trip."""
    call_kwargs = call_kwargs or {}
    check_serialization(layer_cls(**init_kwargs))
    if supports_masking is not None:
        assert layer_cls(**init_kwargs).supports_masking == supports_masking

    def check_built(layer):
        assert layer.built
        assert len(layer.trainable_weights) == expected_num_trainable_weights
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    layer = layer_cls(**init_kwargs)
    layer.build(input_shape)
    check_built(layer)

    layer = layer_cls(**init_kwargs)
    symbolic = layer(keras.KerasTensor(input_shape), **call_kwargs)
    check_built(layer)
    _assert_shapes(symbolic, expected_output_shape)
    _assert_shapes(symbolic, layer.compute_output_shape(input_shape))

    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    layer = layer_cls(**init_kwargs)
    outputs = layer(x, **call_kwargs)
    _assert_shapes(outputs, expected_output_shape)
    if expected_num_losses is not None:
        assert len(layer.losses) == expected_num_losses
    check_inference_calls(layer, x, supports_masking)

    # One compiled training step (jit_compile="auto", as Keras' check): the
    # weights must move.
    before = [np.array(w) for w in layer.trainable_weights]
    model = LayerWrapper(layer)
    model.compile(optimizer="sgd", loss=_sum_loss, jit_compile="auto")
    model.fit(x, keras.tree.map_structure(np.asarray, outputs), verbose=0)
    after = [np.array(w) for w in layer.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))

    # Mixed precision: outputs have the dtypes of compute_output_spec and the
    # float weights stay float32.
    layer = layer_cls(**{**init_kwargs, "dtype": "mixed_float16"})
    outputs = layer(x, **call_kwargs)
    spec = layer.compute_output_spec(keras.KerasTensor(input_shape, "float16"))
    for tensor, want in zip(keras.tree.flatten(outputs), keras.tree.flatten(spec)):
        assert keras.backend.standardize_dtype(tensor.dtype) == want.dtype
    for weight in layer.weights:
        if "float" in weight.dtype:
            assert weight.dtype == "float32", weight.path

    if tmp_path is not None:
        check_keras_file_round_trip(layer_cls(**init_kwargs), x, tmp_path)


def check_inference_calls(layer, x, supports_masking):
    """`training=False` is the default and deterministic; an all-valid mask
    changes nothing, and output masks are `None` or `(batch, time)`."""
    plain = keras.tree.flatten(layer(x))
    for call in (layer(x, training=False), layer(x, training=False)):
        for got, want in zip(keras.tree.flatten(call), plain):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    if not supports_masking:
        return
    mask = np.ones(x.shape[:2], bool)
    for got, want in zip(keras.tree.flatten(layer(x, mask=mask)), plain):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
    output_masks = layer.compute_mask(x, mask)
    for output_mask in keras.tree.flatten(output_masks):
        assert output_mask is None or tuple(output_mask.shape) == x.shape[:2]


def check_keras_file_round_trip(layer, x, tmp_path):
    """A functional model around `layer` predicts the same after a `.keras`
    save and load."""
    inputs = keras.Input(batch_shape=x.shape)
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(1)
    for weight in model.trainable_weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    want = keras.tree.flatten(model(x))
    got = keras.tree.flatten(loaded(x))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-6)
