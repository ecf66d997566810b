"""NDAdam against an independent NumPy transcription of Algorithm 1."""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from backend_subprocess import run_json  # tests/ is on pythonpath (pyproject)
from ndadam_numpy import NumpyNDAdam

from keras_ndsru.optimizers import NDAdam, vector_axes_for_model

HERE = Path(__file__).resolve().parent

LAYERS = keras.layers


def small_model(seed=0, transpose_name="conv2d_transpose"):
    """Dense, Conv2D, Conv2DTranspose and BatchNormalization."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            LAYERS.Conv2D(3, 3, padding="same", use_bias=False),
            LAYERS.BatchNormalization(),
            LAYERS.ReLU(),
            LAYERS.Conv2DTranspose(2, 3, name=transpose_name),
            LAYERS.Flatten(),
            LAYERS.Dense(4, activation="tanh"),
            LAYERS.Dense(2),
        ]
    )


def data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 2)).astype("float32")
    y = rng.normal(size=(n, 2)).astype("float32")
    return x, y


def grads_of(model, x, y):
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.square(model(x, training=True) - y))
    return tape.gradient(loss, model.trainable_variables)


def unit_norm_error(optimizer):
    errors = [
        np.max(np.abs(np.sqrt(np.sum(np.asarray(v) ** 2, axis=a)) - 1.0))
        for v, a in optimizer.vector_variables
    ]
    return max(errors)


def expected_axes(model):
    """Axes each weight vector of `small_model` spans, written out by hand from
    the Keras kernel layouts (independent of nd_adam's rules)."""
    conv, _, _, up, _, dense, dense_1 = model.layers
    return {
        conv.kernel.path: (0, 1, 2),  # (kh, kw, in, out): one vector per filter
        up.kernel.path: (0, 1, 3),  # (kh, kw, out, in): one per output channel
        dense.kernel.path: (0,),  # (in, out): one per column
        dense_1.kernel.path: (0,),
    }


def reference_inputs(model):
    """(paths, axes, initial values) of `small_model`'s trainable variables,
    keyed by path, for `NumpyNDAdam`."""
    paths = [v.path for v in model.trainable_variables]
    expected = expected_axes(model)
    axes = {p: expected.get(p) for p in paths}
    initial = {p: np.asarray(v) for p, v in zip(paths, model.trainable_variables)}
    return paths, axes, initial


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf_function"])
def test_matches_numpy_algorithm_1_every_variable_every_step(traced):
    model, (x, y) = small_model(), data()
    paths, axes, initial = reference_inputs(model)
    optimizer = NDAdam(learning_rate=0.01, vector_learning_rate=0.05)
    optimizer.build(model.trainable_variables)
    reference = NumpyNDAdam(initial, axes, lr_s=0.01, lr_v=0.05)

    assert {v.path: a for v, a in optimizer.vector_variables} == expected_axes(model)
    # Traced (model.fit without XLA): the fused TF norm and the lowered cond.
    variables = model.trainable_variables
    apply = lambda grads: optimizer.apply(grads, variables)  # noqa: E731
    apply = tf.function(apply) if traced else apply
    for _ in range(5):
        grads = grads_of(model, x, y)
        reference.step({p: np.asarray(g) for p, g in zip(paths, grads)})
        apply(grads)
        for p, variable in zip(paths, model.trainable_variables):
            np.testing.assert_allclose(
                np.asarray(variable), reference.w[p], atol=2e-6, err_msg=p
            )
            i = optimizer._get_variable_index(variable)
            np.testing.assert_allclose(
                np.asarray(optimizer._momentums[i]),
                reference.m[p],
                atol=1e-6,
                err_msg=p,
            )
            np.testing.assert_allclose(
                np.asarray(optimizer._velocities[i]),
                reference.v[p],
                rtol=1e-4,
                atol=1e-9,
            )
        assert unit_norm_error(optimizer) < 1e-6


def test_state_shapes_one_scalar_per_vector():
    model = small_model()
    optimizer = NDAdam()
    optimizer.build(model.trainable_variables)
    for variable, axes in optimizer.vector_variables:
        i = optimizer._get_variable_index(variable)
        velocity = optimizer._velocities[i]
        assert optimizer._momentums[i].shape == variable.shape
        expected = tuple(1 if k in axes else d for k, d in enumerate(variable.shape))
        assert velocity.shape == expected and velocity.dtype == "float32"
    for variable in optimizer.scalar_variables:
        assert (
            optimizer._velocities[optimizer._get_variable_index(variable)].shape
            == variable.shape
        )
    # conv2d: 3 filters, conv2d_transpose: 2 output channels, dense: 4 + 2 units
    n_vectors = sum(
        math.prod(optimizer._velocities[optimizer._get_variable_index(v)].shape)
        for v, _ in optimizer.vector_variables
    )
    assert n_vectors == 3 + 2 + 4 + 2


def test_theta_s_is_keras_adam():
    keras.utils.set_random_seed(3)
    layers = [
        keras.Input((5,)),
        LAYERS.Dense(4),
        LAYERS.BatchNormalization(),
        LAYERS.Dense(1),
    ]
    model_a = keras.Sequential(layers)
    model_b = keras.models.clone_model(model_a)
    model_b.set_weights(model_a.get_weights())
    nd = NDAdam(learning_rate=0.01, vector_variables=[])  # nothing is a vector
    adam = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-8)
    x, y = np.random.default_rng(0).normal(size=(2, 16, 5)).astype("float32")
    y = y[:, :1]
    for _ in range(4):
        nd.apply(grads_of_dense(model_a, x, y), model_a.trainable_variables)
        adam.apply(grads_of_dense(model_b, x, y), model_b.trainable_variables)
    assert nd.vector_variables == []
    for a, b in zip(model_a.trainable_variables, model_b.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def grads_of_dense(model, x, y):
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.square(model(x, training=True) - y))
    return tape.gradient(loss, model.trainable_variables)


def test_fit_with_jit_compile_matches_eager_steps():
    x, y = data(n=8)
    model_fit, model_loop = small_model(seed=5), small_model(seed=5)
    opt_fit, opt_loop = NDAdam(learning_rate=0.01), NDAdam(learning_rate=0.01)
    model_fit.compile(optimizer=opt_fit, loss="mse", jit_compile=True)
    model_fit.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    opt_loop.build(model_loop.trainable_variables)
    for _ in range(3):
        opt_loop.apply(grads_of(model_loop, x, y), model_loop.trainable_variables)
    for a, b in zip(model_fit.trainable_variables, model_loop.trainable_variables):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), atol=2e-5, err_msg=a.path
        )
    assert unit_norm_error(opt_fit) < 1e-6


# -- partition ---------------------------------------------------------------


def test_user_overrides_patterns_and_variables():
    model = small_model()
    conv, _, _, up, _, dense, dense_1 = model.layers
    opt = NDAdam(exclude_from_vectors=[f"{conv.name}/", dense_1.kernel])
    opt.build(model.trainable_variables)
    assert {v.path for v, _ in opt.vector_variables} == {
        up.kernel.path,
        dense.kernel.path,
    }

    dense.bias.assign(np.ones(dense.bias.shape))  # a zero vector cannot be normalized
    only = NDAdam(vector_variables=[f"{dense_1.name}/kernel", dense.bias])
    only.build(model.trainable_variables)
    assert {v.path: a for v, a in only.vector_variables} == {
        dense_1.kernel.path: (0,),
        dense.bias.path: (0,),
    }
    explicit = NDAdam(vector_axes={dense.kernel.path: [1], conv.kernel.path: None})
    explicit.build(model.trainable_variables)
    got = {v.path: a for v, a in explicit.vector_variables}
    assert got[dense.kernel.path] == (1,)
    assert conv.kernel.path not in got


def test_weight_decay_only_on_theta_s():
    model = keras.Sequential(
        [keras.Input((3,)), LAYERS.Dense(2, bias_initializer="ones")]
    )
    opt = NDAdam(learning_rate=0.1, weight_decay=0.5)
    opt.build(model.trainable_variables)
    kernel_before = np.asarray(model.layers[0].kernel)
    zeros = [keras.ops.zeros_like(v) for v in model.trainable_variables]
    opt.apply(zeros, model.trainable_variables)
    np.testing.assert_allclose(
        np.asarray(model.layers[0].kernel), kernel_before, atol=1e-7
    )
    np.testing.assert_allclose(
        np.asarray(model.layers[0].bias), 1 - 0.5 * 0.1, rtol=1e-6
    )


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf_function"])
def test_non_finite_gradient_never_gives_nan_weights(traced):
    model = keras.Sequential([keras.Input((3,)), LAYERS.Dense(2)])
    opt = NDAdam()
    opt.build(model.trainable_variables)
    kernel = model.layers[0].kernel
    before = np.asarray(kernel)
    grad = np.ones((3, 2), "float32")
    grad[1, 0] = np.nan
    variables = model.trainable_variables
    apply = lambda grads: opt.apply(grads, variables)  # noqa: E731
    apply = tf.function(apply) if traced else apply
    apply([tf.constant(grad), tf.zeros(2)])
    after = np.asarray(kernel)
    assert np.all(np.isfinite(after))
    np.testing.assert_allclose(after[:, 0], before[:, 0], atol=1e-7)  # skipped vector
    assert np.max(np.abs(after[:, 1] - before[:, 1])) > 1e-3  # healthy vector moved
    assert np.all(np.isfinite(np.asarray(opt._momentums[0])))


def test_zero_vector_at_build_is_a_clear_error():
    model = keras.Sequential(
        [keras.Input((3,)), LAYERS.Dense(2, kernel_initializer="zeros")]
    )
    with pytest.raises(ValueError, match="zero or non-finite vector"):
        NDAdam().build(model.trainable_variables)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta_1": 1.0}, "beta_1"),
        ({"beta_2": -0.1}, "beta_2"),
        ({"epsilon": 0}, "epsilon"),
        ({"vector_learning_rate": -1.0}, "vector_learning_rate"),
        ({"vector_learning_rate": "fast"}, "vector_learning_rate"),
        ({"vector_learning_rate": math.inf}, "vector_learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"vector_variables": "kernel"}, "vector_variables"),
        ({"exclude_from_vectors": [3]}, "exclude_from_vectors"),
        ({"vector_axes": ["kernel"]}, "vector_axes"),
        ({"vector_axes": {"dense/kernel": []}}, "vector_axes"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        NDAdam(**kwargs)
    assert "Received" in str(info.value)


def test_axis_out_of_range():
    model = keras.Sequential([keras.Input((3,)), LAYERS.Dense(2)])
    with pytest.raises(ValueError, match="outside the variable's rank"):
        NDAdam(vector_axes={model.layers[0].kernel.path: [2]}).build(
            model.trainable_variables
        )


# -- schedules, serialization, resume ------------------------------------------


def test_schedules_for_both_learning_rates():
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((3,)), LAYERS.Dense(2)])
    cosine = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=4)
    decay = keras.optimizers.schedules.ExponentialDecay(
        0.01, decay_steps=1, decay_rate=0.5
    )
    opt = NDAdam(learning_rate=decay, vector_learning_rate=cosine)
    paths = ["kernel", "bias"]
    reference = NumpyNDAdam(
        {p: np.asarray(v) for p, v in zip(paths, model.trainable_variables)},
        {"kernel": (0,), "bias": None},
        lr_s=lambda t: 0.01 * 0.5**t,
        lr_v=lambda t: 0.1 * 0.5 * (1 + math.cos(math.pi * min(t, 4) / 4)),
    )
    opt.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    for _ in range(4):
        grads = [
            rng.normal(size=v.shape).astype("float32")
            for v in model.trainable_variables
        ]
        reference.step(dict(zip(paths, grads)))
        opt.apply(grads, model.trainable_variables)
    for p, v in zip(paths, model.trainable_variables):
        np.testing.assert_allclose(np.asarray(v), reference.w[p], atol=2e-6)


def test_config_round_trip():
    cosine = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=100)
    opt = NDAdam(
        learning_rate=0.002,
        vector_learning_rate=cosine,
        beta_1=0.8,
        beta_2=0.99,
        epsilon=1e-6,
        weight_decay=0.01,
        exclude_from_vectors=["bias"],
        vector_axes={"a/kernel": [0, 1]},
        clipnorm=1.0,
        use_ema=True,
        gradient_accumulation_steps=2,
    )
    config = opt.get_config()
    again = NDAdam.from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    assert isinstance(
        again._vector_learning_rate, keras.optimizers.schedules.CosineDecay
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored, NDAdam) and restored.get_config() == config
    float_rate = NDAdam(vector_learning_rate=0.07).get_config()["vector_learning_rate"]
    assert float_rate == pytest.approx(0.07)


def test_save_load_resumes_with_the_same_next_step(tmp_path):
    x, y = data(n=16)
    model = small_model(seed=2, transpose_name="up")
    model.compile(
        optimizer=NDAdam(learning_rate=0.01, vector_axes=vector_axes_for_model(model)),
        loss="mse",
    )
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, NDAdam)

    def short(optimizer):  # the outer model's path prefix changes on load
        return [
            ("/".join(v.path.split("/")[-2:]), a) for v, a in optimizer.vector_variables
        ]

    assert short(loaded.optimizer) == short(model.optimizer)
    loaded_axes = {v.path: a for v, a in loaded.optimizer.vector_variables}
    assert loaded_axes[loaded.get_layer("up").kernel.path] == (0, 1, 3)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path
        )


# -- precision, keyword arguments -----------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_fit(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model, (x, y) = small_model(seed=4), data(n=16)
        model.compile(optimizer=NDAdam(learning_rate=0.01), loss="mse")
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    assert len(inner.vector_variables) == 4
    assert unit_norm_error(inner) < 1e-5
    assert all(np.all(np.isfinite(np.asarray(v))) for v in model.trainable_variables)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_variables_reduce_in_float32(dtype):
    # ||g||^2 = 6 * 300^2 overflows float16 (max 65504); float32 handles it.
    layer = LAYERS.Dense(2, dtype=dtype, use_bias=False)
    model = keras.Sequential([keras.Input((6,)), layer])
    opt = NDAdam(vector_learning_rate=0.1)
    opt.build(model.trainable_variables)
    initial = np.asarray(keras.ops.cast(layer.kernel, "float32")).astype("float64")
    grad = np.full((6, 2), 300.0)
    grad[:, 1] = np.linspace(-300, 300, 6)
    opt.apply([keras.ops.cast(grad, dtype)], model.trainable_variables)
    reference = NumpyNDAdam({"k": initial}, {"k": (0,)}, 0.0, 0.1)
    reference.step(
        {"k": np.asarray(keras.ops.cast(keras.ops.cast(grad, dtype), "float32"))}
    )
    got = np.asarray(keras.ops.cast(layer.kernel, "float32"))
    assert np.all(np.isfinite(got)) and not np.allclose(got, initial)
    np.testing.assert_allclose(
        got, reference.w["k"], atol=2e-2 if dtype == "bfloat16" else 2e-3
    )
    assert np.all(np.isfinite(np.asarray(opt._velocities[0])))


def _dense_pair(seed=6):
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(seed)
        models.append(keras.Sequential([keras.Input((4,)), LAYERS.Dense(3)]))
    return models


def _assert_same_weights(a, b):
    for u, v in zip(a.trainable_variables, b.trainable_variables):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-6)


# The clipping halves apply to fresh optimizers, built by that first `apply`.
@pytest.mark.filterwarnings("ignore:NDAdam was built by its first")
def test_gradient_accumulation_and_clipping_match_plain_steps():
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3,)]
    g1, g2 = ([rng.normal(size=s).astype("float32") for s in shapes] for _ in range(2))

    a, b = _dense_pair()
    acc, plain = NDAdam(gradient_accumulation_steps=2), NDAdam()
    acc.build(a.trainable_variables)
    plain.build(b.trainable_variables)
    before = np.asarray(a.layers[0].kernel)
    acc.apply(g1, a.trainable_variables)
    np.testing.assert_array_equal(np.asarray(a.layers[0].kernel), before)
    acc.apply(g2, a.trainable_variables)
    plain.apply([(u + v) / 2 for u, v in zip(g1, g2)], b.trainable_variables)
    _assert_same_weights(a, b)

    a, b = _dense_pair()
    clipped = NDAdam(clipnorm=0.1)
    clipped.apply(g1, a.trainable_variables)
    NDAdam().apply(
        [g * min(1.0, 0.1 / np.linalg.norm(g)) for g in g1], b.trainable_variables
    )
    _assert_same_weights(a, b)

    a, b = _dense_pair()
    total = np.sqrt(sum(np.sum(g**2) for g in g1))
    NDAdam(global_clipnorm=0.1).apply(g1, a.trainable_variables)
    NDAdam().apply([g * 0.1 / total for g in g1], b.trainable_variables)
    _assert_same_weights(a, b)


def _numpy_unit(w, axes):
    return w / np.sqrt(np.sum(np.square(w, dtype=np.float64), axis=axes, keepdims=True))


class _RecordWeightsAndAverage(keras.callbacks.Callback):
    """Per step: the model's weights and the optimizer's raw EMA slot."""

    def __init__(self):
        super().__init__()
        self.weights, self.averages = [], []

    def on_train_batch_end(self, batch, logs=None):
        opt = self.model.optimizer
        self.weights.append([np.asarray(v) for v in opt._trainable_variables])
        self.averages.append(
            [np.asarray(a) for a in opt._model_variables_moving_average]
        )


@pytest.mark.parametrize("frequency", [None, 3], ids=["at_end", "every_3_steps"])
def test_use_ema_in_fit_renormalizes_weight_vectors(frequency):
    model, (x, y) = small_model(), data(n=20)
    momentum = 0.6
    opt = NDAdam(
        vector_learning_rate=0.1,
        use_ema=True,
        ema_momentum=momentum,
        ema_overwrite_frequency=frequency,
    )
    model.compile(optimizer=opt, loss="mse")
    record = _RecordWeightsAndAverage()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[record])
    assert int(opt.iterations) == 5
    axes = [opt._axes[opt._get_variable_index(v)] for v in opt._trainable_variables]
    assert {v.path: a for v, a in opt.vector_variables} == expected_axes(model)

    # The EMA tracked in NumPy from the weights each step ends with. A step
    # that overwrites ends with the renormalized average, not the stepped
    # weights, so it only checks the overwrite against the slot it reads.
    average = None
    for step, (weights, slots) in enumerate(zip(record.weights, record.averages), 1):
        overwrites = frequency is not None and step % frequency == 0
        if not overwrites:
            average = [
                w if average is None else momentum * a + (1 - momentum) * w
                for a, w in zip(average or weights, weights)
            ]
            for a, slot in zip(average, slots):
                np.testing.assert_allclose(slot, a, atol=1e-6)
        else:
            average = slots
        for w, slot, a in zip(weights, slots, axes):
            if overwrites:
                expected = slot if a is None else _numpy_unit(slot, a)
                np.testing.assert_allclose(w, expected, atol=1e-6)

    # After fit: weight vectors are the normalized average, theta_s the average.
    final_average = [np.asarray(a) for a in opt._model_variables_moving_average]
    np.testing.assert_allclose(final_average[0], average[0], atol=1e-6)
    shrunk = 0.0
    for variable, avg, a in zip(opt._trainable_variables, final_average, axes):
        value = np.asarray(variable)
        if a is None:
            np.testing.assert_array_equal(value, avg, err_msg=variable.path)
            continue
        shrunk = max(shrunk, np.max(1 - np.sqrt(np.sum(avg**2, axis=a))))
        np.testing.assert_allclose(
            value, _numpy_unit(avg, a), atol=1e-6, err_msg=variable.path
        )
    assert unit_norm_error(opt) < 1e-6
    assert shrunk > 1e-3  # the raw average really is off the unit sphere


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf_function"])
def test_ema_overwrite_matches_numpy_algorithm_1(traced):
    """Algorithm 1 plus Keras' EMA and its periodic overwrite, step by step."""
    model, (x, y) = small_model(), data()
    paths, axes, initial = reference_inputs(model)
    momentum, frequency = 0.5, 2
    optimizer = NDAdam(
        learning_rate=0.01,
        vector_learning_rate=0.1,
        use_ema=True,
        ema_momentum=momentum,
        ema_overwrite_frequency=frequency,
    )
    optimizer.build(model.trainable_variables)
    reference = NumpyNDAdam(initial, axes, lr_s=0.01, lr_v=0.1)
    variables = model.trainable_variables
    apply = lambda grads: optimizer.apply(grads, variables)  # noqa: E731
    apply = tf.function(apply) if traced else apply
    average = None
    for step in range(1, 6):
        grads = grads_of(model, x, y)
        reference.step({p: np.asarray(g) for p, g in zip(paths, grads)})
        average = {
            p: reference.w[p]
            if average is None
            else momentum * average[p] + (1 - momentum) * reference.w[p]
            for p in paths
        }
        if step % frequency == 0:
            for p in paths:
                a = axes[p]
                reference.w[p] = average[p] if a is None else _numpy_unit(average[p], a)
        apply(grads)
        for p, variable in zip(paths, variables):
            np.testing.assert_allclose(
                np.asarray(variable), reference.w[p], atol=2e-6, err_msg=p
            )
    optimizer.finalize_variable_values(variables)
    for p, variable in zip(paths, variables):
        a = axes[p]
        final = average[p] if a is None else _numpy_unit(average[p], a)
        np.testing.assert_allclose(np.asarray(variable), final, atol=2e-6, err_msg=p)
    assert unit_norm_error(optimizer) < 1e-6


def test_ema_overwrite_keeps_a_zero_average_vector_zero():
    model, _ = _dense_pair()
    optimizer = NDAdam(use_ema=True)
    optimizer.build(model.trainable_variables)
    kernel, bias = model.trainable_variables
    average = optimizer._model_variables_moving_average[0]
    value = np.asarray(kernel).copy()
    value[:, 1] = 0.0
    value[:, 2] *= 3.0
    average.assign(value)
    optimizer.finalize_variable_values(model.trainable_variables)
    expected = value.copy()
    expected[:, [0, 2]] = _numpy_unit(value[:, [0, 2]], (0,))
    np.testing.assert_allclose(np.asarray(kernel), expected, atol=1e-6)
    assert not np.any(np.isnan(np.asarray(kernel)))


# -- distribution and other backends (subprocesses) ------------------------------


def _run_check(script, backend="tensorflow"):
    return run_json([HERE / script], backend=backend)


def test_mirrored_strategy_two_cpu_replicas():
    result = _run_check("_distribute_check.py")
    assert result["replicas"] == 2
    assert result["max_diff_vs_single_device"] < 1e-5
    assert result["unit_norm_error"] < 1e-6


@pytest.mark.torch
def test_torch_backend():
    pytest.importorskip("torch")
    result = _run_check("_torch_backend_check.py", backend="torch")
    assert result["backend"] == "torch"
    assert result["max_diff_vs_numpy"] < 2e-6
    assert result["fit_unit_norm_error"] < 1e-6
