"""Every operator's rules against independent references: interval and CROWN
bounds contain densely sampled values, back-substitution equals the dense
Jacobian for affine operators, and relaxations are valid lines."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from keras_ndsru.verify.bounds import crown
from keras_ndsru.verify.graph import operators as ops
from keras_ndsru.verify.graph.graph import Graph


def _graph(input_shape, build):
    """A graph ``input -> build(graph, 0) -> output``."""
    g = Graph(input_shape)
    g.output = build(g, 0)
    return g


def _box(rng, shape, width=0.6):
    center = rng.normal(size=(1, *shape))
    radius = rng.uniform(0.05, width, size=(1, *shape))
    return crown.Box(torch.tensor(center - radius), torch.tensor(center + radius))


def _samples(rng, box, count=4000):
    low, high = box.lower.numpy(), box.upper.numpy()
    x = rng.uniform(low, high, size=(count, *low.shape[1:]))
    corners = np.where(rng.integers(0, 2, size=(count // 4, *low.shape[1:])), low, high)
    return torch.tensor(np.concatenate([x, corners]))


def _check_bounds(g, box, rng):
    """IBP and CROWN (all output rows, both signs) contain every sample."""
    bounds = crown.intermediate_bounds(g, box)
    lo_ibp, hi_ibp = bounds[g.output]
    n_out = g.n_outputs
    C, _ = crown.output_rows(g, np.eye(n_out), np.zeros(n_out), 1, box.lower)
    lo = crown.back_substitute(g, g.output, C, bounds, box)[0]
    hi = -crown.back_substitute(g, g.output, -C, bounds, box)[0]
    y = g.evaluate(_samples(rng, box)).reshape(-1, n_out)
    tol = 1e-9
    assert torch.all(y >= lo_ibp.reshape(1, -1) - tol)
    assert torch.all(y <= hi_ibp.reshape(1, -1) + tol)
    assert torch.all(y >= lo - tol), (y.min(0).values - lo).min()
    assert torch.all(y <= hi + tol), (hi - y.max(0).values).min()
    return lo, hi, y


AFFINE = {
    "matmul_right": (
        (3, 4),
        lambda g, x: g.add(
            ops.MatMul(np.arange(20.0).reshape(4, 5) / 7 - 1, np.ones(5)), [x], "m"
        ),
    ),
    "matmul_vector": (
        (2, 4),
        lambda g, x: g.add(ops.MatMul(np.array([1.0, -2.0, 0.5, 3.0])), [x], "v"),
    ),
    "matmul_left": (
        (4, 3),
        lambda g, x: g.add(
            ops.MatMul(np.arange(8.0).reshape(2, 4) - 3, side="left"), [x], "l"
        ),
    ),
    "matmul_left_vector": (
        (4,),
        lambda g, x: g.add(
            ops.MatMul(np.array([1.0, -1.0, 2.0, 0.0]), side="left"), [x], "lv"
        ),
    ),
    "conv_stride_pad": (
        (1, 2, 7, 6),
        lambda g, x: g.add(
            ops.Conv(
                np.random.default_rng(1).normal(size=(3, 2, 3, 2)),
                np.array([0.1, -0.2, 0.3]),
                [2, 1],
                [1, 0, 2, 1],
                [1, 1],
                1,
            ),
            [x],
            "c",
        ),
    ),
    "conv_dilated_grouped": (
        (1, 4, 8, 8),
        lambda g, x: g.add(
            ops.Conv(
                np.random.default_rng(2).normal(size=(4, 2, 2, 3)),
                None,
                [1, 2],
                [0, 1, 1, 0],
                [2, 1],
                2,
            ),
            [x],
            "c",
        ),
    ),
    "conv_uncovered_rows": (
        (1, 1, 8, 8),
        lambda g, x: g.add(
            ops.Conv(
                np.random.default_rng(4).normal(size=(2, 1, 3, 3)),
                None,
                [2, 2],
                [0, 0, 0, 0],
                [1, 1],
                1,
            ),
            [x],
            "c",
        ),
    ),
    "conv1d": (
        (1, 2, 9),
        lambda g, x: g.add(
            ops.Conv(
                np.random.default_rng(3).normal(size=(3, 2, 3)),
                None,
                [2],
                [1, 1],
                [1],
                1,
            ),
            [x],
            "c",
        ),
    ),
    "scale_batchnorm": (
        (1, 3, 2, 2),
        lambda g, x: g.add(
            ops.Scale(
                np.array([2.0, -1.0, 0.5]).reshape(3, 1, 1),
                np.array([1.0, 0.0, -1.0]).reshape(3, 1, 1),
            ),
            [x],
            "bn",
        ),
    ),
    "avgpool": (
        (1, 2, 5, 5),
        lambda g, x: g.add(
            ops.AveragePool(
                (3, 3),
                (2, 2),
                (1, 1),
                (1, 1),
                np.array([[4.0, 6, 4], [6, 9, 6], [4, 6, 4]]),
            ),
            [x],
            "ap",
        ),
    ),
    "reshape_transpose": (
        (2, 3, 4),
        lambda g, x: g.add(
            ops.Transpose((2, 0, 1)), [g.add(ops.Reshape((2, 3, 4)), [x], "r")], "t"
        ),
    ),
    "gather": (
        (3, 4),
        lambda g, x: g.add(
            ops.Gather(np.array([[0, 5, 5], [11, 2, 7]])), [x], "gather"
        ),
    ),
    "pad": (
        (1, 2, 3),
        lambda g, x: g.add(ops.Pad([0, 1, 0, 0, 0, 2], value=0.5), [x], "pad"),
    ),
    "sum_sub": (
        (2, 3),
        lambda g, x: g.add(
            ops.Sum((1, -1)),
            [x, g.add(ops.Scale(np.array([2.0, 1.0, -3.0])), [x], "s")],
            "sub",
        ),
    ),
    "concat_constant": (
        (2, 3),
        lambda g, x: g.add(
            ops.Concat(1), [x, g.add(ops.Constant(np.ones((2, 2))), [0], "k")], "cat"
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(AFFINE))
def test_affine_backward_is_the_dense_jacobian(name):
    """Back-substitution through an affine operator: ``A @ J`` and the
    constant ``A @ f(0)``, against the Jacobian found by autograd."""
    shape, build = AFFINE[name]
    g = _graph(shape, build)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(1, *shape)))
    jac = torch.autograd.functional.jacobian(lambda v: g.evaluate(v).reshape(-1), x)
    jac = jac.reshape(g.n_outputs, -1)
    A = torch.tensor(rng.normal(size=(1, 3, *g.output_shape)))
    box = crown.Box(x, x)
    bounds = crown.interval_pass(g, box)
    value = crown.back_substitute(g, g.output, A, bounds, box)
    expected = (A.reshape(3, -1) @ g.evaluate(x).reshape(-1, 1)).ravel()
    np.testing.assert_allclose(value[0], expected, rtol=1e-10, atol=1e-10)
    # the coefficients themselves: bound a point box at x + e_j
    direction = torch.zeros_like(x).reshape(-1)
    direction[rng.integers(direction.numel())] = 1.0
    moved = (x.reshape(-1) + direction).reshape(x.shape)
    box2 = crown.Box(moved, moved)
    value2 = crown.back_substitute(g, g.output, A, crown.interval_pass(g, box2), box2)
    np.testing.assert_allclose(
        (value2 - value)[0], (A.reshape(3, -1) @ jac @ direction), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("name", sorted(AFFINE))
def test_affine_bounds_contain_samples(name):
    shape, build = AFFINE[name]
    rng = np.random.default_rng(1)
    _check_bounds(_graph(shape, build), _box(rng, shape), rng)


def _mlp(rng, activation, sizes=(3, 6, 5, 2)):
    def build(g, x):
        for k, (i, o) in enumerate(zip(sizes, sizes[1:])):
            w = rng.normal(size=(i, o)) / math.sqrt(i)
            x = g.add(ops.MatMul(w, rng.normal(size=o) * 0.3), [x], f"d{k}")
            if k < len(sizes) - 2:
                x = g.add(activation(), [x], f"a{k}")
        return x

    return build


ACTIVATIONS = {
    "relu": ops.ReLU,
    "leaky": lambda: ops.LeakyReLU(0.2),
    "sigmoid": ops.Sigmoid,
    "tanh": ops.Tanh,
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_nonlinear_network_bounds_contain_samples(name):
    rng = np.random.default_rng(2)
    for _trial in range(4):
        g = _graph((3,), _mlp(rng, ACTIVATIONS[name]))
        lo, hi, y = _check_bounds(g, _box(rng, (3,), width=1.5), rng)
        assert torch.all(hi - lo < 1e3)


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_s_shaped_relaxation_lines_are_valid(kind):
    """``ls z + lb <= f(z) <= us z + ub`` on a fine grid of each interval:
    convex, concave and mixed intervals, wide, narrow and far out."""
    op = ACTIVATIONS[kind]()
    rng = np.random.default_rng(3)
    lows = np.concatenate([rng.uniform(-8, 8, 400), [-1e-3, -5.0, 0.0, -20.0, 3.0]])
    widths = np.concatenate([rng.exponential(2.0, 400), [2e-3, 1e-8, 4.0, 40.0, 1e-3]])
    lower = torch.tensor(lows)[None]
    upper = lower + torch.tensor(widths)[None]
    ls, lb, us, ub = op.relaxation(lower, upper)
    t = torch.linspace(0, 1, 2001)[:, None]
    z = lower + t * (upper - lower)
    f = op.function(z)
    assert torch.all(ls * z + lb <= f + 1e-12)
    assert torch.all(us * z + ub >= f - 1e-12)


def test_relu_relaxation_with_any_alpha_is_valid():
    op = ops.ReLU()
    rng = np.random.default_rng(4)
    lower = torch.tensor(rng.uniform(-2, 1, size=(1, 50)))
    upper = lower + torch.tensor(rng.uniform(0, 3, size=(1, 50)))
    alpha = torch.tensor(rng.uniform(0, 1, size=(1, 1, 50)))
    ls, lb, us, ub = op.relaxation(lower, upper, alpha)
    z = lower + torch.linspace(0, 1, 501)[:, None] * (upper - lower)
    f = torch.relu(z)
    assert torch.all(ls[0] * z + lb <= f + 1e-12)
    assert torch.all(us * z + ub >= f - 1e-12)


@pytest.mark.parametrize(
    "kernel, strides, begin, end, dilations",
    [
        ((2, 2), (2, 2), (0, 0), (0, 0), (1, 1)),
        ((3, 3), (1, 2), (1, 1), (1, 2), (1, 1)),
        ((2, 3), (2, 1), (0, 1), (1, 0), (2, 1)),
    ],
)
def test_maxpool_evaluates_as_torch_and_bounds_contain_samples(
    kernel, strides, begin, end, dilations
):
    rng = np.random.default_rng(5)
    shape = (1, 2, 6, 7)
    g = _graph(
        shape,
        lambda g, x: g.add(
            ops.MaxPool(kernel, strides, begin, end, dilations), [x], "mp"
        ),
    )
    x = torch.tensor(rng.normal(size=(3, *shape)))
    padded = F.pad(
        x.reshape(3, 2, 6, 7), (begin[1], end[1], begin[0], end[0]), value=-math.inf
    )
    expected = F.max_pool2d(padded, kernel, strides, dilation=dilations)
    np.testing.assert_array_equal(g.evaluate(x).reshape(expected.shape), expected)
    for _ in range(3):
        _check_bounds(g, _box(rng, shape, width=1.0), rng)


def test_residual_graph_bounds_contain_samples():
    """Two tensors live across a block: ``relu(W2 relu(W1 x)) + x``."""
    rng = np.random.default_rng(6)

    def build(g, x):
        h = g.add(ops.MatMul(rng.normal(size=(4, 4)), rng.normal(size=4)), [x], "d1")
        h = g.add(ops.ReLU(), [h], "r1")
        h = g.add(ops.MatMul(rng.normal(size=(4, 4))), [h], "d2")
        h = g.add(ops.Sum((1, 1)), [h, x], "add")
        h = g.add(ops.ReLU(), [h], "r2")
        return g.add(ops.MatMul(rng.normal(size=(4, 2))), [h], "out")

    g = _graph((4,), build)
    for _ in range(4):
        _check_bounds(g, _box(rng, (4,), width=1.0), rng)


def test_leaky_relu_rejects_slopes_outside_0_1():
    with pytest.raises(ValueError, match="Received: alpha=1.5"):
        ops.LeakyReLU(1.5)
