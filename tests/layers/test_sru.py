"""keras_ndsru.SRU against a NumPy transcription of the layer (eqs. (1)-(4))."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_masked_outputs import check_like_keras  # tests/support is on pythonpath
from sru_numpy import layer_numpy

from keras_ndsru import SRU
from keras_ndsru.ops import fused_kernel_status

RIGHT_PADDED = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
RAGGED = np.array([[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)


def randomize(layer, seed=0):
    """Random weights, including the v terms (zero at initialization)."""
    rng = np.random.default_rng(seed)
    for w in layer.trainable_weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(w.dtype))


def make_layer(input_dim, batch=None, **kwargs):
    kwargs.setdefault("dtype", "float64")
    layer = SRU(**kwargs)
    layer.build((batch, None, input_dim))
    randomize(layer)
    return layer


CASES = {
    "forward": dict(units=4),
    "projected_highway": dict(units=3, input_dim=5),
    "backward": dict(units=4, go_backwards=True),
    "bidirectional": dict(units=4, bidirectional=True),
    "bidirectional_backward_projected": dict(
        units=3, input_dim=4, bidirectional=True, go_backwards=True
    ),
    "layer_norm_projection": dict(
        units=4, layer_norm=True, projection_size=2, highway_bias=-1.0
    ),
    "no_rescale_projected": dict(units=2, input_dim=4, rescale=False),
    "forced_highway_projection": dict(units=4, highway_projection=True),
    "bidirectional_forced_projection": dict(
        units=3, bidirectional=True, highway_projection=True
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "mask", [None, RIGHT_PADDED, RAGGED], ids=["no", "right", "ragged"]
)
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "c0"])
def test_outputs_and_state_match_numpy(case, mask, with_state):
    config = dict(CASES[case])
    input_dim = config.pop("input_dim", config["units"])
    layer = make_layer(input_dim, return_sequences=True, return_state=True, **config)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, input_dim))
    c0 = rng.normal(size=(3, layer.output_size)) if with_state else None
    h, c_last = layer(x, initial_state=c0, mask=mask)
    want_h, want_c = layer_numpy(layer, x, mask, c0)
    np.testing.assert_allclose(h, want_h, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c_last, want_c, rtol=1e-10, atol=1e-12)
    layer.return_sequences = False
    h_last, _ = layer(x, initial_state=c0, mask=mask)
    np.testing.assert_allclose(
        h_last, layer_numpy(layer, x, mask, c0)[0], rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_last_output_is_last_valid_step(zero_output_for_mask):
    """Masked steps repeat the last valid output (Keras' default) or are 0;
    either way the last output is the last valid step's (as Keras
    documents: `zero_output_for_mask` only acts on returned sequences)."""
    layer = make_layer(
        4, units=4, return_sequences=True, zero_output_for_mask=zero_output_for_mask
    )
    x = np.random.default_rng(2).normal(size=(3, 5, 4))
    h = np.asarray(layer(x, mask=RIGHT_PADDED))
    if zero_output_for_mask:
        np.testing.assert_array_equal(h[~RIGHT_PADDED], 0.0)
    else:
        np.testing.assert_array_equal(h[1, 2:], np.broadcast_to(h[1, 1], (3, 4)))
        np.testing.assert_array_equal(h[2], 0.0)  # no valid step to repeat
    layer.return_sequences = False
    last = np.asarray(layer(x, mask=RIGHT_PADDED))
    np.testing.assert_allclose(last[0], h[0, 4])
    np.testing.assert_allclose(last[1], h[1, 1])
    np.testing.assert_array_equal(last[2], 0.0)


LEFT_PADDED = np.array([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], bool)
GAPS = np.array([[0, 1, 0, 1, 0], [1, 1, 0, 0, 1], [1, 0, 0, 0, 0]], bool)
MASKED_OUTPUT_CASES = {
    "forward": dict(),
    "go_backwards": dict(go_backwards=True),
    "bidirectional": dict(bidirectional=True),
    "bidirectional_go_backwards": dict(bidirectional=True, go_backwards=True),
}


def masked_output_layer(case, zero_output_for_mask, use_fused_kernel):
    return make_layer(
        3,
        units=3,
        return_sequences=True,
        zero_output_for_mask=zero_output_for_mask,
        use_fused_kernel=use_fused_kernel,
        dtype="float32",
        **MASKED_OUTPUT_CASES[case],
    )


@pytest.mark.parametrize("case", MASKED_OUTPUT_CASES)
@pytest.mark.parametrize(
    "mask", [RIGHT_PADDED, LEFT_PADDED, GAPS], ids=["right", "left", "gaps"]
)
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("use_fused_kernel", ["auto", False])
def test_masked_steps_follow_keras_lstm(
    case, mask, zero_output_for_mask, use_fused_kernel
):
    """At masked steps of a returned sequence, SRU outputs exactly what
    Keras' LSTM outputs on the same mask (read off Keras' layers:
    tests/support/keras_masked_outputs.py), per direction, for every mask
    pattern; valid steps equal the NumPy oracle. "auto" runs right-padded
    masks on the fused op when it is built, the others on the reference."""
    layer = masked_output_layer(case, zero_output_for_mask, use_fused_kernel)
    x = np.random.default_rng(8).normal(size=(3, 5, 3)).astype("float32")
    check_like_keras(layer, keras.layers.LSTM, x, mask)
    np.testing.assert_allclose(
        layer(x, mask=mask), layer_numpy(layer, x, mask)[0], rtol=1e-5, atol=1e-6
    )


def test_zero_output_for_mask_defaults_as_keras():
    """False, as `keras.layers.LSTM`; True for a bidirectional layer that
    returns sequences, as `keras.layers.Bidirectional` sets on its layers,
    so that `SRU(bidirectional=True)` equals `Bidirectional(SRU)`."""
    assert SRU(4).zero_output_for_mask is False
    assert SRU(4, return_sequences=True).zero_output_for_mask is False
    assert SRU(4, bidirectional=True).zero_output_for_mask is False
    both = SRU(4, bidirectional=True, return_sequences=True)
    assert both.zero_output_for_mask is True
    assert keras.layers.LSTM(4).zero_output_for_mask is False
    wrapper = keras.layers.Bidirectional(SRU(4, return_sequences=True))
    assert wrapper.forward_layer.zero_output_for_mask is True
    assert wrapper.backward_layer.zero_output_for_mask is True
    explicit = SRU(
        4, bidirectional=True, return_sequences=True, zero_output_for_mask=False
    )
    assert explicit.zero_output_for_mask is False


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_masked_steps_on_the_fused_op(zero_output_for_mask):
    """The fused op (right-padded masks) and the reference give the same
    outputs and gradients when masked steps repeat the last valid output."""
    if fused_kernel_status().path != "fused":
        pytest.skip(f"fused op unavailable: {fused_kernel_status().reason}")
    x = tf.constant(np.random.default_rng(9).normal(size=(3, 5, 3)), tf.float32)
    for case in MASKED_OUTPUT_CASES:
        results = []
        for path in (True, False):
            layer = masked_output_layer(case, zero_output_for_mask, path)
            with tf.GradientTape() as tape:
                tape.watch(x)
                h = layer(x, mask=RIGHT_PADDED)
                loss = tf.reduce_sum(h * h)
            grads = tape.gradient(loss, [x, *layer.trainable_weights])
            results.append([h, *grads])
        for got, want in zip(*results):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        dict(units=2, input_dim=3, bidirectional=True, go_backwards=True),
        dict(units=3, input_dim=3, layer_norm=True, projection_size=2),
    ],
    ids=["bidirectional_projected", "layer_norm_projection"],
)
def test_gradients_match_numeric_differences_float64(config):
    config = dict(config)
    input_dim = config.pop("input_dim")
    layer = make_layer(input_dim, return_sequences=True, return_state=True, **config)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, input_dim))
    c0 = rng.normal(size=(2, layer.output_size))
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
    w_h = rng.normal(size=(2, 4, layer.output_size))
    w_c = rng.normal(size=(2, layer.output_size))

    def numpy_loss():
        h, c_last = layer_numpy(layer, x_var.numpy(), mask, c0)
        return np.sum(h * w_h) + np.sum(c_last * w_c)

    x_var = tf.Variable(x)
    variables = [x_var, *layer.trainable_weights]
    with tf.GradientTape() as tape:
        h, c_last = layer(x_var, initial_state=c0, mask=mask)
        loss = tf.reduce_sum(h * w_h) + tf.reduce_sum(c_last * w_c)
    np.testing.assert_allclose(loss, numpy_loss(), rtol=1e-10)
    grads = tape.gradient(loss, variables)
    eps = 1e-6
    for variable, grad in zip(variables, grads):
        value = variable.numpy()
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = value.copy()
            shifted[index] += eps
            variable.assign(shifted)
            plus = numpy_loss()
            shifted[index] -= 2 * eps
            variable.assign(shifted)
            numeric[index] = (plus - numpy_loss()) / (2 * eps)
        variable.assign(value)
        np.testing.assert_allclose(
            grad, numeric, rtol=1e-6, atol=1e-7, err_msg=variable.name
        )


@pytest.mark.parametrize("return_state", [False, True])
def test_inside_keras_bidirectional_wrapper(return_state):
    inner = SRU(3, return_sequences=True, return_state=return_state, dtype="float64")
    wrapper = keras.layers.Bidirectional(inner, dtype="float64")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 5, 2))
    wrapper(x)  # builds
    randomize(wrapper.forward_layer, seed=1)
    randomize(wrapper.backward_layer, seed=2)
    out = wrapper(x, mask=RIGHT_PADDED)
    forward, c_f = layer_numpy(wrapper.forward_layer, x, RIGHT_PADDED)
    backward, c_b = layer_numpy(wrapper.backward_layer, x, RIGHT_PADDED)
    want = np.concatenate([forward, backward[:, ::-1]], axis=-1)
    if return_state:
        out, state_f, state_b = out
        np.testing.assert_allclose(state_f, c_f, rtol=1e-10)
        np.testing.assert_allclose(state_b, c_b, rtol=1e-10)
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    clone = keras.layers.Bidirectional.from_config(wrapper.get_config())
    assert clone.backward_layer.go_backwards
    assert clone.forward_layer.get_config()["units"] == 3


@pytest.mark.parametrize("bidirectional_wrapper", [False, True])
def test_return_state_is_a_tuple_like_keras_lstm(bidirectional_wrapper):
    """Keras 3 RNN layers return `(output, *states)` as a tuple, eagerly and
    symbolically; so do SRU and a `Bidirectional` SRU."""

    def wrap(layer):
        return keras.layers.Bidirectional(layer) if bidirectional_wrapper else layer

    x = np.zeros((2, 3, 4), "float32")
    for layer_class in (keras.layers.LSTM, SRU):
        eager = wrap(layer_class(4, return_state=True))(x)
        symbolic = wrap(layer_class(4, return_state=True))(keras.Input((3, 4)))
        for outputs in (eager, symbolic):
            assert type(outputs) is tuple, (layer_class, type(outputs))
    sru = SRU(4, return_state=True)
    shapes = sru.compute_output_shape((2, 3, 4))
    assert type(shapes) is tuple and shapes == ((2, 4), (2, 4))
    output, state = sru(x)
    assert tuple(output.shape) == (2, 4) and tuple(state.shape) == (2, 4)


def test_return_state_outputs_feed_tf_data_from_generator():
    """A generator of layer outputs, as `tf.data` expects them (tuples)."""
    layer = SRU(3, return_state=True)
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    spec = (
        tf.TensorSpec((2, 3), tf.float32),
        tf.TensorSpec((2, 3), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(
        lambda: iter([layer(x)]), output_signature=spec
    )
    output, state = next(iter(dataset))
    want_output, want_state = layer(x)
    np.testing.assert_allclose(output, want_output)
    np.testing.assert_allclose(state, want_state)


def test_one_layer_bidirectional_equals_the_wrapper():
    x = np.random.default_rng(5).normal(size=(3, 5, 4))
    wrapper = keras.layers.Bidirectional(SRU(4, return_sequences=True))
    wrapper(x)
    randomize(wrapper.forward_layer, 1)
    randomize(wrapper.backward_layer, 2)
    both = SRU(4, return_sequences=True, bidirectional=True)
    both(x)
    fwd, bwd = wrapper.forward_layer, wrapper.backward_layer
    for name in ("kernel", "weight_c", "bias"):
        axis = 1 if name == "kernel" else 0
        value = np.concatenate([getattr(fwd, name), getattr(bwd, name)], axis=axis)
        getattr(both, name).assign(value)
    for mask in (None, RIGHT_PADDED):
        np.testing.assert_allclose(
            both(x, mask=mask), wrapper(x, mask=mask), rtol=1e-5, atol=1e-6
        )


def test_embedding_masks_propagate_through_stacked_layers():
    tokens = np.array([[3, 1, 4, 1, 5], [9, 2, 0, 0, 0], [6, 0, 0, 0, 0]])
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True, dtype="float64")(inputs)
    first = SRU(4, return_sequences=True, dtype="float64")
    second = SRU(3, go_backwards=True, dtype="float64")
    model = keras.Model(inputs, second(first(embedded)))
    randomize(first, 1)
    randomize(second, 2)
    mask = tokens != 0
    vectors = model.layers[1].embeddings.numpy()[tokens]
    hidden, _ = layer_numpy(first, vectors, mask)
    want, _ = layer_numpy(second, hidden, mask)
    np.testing.assert_allclose(model(tokens), want, rtol=1e-10, atol=1e-12)
    mask_out = first.compute_mask(vectors, tf.constant(mask))
    np.testing.assert_array_equal(mask_out, mask)
    assert second.compute_mask(vectors, tf.constant(mask)) is None


def test_stateful_carries_state_across_batches_and_resets():
    layer = make_layer(4, batch=2, units=4, stateful=True, return_sequences=True)
    rng = np.random.default_rng(6)
    x1, x2 = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    h1 = layer(x1)
    h2 = layer(x2)
    whole, _ = layer_numpy(layer, np.concatenate([x1, x2], axis=1))
    np.testing.assert_allclose(np.concatenate([h1, h2], axis=1), whole, rtol=1e-10)
    layer.reset_state()
    np.testing.assert_array_equal(layer.states[0], 0.0)
    np.testing.assert_allclose(layer(x2), layer_numpy(layer, x2)[0], rtol=1e-10)
    layer.reset_states()
    with pytest.raises(ValueError, match="Received: batch_size=3"):
        layer(rng.normal(size=(3, 5, 4)))
    with pytest.raises(ValueError, match="fixed batch size"):
        SRU(4, stateful=True).build((None, 5, 4))


def test_stateful_bidirectional_wrapper_resets():
    inputs = keras.Input(batch_shape=(2, None, 3))
    wrapper = keras.layers.Bidirectional(SRU(3, stateful=True))
    model = keras.Model(inputs, wrapper(inputs))
    x = np.random.default_rng(7).normal(size=(2, 4, 3)).astype("float32")
    first = model(x)
    assert not np.allclose(model(x), first)
    model.layers[1].reset_state()
    np.testing.assert_allclose(model(x), first, rtol=1e-6)


def test_dropout_one_mask_per_sequence_and_reproducible():
    # W = identity, f ~ 0 and r ~ 1 make h_t = c_t = dropped x_t.
    units = 6
    kwargs = dict(units=units, return_sequences=True, dropout=0.5, seed=3)
    layer = make_layer(units, **kwargs)
    kernel = np.zeros((units, 3 * units))
    kernel[:, :units] = np.eye(units)
    layer.kernel.assign(kernel)
    layer.weight_c.assign(np.zeros(2 * units))
    layer.bias.assign(np.concatenate([np.full(units, -40.0), np.full(units, 40.0)]))
    x = np.ones((8, 5, units))
    h = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(h, np.broadcast_to(h[:, :1], h.shape), atol=1e-12)
    values = np.round(h, 8)
    assert set(np.unique(values)) == {0.0, 2.0}
    assert len({tuple(row) for row in values[:, 0]}) > 1  # a mask per sequence
    np.testing.assert_allclose(layer(x, training=False), x, atol=1e-12)
    twin = make_layer(units, **kwargs)
    twin.set_weights(layer.get_weights())
    np.testing.assert_array_equal(twin(x, training=True), h)
    other = make_layer(units, **{**kwargs, "seed": 4})
    other.set_weights(layer.get_weights())
    assert not np.array_equal(other(x, training=True), h)


def _full_config_layer():
    return SRU(
        5,
        return_sequences=True,
        return_state=False,
        go_backwards=True,
        stateful=False,
        highway_bias=-2.0,
        rescale=False,
        dropout=0.25,
        layer_norm=True,
        projection_size=3,
        bidirectional=True,
        highway_projection=True,
        zero_output_for_mask=False,
        use_fused_kernel=False,
        seed=11,
        kernel_initializer="orthogonal",
        weight_c_initializer=keras.initializers.RandomUniform(-0.5, 0.5),
        bias_initializer="ones",
        kernel_regularizer="l2",
        weight_c_regularizer=keras.regularizers.L1(0.1),
        bias_regularizer="l1",
        kernel_constraint="max_norm",
        weight_c_constraint="non_neg",
        bias_constraint=keras.constraints.MaxNorm(2.0),
        name="full",
    )


def test_get_config_round_trips_every_argument():
    layer = _full_config_layer()
    config = layer.get_config()
    clone = SRU.from_config(config)
    assert clone.get_config() == config
    for key, value in dict(units=5, highway_bias=-2.0, projection_size=3).items():
        assert config[key] == value
    assert config["use_fused_kernel"] is False and config["seed"] == 11
    assert config["zero_output_for_mask"] is False
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, SRU) and restored.get_config() == config
    assert SRU.from_config(SRU(4).get_config()).use_fused_kernel == "auto"


def test_bias_starts_at_highway_bias():
    layer = SRU(3, highway_bias=-1.5, bidirectional=True)
    layer.build((None, None, 3))
    want = np.tile(np.concatenate([np.zeros(3), np.full(3, -1.5)]), 2)
    np.testing.assert_allclose(layer.bias, want)
    np.testing.assert_allclose(layer.weight_c, 0.0)
    assert abs(layer.alpha - np.sqrt(1 + 2 * np.exp(-1.5))) < 1e-12


def _model(use_fused_kernel="auto"):
    inputs = keras.Input((None, 4))
    x = keras.layers.Masking()(inputs)
    x = SRU(
        6,
        return_sequences=True,
        bidirectional=True,
        layer_norm=True,
        use_fused_kernel=use_fused_kernel,
    )(x)
    x = SRU(5, projection_size=3, highway_bias=-1.0, use_fused_kernel=use_fused_kernel)(
        x
    )
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    for layer in model.layers[2:4]:
        randomize(layer)
    return model


def test_keras_file_save_and_load(tmp_path):
    model = _model()
    x = np.random.default_rng(8).normal(size=(3, 5, 4)).astype("float32")
    x[1, 3:] = 0.0  # padded, masked by Masking
    path = tmp_path / "sru.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    # predict runs the reference recurrence, the eager call the fused op.
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model(x), rtol=1e-5, atol=1e-6
    )


def test_mixed_precision_matmul_in_float16_state_in_float32():
    layer = SRU(4, return_sequences=True, return_state=True, dtype="mixed_float16")
    layer.build((None, None, 4))
    randomize(layer)
    x = np.random.default_rng(10).normal(size=(3, 5, 4)).astype("float32")
    h, c_last = layer(x, mask=RIGHT_PADDED)
    assert h.dtype == "float16" and c_last.dtype == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)
    want_h, want_c = layer_numpy(layer, x, RIGHT_PADDED)
    np.testing.assert_allclose(np.asarray(h, np.float64), want_h, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(c_last, want_c, rtol=2e-2, atol=2e-2)
    inputs = keras.Input((None, 4))
    outputs = SRU(4, return_state=True, dtype="mixed_float16")(inputs)
    assert outputs[0].dtype == "float16" and outputs[1].dtype == "float32"


def test_tf_function_and_xla_match_eager():
    layer = make_layer(
        3, units=4, bidirectional=True, dtype="float32", use_fused_kernel=False
    )
    assert layer.supports_jit
    x = np.random.default_rng(11).normal(size=(3, 5, 3)).astype("float32")
    eager = layer(x, mask=RIGHT_PADDED)
    for jit in (False, True):
        compiled = tf.function(lambda x: layer(x, mask=RIGHT_PADDED), jit_compile=jit)
        np.testing.assert_allclose(compiled(x), eager, rtol=1e-5, atol=1e-6)


def test_fused_path_flags_jit_and_strict_mode():
    fused = fused_kernel_status().path == "fused"
    assert SRU(4).supports_jit is not fused
    if fused:
        assert SRU(4, use_fused_kernel=True).supports_jit is False
    else:
        with pytest.raises(RuntimeError, match="use_fused_kernel=True"):
            SRU(4, use_fused_kernel=True)


@pytest.mark.parametrize("case", ["forward", "bidirectional_backward_projected"])
def test_fused_op_matches_reference_outputs_and_gradients(case):
    if fused_kernel_status().path != "fused":
        pytest.skip(f"fused op unavailable: {fused_kernel_status().reason}")
    config = dict(CASES[case])
    input_dim = config.pop("input_dim", config["units"])
    kwargs = dict(return_sequences=True, return_state=True, dtype="float32", **config)
    fused = make_layer(input_dim, use_fused_kernel=True, **kwargs)
    reference = make_layer(input_dim, use_fused_kernel=False, **kwargs)
    rng = np.random.default_rng(13)
    x = tf.constant(rng.normal(size=(3, 5, input_dim)).astype("float32"))
    c0 = rng.normal(size=(3, fused.output_size)).astype("float32")
    results = []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            h, c_last = layer(x, initial_state=c0, mask=RIGHT_PADDED)
            loss = tf.reduce_sum(h * h) + tf.reduce_sum(c_last)
        results.append([h, c_last, *tape.gradient(loss, [x, *layer.trainable_weights])])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(units=0), "Received: units=0"),
        (dict(units=-3), "Received: units=-3"),
        (dict(units=2.5), "Received: units=2.5"),
        (dict(units=4, dropout=1.0), "Received: dropout=1.0"),
        (dict(units=4, projection_size=0), "Received: projection_size=0"),
        (dict(units=4, use_fused_kernel="yes"), "Received: use_fused_kernel='yes'"),
        (dict(units=4, highway_bias=float("nan")), "Received: highway_bias=nan"),
        (dict(units=4, highway_bias=1e39, rescale=False), "highway_bias=1e\\+39"),
        # alpha = sqrt(1 + 2 exp(b)) overflows float32 from b = 176.7526 on,
        # and math.exp itself from b = 709.8.
        (dict(units=4, highway_bias=176.76), "Received: highway_bias=176.76"),
        (dict(units=4, highway_bias=710.0), "Received: highway_bias=710.0"),
        # An int too large for a float: a ValueError, not an OverflowError.
        (
            dict(units=4, highway_bias=10**400, rescale=False),
            "Received: highway_bias=1",
        ),
        (dict(units=4, seed=1.5), "Received: seed=1.5"),
        (
            dict(units=4, highway_projection="yes"),
            "Received: highway_projection='yes'",
        ),
        (
            dict(units=4, zero_output_for_mask="yes"),
            "Received: zero_output_for_mask='yes'",
        ),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SRU(**kwargs)


def test_highway_projection_false_needs_input_size_equal_to_units():
    layer = SRU(4, highway_projection=False)
    with pytest.raises(ValueError, match="Received: highway_projection=False"):
        layer.build((None, None, 5))
    layer = SRU(4, highway_projection=False)
    layer.build((None, None, 4))
    assert layer.kernel.shape == (4, 12)  # no W_h blocks
    layer = SRU(4, highway_projection=True, bidirectional=True)
    layer.build((None, None, 4))
    assert layer.kernel.shape == (4, 32)  # 2 directions x [W W_f W_r W_h]


def test_overflowing_highway_bias_is_rejected_on_construction_and_from_config():
    config = SRU(4, highway_bias=200.0, rescale=False).get_config()
    assert SRU.from_config(config).get_config() == config  # no alpha: fine
    config["rescale"] = True
    # Keras' from_config re-raises the constructor's ValueError as TypeError.
    with pytest.raises(TypeError, match="rescale=True: .*highway_bias=200.0"):
        SRU.from_config(config)
    layer = SRU(4)
    layer.highway_bias = 1000.0  # set after construction: still a clear error
    with pytest.raises(ValueError, match="Received: highway_bias=1000.0"):
        _ = layer.alpha


@pytest.mark.parametrize("use_fused_kernel", [False, True], ids=["keras", "fused"])
def test_largest_accepted_highway_bias_gives_finite_outputs(use_fused_kernel):
    if use_fused_kernel and fused_kernel_status().path != "fused":
        pytest.skip(f"fused op unavailable: {fused_kernel_status().reason}")
    highway_bias = 176.75
    layer = SRU(
        3,
        highway_bias=highway_bias,
        return_sequences=True,
        return_state=True,
        use_fused_kernel=use_fused_kernel,
    )
    alpha = np.sqrt(1 + 2 * np.exp(highway_bias))
    assert layer.alpha == alpha and np.isfinite(np.float32(alpha))
    assert SRU.from_config(layer.get_config()).get_config() == layer.get_config()
    layer.build((None, None, 3))
    rng = np.random.default_rng(5)
    layer.weight_c.assign(rng.normal(scale=0.5, size=6))  # b_r stays at 176.75
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    # r = sigmoid(~176.75) = 1: the highway term is 0 * x * alpha, which is
    # 0 with a finite float32 alpha and NaN with an overflowed one.
    h, c_last = layer(x, mask=RIGHT_PADDED[:2, :4])
    want_h, want_c = layer_numpy(layer, x, RIGHT_PADDED[:2, :4])
    assert np.all(np.isfinite(h)) and np.all(np.isfinite(c_last))
    np.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_last, want_c, rtol=1e-5, atol=1e-6)


def test_highway_bias_initializes_b_r_unrounded_in_float64():
    layer = SRU(2, highway_bias=-1.3, dtype="float64")
    layer.build((None, None, 2))
    assert np.asarray(layer.bias)[2:].tolist() == [-1.3, -1.3]


def test_bad_inputs_are_clear_errors():
    layer = SRU(4)
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        layer(np.zeros((2, 4), "float32"))
    layer = SRU(4, bidirectional=True)
    x = np.zeros((2, 5, 4), "float32")
    with pytest.raises(ValueError, match=r"initial_state.shape=\(2, 4\)"):
        layer(x, initial_state=np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"initial_state.shape=\(3, 8\)"):
        layer(x, initial_state=np.zeros((3, 8), "float32"))
    with pytest.raises(ValueError, match="list of one tensor"):
        layer(x, initial_state=[np.zeros((2, 4), "float32")] * 2)
    with pytest.raises(ValueError, match=r"mask.shape=\(2, 4\)"):
        layer(x, mask=np.ones((2, 4), bool))
    with pytest.raises(
        ValueError, match="expected axis -1 of input shape to have value 4"
    ):
        layer(np.zeros((2, 5, 3), "float32"))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_empty_sequences_and_empty_batches(bidirectional):
    layer = make_layer(
        3,
        units=4,
        bidirectional=bidirectional,
        return_sequences=True,
        return_state=True,
    )
    size = layer.output_size
    c0 = np.random.default_rng(12).normal(size=(2, size))
    h, c_last = layer(np.zeros((2, 0, 3)), initial_state=c0)
    assert tuple(h.shape) == (2, 0, size)
    np.testing.assert_allclose(c_last, c0)
    layer.return_sequences = False
    h_last, _ = layer(np.zeros((2, 0, 3)))
    np.testing.assert_array_equal(h_last, np.zeros((2, size)))
    h_last, c_last = layer(np.zeros((0, 5, 3)))
    assert tuple(h_last.shape) == (0, size) and tuple(c_last.shape) == (0, size)
    # Length 0 known only at run time (a graph with an unknown time axis).
    graph = tf.function(
        lambda x, c: layer(x, initial_state=c),
        input_signature=[
            tf.TensorSpec((None, None, 3), "float64"),
            tf.TensorSpec((None, size), "float64"),
        ],
    )
    h_last, c_last = graph(np.zeros((2, 0, 3)), c0)
    np.testing.assert_array_equal(h_last, np.zeros((2, size)))
    np.testing.assert_allclose(c_last, c0)
