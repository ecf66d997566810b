"""NDAdam's unit-norm initialization (Algorithm 1, line 1) on every way a
Keras model and its optimizer get built.

Each path trains the same two-layer MLP from the same (non-unit) initial
weights and must follow an independent NumPy run of the same steps: NumPy
forward and backward passes and `NumpyNDAdam`. A path that normalizes too
late, from a placeholder value or not at all ends on other weights.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from backend_subprocess import run_json
from ndadam_numpy import NumpyNDAdam

from keras_ndsru.optimizers import NDAdam

HERE = __import__("pathlib").Path(__file__).resolve().parent
LR_S, LR_V, STEPS = 0.01, 0.05, 3

RNG = np.random.default_rng(7)
X = RNG.normal(size=(8, 3)).astype("float32")
Y = RNG.normal(size=(8, 2)).astype("float32")
# Columns far from unit norm, so a missed normalization shows.
W1 = (3.0 * RNG.normal(size=(3, 4))).astype("float32")
B1 = RNG.normal(size=(4,)).astype("float32") * 0.1
W2 = (0.2 * RNG.normal(size=(4, 2))).astype("float32")
B2 = np.zeros((2,), "float32")


def numpy_trajectory(steps=STEPS, first_gradient_at_initial_weights=False):
    """Weights after `steps` full-batch NDAdam steps on the MLP, in NumPy.

    With `first_gradient_at_initial_weights`, the first gradient comes from
    the un-normalized initial weights (a model built by its first eager
    step), and is applied on the normalized ones.
    """
    names = ["w1", "b1", "w2", "b2"]
    axes = {"w1": (0,), "b1": None, "w2": (0,), "b2": None}
    initial = dict(zip(names, (W1, B1, W2, B2)))
    reference = NumpyNDAdam(initial, axes, lr_s=LR_S, lr_v=LR_V)
    x, y = X.astype(np.float64), Y.astype(np.float64)
    for step in range(steps):
        w = reference.w
        if step == 0 and first_gradient_at_initial_weights:
            w = {n: v.astype(np.float64) for n, v in initial.items()}
        h = np.tanh(x @ w["w1"] + w["b1"])
        out = h @ w["w2"] + w["b2"]
        d_out = 2.0 * (out - y) / out.size  # d mean((out - y)^2)
        d_z = (d_out @ w["w2"].T) * (1.0 - h**2)
        grads = {
            "w1": x.T @ d_z,
            "b1": d_z.sum(0),
            "w2": h.T @ d_out,
            "b2": d_out.sum(0),
        }
        reference.step(grads)
    return [reference.w[n] for n in names]


def dense_layers():
    constant = keras.initializers.Constant
    return [
        keras.layers.Dense(
            4, "tanh", kernel_initializer=constant(W1), bias_initializer=constant(B1)
        ),
        keras.layers.Dense(
            2, kernel_initializer=constant(W2), bias_initializer=constant(B2)
        ),
    ]


class Subclassed(keras.Model):
    """Its layers are built in its first call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.head = dense_layers()

    def call(self, x):
        return self.head(self.hidden(x))


def make_model(kind):
    if kind == "input":
        return keras.Sequential([keras.Input((3,)), *dense_layers()])
    if kind == "subclassed":
        return Subclassed()
    return keras.Sequential(dense_layers())  # no keras.Input: built lazily


def optimizer():
    return NDAdam(learning_rate=LR_S, vector_learning_rate=LR_V)


def fit(model, steps=STEPS, **compile_kwargs):
    if not model.compiled:
        model.compile(optimizer=optimizer(), loss="mse", **compile_kwargs)
    model.fit(X, Y, batch_size=len(X), epochs=steps, shuffle=False, verbose=0)
    return model


def assert_follows_numpy(model, steps=STEPS, **numpy_kwargs):
    expected = numpy_trajectory(steps, **numpy_kwargs)
    # Optimizer state only: the model's variables are not tracked with it.
    model_ids = {id(v) for v in model.variables}
    assert not [v.path for v in model.optimizer.variables if id(v) in model_ids]
    for variable, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(
            np.asarray(variable), want, atol=2e-5, err_msg=variable.path
        )
    for variable, axes in model.optimizer.vector_variables:
        norms = np.sqrt(np.sum(np.asarray(variable) ** 2, axis=axes))
        np.testing.assert_allclose(norms, 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "kind, compile_kwargs",
    [
        ("input", {}),
        ("input", {"jit_compile": True}),
        ("lazy", {}),
        ("lazy", {"jit_compile": True}),
        ("subclassed", {}),
        ("subclassed", {"jit_compile": True}),
    ],
    ids=[
        "input-traced",
        "input-xla",
        "no_input-traced",
        "no_input-xla",
        "subclassed-traced",
        "subclassed-xla",
    ],
)
def test_fit_follows_algorithm_1_however_the_model_is_built(kind, compile_kwargs):
    assert_follows_numpy(fit(make_model(kind), **compile_kwargs))


@pytest.mark.parametrize("kind", ["input", "lazy", "subclassed"])
def test_optimizer_built_by_the_first_eager_step_warns_once(kind):
    """Eagerly, the first forward pass runs before `apply` builds the
    optimizer: its gradient is applied on the normalized vectors, with one
    warning saying how to get the exact algorithm."""
    model = make_model(kind)
    model.compile(optimizer=optimizer(), loss="mse", run_eagerly=True)
    with pytest.warns(UserWarning, match="built by its first `apply`") as record:
        fit(model)
    assert sum("first `apply`" in str(w.message) for w in record) == 1
    assert_follows_numpy(model, first_gradient_at_initial_weights=True)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["traced", "xla"])
def test_custom_loop_in_tf_function_builds_the_model_lazily(jit_compile):
    model, opt = make_model("lazy"), optimizer()

    @tf.function(jit_compile=jit_compile)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.square(model(x) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))

    for _ in range(STEPS):
        train_step(X, Y)
    model.optimizer = opt
    assert_follows_numpy(model)


@pytest.mark.parametrize("run_eagerly", [False, True], ids=["traced", "eager"])
def test_user_builds_the_optimizer_after_the_model(run_eagerly):
    model = make_model("lazy")
    model(X[:1])
    opt = optimizer()
    opt.build(model.trainable_variables)
    model.compile(optimizer=opt, loss="mse", run_eagerly=run_eagerly)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(model)
    assert_follows_numpy(model)


def test_user_builds_the_optimizer_before_the_model_as_keras_adam_does():
    """Built on an unbuilt model's (empty) variable list, Keras' Adam refuses
    the model's variables later; NDAdam gives the same error."""
    errors = []
    for opt in (keras.optimizers.Adam(), optimizer()):
        model = make_model("lazy")
        opt.build(model.trainable_variables)
        model.compile(optimizer=opt, loss="mse")
        with pytest.raises(ValueError, match="Unknown variable") as error:
            model.fit(X, Y, verbose=0)
        errors.append(str(error.value).replace(model.layers[0].kernel.path, "PATH"))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("kind", ["lazy", "subclassed"])
def test_keras_reload_resumes_algorithm_1(kind, tmp_path):
    if kind == "subclassed":
        keras.saving.register_keras_serializable("keras_ndsru_tests")(Subclassed)
    model = fit(make_model(kind), steps=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, NDAdam)
    assert_follows_numpy(fit(loaded, steps=1), steps=3)


def test_mirrored_strategy_with_a_lazily_built_model():
    result = run_json([HERE / "_distribute_check.py", "--lazy"])
    assert result["replicas"] == 2
    assert result["max_diff_vs_single_device"] < 1e-5
    assert result["unit_norm_error"] < 1e-6


def test_zero_vector_of_a_lazily_built_model_is_a_clear_error():
    model = keras.Sequential([keras.layers.Dense(2, kernel_initializer="zeros")])
    model.compile(optimizer=optimizer(), loss="mse")
    with pytest.raises(ValueError, match="zero or non-finite vector"):
        model.fit(X, Y, verbose=0)
