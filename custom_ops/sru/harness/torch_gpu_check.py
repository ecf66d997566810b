"""GPU check of the PyTorch custom operators of the fused SRU (no TensorFlow,
Keras optional), in one command on a machine with a CUDA GPU:

    /opt/torch/.venv/bin/python3 custom_ops/sru/harness/torch_gpu_check.py

(any Python with a CUDA build of torch and numpy; nvcc and g++ on PATH or
in /usr/local/cuda). Under 3 minutes on an H200; prints PASS/FAIL lines, a
timing table and a summary; exit status 1 on any failure. Steps:

1. Builds `_sru_torch.so` with CUDA kernels into a temporary folder with
   `keras_ndsru.ops.build` (the real build; `--archs` limits the CUDA
   architectures to this GPU's for speed, default: all of the real build).
2. Loads it with the package's loader (`op_library`, version check
   included) and its autograd / fake-kernel registration
   (`sru_fused_torch`), without importing `keras_ndsru/__init__.py`, so
   Keras need not be installed.
3. For float64, float32, float16 and bfloat16, every direction, right-padded
   lengths with an empty row and an initial state: CUDA outputs against the
   NumPy oracle (tests/support/sru_numpy.py) and CUDA gradients against the
   CPU operator's in float64 (which CI checks against central differences).
   Also: the current stream is used (a side stream), `torch.compile(
   fullgraph=True)` on CUDA (AOT autograd and inductor), and
   `torch.library.opcheck` on CUDA tensors.
4. Times, on CUDA at batch 32: the SRU (matmul U = x W + the fused
   recurrence, forward + backward) against cuDNN `torch.nn.LSTM` and
   `torch.nn.GRU` at (L, d) = (32, 256) and (128, 512), and the recurrence
   alone; with Keras installed also the `keras_ndsru.SRU` layer on the torch
   backend against `keras.layers.LSTM`/`GRU`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RESULTS: list[str] = []


def record(ok: bool, what: str) -> None:
    line = f"{'PASS' if ok else 'FAIL'} {what}"
    RESULTS.append(line)
    print(line, flush=True)


def import_ops_without_keras():
    """keras_ndsru.ops' submodules without running the packages' __init__
    (which import Keras): empty parent packages pointing at the folders."""
    for name, folder in (
        ("keras_ndsru", ROOT / "keras_ndsru"),
        ("keras_ndsru.ops", ROOT / "keras_ndsru" / "ops"),
    ):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    return (
        importlib.import_module("keras_ndsru.ops.op_library"),
        importlib.import_module("keras_ndsru.ops.build"),
    )


def find_nvcc() -> None:
    """Puts nvcc on PATH when only /usr/local/cuda has it."""
    for folder in ("/usr/local/cuda/bin",):
        if Path(folder, "nvcc").exists() and folder not in os.environ["PATH"]:
            os.environ["PATH"] = f"{os.environ['PATH']}:{folder}"


def gpu_arch() -> str:
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"{major}{minor}"


def build_library(build, archs: list[str], out: Path) -> Path:
    build.CUDA_ARCHS = archs
    start = time.monotonic()
    built = build.build(
        frameworks=["torch"], library_dir=out, build_dir=out / "build", force=True
    )
    info = (out / "build_info_torch.json").read_text()
    record(
        '"cuda": true' in info,
        f"build _sru_torch.so with CUDA (sm_{'/'.join(archs)}) in "
        f"{time.monotonic() - start:.0f} s",
    )
    return built["torch"]


def random_case(rng, dtype, direction, batch=4, steps=9, units=40):
    import torch

    n_dir = 2 if direction == "bidirectional" else 1
    state = torch.float64 if dtype == torch.float64 else torch.float32

    def t(*shape, dt=state):
        return torch.tensor(rng.normal(size=shape)).to(dt)

    inputs = {
        "u": t(batch, steps, n_dir * 3 * units, dt=dtype),
        "x_highway": t(batch, steps, n_dir * units, dt=dtype),
        "weight_c": t(n_dir * 2 * units),
        "bias": t(n_dir * 2 * units),
        "c0": t(batch, n_dir * units),
    }
    lengths = torch.tensor([steps, 5, 0, 1][:batch], dtype=torch.int32)
    width = n_dir * units
    # One weight per output of sru_fused: h, h_last, c_last.
    weights = [
        t(batch, steps, width, dt=torch.float64),
        t(batch, width, dt=torch.float64),
        t(batch, width, dt=torch.float64),
    ]
    return inputs, lengths, weights


def run_op(sru_fused, inputs, lengths, weights, direction, device, dtype=None):
    """Outputs and gradients of sum(out * w) on `device` (inputs cast to
    `dtype` when given, state kept as is)."""
    import torch

    leaves = {}
    for k, v in inputs.items():
        v = v.to(device)
        if dtype is not None and k in ("u", "x_highway"):
            v = v.to(dtype)
        elif dtype == torch.float64:
            v = v.to(torch.float64)
        leaves[k] = v.detach().requires_grad_(True)
    out = sru_fused.sru_fused(
        **leaves, lengths=lengths.to(device), alpha=1.3, direction=direction
    )
    loss = sum((o.double() * w.to(device)).sum() for o, w in zip(out, weights))
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return [o.detach().double().cpu() for o in out], [g.double().cpu() for g in grads]


def correctness(sru_fused, sru_numpy) -> None:
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    tolerances = {
        torch.float64: (1e-12, 1e-10),
        torch.float32: (2e-6, 2e-5),
        torch.float16: (2e-3, 1e-2),
        torch.bfloat16: (1.6e-2, 6e-2),
    }
    for dtype, (out_tol, grad_tol) in tolerances.items():
        for direction in ("forward", "backward", "bidirectional"):
            inputs, lengths, weights = random_case(rng, dtype, direction)
            out, grads = run_op(sru_fused, inputs, lengths, weights, direction, "cuda")
            mask = np.arange(inputs["u"].shape[1])[None] < lengths.numpy()[:, None]
            oracle = sru_numpy(
                *[inputs[k].double().numpy() for k in ("u", "x_highway")],
                *[inputs[k].double().numpy() for k in ("weight_c", "bias", "c0")],
                mask=mask,
                alpha=1.3,
                direction=direction,
            )
            out_err = max(
                float(np.max(np.abs(o.numpy() - r) / (1 + np.abs(r))))
                for o, r in zip(out, oracle)
            )
            # Gradients: the CPU operator in float64 on the same (rounded)
            # inputs; the CUDA call sees the gradient of h rounded to the
            # storage dtype, hence the half tolerances.
            _, cpu_grads = run_op(
                sru_fused, inputs, lengths, weights, direction, "cpu", torch.float64
            )
            grad_err = max(
                float((g - c).abs().max() / (1 + c.abs().max()))
                for g, c in zip(grads, cpu_grads)
            )
            name = str(dtype).replace("torch.", "")
            record(
                out_err < out_tol and grad_err < grad_tol,
                f"CUDA {name} {direction}: outputs vs oracle {out_err:.1e} "
                f"(tol {out_tol:g}), gradients vs CPU float64 {grad_err:.1e} "
                f"(tol {grad_tol:g})",
            )


def stream_and_compile(sru_fused) -> None:
    import numpy as np
    import torch

    rng = np.random.default_rng(1)
    inputs, lengths, weights = random_case(rng, torch.float32, "bidirectional")
    want, _ = run_op(sru_fused, inputs, lengths, weights, "bidirectional", "cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        got, _ = run_op(sru_fused, inputs, lengths, weights, "bidirectional", "cuda")
    torch.cuda.synchronize()
    diff = max(float((a - b).abs().max()) for a, b in zip(want, got))
    record(diff == 0.0, f"CUDA on a side stream equals the default stream ({diff:g})")

    cuda = {k: v.cuda() for k, v in inputs.items()}

    def loss(**kw):
        out = sru_fused.sru_fused(**kw, alpha=1.3, direction="bidirectional")
        return (out.h * out.h).sum() + out.c_last.sum()

    def value_and_grads(fn):
        leaves = {k: v.detach().requires_grad_(True) for k, v in cuda.items()}
        value = fn(**leaves)
        return [value, *torch.autograd.grad(value, list(leaves.values()))]

    eager = value_and_grads(loss)
    for backend in ("aot_eager", "inductor"):
        try:
            compiled = value_and_grads(
                torch.compile(loss, fullgraph=True, backend=backend)
            )
            diff = max(float((a - b).abs().max()) for a, b in zip(eager, compiled))
            record(
                diff < 1e-3,
                f"torch.compile(fullgraph=True, {backend}) on CUDA ({diff:.1e})",
            )
        except Exception as e:  # noqa: BLE001 - report and go on
            record(False, f"torch.compile({backend}) on CUDA: {type(e).__name__}: {e}")
    args = [
        cuda["u"],
        cuda["x_highway"],
        cuda["weight_c"],
        cuda["bias"],
        cuda["c0"],
        lengths.cuda(),
    ]
    args = [a.detach().requires_grad_(a.is_floating_point()) for a in args]
    checks = torch.library.opcheck(
        torch.ops.keras_ndsru.sru_forward.default, (*args, 1.3, "bidirectional")
    )
    record(set(checks.values()) == {"SUCCESS"}, f"opcheck on CUDA {checks}")


def median_ms(fns: dict, seconds: float = 3.0) -> dict:
    import torch

    for fn in fns.values():
        fn()
        fn()
    torch.cuda.synchronize()
    times = {k: [] for k in fns}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for k, fn in fns.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def benchmark(sru_fused) -> None:
    print("\nCUDA, batch 32, float32, forward + backward ms (ratio = peer / SRU)")
    print("| (L, d) | model | ms | ratio |\n|---|---|---:|---:|")
    for steps, units in ((32, 256), (128, 512)):
        ms = median_ms(shape_timers(sru_fused, steps, units))
        base = ms["SRU (matmul + fused recurrence)"]
        for name, value in ms.items():
            print(
                f"| ({steps}, {units}) | {name} | {value:.3f} | {value / base:.2f}x |"
            )


def shape_timers(sru_fused, steps: int, units: int) -> dict:
    """fwd+bwd callables: the SRU as matmul + fused recurrence, the fused
    recurrence alone, cuDNN LSTM and GRU."""
    import torch

    x = torch.randn(32, steps, units, device="cuda")
    w = (torch.randn(units, 3 * units, device="cuda") / units**0.5).requires_grad_()
    vb = torch.zeros(4 * units, device="cuda", requires_grad=True)
    u0 = (x @ w).detach()

    def sru():
        xg = x.detach().requires_grad_(True)
        out = sru_fused.sru_fused(xg @ w, xg, vb[: 2 * units], vb[2 * units :])
        return torch.autograd.grad(out.h.sum(), [xg, w, vb])

    def recurrence():
        u = u0.detach().requires_grad_(True)
        out = sru_fused.sru_fused(u, x, vb[: 2 * units], vb[2 * units :])
        return torch.autograd.grad(out.h.sum(), [u, vb])

    def peer(module):
        def run():
            xg = x.detach().requires_grad_(True)
            loss = module(xg)[0].sum()
            return torch.autograd.grad(loss, [xg, *module.parameters()])

        return run

    return {
        "SRU (matmul + fused recurrence)": sru,
        "fused recurrence alone": recurrence,
        "cuDNN LSTM": peer(torch.nn.LSTM(units, units, batch_first=True).cuda()),
        "cuDNN GRU": peer(torch.nn.GRU(units, units, batch_first=True).cuda()),
    }


def keras_layers(library_dir: Path, seconds: float) -> None:
    """The keras_ndsru.SRU layer on the torch backend, in a subprocess (the
    backend is chosen at import), with the library built here."""
    code = f"""
import os, statistics, time, torch, keras, keras_ndsru
from pathlib import Path
from keras_ndsru.ops import op_library
assert keras.backend.backend() == "torch"
op_library._other_loaders["torch"] = op_library.OpLibraryLoader(
    Path({str(library_dir)!r}), framework=op_library.TORCH)
print("status:", keras_ndsru.ops.fused_kernel_status())
print("| (L, d) | layer | fwd+bwd ms | ratio |\\n|---|---|---:|---:|")
for steps, units in ((32, 256), (128, 512)):
    x = torch.randn(32, steps, units, device="cuda")
    layers = {{"SRU fused": keras_ndsru.SRU(units, return_sequences=True),
              "SRU fallback": keras_ndsru.SRU(units, return_sequences=True, use_fused_kernel=False),
              "keras LSTM": keras.layers.LSTM(units, return_sequences=True),
              "keras GRU": keras.layers.GRU(units, return_sequences=True)}}
    times = {{}}
    for name, layer in layers.items():
        layer(x)
        def run(layer=layer):
            xg = x.detach().requires_grad_(True)
            loss = layer(xg).sum()
            torch.autograd.grad(loss, [xg, *[w.value for w in layer.trainable_weights]])
        for _ in range(3): run()
        torch.cuda.synchronize(); t = []; start = time.perf_counter()
        while time.perf_counter() - start < {seconds}:
            t0 = time.perf_counter(); run(); torch.cuda.synchronize(); t.append(time.perf_counter() - t0)
        times[name] = statistics.median(t) * 1e3
    for name, v in times.items():
        print(f"| ({{steps}}, {{units}}) | {{name}} | {{v:.2f}} | {{v / times['SRU fused']:.2f}}x |")
"""
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    print(proc.stdout)
    record(proc.returncode == 0, "keras_ndsru.SRU layer on the torch backend, CUDA")
    if proc.returncode:
        print(proc.stderr[-3000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--archs",
        default="native",
        help="CUDA architectures to build, e.g. 90 or 75,80,86,89,90; 'native' "
        "(default): this GPU's; 'all': the real build's",
    )
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch")
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    find_nvcc()
    sys.path.insert(0, str(ROOT / "tests" / "support"))
    from sru_numpy import sru_numpy

    op_library, build = import_ops_without_keras()
    archs = build.CUDA_ARCHS if args.archs == "all" else args.archs.split(",")
    if archs == ["native"]:
        archs = [gpu_arch()]
    with tempfile.TemporaryDirectory() as tmp:
        build_library(build, archs, Path(tmp))
        loader = op_library.OpLibraryLoader(Path(tmp), framework=op_library.TORCH)
        record(
            loader.module() is not None and loader.cuda,
            f"load: {loader.status().reason}",
        )
        if loader.module() is None:
            return 1
        from keras_ndsru.ops import sru_fused_torch

        correctness(sru_fused_torch, sru_numpy)
        stream_and_compile(sru_fused_torch)
        benchmark(sru_fused_torch)
        if importlib.util.find_spec("keras") is not None:
            keras_layers(Path(tmp), seconds=1.5)
        else:
            print("Keras is not installed: the layer timings are skipped")
    failed = [line for line in RESULTS if line.startswith("FAIL")]
    print(f"\n{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
