"""Lowering a feed-forward graph (ONNX, Keras) to one `ReluNetwork` chain.

Every tensor of the graph is kept as an `Affine` function of the chain's
current layer outputs (dense coefficients: fine for small networks, the
memory is ``layer width x tensor size`` floats). Affine operations (Gemm,
MatMul, Conv, BatchNormalization, AveragePool, Add, Reshape, ...) only update
these coefficients. A nonlinearity closes a hidden layer: its ReLU neurons,
plus pass-through (identity) neurons for every tensor still needed later, so
residual connections need no DAG: the skipped tensor rides along the chain,
exactly and without a case split (`ReluNetwork.passthrough`). LeakyReLU is
``a z + (1 - a) relu(z)`` and max-pooling is a tree of
``max(a, b) = a + relu(b - a)``, both exact.
"""

from __future__ import annotations

import math

import numpy as np

from keras_ndsru.verify.graph.network import ReluNetwork


class Affine:
    """A tensor ``t = sum_i s_i coef[i] + const`` of the chain's state ``s``.

    Args:
        coef: array ``(state_dim, *shape)``.
        const: array ``shape``.
    """

    def __init__(self, coef: np.ndarray, const: np.ndarray):
        self.coef = np.asarray(coef, np.float64)
        self.const = np.asarray(const, np.float64)

    @property
    def shape(self) -> tuple:
        return self.const.shape

    @property
    def size(self) -> int:
        return self.const.size

    def flat_coef(self) -> np.ndarray:
        return self.coef.reshape(self.coef.shape[0], -1)

    def map(self, linear, offset=0.0) -> Affine:
        """``linear(t) + offset`` for a linear ``linear`` of batched arrays
        (it receives arrays ``(batch, *shape)``)."""
        return Affine(linear(self.coef), linear(self.const[None])[0] + offset)

    def reshape(self, shape) -> Affine:
        return self.map(lambda a: a.reshape(a.shape[0], *shape))

    def transpose(self, perm) -> Affine:
        return self.map(lambda a: a.transpose(0, *[p + 1 for p in perm]))

    def broadcast_to(self, shape) -> Affine:
        dim = self.coef.shape[0]
        return Affine(
            np.broadcast_to(self.coef, (dim, *shape)).copy(),
            np.broadcast_to(self.const, shape).copy(),
        )

    def __add__(self, other: Affine) -> Affine:
        shape = np.broadcast_shapes(self.shape, other.shape)
        a, b = self.broadcast_to(shape), other.broadcast_to(shape)
        return Affine(a.coef + b.coef, a.const + b.const)

    def scale(self, factor) -> Affine:
        shape = np.broadcast_shapes(self.shape, np.shape(factor))
        a = self.broadcast_to(shape)
        return Affine(a.coef * factor, a.const * factor)

    def shift(self, offset) -> Affine:
        shape = np.broadcast_shapes(self.shape, np.shape(offset))
        a = self.broadcast_to(shape)
        return Affine(a.coef, a.const + offset)

    def take(self, flat_index: np.ndarray) -> Affine:
        """Elements at flat indices (an index of -1 gives 0)."""
        coef = np.concatenate([self.flat_coef(), np.zeros((self.coef.shape[0], 1))], 1)
        const = np.concatenate([self.const.ravel(), [0.0]])
        return Affine(coef[:, flat_index], const[flat_index])


class Chain:
    """Collects the hidden layers of the chain while a graph is lowered.

    Args:
        input_shape: shape of one input (the chain's first state).
    """

    def __init__(self, input_shape):
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dim = math.prod(self.input_shape)
        self.weights, self.biases, self.passthrough = [], [], []

    def input(self) -> Affine:
        n = self.dim
        return Affine(
            np.eye(n).reshape(n, *self.input_shape), np.zeros(self.input_shape)
        )

    def close(self, relu: list[Affine], carry: list[Affine]):
        """A hidden layer: ReLU of each of ``relu``, identity of each of ``carry``.

        Returns the layer's outputs as `Affine`s of the new state:
        ``(relu_outputs, carried)``, shapes unchanged.
        """
        parts = [*relu, *carry]
        self.weights.append(np.concatenate([p.flat_coef() for p in parts], 1).T)
        self.biases.append(np.concatenate([p.const.ravel() for p in parts]))
        self.passthrough.append(
            np.concatenate(
                [np.full(p.size, i >= len(relu)) for i, p in enumerate(parts)]
            )
        )
        self.dim = self.biases[-1].size
        eye, start, out = np.eye(self.dim), 0, []
        for p in parts:
            rows = eye[:, start : start + p.size]
            out.append(Affine(rows.reshape(self.dim, *p.shape), np.zeros(p.shape)))
            start += p.size
        return out[: len(relu)], out[len(relu) :]

    def finish(self, output: Affine, **kwargs) -> ReluNetwork:
        """The `ReluNetwork` whose last (affine) layer computes ``output``."""
        weights = [*self.weights, output.flat_coef().T]
        biases = [*self.biases, output.const.ravel()]
        return ReluNetwork(
            weights,
            biases,
            input_shape=self.input_shape,
            passthrough=self.passthrough,
            **kwargs,
        )


class Values:
    """The graph's named values while it is lowered: `Affine` tensors and
    constant arrays, with each name's last use (to know what to carry).

    Args:
        chain: the `Chain` being built.
        last_use: name -> index of the last step reading it (graph outputs:
            ``math.inf``).
    """

    def __init__(self, chain: Chain, last_use: dict):
        self.chain = chain
        self.last_use = last_use
        self.values: dict = {}

    def __getitem__(self, name):
        return self.values[name]

    def __setitem__(self, name, value):
        self.values[name] = value

    def __contains__(self, name) -> bool:
        return name in self.values

    def close(self, step: int, relu: list[Affine], carry: list[Affine]):
        """`Chain.close`, also carrying every tensor read after ``step``."""
        live = [
            name
            for name, value in self.values.items()
            if isinstance(value, Affine) and self.last_use.get(name, -1) > step
        ]
        for name in [n for n, v in self.values.items() if isinstance(v, Affine)]:
            if name not in live:
                del self.values[name]  # expressed in an old state: never read again
        out, carried = self.chain.close(relu, [*carry, *(self.values[n] for n in live)])
        for name, value in zip(live, carried[len(carry) :]):
            self.values[name] = value
        return out, carried[: len(carry)]

    def relu(self, step: int, x: Affine) -> Affine:
        (out,), _ = self.close(step, [x], [])
        return out

    def leaky_relu(self, step: int, x: Affine, alpha: float) -> Affine:
        """``max(x, alpha x)`` for ``alpha <= 1``, i.e. ``alpha x + (1 - alpha)
        relu(x)`` (also Keras' ``x if x > 0 else alpha x`` for any alpha)."""
        if alpha == 0.0:
            return self.relu(step, x)
        (r,), (z,) = self.close(step, [x], [x])
        return r.scale(1.0 - alpha) + z.scale(alpha)

    def max_over(self, step: int, x: Affine, windows: np.ndarray, shape) -> Affine:
        """Maxima over windows of ``x``'s flat elements.

        Args:
            windows: int array ``(outputs, k)`` of flat indices into ``x``,
                ``-1`` for none (each row has at least one).
            shape: shape of the result (``outputs`` elements).
        """
        windows = np.asarray(windows, np.int64)
        # Valid entries first in each row.
        order = np.argsort(windows < 0, axis=1, kind="stable")
        slots = np.take_along_axis(windows, order, axis=1)
        flat = x.reshape((x.size,))
        while slots.shape[1] > 1:
            if slots.shape[1] % 2:
                slots = np.concatenate([slots, np.full((len(slots), 1), -1)], 1)
            a, b = slots[:, 0::2], slots[:, 1::2]
            pair = b >= 0
            # Round: relu(b - a) for pairs; a (or a single) is carried.
            diff = flat.take(b[pair]) + flat.take(a[pair]).scale(-1.0)
            keep_index = a[a >= 0]
            (r,), (k,) = self.close(step, [diff], [flat.take(keep_index)])
            # New slots: pairs are k[a] + r, singles are k[a].
            k_pos = np.full(a.shape, -1)
            k_pos[a >= 0] = np.arange(keep_index.size)
            r_pos = np.full(a.shape, -1)
            r_pos[pair] = np.arange(int(pair.sum()))
            valid = a >= 0
            flat = k.take(k_pos[valid]) + r.take(r_pos[valid])
            slots = np.full(a.shape, -1)
            slots[valid] = np.arange(int(valid.sum()))
        return flat.take(slots[:, 0]).reshape(tuple(shape))
