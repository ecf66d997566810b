"""SRU (fused CUDA recurrence + cuBLAS matmuls) vs cuDNN LSTM, one table.

Reads the `JSON {...}` lines that `sru_harness --bench` printed (its log file),
times `torch.nn.LSTM` (cuDNN) at the same (batch, time, units) on the same GPU,
forward and forward+backward, and prints the speedups. Needs no TensorFlow;
if PyTorch or a CUDA device is missing it prints the SRU numbers alone and
says why.

Both sides are timed with CUDA events (median of repeats after warm-up), in
FP32 math (cuBLAS default math, `torch.backends.cudnn.allow_tf32 = False`)
and in TF32 math (the PyTorch default for cuDNN). The SRU layer is the
`x W` matmul plus the recurrence (forward), plus the two backward matmuls
and the recurrence's backward (forward+backward); input_dim == units, so the
highway input is x itself. If the harness could not load cuBLAS, the matmuls
are timed here with torch.matmul instead and added to the recurrence time.

Usage:
    python3 bench_vs_cudnn.py --harness-log harness.log [--reps 20]
"""

from __future__ import annotations

import argparse
import json
import sys


def read_harness(path: str) -> list[dict]:
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("JSON "):
                rows.append(json.loads(line[5:]))
    return rows


def median_ms(torch, fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def time_lstm(torch, batch: int, steps: int, units: int, reps: int, tf32: bool):
    torch.backends.cudnn.allow_tf32 = tf32
    lstm = torch.nn.LSTM(units, units, batch_first=True).cuda()
    x = torch.randn(batch, steps, units, device="cuda", requires_grad=True)
    grad = torch.randn(batch, steps, units, device="cuda")

    def forward():
        return lstm(x)[0]

    def forward_backward():
        out = lstm(x)[0]
        out.backward(grad)

    fwd = median_ms(torch, forward, reps)
    fwd_bwd = median_ms(torch, forward_backward, reps)
    return fwd, fwd_bwd


def time_matmuls(torch, batch: int, steps: int, units: int, reps: int):
    """x W, then dX = dU W^T and dW = X^T dU, in FP32 math."""
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(batch * steps, units, device="cuda")
    w = torch.randn(units, 3 * units, device="cuda")
    du = torch.randn(batch * steps, 3 * units, device="cuda")
    fwd = median_ms(torch, lambda: x @ w, reps)
    bwd = median_ms(torch, lambda: (du @ w.T, x.T @ du), reps)
    return fwd, bwd


def fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or value < 0 else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--harness-log", required=True)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)

    rows = [r for r in read_harness(args.harness_log) if r["dtype"] == "float32"]
    if not rows:
        print("bench_vs_cudnn: no float32 JSON rows in", args.harness_log)
        return 1
    try:
        import torch
    except ImportError:
        torch = None
    reason = None
    if torch is None:
        reason = "PyTorch is not installed"
    elif not torch.cuda.is_available():
        reason = "PyTorch sees no CUDA device"
    if reason:
        print(f"bench_vs_cudnn: {reason}; cuDNN LSTM comparison skipped.")

    table = []
    for r in rows:
        b, t, d = r["batch"], r["steps"], r["units"]
        reps = max(3, args.reps // 4) if b * d > 100_000 else args.reps
        entry = dict(r)
        if r["layer_fwd_ms"] >= 0:
            entry["gemm_source"] = "cuBLAS in the harness"
        elif not reason:
            gemm_fwd, gemm_bwd = time_matmuls(torch, b, t, d, reps)
            entry["gemm_source"] = "torch.matmul, added to the recurrence"
            entry["layer_fwd_ms"] = gemm_fwd + r["rec_fwd_ms"]
            entry["layer_fwdbwd_ms"] = gemm_fwd + gemm_bwd + r["rec_fwdbwd_ms"]
        else:
            entry["gemm_source"] = "none"
        if not reason:
            entry["lstm_fwd_ms"], entry["lstm_fwdbwd_ms"] = time_lstm(
                torch, b, t, d, reps, tf32=False
            )
            entry["lstm_fwd_tf32_ms"], entry["lstm_fwdbwd_tf32_ms"] = time_lstm(
                torch, b, t, d, reps, tf32=True
            )
            torch.cuda.empty_cache()
        table.append(entry)

    def ratio(num, den):
        if num is None or den is None or num <= 0 or den <= 0:
            return None
        return num / den

    device = torch.cuda.get_device_name() if not reason else "(no torch GPU)"
    print(
        f"\nSRU vs cuDNN LSTM (float32, forward direction, units = input dim) "
        f"on {device}"
    )
    header = (
        f"{'B,L,d':<14}{'LSTM fwd':>10}{'LSTM f+b':>10}{'SRU fwd':>10}"
        f"{'SRU f+b':>10}{'x fwd':>8}{'x f+b':>8}{'x f+b TF32':>12}"
        f"{'rec f+b':>9}{'GB/s':>7}{'%peak':>7}"
    )
    print(header)
    print("-" * len(header))
    for e in table:
        shape = f"{e['batch']},{e['steps']},{e['units']}"
        sp_fwd = ratio(e.get("lstm_fwd_ms"), e["layer_fwd_ms"])
        sp_fb = ratio(e.get("lstm_fwdbwd_ms"), e["layer_fwdbwd_ms"])
        sp_fb_tf32 = ratio(e.get("lstm_fwdbwd_tf32_ms"), e.get("layer_fwdbwd_tf32_ms"))
        best_gbs = max(e["rec_fwd_gbs"], e["rec_fwdbwd_gbs"])
        peak = 100 * best_gbs / e["peak_gbs"] if e["peak_gbs"] > 0 else None
        print(
            f"{shape:<14}{fmt(e.get('lstm_fwd_ms', -1)):>10}"
            f"{fmt(e.get('lstm_fwdbwd_ms', -1)):>10}{fmt(e['layer_fwd_ms']):>10}"
            f"{fmt(e['layer_fwdbwd_ms']):>10}{fmt(sp_fwd, 1):>8}{fmt(sp_fb, 1):>8}"
            f"{fmt(sp_fb_tf32, 1):>12}{fmt(e['rec_fwdbwd_ms']):>9}"
            f"{best_gbs:>7.0f}{fmt(peak, 0):>7}"
        )
    print(
        "ms: median CUDA-event time. SRU = cuBLAS FP32 x W (+ 2 backward matmuls)"
        " + fused recurrence; x = LSTM time / SRU time (FP32 math on both sides;"
        " 'TF32': both in TF32 math). rec f+b: the recurrence alone (ms);"
        " GB/s, %peak: its bytes read+written / time vs the card's peak."
    )
    paper = [e for e in table if e["batch"] == 32]
    speedups = [ratio(e.get("lstm_fwdbwd_ms"), e["layer_fwdbwd_ms"]) for e in paper]
    if speedups and all(s is not None for s in speedups):
        verdict = "met" if min(speedups) >= 5 else "NOT met"
        print(
            f"target fwd+bwd >= 5x cuDNN LSTM at batch 32: {verdict} "
            f"(min {min(speedups):.1f}x)"
        )
    large = [e for e in table if e["batch"] * e["units"] >= 100_000]
    for e in large:
        if e["peak_gbs"] > 0:
            share = max(e["rec_fwd_gbs"], e["rec_fwdbwd_gbs"]) / e["peak_gbs"]
            verdict = "met" if share >= 0.5 else "NOT met"
            print(
                f"target >= 50% of peak bandwidth at B={e['batch']}, "
                f"d={e['units']}: {verdict} ({100 * share:.0f}%)"
            )
    for e in table:
        print("RESULT " + json.dumps(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
