"""Port of keras/src/optimizers/optimizer_test.py (Keras 3.15.1) to `NDAdam`.

Keras runs these base-optimizer tests with SGD or Adam. Here NDAdam takes
their place: its theta_s variables (any variable that is not a rank-2
`kernel`) are checked against `keras.optimizers.Adam` with the same
arguments, its weight vectors against the NumPy transcription of Algorithm 1
(tests/ndadam_numpy.py). Where Adam's step hides the gradient's scale (its
first step is `lr * sign`-like), the tests use `epsilon=1.0` so that scaling
bugs (loss scaling, accumulation as a sum) show.
"""

import pickle

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras_conformance.ndadam_helpers import (
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

V0 = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")  # Keras' variable
ONES = np.ones((2, 2), "float32")

# Keras' tests apply gradients to fresh variables without building the
# optimizer first: NDAdam's documented warning for an eager first step is
# expected there (test_ema_with_model_fit asserts it where it matters).
pytestmark = pytest.mark.filterwarnings("ignore:NDAdam was built by its first")


def test_iterations_counter():
    """optimizer_test::test_iterations_counter."""
    v, kernel = keras.Variable(V0), new_kernel()
    optimizer = NDAdam(learning_rate=1.0)
    assert int(optimizer.iterations) == 0
    for step in (1, 2):
        optimizer.apply_gradients([(ONES, v), (kernel_gradients(1)[0], kernel)])
        assert int(optimizer.iterations) == step


def test_empty_gradients():
    """optimizer_test::test_empty_gradients: no gradient at all is an
    error; a missing one warns and leaves its variable alone."""
    v = keras.Variable(V0)
    with pytest.raises(ValueError, match="No gradients provided for any variable."):
        NDAdam(learning_rate=1.0).apply_gradients([(None, v)])

    v, v2 = keras.Variable(V0), keras.Variable(V0)
    with pytest.warns(Warning):
        NDAdam(learning_rate=1.0).apply_gradients([(None, v), (ONES, v2)])
    assert_close(v, V0)
    assert_close(v2, adam_trajectory(V0, [ONES], learning_rate=1.0)[0])


def test_clip_args():
    """optimizer_test::test_clip_args."""
    assert NDAdam(learning_rate=1.0, clipnorm=0.1).clipnorm == 0.1
    assert NDAdam(learning_rate=1.0, clipvalue=0.1).clipvalue == 0.1
    assert NDAdam(learning_rate=1.0, global_clipnorm=0.1).global_clipnorm == 0.1
    message = "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can"
    with pytest.raises(ValueError, match=message):
        NDAdam(learning_rate=1.0, clipnorm=0.1, clipvalue=0.1)
    with pytest.raises(ValueError, match=message):
        NDAdam(learning_rate=1.0, clipnorm=0.1, global_clipnorm=0.1)


def test_global_clip_norm():
    """optimizer_test::test_global_clip_norm: all gradients are scaled by
    one factor, from their joint norm (step 1 is clipped, step 2 not)."""
    grads = [np.array([50.0, 100.0], "float32"), np.array([0.1, 0.2], "float32")]
    kernel_grads = [g * s for g, s in zip(kernel_gradients(2), (100.0, 0.01))]
    optimizer = NDAdam(global_clipnorm=1.0)
    v, kernel = keras.Variable([1.0, 2.0]), new_kernel()
    clipped, clipped_kernel = [], []
    for g, kg in zip(grads, kernel_grads):
        optimizer.apply_gradients([(g, v), (kg, kernel)])
        norm = np.sqrt(np.sum(g**2) + np.sum(kg**2))
        scale = 1.0 / max(norm, 1.0)
        clipped.append(g * scale)
        clipped_kernel.append(kg * scale)
    assert_close(v, adam_trajectory([1.0, 2.0], clipped)[-1])
    assert_close(kernel, vector_trajectory(kernel_value(), clipped_kernel)[-1])
    assert not np.allclose(adam_trajectory([1.0, 2.0], grads)[-1], v, atol=1e-5)


def test_ema():
    """optimizer_test::test_ema: with `ema_overwrite_frequency=3` the third
    step overwrites the variables with their moving average (weight vectors
    renormalized)."""
    optimizer = NDAdam(
        learning_rate=1.0, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3
    )
    _, seen, want = ema_run(optimizer, V0, ONES, 3, 1.0)
    for step in range(2):
        assert_close(seen[step][0], want[step][0])
        assert_close(seen[step][1], want[step][1])
    assert_close(seen[2][0], ema([w for w, _ in want], 0.9))
    assert_close(seen[2][1], unit_columns(ema([k for _, k in want], 0.9)))


@pytest.mark.parametrize("with_input", [True, False], ids=["input", "deferred_build"])
def test_ema_with_model_fit(with_input):
    """optimizer_test::test_ema_with_model_fit: eager `fit` (run_eagerly),
    two epochs, the weights end as the moving average. Keras' 1-input Dense
    has 1-element weight vectors, which cannot move: 3 inputs here. The
    first eager step is NDAdam's documented one (gradient from the raw
    weights, one warning)."""
    x = np.random.default_rng(0).normal(size=(1, 3)).astype("float32")
    y = np.zeros((1, 2), "float32")
    layers = [keras.layers.Dense(2, kernel_initializer="ones", use_bias=False)]
    if with_input:
        layers.insert(0, keras.Input((3,)))
    model = keras.Sequential(layers)
    optimizer = NDAdam(vector_learning_rate=0.1, use_ema=True, ema_momentum=0.9)
    model.compile(loss="mse", optimizer=optimizer, run_eagerly=True)
    with pytest.warns(UserWarning, match="computed before Algorithm 1 normalized"):
        model.fit(x, y, batch_size=1, epochs=2, verbose=0)
    want = dense_mse_trajectory(x, y, np.ones((3, 2)), 2, 0.1, eager=True)
    assert_close(model.trainable_variables[0], unit_columns(ema(want, 0.9)))


def test_constraints_are_applied():
    """optimizer_test::test_constraints_are_applied: a variable's constraint
    runs after the step, for theta_s and for weight vectors."""
    rng = np.random.default_rng(0)
    value = (rng.random((2, 2)) - 1.0).astype("float32")
    v = keras.Variable(value)
    v.constraint = keras.constraints.NonNeg()
    kernel = new_kernel()
    kernel.constraint = keras.constraints.NonNeg()
    optimizer = NDAdam(learning_rate=0.0001)
    (kernel_grad,) = kernel_gradients(1)
    optimizer.apply_gradients([(np.zeros((2, 2), "float32"), v), (kernel_grad, kernel)])
    assert np.min(v) == 0.0
    want = vector_trajectory(kernel_value(), [kernel_grad])[0]
    assert np.min(want) < 0
    assert_close(kernel, np.maximum(want, 0.0))


def test_get_method():
    """optimizer_test::test_get_method: `keras.optimizers.get` by registered
    name and by config."""
    assert isinstance(keras.optimizers.get("keras_ndsru>NDAdam"), NDAdam)
    config = keras.optimizers.serialize(NDAdam(vector_learning_rate=0.2))
    obj = keras.optimizers.get(config)
    assert isinstance(obj, NDAdam)
    assert float(obj.vector_learning_rate) == pytest.approx(0.2)
    assert keras.optimizers.get(None) is None
    with pytest.raises(ValueError):
        keras.optimizers.get("typo")


def test_static_loss_scaling():
    """optimizer_test::test_static_loss_scaling: gradients of the scaled
    loss are unscaled before the step."""
    grads = V0 * 1024.0
    (kernel_grad,) = kernel_gradients(1)
    optimizer = NDAdam(learning_rate=1.0, epsilon=1.0, loss_scale_factor=1024.0)
    v, kernel = keras.Variable(V0), new_kernel()
    optimizer.apply_gradients([(grads, v), (kernel_grad * 1024.0, kernel)])
    assert optimizer.scale_loss(1.0) == 1024.0
    assert_close(v, adam_trajectory(V0, [V0], learning_rate=1.0, epsilon=1.0)[0])
    want = vector_trajectory(kernel_value(), [kernel_grad], eps=1.0)[0]
    assert_close(kernel, want)


def test_set_weights():
    """optimizer_test::test_set_weights: the state of one optimizer copies
    into another once that one is built."""
    x, kernel = keras.Variable(V0), new_kernel()
    optimizer_1 = NDAdam()
    optimizer_1.apply_gradients([(V0, x), (kernel_gradients(1)[0], kernel)])
    optimizer_2 = NDAdam()
    with pytest.raises(ValueError, match="You are calling*"):
        optimizer_2.set_weights(optimizer_1.variables)
    optimizer_2.build([x, kernel])
    optimizer_2.set_weights(optimizer_1.variables)
    assert len(optimizer_2.variables) == len(optimizer_1.variables)
    for a, b in zip(optimizer_1.variables, optimizer_2.variables):
        assert_close(b, np.asarray(a))


def test_gradient_accumulation():
    """optimizer_test::test_gradient_accumulation: three steps accumulate,
    the third applies their mean (`iterations` counts applied steps)."""
    grads = [V0 * s for s in (1.0, 2.0, 6.0, 1.0)]
    kernel_grads = kernel_gradients(4)
    optimizer = NDAdam(learning_rate=1.0, epsilon=1.0, gradient_accumulation_steps=3)
    assert optimizer.gradient_accumulation_steps == 3
    v, kernel = keras.Variable(V0), new_kernel()
    want = adam_trajectory(
        V0, [np.mean(grads[:3], axis=0)], learning_rate=1.0, epsilon=1.0
    )
    want_kernel = vector_trajectory(
        kernel_value(), [np.mean(kernel_grads[:3], axis=0)], eps=1.0
    )
    for step in range(4):
        optimizer.apply_gradients([(grads[step], v), (kernel_grads[step], kernel)])
        if step < 2:
            assert int(optimizer.iterations) == 0
            assert_close(v, V0)
        else:
            assert int(optimizer.iterations) == 1
            assert_close(v, want[0])
            assert_close(kernel, want_kernel[0])


def dense_model(with_input):
    layers = [keras.layers.Dense(2)]
    if with_input:
        layers.insert(0, keras.Input((2,)))
    return keras.Sequential(layers)


@pytest.mark.parametrize("with_input", [True, False], ids=["input", "deferred_build"])
def test_tf_checkpointing(with_input, tmp_path):
    """optimizer_test::test_tf_checkpointing: a `tf.train.Checkpoint` of
    model and optimizer restores both."""
    model = dense_model(with_input)
    optimizer = NDAdam()
    rng = np.random.default_rng(0)
    x, y = rng.random((1, 2)), rng.random((1, 2))
    model.compile(optimizer, "mse")
    model.train_on_batch(x, y)
    ref_pred = model.predict(x, verbose=0)
    ref_state = [np.array(v) for v in optimizer.variables]

    checkpoint = tf.train.Checkpoint(model, optimizer=optimizer)
    save_path = checkpoint.save(str(tmp_path / "tf_ckpt"))
    model.train_on_batch(x, y)
    assert not np.allclose(model.predict(x, verbose=0), ref_pred, atol=1e-3)

    checkpoint.restore(save_path)
    np.testing.assert_allclose(model.predict(x, verbose=0), ref_pred, atol=1e-5)
    for got, want in zip(optimizer.variables, ref_state):
        assert_close(got, want)


def test_callable_learning_rate():
    """optimizer_test::test_callable_learning_rate, for both step sizes."""
    optimizer = NDAdam(learning_rate=lambda: 0.1, vector_learning_rate=lambda: 0.2)
    v, kernel = keras.Variable(V0), new_kernel()
    (kernel_grad,) = kernel_gradients(1)
    assert int(optimizer.iterations) == 0
    optimizer.apply_gradients([(ONES, v), (kernel_grad, kernel)])
    assert_close(v, adam_trajectory(V0, [ONES], learning_rate=0.1)[0])
    assert_close(kernel, vector_trajectory(kernel_value(), [kernel_grad], 0.2)[0])
    assert int(optimizer.iterations) == 1


def test_overwrite_with_gradient():
    """optimizer_test::test_overwrite_with_gradient."""
    v, v2 = keras.Variable(V0), keras.Variable(V0)
    v.overwrite_with_gradient = True
    NDAdam(learning_rate=1.0).apply_gradients([(ONES, v), (ONES, v2)])
    assert_close(v, ONES)
    assert_close(v2, adam_trajectory(V0, [ONES], learning_rate=1.0)[0])


def test_overwrite_with_gradient_with_gradient_accumulation():
    """optimizer_test::test_overwrite_with_gradient_with_gradient_accumulation."""
    v, v2 = keras.Variable(V0), keras.Variable(V0)
    v.overwrite_with_gradient = True
    optimizer = NDAdam(learning_rate=1.0, epsilon=1.0, gradient_accumulation_steps=2)
    twos = 2 * ONES
    optimizer.apply_gradients([(ONES, v), (ONES, v2)])
    assert int(optimizer.iterations) == 0
    assert_close(v, V0)
    assert_close(v2, V0)
    optimizer.apply_gradients([(twos, v), (twos, v2)])
    assert int(optimizer.iterations) == 1
    assert_close(v, twos)
    want = adam_trajectory(V0, [1.5 * ONES], learning_rate=1.0, epsilon=1.0)[0]
    assert_close(v2, want)
    optimizer.apply_gradients([(ONES, v), (ONES, v2)])
    assert int(optimizer.iterations) == 1
    assert_close(v, twos)
    assert_close(v2, want)


def test_gradient_accumulation_with_weight_decay():
    """optimizer_test::test_gradient_accumulation_with_weigth_decay: three
    accumulated steps equal one step on their mean, weight decay included."""
    optimizer_1 = NDAdam(weight_decay=0.05)
    optimizer_3 = NDAdam(weight_decay=0.05, gradient_accumulation_steps=3)
    variable_1, variable_3 = (keras.Variable([[0.9], [0.5]]) for _ in range(2))
    kernel_1, kernel_3 = new_kernel(), new_kernel()
    rng = np.random.default_rng(0)
    for _ in range(8):
        grads_3 = rng.random([3, 2, 1]).astype("float32")
        kernel_grads_3 = rng.normal(size=(3, 3, 2)).astype("float32")
        optimizer_1.apply_gradients(
            [
                (grads_3.mean(axis=0), variable_1),
                (kernel_grads_3.mean(axis=0), kernel_1),
            ]
        )
        for batch in range(3):
            optimizer_3.apply_gradients(
                [(grads_3[batch], variable_3), (kernel_grads_3[batch], kernel_3)]
            )
    assert_close(variable_3, np.asarray(variable_1))
    assert_close(kernel_3, np.asarray(kernel_1))
    assert not np.allclose(variable_1, [[0.9], [0.5]])


def test_setting_lr_to_callable_untracks_lr_var():
    """optimizer_test::test_setting_lr_to_callable_untracks_lr_var."""
    optimizer = NDAdam(learning_rate=0.001)
    tracked = len(optimizer.variables)
    learning_rate = optimizer.learning_rate  # the variable, while it is one
    assert any(v is learning_rate for v in optimizer.variables)
    optimizer.learning_rate = keras.optimizers.schedules.PolynomialDecay(
        optimizer.learning_rate, 4
    )
    assert len(optimizer.variables) == tracked - 1
    assert not any(v is learning_rate for v in optimizer.variables)


def test_setting_vector_lr_to_callable_untracks_its_var():
    """The vector step size, set like optimizer_test's learning rate."""
    optimizer = NDAdam(vector_learning_rate=0.05)
    tracked = len(optimizer.variables)
    rate = optimizer.vector_learning_rate  # the variable, while it is one
    assert any(v is rate for v in optimizer.variables)
    schedule = keras.optimizers.schedules.PolynomialDecay(0.2, 4)
    optimizer.vector_learning_rate = schedule
    assert len(optimizer.variables) == tracked - 1
    assert not any(v is rate for v in optimizer.variables)
    assert float(optimizer.vector_learning_rate) == pytest.approx(0.2)


def test_pickleable_optimizers():
    """optimizer_test::test_pickleable_optimizers, for NDAdam."""
    optimizer = NDAdam(learning_rate=0.01, vector_learning_rate=0.2, epsilon=1e-6)
    reloaded = pickle.loads(pickle.dumps(optimizer))
    assert optimizer.get_config() == reloaded.get_config()


def test_mixed_with_tf_variables():
    """optimizer_test::test_mixed_with_tf_variables."""
    v = keras.Variable(V0)
    tf_v = tf.Variable(V0)
    tf_kernel = tf.Variable(kernel_value(), name="kernel")
    (kernel_grad,) = kernel_gradients(1)
    optimizer = NDAdam(learning_rate=1.0)
    optimizer.apply_gradients([(ONES, v), (ONES, tf_v), (kernel_grad, tf_kernel)])
    assert int(optimizer.iterations) == 1
    assert_close(tf_v, adam_trajectory(V0, [ONES], learning_rate=1.0)[0])
    assert_close(tf_kernel, vector_trajectory(kernel_value(), [kernel_grad])[0])
    with pytest.warns(UserWarning, match="Gradients do not exist for variables"):
        optimizer.apply_gradients([(ONES, v), (None, tf_v), (None, tf_kernel)])
    assert int(optimizer.iterations) == 2


def test_optimizer_auto_naming():
    """optimizer_test::test_optimizer_auto_naming."""
    keras.backend.clear_session()  # Keras' TestCase does this before each test
    nd_adam_1, nd_adam_2 = NDAdam(), NDAdam()
    assert nd_adam_1.name == "nd_adam"
    assert nd_adam_2.name == "nd_adam_1"
    custom = NDAdam(name="my_nd_adam")
    assert custom.name == "my_nd_adam"
    reloaded = keras.optimizers.deserialize(keras.optimizers.serialize(nd_adam_2))
    assert reloaded.name == "nd_adam_1"
    reloaded = keras.optimizers.deserialize(keras.optimizers.serialize(custom))
    assert reloaded.name == "my_nd_adam"
