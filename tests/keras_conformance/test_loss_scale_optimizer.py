"""Port of keras/src/optimizers/loss_scale_optimizer_test.py (Keras 3.15.1):
`keras.optimizers.LossScaleOptimizer` around `NDAdam` instead of SGD.

Steps are checked against `keras.optimizers.Adam` (theta_s) and the NumPy
transcription of Algorithm 1 (weight vectors) on the unscaled gradients; the
inner NDAdam uses `epsilon=1.0` so that a gradient left scaled would show
(Adam's step hardly depends on the gradient's scale otherwise). The
`stateless` cases are left out: `stateless_apply` is JAX-only, and Keras
skips them on TensorFlow too.
"""

import keras
import numpy as np
import pytest
from keras_conformance.layer_checks import check_serialization
from keras_conformance.ndadam_helpers import (
    adam_trajectory,
    assert_close,
    kernel_gradients,
    kernel_value,
    new_kernel,
    unit_columns,
    vector_trajectory,
)

from keras_ndsru import NDAdam

LSO = keras.optimizers.LossScaleOptimizer
V0 = np.array([1.0, 2.0, 3.0, 4.0], "float32")  # Keras' variable
GRADS = np.array([1.0, 6.0, 7.0, 2.0], "float32")
INNER = dict(learning_rate=0.5, vector_learning_rate=0.1, epsilon=1.0)

# Keras' tests apply gradients to fresh variables without building the
# optimizer first: NDAdam's documented warning for an eager first step is
# expected there (test_ema_with_model_fit asserts it where it matters).
pytestmark = pytest.mark.filterwarnings("ignore:NDAdam was built by its first")


def references(steps):
    """Expected theta_s and kernel values after `steps` unscaled steps."""
    theta_s = adam_trajectory(V0, [GRADS] * steps, learning_rate=0.5, epsilon=1.0)
    kernel = vector_trajectory(
        kernel_value(), kernel_gradients(1) * steps, 0.1, eps=1.0
    )
    return theta_s[-1], kernel[-1]


def test_config():
    """loss_scale_optimizer_test::test_config."""
    inner = NDAdam(
        learning_rate=0.5, vector_learning_rate=0.06, beta_1=0.8, weight_decay=0.004
    )
    check_serialization(LSO(inner))


def test_apply_with_no_vars():
    """loss_scale_optimizer_test::test_apply_with_no_vars."""
    optimizer = LSO(NDAdam(**INNER))
    variables = [keras.Variable(V0), new_kernel()]
    scale = float(optimizer.initial_scale)
    optimizer.build(variables)
    optimizer.apply([GRADS * scale, kernel_gradients(1)[0] * scale])
    want, want_kernel = references(1)
    assert_close(variables[0], want)
    assert_close(variables[1], want_kernel)


@pytest.mark.parametrize(
    "inner_scale", [None, 100.0], ids=["plain", "inner_loss_scale"]
)
def test_finite_step(inner_scale):
    """loss_scale_optimizer_test::test_finite_step (stateful case) and
    test_finite_step_with_inner_loss_scale: the inner optimizer's own
    `loss_scale_factor` does not interfere."""
    optimizer = LSO(NDAdam(**INNER, loss_scale_factor=inner_scale))
    variables = [keras.Variable(V0), new_kernel()]
    scale = float(optimizer.initial_scale)
    optimizer.apply([GRADS * scale, kernel_gradients(1)[0] * scale], variables)
    want, want_kernel = references(1)
    assert_close(variables[0], want)
    assert_close(variables[1], want_kernel)


def test_infinite_step():
    """loss_scale_optimizer_test::test_infinite_step: a non-finite gradient
    skips the step."""
    optimizer = LSO(NDAdam(**INNER))
    variables = [keras.Variable(V0), new_kernel()]
    grads = [np.full(4, np.inf, "float32"), np.full((3, 2), np.inf, "float32")]
    optimizer.apply(grads, variables)
    assert_close(variables[0], V0)
    assert_close(variables[1], unit_columns(kernel_value()))  # built, no step
    assert int(optimizer.iterations) == 0


def test_finite_step_with_overwrite():
    """loss_scale_optimizer_test::test_finite_step_with_overwrite."""
    optimizer = LSO(NDAdam(**INNER))
    variables = [keras.Variable(V0)]
    variables[0].overwrite_with_gradient = True
    optimizer.apply([GRADS], variables)
    assert_close(variables[0], GRADS)


def test_downscaling():
    """loss_scale_optimizer_test::test_downscaling."""
    optimizer = LSO(NDAdam(**INNER), initial_scale=400.0)
    variables = [keras.Variable(V0), new_kernel()]
    optimizer.build(variables)
    grads = [np.full(4, np.inf, "float32"), np.full((3, 2), np.inf, "float32")]
    for _ in range(4):
        optimizer.apply(grads, variables)
    assert float(optimizer.scale_loss(1.0)) == pytest.approx(25.0)
    assert_close(variables[0], V0)


def test_upscaling():
    """loss_scale_optimizer_test::test_upscaling: the scale doubles every 2
    finite steps, and every step is the unscaled one."""
    optimizer = LSO(NDAdam(**INNER), initial_scale=2.0, dynamic_growth_steps=2)
    variables = [keras.Variable(V0), new_kernel()]
    optimizer.build(variables)
    (kernel_grad,) = kernel_gradients(1)
    for _ in range(8):
        scale = float(optimizer.scale_loss(1.0))
        optimizer.apply([GRADS * scale, kernel_grad * scale], variables)
    assert float(optimizer.scale_loss(1.0)) == pytest.approx(32.0)
    want, want_kernel = references(8)
    assert_close(variables[0], want)
    assert_close(variables[1], want_kernel)


def test_iterations_update():
    """loss_scale_optimizer_test::test_iterations_update."""
    optimizer = LSO(NDAdam(**INNER))
    variables = [keras.Variable(V0), new_kernel()]
    optimizer.build(variables)
    assert int(optimizer.iterations) == 0
    for i in range(3):
        optimizer.apply([GRADS, kernel_gradients(1)[0]], variables)
        assert int(optimizer.iterations) == i + 1


def test_serialization():
    """loss_scale_optimizer_test::test_serialization."""
    optimizer = LSO(
        NDAdam(learning_rate=0.5),
        initial_scale=3.0,
        dynamic_growth_steps=2,
        name="test_opt",
    )
    config = optimizer.get_config()
    assert len(config) == 4
    assert config["name"] == "test_opt"
    assert config["initial_scale"] == 3.0
    assert config["dynamic_growth_steps"] == 2
    assert "inner_optimizer" in config
    revived = LSO.from_config(config)
    assert isinstance(revived.inner_optimizer, NDAdam)
    assert (
        revived.inner_optimizer.get_config() == optimizer.inner_optimizer.get_config()
    )


def test_init_dynamic_arg():
    """loss_scale_optimizer_test::test_init_dynamic_arg."""
    LSO(NDAdam(), dynamic=True)
    with pytest.raises(ValueError, match="set `loss_scale_factor`"):
        LSO(NDAdam(), dynamic=False)


def test_init_unsupported_arg():
    """loss_scale_optimizer_test::test_init_unsupported_arg."""
    with pytest.raises(ValueError, match="arguments: `foo`, `bar`"):
        LSO(NDAdam(), foo=True, bar=3)


@pytest.mark.parametrize(
    "arg_name, arg_value",
    [
        ("weight_decay", 0.5),
        ("clipnorm", 0.5),
        ("global_clipnorm", 0.5),
        ("clipvalue", 0.5),
        ("use_ema", True),
        ("ema_momentum", 0.5),
        ("ema_overwrite_frequency", 2),
        ("loss_scale_factor", 0.5),
        ("gradient_accumulation_steps", 2),
    ],
)
def test_init_base_optimizer_unsupported_args(arg_name, arg_value):
    """loss_scale_optimizer_test::test_init_base_optimizer_unsupported_args."""
    with pytest.raises(ValueError, match="on the `inner_optimizer`"):
        LSO(NDAdam(), **{arg_name: arg_value})


def test_deserialization_backwards_compatibility():
    """loss_scale_optimizer_test::test_deserialization_backwards_compatibility:
    a config that still holds the base optimizer's arguments."""
    base = {
        "weight_decay": None,
        "clipnorm": None,
        "global_clipnorm": None,
        "clipvalue": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
    }
    config = {
        "name": "loss_scale_optimizer",
        **base,
        "inner_optimizer": {
            "module": "keras_ndsru.optimizers.nd_adam",
            "class_name": "NDAdam",
            "config": {"name": "nd_adam", "learning_rate": 0.5, **base},
            "registered_name": "keras_ndsru>NDAdam",
        },
        "initial_scale": 2.0,
        "dynamic_growth_steps": 2,
    }
    revived = LSO.from_config(config)
    assert isinstance(revived.inner_optimizer, NDAdam)
    assert float(revived.inner_optimizer.learning_rate) == pytest.approx(0.5)
