"""Speed of the SRU layer with the fused op against its peers, on CPU.

`--backend tensorflow` (default): one run, batch 32, for (time, units) =
(32, 256) and (128, 512) (input size = units), all timed side by side in
this process:

- `keras_ndsru.SRU` with the fused op and with the keras.ops fallback,
- `keras.layers.LSTM` and `keras.layers.GRU` with the same units,
- the official PyTorch `sru` package (`sru.SRU`, PyPI `sru` 2.6.0) on CPU:
  its forward through TorchScript (which runs its C++ CPU kernel; the eager
  module runs a Python loop), its forward + backward through the eager
  module (the only trainable path it has on CPU),
- the fused forward op alone against copying the same bytes (its inputs u
  and x_highway, `tf.raw_ops.DeepCopy`),
- the parts of the layer: the matmul U = x W alone (a bias-free Dense) and
  the recurrence alone on a given U, fused and fallback, and what is left,
- SRU fused vs fallback with input size != units (projected highway term).

`--backend torch` or `--backend jax`: the same shapes, Keras on that
backend: the SRU layer on the fused op (PyTorch custom operators, JAX FFI)
and on the fallback, against that backend's `keras.layers.LSTM` and `GRU`
(and on torch the official `sru`, as above). torch runs eagerly (Keras'
default there); JAX runs each function under `jax.jit` (`stateless_call`).

Forward = the layer's call (in a `tf.function` on TensorFlow, without
gradients on torch); forward + backward also takes the gradient of the
outputs' sum with respect to the input and every weight, and returns that
sum too (as a training step does; otherwise TensorFlow prunes forward ops
the gradient does not need).
Times are medians; ratios are "peer time / fused SRU time" (> 1: SRU faster).

Usage:
    .venv/bin/python benchmarks/sru_speed.py [--backend tensorflow] [--quick]
        [--no-torch]
    .venv/bin/python benchmarks/sru_speed.py --backend torch
    .venv-jax/bin/python benchmarks/sru_speed.py --backend jax
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

BACKENDS = ("tensorflow", "torch", "jax")


def requested_backend(argv: list[str]) -> str:
    """The `--backend` of a command line, read before Keras is imported
    (Keras picks its backend at import)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--backend", choices=BACKENDS, default="tensorflow")
    return parser.parse_known_args(argv)[0].backend


if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = requested_backend(sys.argv[1:])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# torch's OpenMP threads must not spin between calls and slow the TF ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ndsru  # noqa: E402
from keras_ndsru.ops import op_library, sru_recurrence  # noqa: E402

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

BATCH = 32
SHAPES = [(32, 256), (128, 512)]
# (time, units, input size): the highway term projects x (eq. (4) with W_h x).
PROJECTED_SHAPE = (128, 512, 256)


def round_robin_ms(timers: dict, min_seconds: float, min_reps: int = 5) -> dict:
    """Median wall time in ms of each callable, timed in turns (one call of
    each per round) so that load changes on a shared machine hit all alike."""
    for fn in timers.values():  # warm-up: tracing, allocation
        fn()
        fn()
    times = {name: [] for name in timers}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_reps or time.perf_counter() - start < min_seconds:
        for name, fn in timers.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def keras_timers(layer, x):
    """(forward, forward + backward) callables of a Keras layer on x."""
    layer(x)  # build

    @tf.function
    def forward():
        return layer(x)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        # Return the loss as a training step does: without it TensorFlow
        # prunes every forward op the gradient does not read, e.g. the
        # matmul of a lone Dense (d sum(xW) / dW needs only x).
        return loss, tape.gradient(loss, [x, *layer.trainable_variables])

    def run(fn):
        return lambda: [t.numpy() for t in tf.nest.flatten(fn())]

    return run(forward), run(forward_backward)


def recurrence_timers(steps: int, units: int, use_fused_kernel: bool):
    """(forward, forward + backward) of the recurrence alone on a given U."""
    rng = np.random.default_rng(0)
    u = tf.constant(rng.normal(size=(BATCH, steps, 3 * units)), tf.float32)
    x = tf.constant(rng.normal(size=(BATCH, steps, units)), tf.float32)
    weights = [tf.Variable(tf.zeros((2 * units,))) for _ in range(2)]

    def run(u, x):
        out = sru_recurrence(u, x, *weights, use_fused_kernel=use_fused_kernel)
        return out.h

    @tf.function
    def forward():
        return run(u, x)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch([u, x])
            loss = tf.reduce_sum(run(u, x))
        return loss, tape.gradient(loss, [u, x, *weights])

    return (
        lambda: forward().numpy(),
        lambda: [t.numpy() for t in tf.nest.flatten(forward_backward())],
    )


def op_timers(steps: int, units: int):
    """(fused forward op, copy of its input bytes) callables."""
    module = op_library.default_loader().module()
    rng = np.random.default_rng(0)
    u = tf.constant(rng.normal(size=(BATCH, steps, 3 * units)), tf.float32)
    x = tf.constant(rng.normal(size=(BATCH, steps, units)), tf.float32)
    weight_c = tf.zeros((2 * units,))
    c0 = tf.zeros((BATCH, units))
    lengths = tf.fill([BATCH], steps)

    # Eager CPU ops run synchronously: the call returns when the op is done.
    def fused():
        return module.keras_ndsru_sru_forward(u, x, weight_c, weight_c, c0, lengths)

    def copy():
        return tf.raw_ops.DeepCopy(x=u), tf.raw_ops.DeepCopy(x=x)

    return fused, copy


def torch_timers(steps: int, units: int):
    """(forward, forward + backward) of the official `sru` package, or a
    string saying why it cannot run."""
    try:
        with warnings.catch_warnings():
            # It tries to JIT-compile its CUDA kernels (and warns) at import.
            warnings.simplefilter("ignore")
            import sru
            import torch
    except Exception as e:  # noqa: BLE001 - any failure: report and go on
        return f"official sru unavailable: {type(e).__name__}: {e}"
    if keras.backend.backend() == "tensorflow":
        torch.set_num_threads(
            tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
        )
    torch.manual_seed(0)
    model = sru.SRU(units, units, num_layers=1)
    x = torch.randn(steps, BATCH, units)  # sru is time-major
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
    # On CPU its eager module warns at every call with gradients enabled.
    warnings.filterwarnings("ignore", "Running SRU on CPU with grad_enabled")

    def forward():
        with torch.no_grad():
            return scripted(x)[0]

    def forward_backward():
        xg = x.detach().requires_grad_(True)
        out = model(xg)[0]
        out.sum().backward()
        model.zero_grad(set_to_none=True)
        return xg.grad

    return forward, forward_backward


def peer_layers(units: int) -> dict:
    """The fused SRU layer and its peers, each returning sequences."""
    return {
        "SRU fused": keras_ndsru.SRU(
            units, return_sequences=True, use_fused_kernel=True
        ),
        "SRU fallback": keras_ndsru.SRU(
            units, return_sequences=True, use_fused_kernel=False
        ),
        "keras LSTM": keras.layers.LSTM(units, return_sequences=True),
        "keras GRU": keras.layers.GRU(units, return_sequences=True),
    }


def measure(quick: bool, with_torch: bool) -> list[dict]:
    """SRU fused / fallback, keras LSTM / GRU and (not on JAX) the official
    sru, timed in turns on the running backend; on TensorFlow also the parts
    of the fused layer's time."""
    min_seconds = 2.0 if quick else 15.0
    backend = keras.backend.backend()
    layer_timers = keras_timers if backend == "tensorflow" else backend_timers
    if backend == "torch":
        import torch

        torch.set_num_threads(os.cpu_count())
    rows = []
    for steps, units in SHAPES:
        rng = np.random.default_rng(0)
        x = keras.ops.convert_to_tensor(
            rng.normal(size=(BATCH, steps, units)).astype("float32")
        )
        timers = {}
        for name, layer in peer_layers(units).items():
            timers[name, "fwd"], timers[name, "fwd+bwd"] = layer_timers(layer, x)
        row = {"shape": (steps, units)}
        if with_torch and backend != "jax":
            torch_fns = torch_timers(steps, units)
            if isinstance(torch_fns, str):
                row["torch_note"] = torch_fns
            else:
                timers["official sru", "fwd"] = torch_fns[0]
                timers["official sru", "fwd+bwd"] = torch_fns[1]
        if backend == "tensorflow":
            timers.update(part_timers(steps, units, x))
        ms = round_robin_ms(timers, min_seconds)
        for name, kind in timers:
            row.setdefault(name, {})[kind] = ms[name, kind]
        rows.append(row)
    return rows


def part_timers(steps: int, units: int, x) -> dict:
    """Timers of the fused layer's parts: the matmul, the recurrence alone
    (fused and fallback), the op and a copy of its input bytes."""
    timers = {}
    for name, fused in (("recurrence fused", True), ("recurrence fallback", False)):
        fns = recurrence_timers(steps, units, fused)
        timers[name, "fwd"], timers[name, "fwd+bwd"] = fns
    matmul = keras.layers.Dense(3 * units, use_bias=False)
    timers["matmul U = xW", "fwd"], timers["matmul U = xW", "fwd+bwd"] = keras_timers(
        matmul, x
    )
    timers["op", "fwd"], timers["op", "copy"] = op_timers(steps, units)
    return timers


def measure_projected(quick: bool) -> dict:
    """SRU fused vs fallback when the input size differs from units."""
    steps, units, features = PROJECTED_SHAPE
    x = tf.random.normal((BATCH, steps, features), seed=0)
    timers = {}
    for name, fused in (("SRU fused", True), ("SRU fallback", False)):
        layer = keras_ndsru.SRU(units, return_sequences=True, use_fused_kernel=fused)
        timers[name, "fwd"], timers[name, "fwd+bwd"] = keras_timers(layer, x)
    ms = round_robin_ms(timers, 2.0 if quick else 10.0)
    row = {"shape": PROJECTED_SHAPE}
    for name, kind in timers:
        row.setdefault(name, {})[kind] = ms[name, kind]
    return row


PEERS = ["SRU fused", "SRU fallback", "keras LSTM", "keras GRU", "official sru"]


def peer_lines(rows: list[dict]) -> list[str]:
    """The models' table: times and ratios to the fused SRU."""
    lines = [
        "| (L, d) | model | fwd ms | fwd+bwd ms | fwd ratio | fwd+bwd ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        fused_f, fused_fb = row["SRU fused"]["fwd"], row["SRU fused"]["fwd+bwd"]
        for name in PEERS:
            if name not in row:
                continue
            f, fb = row[name]["fwd"], row[name]["fwd+bwd"]
            lines.append(
                f"| {row['shape']} | {name} | {f:.2f} | {fb:.2f} | "
                f"{f / fused_f:.2f}x | {fb / fused_fb:.2f}x |"
            )
        if "torch_note" in row:
            lines.append(
                f"| {row['shape']} | official sru | {row['torch_note']} | | | |"
            )
    return lines


def format_table(rows: list[dict]) -> str:
    parts = ["matmul U = xW", "recurrence fused", "recurrence fallback"]
    lines = peer_lines(rows)
    lines += [
        "",
        "Where the fused SRU layer's time goes (ratio = time / SRU fused time):",
        "",
        "| (L, d) | part | fwd ms | fwd+bwd ms | fwd ratio | fwd+bwd ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        fused_f, fused_fb = row["SRU fused"]["fwd"], row["SRU fused"]["fwd+bwd"]
        both = {
            kind: row["matmul U = xW"][kind] + row["recurrence fused"][kind]
            for kind in ("fwd", "fwd+bwd")
        }
        row["matmul + recurrence fused"] = both
        row["rest (layer - both)"] = {
            kind: row["SRU fused"][kind] - both[kind] for kind in both
        }
        for name in [*parts, "matmul + recurrence fused", "rest (layer - both)"]:
            f, fb = row[name]["fwd"], row[name]["fwd+bwd"]
            lines.append(
                f"| {row['shape']} | {name} | {f:.2f} | {fb:.2f} | "
                f"{f / fused_f:.2f}x | {fb / fused_fb:.2f}x |"
            )
    lines += [
        "",
        "Largest fallback / fused ratio any recurrence kernel could reach, "
        "(matmul + fallback recurrence) / matmul, i.e. a fused recurrence "
        "taking 0 ms:",
        "",
    ]
    for row in rows:
        matmul = row["matmul U = xW"]
        bound = {
            kind: (matmul[kind] + row["recurrence fallback"][kind]) / matmul[kind]
            for kind in ("fwd", "fwd+bwd")
        }
        lines.append(
            f"- {row['shape']}: fwd {bound['fwd']:.2f}x, "
            f"fwd+bwd {bound['fwd+bwd']:.2f}x"
        )
    lines += [
        "",
        "| (L, d) | fused forward op ms | copy of its inputs ms | op / copy |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        op, copy = row["op"]["fwd"], row["op"]["copy"]
        lines.append(f"| {row['shape']} | {op:.2f} | {copy:.2f} | {op / copy:.2f} |")
    return "\n".join(lines)


def format_projected(row: dict) -> str:
    steps, units, features = row["shape"]
    fused, fallback = row["SRU fused"], row["SRU fallback"]
    lines = [
        f"Input size {features} != units {units} (L = {steps}; the highway "
        "term is a projection W_h x):",
        "",
        "| model | fwd ms | fwd+bwd ms | fwd ratio | fwd+bwd ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, times in (("SRU fused", fused), ("SRU fallback", fallback)):
        lines.append(
            f"| {name} | {times['fwd']:.2f} | {times['fwd+bwd']:.2f} | "
            f"{times['fwd'] / fused['fwd']:.2f}x | "
            f"{times['fwd+bwd'] / fused['fwd+bwd']:.2f}x |"
        )
    return "\n".join(lines)


def backend_timers(layer, x):
    """(forward, forward + backward) callables of a Keras layer on x, on the
    torch or JAX backend."""
    layer(x)  # build
    if keras.backend.backend() == "torch":
        import torch

        def forward():
            with torch.no_grad():
                return layer(x)

        def forward_backward():
            xg = x.detach().requires_grad_(True)
            loss = layer(xg).sum()
            weights = [w.value for w in layer.trainable_weights]
            return loss, torch.autograd.grad(loss, [xg, *weights])

        return forward, forward_backward

    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in layer.trainable_variables]
    fixed = [v.value for v in layer.non_trainable_variables]

    def loss(trainable, x):
        return jnp.sum(layer.stateless_call(trainable, fixed, x)[0])

    jit_forward = jax.jit(lambda t, x: layer.stateless_call(t, fixed, x)[0])
    jit_forward_backward = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    return (
        lambda: jax.block_until_ready(jit_forward(trainable, x)),
        lambda: jax.block_until_ready(jit_forward_backward(trainable, x)),
    )


def describe_backend() -> str:
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    if backend == "jax":
        import jax

        return f"jax {jax.__version__} ({jax.default_backend()}), under jax.jit"
    return (
        f"TensorFlow {tf.__version__}, intra-op threads "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="tensorflow",
        help="Keras backend to time on (default: tensorflow)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--no-torch", action="store_true", help="skip the official sru package"
    )
    args = parser.parse_args(argv)
    if args.backend != keras.backend.backend():
        raise SystemExit(
            f"Keras runs on {keras.backend.backend()!r}: run this script with "
            f"--backend on its command line (it sets KERAS_BACKEND before "
            f"Keras is imported). Received: backend={args.backend!r}"
        )
    status = keras_ndsru.ops.fused_kernel_status()
    if status.path != "fused":
        raise SystemExit(f"the fused SRU op cannot run: {status.reason}")
    print(f"batch {BATCH}, float32, {os.cpu_count()} CPUs, {describe_backend()}")
    print("ratio = peer time / SRU fused time (> 1: the fused SRU is faster)\n")
    rows = measure(args.quick, not args.no_torch)
    if args.backend != "tensorflow":
        print("\n".join(peer_lines(rows)))
        return 0
    print(format_table(rows))
    print()
    print(format_projected(measure_projected(args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
