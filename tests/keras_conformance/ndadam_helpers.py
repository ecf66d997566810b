"""References for the ports of Keras' optimizer tests to `NDAdam`.

NDAdam updates theta_s (biases and other non-vector variables) with Adam, so
those are checked step by step against `keras.optimizers.Adam` with the same
arguments; weight vectors (a rank-2 variable named `kernel`: one vector per
column) against the NumPy transcription of Algorithm 1 (tests/ndadam_numpy.py).
"""

from __future__ import annotations

import keras
import numpy as np
from ndadam_numpy import NumpyNDAdam  # tests/ is on pythonpath

VECTOR_AXES = (0,)  # a rank-2 `kernel`: one weight vector per column


def kernel_value(shape=(3, 2), seed=0) -> np.ndarray:
    """A float32 value for a weight-vector variable (not yet unit norm)."""
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def kernel_gradients(steps, shape=(3, 2), seed=10, scale=1.0) -> list[np.ndarray]:
    """One float32 gradient per step for a `kernel_value` variable."""
    rng = np.random.default_rng(seed)
    return [(scale * rng.normal(size=shape)).astype("float32") for _ in range(steps)]


def new_kernel(value=None) -> keras.Variable:
    """A standalone variable that NDAdam treats as weight vectors."""
    return keras.Variable(kernel_value() if value is None else value, name="kernel")


def adam(**kwargs) -> keras.optimizers.Adam:
    """`keras.optimizers.Adam` with NDAdam's default epsilon (1e-8; Adam's
    is 1e-7)."""
    return keras.optimizers.Adam(**{"epsilon": 1e-8, **kwargs})


def adam_trajectory(initial, gradients, **adam_kwargs) -> list[np.ndarray]:
    """Values of a variable after each step of `adam(**adam_kwargs)`."""
    variable = keras.Variable(np.asarray(initial, "float32"))
    optimizer = adam(**adam_kwargs)
    values = []
    for gradient in gradients:
        optimizer.apply_gradients([(np.asarray(gradient, "float32"), variable)])
        values.append(np.array(variable))
    return values


def vector_trajectory(
    initial, gradients, vector_learning_rate=0.05, **kwargs
) -> list[np.ndarray]:
    """Values of a weight-vector variable after each Algorithm 1 step
    (`kwargs`: beta_1, beta_2, eps)."""
    reference = NumpyNDAdam(
        {"w": initial},
        {"w": VECTOR_AXES},
        lr_s=0.0,
        lr_v=vector_learning_rate,
        **kwargs,
    )
    values = []
    for gradient in gradients:
        reference.step({"w": gradient})
        values.append(reference.w["w"].copy())
    return values


def unit_columns(w) -> np.ndarray:
    w = np.asarray(w, np.float64)
    return w / np.sqrt(np.sum(w**2, axis=0, keepdims=True))


def ema(values, momentum) -> np.ndarray:
    """Keras' moving average of a trajectory: the first value, then
    `momentum * average + (1 - momentum) * value`."""
    average = np.asarray(values[0], np.float64)
    for value in values[1:]:
        average = momentum * average + (1 - momentum) * np.asarray(value, np.float64)
    return average


def assert_close(actual, desired, atol=1e-6, rtol=1e-5):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(desired), atol=atol, rtol=rtol
    )


def ema_run(optimizer, initial, gradient, steps, learning_rate):
    """`steps` steps of `optimizer` (built with `use_ema`) on a theta_s
    variable (`initial`, the same `gradient` every step) and a kernel.

    Returns `(variable, kernel)`, their values after each step, and the
    values after each step without a moving average (Adam, Algorithm 1).
    """
    variable, kernel = keras.Variable(np.asarray(initial, "float32")), new_kernel()
    kernel_grads = kernel_gradients(steps)
    seen = []
    for kernel_grad in kernel_grads:
        optimizer.apply_gradients([(gradient, variable), (kernel_grad, kernel)])
        seen.append((np.array(variable), np.array(kernel)))
    want = adam_trajectory(initial, [gradient] * steps, learning_rate=learning_rate)
    want_kernel = vector_trajectory(kernel_value(), kernel_grads)
    return (variable, kernel), seen, list(zip(want, want_kernel))


def dense_mse_trajectory(x, y, kernel, steps, vector_learning_rate, eager=False):
    """Kernels of a bias-free `Dense` trained on one batch with mean squared
    error by Algorithm 1: the gradient is `(2 / y.size) x^T (x W - y)`.

    `eager=True` follows NDAdam's documented first eager step (`run_eagerly`
    without an earlier `optimizer.build`): the first gradient comes from the
    raw `kernel`, before the optimizer could normalize it."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    reference = NumpyNDAdam(
        {"w": kernel}, {"w": VECTOR_AXES}, lr_s=0.0, lr_v=vector_learning_rate
    )
    values = []
    for step in range(steps):
        w = np.asarray(kernel, np.float64) if eager and step == 0 else reference.w["w"]
        reference.step({"w": (2.0 / y.size) * x.T @ (x @ w - y)})
        values.append(reference.w["w"].copy())
    return values
