"""A network as a graph of operators: what the verifier reasons about.

Nodes are kept in topological order; node 0 is the input. Every node holds
one `operators.Operator` and the indices of the nodes it reads, and every
tensor has a leading batch axis (points, or BaB domains) followed by its
per-sample shape (for ONNX networks, ONNX's own shape, its batch axis of 1
included). Memory grows with the activations, never with their square: the
bounds (`keras_ndsru.verify.bounds`) ask each operator to apply itself, or
its transpose, to tensors of that shape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import torch

from keras_ndsru.verify.graph.operators.base import Operator


class Input(Operator):
    """The graph's input placeholder (node 0)."""

    def evaluate(self, x):
        return x


@dataclasses.dataclass
class Node:
    """One operator applied to earlier nodes' values.

    Attributes:
        op: the `Operator`.
        inputs: indices of the nodes it reads, in order.
        name: the node's name in its source format (for messages).
        shape: the per-sample output shape.
    """

    op: Operator
    inputs: tuple[int, ...]
    name: str
    shape: tuple[int, ...]


class Graph:
    """A feed-forward network as a DAG of `Node`s.

    Args:
        input_shape: per-sample input shape.
        name: a label used in messages. Defaults to "network".
        input_domain: optional ``(lower, upper)`` box of valid flattened
            inputs, intersected with every query's region. Defaults to None.

    Example:

    >>> from keras_ndsru.verify.graph.operators import MatMul, ReLU
    >>> g = Graph((2,))
    >>> h = g.add(MatMul(np.eye(2)), [0], "dense")
    >>> g.output = g.add(ReLU(), [h], "relu")
    >>> g(np.array([1.0, -2.0]))
    array([1., 0.])
    """

    def __init__(self, input_shape, name: str = "network", input_domain=None):
        shape = tuple(int(d) for d in input_shape)
        self.nodes: list[Node] = [Node(Input(), (), "input", shape)]
        self.output = 0
        self.name = name
        self.input_domain = None
        if input_domain is not None:
            lower, upper = (
                np.broadcast_to(np.asarray(v, np.float64).reshape(-1), (self.n_inputs,))
                for v in input_domain
            )
            self.input_domain = (lower.copy(), upper.copy())
        self._key = None

    def add(self, op: Operator, inputs, name: str) -> int:
        """Appends ``op`` reading nodes ``inputs``; returns its index."""
        inputs = tuple(int(i) for i in inputs)
        shape = op.bind([self.nodes[i].shape for i in inputs])
        self.nodes.append(Node(op, inputs, name, shape))
        self._key = None
        return len(self.nodes) - 1

    # -- shapes ---------------------------------------------------------------

    @property
    def input_shape(self) -> tuple:
        return self.nodes[0].shape

    @property
    def output_shape(self) -> tuple:
        return self.nodes[self.output].shape

    @property
    def n_inputs(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        return math.prod(self.output_shape)

    def splittable(self) -> list[int]:
        """Nodes whose operator BaB splits (ReLU-like), in order."""
        return [k for k, n in enumerate(self.nodes) if n.op.splittable]

    def pre_activations(self) -> list[int]:
        """Nodes read by a nonlinear operator: their bounds are needed."""
        needed = {i for n in self.nodes if not n.op.affine for i in n.inputs}
        return sorted(needed)

    @property
    def n_relus(self) -> int:
        return sum(math.prod(self.nodes[k].shape) for k in self.splittable())

    # -- evaluation -----------------------------------------------------------

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(batch, *output_shape)`` for inputs ``(batch, *input_shape)``."""
        last_use = self._last_use()
        values = {0: x}
        for k in range(1, self.output + 1):
            node = self.nodes[k]
            values[k] = node.op.evaluate(*[values[i] for i in node.inputs])
            for i in node.inputs:
                if last_use[i] == k and i != self.output:
                    values.pop(i, None)
        return values[self.output]

    def _last_use(self) -> dict:
        last = {}
        for k, node in enumerate(self.nodes):
            for i in node.inputs:
                last[i] = k
        return last

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Flat outputs ``(batch, n_outputs)`` of flat inputs ``(batch, n)``,
        in float64 (the interface of `network.ReluNetwork`)."""
        x = torch.as_tensor(np.asarray(x, np.float64)).reshape(-1, *self.input_shape)
        with torch.no_grad():
            out = self.evaluate(x)
        return out.reshape(out.shape[0], -1).numpy()

    def __call__(self, x) -> np.ndarray:
        """Outputs for one flat input ``(n,)`` or a batch ``(batch, n)``."""
        x = np.asarray(x, np.float64)
        out = self.forward(np.atleast_2d(x).reshape(-1, self.n_inputs))
        return out[0] if x.ndim == 1 else out

    def input_gradient(self, x: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """Gradient of ``outputs(x[i]) @ coef[i]`` w.r.t. ``x[i]``, per row."""
        x = torch.as_tensor(np.asarray(x, np.float64)).reshape(-1, *self.input_shape)
        x.requires_grad_(True)
        out = self.evaluate(x).reshape(x.shape[0], -1)
        coef = torch.as_tensor(np.asarray(coef, np.float64)).reshape(-1, out.shape[1])
        (grad,) = torch.autograd.grad((out * coef).sum(), x)
        return grad.reshape(x.shape[0], -1).numpy()

    @property
    def key(self) -> str:
        """A content hash: worker processes cache the graph under it."""
        if self._key is None:
            digest = hashlib.sha256()
            for node in self.nodes:
                digest.update(
                    f"{type(node.op).__name__}{node.inputs}{node.shape}".encode()
                )
                for value in sorted(vars(node.op).items(), key=lambda kv: kv[0]):
                    if isinstance(value[1], np.ndarray):
                        digest.update(np.ascontiguousarray(value[1]).tobytes())
                    elif not value[0].startswith("_"):
                        digest.update(repr(value[1]).encode())
            self._key = digest.hexdigest()
        return self._key

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_key"] = None
        state.pop("_max_as_relu", None)  # a cached rewrite: made again on use
        return state

    def __repr__(self) -> str:
        kinds = {}
        for node in self.nodes[1:]:
            kinds[type(node.op).__name__] = kinds.get(type(node.op).__name__, 0) + 1
        ops = ", ".join(f"{k} x{v}" for k, v in kinds.items())
        return (
            f"Graph(name={self.name!r}, input={self.input_shape}, "
            f"output={self.output_shape}, {ops})"
        )
