"""One VNN-COMP instance: an ONNX network, a VNN-LIB property, a timeout.

The VNN-COMP rules (Brix et al., "The Fourth International Verification of
Neural Networks Competition", 2023) ask for a result file holding ``unsat``
(the property holds), ``sat`` and a counterexample::

    sat
    ((X_0 0.6)
     (X_1 -0.5)
     (Y_0 3.99))

or ``timeout`` / ``unknown``. A counterexample is given in the network's
input precision (float32 for the ACAS Xu graphs), rounded into the input
box, and counts only after it is re-checked at that precision: in the
region, violating on the float64 network and, when `onnxruntime` is
installed, on the ONNX graph itself as onnxruntime evaluates it.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from keras_ndsru.verify import verifier
from keras_ndsru.verify.outcomes.outcome import Status
from keras_ndsru.verify.search.decide import Options


@dataclasses.dataclass
class InstanceResult:
    """The answer to one instance.

    Attributes:
        result: "unsat", "sat", "timeout" or "unknown" (VNN-COMP's words).
        counterexample: the flat input (``sat``), in the input precision.
        outputs: the network's flat outputs at it (``sat``).
        seconds: wall-clock time from the start of loading.
        outcomes: one `outcome.PropertyOutcome` per input region.
    """

    result: str
    counterexample: np.ndarray | None = None
    outputs: np.ndarray | None = None
    seconds: float = 0.0
    outcomes: list = dataclasses.field(default_factory=list)

    def text(self) -> str:
        """The result file's contents."""
        if self.result != "sat":
            return self.result + "\n"
        lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(self.counterexample)]
        lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(self.outputs)]
        return "sat\n(" + "\n ".join(lines) + ")\n"


ENGINES = ("auto", "split", "graph")


def _chain_or_none(onnx_path):
    """The network as a `ReluNetwork`, or None if it is not a chain."""
    from keras_ndsru.verify.formats.onnx_reader import load_onnx
    from keras_ndsru.verify.graph.network import NotAChain

    try:
        return load_onnx(onnx_path)
    except NotAChain:
        return None


def run_instance(
    onnx_path,
    vnnlib_path,
    timeout: float,
    executor=None,
    options=None,
    engine: str = "auto",
    graph_options=None,
    device: str | None = None,
) -> InstanceResult:
    """Decides one VNN-COMP instance within ``timeout`` seconds (all included).

    Args:
        onnx_path: the network (`onnx_graph.load_onnx_graph`).
        vnnlib_path: the property (`vnnlib.read_vnnlib`).
        timeout: seconds for loading and deciding, > 0.
        executor: a `concurrent.futures.Executor` for the disjuncts (input
            splitting), or None to run them in-process. Defaults to None.
        options: a `decide.Options` (input splitting). Defaults to `Options()`.
        engine: "split" (input splitting and MILP on an affine/ReLU chain:
            networks with few inputs, e.g. ACAS Xu), "graph" (attack,
            alpha-CROWN and beta-CROWN branch and bound on the operator
            graph, on a GPU when present) or "auto" (split for at most
            ``options.split_max_dims`` inputs when the network is a chain,
            else graph). Defaults to "auto".
        graph_options: a `complete.GraphOptions`. Defaults to its defaults.
        device: the graph engine's device ("auto", "cpu", "cuda"), replacing
            ``graph_options.device`` when given. Defaults to None.

    Returns:
        An `InstanceResult`.
    """
    from keras_ndsru.verify.formats.onnx_model import input_size
    from keras_ndsru.verify.formats.vnnlib import read_vnnlib

    if engine not in ENGINES:
        raise ValueError(
            f"engine must be one of {ENGINES}. Received: engine={engine!r}"
        )
    start = time.time()
    options = options or Options()
    network = None
    if engine == "auto":
        # Decided before loading: input splitting needs no PyTorch (seconds).
        small = input_size(onnx_path) <= options.split_max_dims
        engine = "split" if small else "graph"
        if small:
            network = _chain_or_none(onnx_path)
            engine = "split" if network is not None else "graph"
    if engine == "split":
        from keras_ndsru.verify.formats.onnx_reader import load_onnx

        network = network or load_onnx(onnx_path)
    else:
        from keras_ndsru.verify.formats.onnx_graph import load_onnx_graph
        from keras_ndsru.verify.search.complete import GraphOptions

        network = load_onnx_graph(onnx_path)
        graph_options = graph_options or GraphOptions()
        if device is not None:
            graph_options = dataclasses.replace(graph_options, device=device)
    properties = read_vnnlib(vnnlib_path, network.n_inputs, network.n_outputs)
    runtime = _OnnxRuntime.open(onnx_path)
    dtype = runtime.dtype if runtime else np.float32

    def precise(prop, x):
        """``x`` in the input precision, nudged into the box."""
        low = np.asarray(x, np.float64).astype(dtype)
        for bound, toward in (
            (prop.region.upper, -np.inf),
            (prop.region.lower, np.inf),
        ):
            outside = (low > bound) if toward < 0 else (low < bound)
            low = np.where(outside, np.nextafter(low, dtype(toward)), low)
        return low.astype(np.float64)

    def confirm(q, x):
        prop = properties[q]
        point = precise(prop, x.ravel())
        if prop.violated_by(network, point) is None:
            return False
        if runtime is None:
            return True
        y = runtime(point)
        rows, rhs, _ = prop.rows()
        values = rows @ y - rhs
        starts = prop.row_starts()
        return bool(np.any(np.maximum.reduceat(values, starts) <= 0))

    left = max(float(timeout) - (time.time() - start), 0.0)
    if engine == "split":
        outcomes = verifier.check(
            network,
            properties,
            confirm=confirm,
            timeout=left,
            executor=executor,
            options=options,
        )
    else:
        outcomes = verifier.check_graph(
            network, properties, confirm=confirm, timeout=left, options=graph_options
        )
    seconds = time.time() - start
    for prop, outcome in zip(properties, outcomes):
        if outcome.status is Status.VIOLATED:
            x = precise(prop, outcome.counterexample.ravel())
            y = runtime(x) if runtime else network(x)
            return InstanceResult("sat", x, y, seconds, outcomes)
    if all(o.status is Status.SAFE for o in outcomes):
        return InstanceResult("unsat", seconds=seconds, outcomes=outcomes)
    ran_out = time.time() - start >= float(timeout) - 1e-3
    return InstanceResult(
        "timeout" if ran_out else "unknown", seconds=seconds, outcomes=outcomes
    )


class _OnnxRuntime:
    """The ONNX graph as onnxruntime evaluates it (None when not installed)."""

    def __init__(self, session):
        self.session = session
        self.input = session.get_inputs()[0]
        kinds = {"tensor(float)": np.float32, "tensor(double)": np.float64}
        self.dtype = kinds.get(self.input.type, np.float32)
        self.shape = [
            d if isinstance(d, int) and d > 0 else 1 for d in self.input.shape
        ]

    @classmethod
    def open(cls, path):
        try:
            import onnxruntime
        except ImportError:
            return None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return cls(onnxruntime.InferenceSession(os.fspath(path), options))

    def __call__(self, x) -> np.ndarray:
        feed = np.asarray(x, self.dtype).reshape(self.shape)
        out = self.session.run(None, {self.input.name: feed})[0]
        return np.asarray(out, np.float64).ravel()
