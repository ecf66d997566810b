"""A plain NumPy affine/ReLU network: what the verifier reasons about."""

from __future__ import annotations

import hashlib
import math

import numpy as np


class NotAChain(ValueError):
    """A graph is not an affine/ReLU chain (or a layer of it is too large
    for a dense matrix): `keras_ndsru.verify.graph.chain`."""


class ReluNetwork:
    """A feed-forward chain of affine layers, each but the last followed by ReLU.

    ``y = W_L relu(... relu(W_1 x + b_1) ...) + b_L`` in float64. This is the
    piecewise-linear function that the Reluplex paper (arXiv 1709.02802, Sec. 2)
    verifies; `.nnet` files, and Keras models and ONNX graphs that are
    affine/ReLU chains (`keras_ndsru.verify.graph.chain`), are read into it;
    residual connections, pooling and other activations stay on the graph
    engine (`keras_ndsru.verify.graph.graph.Graph`).

    Args:
        weights: list of 2-D arrays, ``weights[k]`` of shape ``(n_out, n_in)``.
        biases: list of 1-D arrays, ``biases[k]`` of shape ``(n_out,)``.
        input_shape: shape of one input before flattening. Defaults to
            ``(n_inputs,)``.
        input_domain: optional ``(lower, upper)`` box of valid (flattened)
            inputs, intersected with every query's neighbourhood. Defaults to
            `None` (unbounded).
        name: a label used in messages. Defaults to `"network"`.

    Example:

    >>> net = ReluNetwork([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> net(np.array([1.0, -2.0]))
    array([1.])
    """

    def __init__(
        self,
        weights,
        biases,
        input_shape=None,
        input_domain=None,
        name: str = "network",
    ):
        if len(weights) == 0 or len(weights) != len(biases):
            raise ValueError(
                "Expected as many weight matrices as bias vectors, at least one. "
                f"Received: len(weights)={len(weights)}, len(biases)={len(biases)}"
            )
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64).reshape(-1) for b in biases]
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.ndim != 2 or w.shape[0] != b.shape[0]:
                raise ValueError(
                    f"Layer {k}: expected weights (n_out, n_in) matching biases "
                    f"(n_out,). Received: weights.shape={w.shape}, "
                    f"biases.shape={b.shape}"
                )
            if k and w.shape[1] != self.weights[k - 1].shape[0]:
                raise ValueError(
                    f"Layer {k} expects {w.shape[1]} inputs but layer {k - 1} has "
                    f"{self.weights[k - 1].shape[0]} outputs. "
                    f"Received: weights[{k}].shape={w.shape}"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(
                    f"Layer {k} has non-finite weights or biases. "
                    f"Received: weights[{k}]={w.tolist()}"[:300]
                )
        self.input_shape = tuple(input_shape) if input_shape else (self.n_inputs,)
        if math.prod(self.input_shape) != self.n_inputs:
            raise ValueError(
                f"input_shape must have {self.n_inputs} elements. "
                f"Received: input_shape={input_shape}"
            )
        self.input_domain = None
        if input_domain is not None:
            lower, upper = (np.asarray(v, dtype=np.float64) for v in input_domain)
            lower = np.broadcast_to(lower.reshape(-1), (self.n_inputs,)).copy()
            upper = np.broadcast_to(upper.reshape(-1), (self.n_inputs,)).copy()
            if np.any(lower > upper):
                raise ValueError(
                    "input_domain lower must not exceed upper. "
                    f"Received: input_domain={input_domain}"
                )
            self.input_domain = (lower, upper)
        self.name = name
        self._key = None

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def hidden_sizes(self) -> list[int]:
        return [w.shape[0] for w in self.weights[:-1]]

    @property
    def n_relus(self) -> int:
        """Hidden neurons (all ReLUs)."""
        return sum(b.size for b in self.biases[:-1])

    @property
    def key(self) -> str:
        """A content hash: worker processes cache the network under it."""
        if self._key is None:
            digest = hashlib.sha256()
            for part in (*self.weights, *self.biases):
                digest.update(np.ascontiguousarray(part).tobytes())
            self._key = digest.hexdigest()
        return self._key

    def __call__(self, x) -> np.ndarray:
        """Outputs for one flattened input ``(n,)`` or a batch ``(batch, n)``."""
        x = np.asarray(x, dtype=np.float64)
        out = self.forward(np.atleast_2d(x))
        return out[0] if x.ndim == 1 else out

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch ``x`` of shape (batch, n)."""
        return forward(self.weights, self.biases, x)

    def input_gradient(self, x: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """Gradient of ``outputs(x[i]) @ coef[i]`` w.r.t. ``x[i]``, per row."""
        h = x
        masks = []
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            z = h @ w.T + b
            masks.append(z > 0)
            h = np.maximum(z, 0.0)
        g = np.broadcast_to(np.atleast_2d(coef) @ self.weights[-1], h.shape)
        for mask, w in zip(reversed(masks), reversed(self.weights[:-1])):
            g = (g * mask) @ w
        return np.broadcast_to(g, x.shape)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_key"] = None
        return state

    def __repr__(self) -> str:
        sizes = [self.n_inputs, *self.hidden_sizes, self.n_outputs]
        return f"ReluNetwork(name={self.name!r}, sizes={sizes})"


def forward(weights, biases, x: np.ndarray) -> np.ndarray:
    """Outputs of the affine/ReLU chain for a batch ``x`` of shape (batch, n)."""
    h = x
    last = len(weights) - 1
    for k, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w.T + b
        if k < last:
            h = np.maximum(h, 0.0)
    return h
