"""Port of keras/src/optimizers/adam_test.py (Keras 3.15.1) to `NDAdam`.

Keras asserts Adam's numbers. NDAdam's theta_s variables (here a variable
that is not a rank-2 `kernel`) must follow `keras.optimizers.Adam` step for
step; its weight vectors (a rank-2 `kernel`) must follow the NumPy
transcription of Algorithm 1 (tests/ndadam_numpy.py).
"""

import keras
import numpy as np
import pytest
from keras_conformance.layer_checks import check_serialization
from keras_conformance.ndadam_helpers import (
    adam,
    adam_trajectory,
    assert_close,
    dense_mse_trajectory,
    ema,
    ema_run,
    kernel_gradients,
    kernel_value,
    new_kernel,
    unit_columns,
    vector_trajectory,
)

from keras_ndsru import NDAdam

# Keras' tests apply gradients to fresh variables without building the
# optimizer first: NDAdam's documented warning for an eager first step is
# expected there (test_ema_with_model_fit asserts it where it matters).
pytestmark = pytest.mark.filterwarnings("ignore:NDAdam was built by its first")


def test_config():
    """adam_test::test_config, every NDAdam argument away from its default
    (`amsgrad` left out: NDAdam has none)."""
    check_serialization(
        NDAdam(
            learning_rate=0.5,
            vector_learning_rate=0.2,
            beta_1=0.5,
            beta_2=0.67,
            epsilon=1e-5,
            weight_decay=0.01,
            vector_variables=["dense"],
            exclude_from_vectors=["bias"],
            vector_axes={"dense/kernel": [0]},
            clipnorm=1.5,
            use_ema=True,
            ema_momentum=0.9,
            ema_overwrite_frequency=3,
            loss_scale_factor=2.0,
            gradient_accumulation_steps=2,
            name="custom",
        )
    )


def test_single_step():
    """adam_test::test_single_step, plus a weight-vector variable."""
    optimizer = NDAdam(learning_rate=0.5)
    grads = np.array([1.0, 6.0, 7.0, 2.0], "float32")
    variable = keras.Variable([1.0, 2.0, 3.0, 4.0])
    kernel, (kernel_grad,) = new_kernel(), kernel_gradients(1)
    optimizer.apply_gradients([(grads, variable), (kernel_grad, kernel)])
    assert_close(
        variable, adam_trajectory([1.0, 2.0, 3.0, 4.0], [grads], learning_rate=0.5)[0]
    )
    assert_close(kernel, vector_trajectory(kernel_value(), [kernel_grad])[0])


def test_weight_decay():
    """adam_test::test_weight_decay: decay and its exclusions as Adam's on
    theta_s; weight vectors are never decayed (their norm is fixed)."""
    grads = np.zeros((), "float32")
    var1, var2, var3 = (
        keras.Variable(2.0),
        keras.Variable(2.0, name="exclude"),
        keras.Variable(2.0),
    )
    kernel = new_kernel()
    optimizer_1 = NDAdam(learning_rate=1.0, weight_decay=0.004)
    optimizer_1.apply_gradients([(grads, var1), (np.zeros((3, 2), "float32"), kernel)])

    optimizer_2 = NDAdam(learning_rate=1.0, weight_decay=0.004)
    optimizer_2.exclude_from_weight_decay(var_names=["exclude"])
    optimizer_2.apply_gradients(zip([grads, grads], [var1, var2]))

    optimizer_3 = NDAdam(learning_rate=1.0, weight_decay=0.004)
    optimizer_3.exclude_from_weight_decay(var_list=[var3])
    optimizer_3.apply_gradients(zip([grads, grads], [var1, var3]))

    adam = dict(learning_rate=1.0, weight_decay=0.004)
    decayed_twice = adam_trajectory(2.0, [grads, grads], **adam)[-1]
    decayed_thrice = adam_trajectory(decayed_twice, [grads], **adam)[-1]
    assert_close(var1, decayed_thrice)
    assert var1.numpy() < 2.0
    assert_close(var2, 2.0)
    assert_close(var3, 2.0)
    assert_close(kernel, unit_columns(kernel_value()))


def test_correctness_with_golden():
    """adam_test::test_correctness_with_golden, without `amsgrad` (NDAdam has
    none): six steps against Adam and Algorithm 1 after every step."""
    optimizer = NDAdam()
    x = keras.Variable(np.ones([10], dtype="float32"))
    kernel = new_kernel()
    grads = [np.full((10,), 0.01, "float32")] + [
        np.arange(0.1, 1.1, 0.1).astype("float32")
    ] * 5
    kernel_grads = kernel_gradients(6)
    want_x = adam_trajectory(np.ones(10), grads)
    want_kernel = vector_trajectory(kernel_value(), kernel_grads)
    for step in range(6):
        optimizer.apply_gradients([(grads[step], x), (kernel_grads[step], kernel)])
        assert_close(x, want_x[step])
        assert_close(kernel, want_kernel[step])


# Step 1 is clipped, step 2 is not: Adam's first step does not depend on the
# gradient's scale, the second does.
THETA_S_GRADS = [np.array([100.0, 100.0], "float32"), np.array([0.1, 0.3], "float32")]
KERNEL_GRADS = [g * s for g, s in zip(kernel_gradients(2), (100.0, 0.1))]


def clip_norm(g, clipnorm):
    return g * clipnorm / max(np.linalg.norm(g), clipnorm)


@pytest.mark.parametrize(
    "kwargs, clip",
    [
        ({"clipnorm": 1.0}, lambda g: clip_norm(g, 1.0)),
        ({"clipvalue": 1.0}, lambda g: np.clip(g, -1.0, 1.0)),
    ],
    ids=["clipnorm", "clipvalue"],
)
def test_clip(kwargs, clip):
    """adam_test::test_clip_norm and test_clip_value (and optimizer_test's):
    the update is Adam's / Algorithm 1's on the clipped gradients."""
    optimizer = NDAdam(**kwargs)
    variable = keras.Variable([1.0, 2.0])
    kernel = new_kernel()
    for g, kg in zip(THETA_S_GRADS, KERNEL_GRADS):
        optimizer.apply_gradients([(g, variable), (kg, kernel)])
    want = adam_trajectory([1.0, 2.0], [clip(g) for g in THETA_S_GRADS])[-1]
    assert_close(variable, want)
    assert not np.allclose(adam_trajectory([1.0, 2.0], THETA_S_GRADS)[-1], want)
    want = vector_trajectory(kernel_value(), [clip(g) for g in KERNEL_GRADS])[-1]
    assert_close(kernel, want)
    assert not np.allclose(vector_trajectory(kernel_value(), KERNEL_GRADS)[-1], want)


def test_ema():
    """adam_test::test_ema, first part: `finalize_variable_values` writes the
    moving average (first value, then momentum 0.9) into the variables;
    NDAdam puts weight vectors back to unit norm (documented)."""
    optimizer = NDAdam(learning_rate=1.0, use_ema=True, ema_momentum=0.9)
    grads = np.array([0.1, 0.2], "float32")
    (variable, kernel), seen, want = ema_run(optimizer, [1.0, 2.0], grads, 2, 1.0)
    for (got, got_kernel), (value, want_kernel) in zip(seen, want):
        assert_close(got, value)
        assert_close(got_kernel, want_kernel)
    assert not np.allclose(want[1][1], want[0][1])
    optimizer.finalize_variable_values([variable, kernel])
    assert_close(variable, ema([w for w, _ in want], 0.9))
    assert_close(kernel, unit_columns(ema([k for _, k in want], 0.9)))


@pytest.mark.parametrize("with_input", [True, False], ids=["input", "deferred_build"])
def test_ema_model_fit(with_input):
    """adam_test::test_ema, `model.fit` part: the weights after `fit` are the
    moving average (renormalized for weight vectors). Keras' model has no
    `keras.Input`, so its variables are created in the first train step;
    the `input` case builds them before."""
    layers = [keras.layers.Dense(10, kernel_initializer="ones", use_bias=False)]
    if with_input:
        layers.insert(0, keras.Input((5,)))
    model = keras.Sequential(layers)
    model.compile(optimizer=NDAdam(use_ema=True, ema_momentum=0.9), loss="mse")
    # Keras fits ones to zeros; with a kernel of ones that gradient is
    # parallel to every weight vector, which then cannot move.
    x = np.random.default_rng(0).normal(size=(1, 5)).astype("float32")
    y = np.zeros((1, 10), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    want = dense_mse_trajectory(x, y, np.ones((5, 10)), 2, vector_learning_rate=0.05)
    assert not np.allclose(want[1], want[0])
    assert_close(model.trainable_variables[0], unit_columns(ema(want, 0.9)))


def test_ema_overwrite_frequency():
    """adam_test::test_ema_overwrite_frequency: every second step the
    variables are overwritten with the moving average (weight vectors
    renormalized)."""
    optimizer = NDAdam(
        learning_rate=1.0, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=2
    )
    grads = np.array([0.1, 0.2], "float32")
    _, seen, want = ema_run(optimizer, [1.0, 2.0], grads, 2, 1.0)
    assert_close(seen[0][0], want[0][0])
    assert_close(seen[0][1], want[0][1])
    assert_close(seen[1][0], ema([w for w, _ in want], 0.9))
    assert_close(seen[1][1], unit_columns(ema([k for _, k in want], 0.9)))


def embedding_model(with_input):
    layers = [
        keras.layers.Embedding(
            10, 4, embeddings_initializer=keras.initializers.RandomNormal(seed=1)
        ),
        keras.layers.Flatten(),
        keras.layers.Dense(
            2, kernel_initializer=keras.initializers.GlorotUniform(seed=2)
        ),
    ]
    if with_input:
        layers.insert(0, keras.Input((5,)))
    return keras.Sequential(layers)


@pytest.mark.parametrize("with_input", [True, False], ids=["input", "deferred_build"])
def test_clipnorm_indexed_slices(with_input):
    """adam_test::test_clipnorm_indexed_slices: clipnorm on an Embedding's
    sparse (IndexedSlices) gradient. With every variable in theta_s NDAdam
    trains exactly as Adam; with the default partition the Dense kernel
    keeps unit columns."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, size=(8, 5))
    y = rng.normal(size=(8, 2)).astype("float32")
    fits = {}
    for name, optimizer in {
        "adam": adam(clipnorm=0.01),
        "theta_s": NDAdam(clipnorm=0.01, exclude_from_vectors=[".*"]),
        "ndadam": NDAdam(clipnorm=0.01),
    }.items():
        model = embedding_model(with_input)
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, y, epochs=3, verbose=0)
        fits[name] = [np.array(w) for w in model.trainable_variables]
    for got, want in zip(fits["theta_s"], fits["adam"]):
        assert_close(got, want)
    embeddings, kernel, _ = fits["ndadam"]
    assert np.all(np.isfinite(embeddings))
    assert_close(np.linalg.norm(kernel, axis=0), np.ones(2))
