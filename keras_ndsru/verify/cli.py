"""Command line: verify a saved model or .nnet file at the points of a file.

keras-ndsru-verify MODEL POINTS --delta 0.018 [--eps 0.01] [--max-delta]
python -m keras_ndsru.verify MODEL POINTS ...
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _load_model(path: str):
    from keras_ndsru.verify.nnet import load_nnet

    if path.endswith(".nnet"):
        return load_nnet(path)
    import keras

    return keras.saving.load_model(path, compile=False)


def _load_points(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        points = np.load(path)
    else:
        points = np.loadtxt(path, delimiter=",", ndmin=2, comments="#")
    if points.ndim == 1:
        points = points[None]
    return np.asarray(points, np.float64)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-ndsru-verify",
        description=(
            "Prove or refute robustness (Katz et al., arXiv 1709.02802) of a Keras "
            "model (.keras) or a .nnet network at each point of a .npy/.csv file."
        ),
    )
    parser.add_argument("model", help="a .keras model file or a .nnet file")
    parser.add_argument("points", help=".npy (points, *input_shape) or .csv rows")
    parser.add_argument("--delta", type=float, required=True, help="radius (> 0)")
    parser.add_argument("--eps", type=float, default=None, help="Def. 3 tolerance")
    parser.add_argument("--norm", choices=["inf", "1"], default="inf")
    parser.add_argument(
        "--argmin", action="store_true", help="label = argmin (ACAS Xu advisories)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per point")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes (1 = sequential)"
    )
    parser.add_argument("--method", choices=["auto", "milp", "split"], default="auto")
    parser.add_argument(
        "--max-delta",
        action="store_true",
        help="also binary-search the largest robust delta (up to --delta)",
    )
    parser.add_argument("--precision", type=float, default=1e-3)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from keras_ndsru.verify.queries import local_robustness, max_robust_delta

    model = _load_model(args.model)
    points = _load_points(args.points)
    common = dict(
        norm=args.norm,
        eps=args.eps,
        label_mode="argmin" if args.argmin else "argmax",
        timeout=args.timeout,
        workers=args.workers,
        method=args.method,
    )
    header = f"{'point':>5}  {'delta':>8}  {'eps':>6}  {'verdict':<10}  {'seconds':>8}"
    if args.max_delta:
        header += f"  {'max delta':>16}"
    print(header)
    undecided = 0
    for i, x0 in enumerate(points):
        res = local_robustness(model, x0, args.delta, **common)
        undecided += res.robust is None
        eps = "-" if args.eps is None else f"{args.eps:g}"
        row = f"{i:>5}  {args.delta:>8g}  {eps:>6}  {res.verdict:<10}  {res.seconds:>8.3f}"
        if args.max_delta:
            best = max_robust_delta(
                model, x0, upper=args.delta, precision=args.precision, **common
            )
            row += f"  [{best.delta:.4g}, {best.upper:.4g}]"
        print(row, flush=True)
    return 1 if undecided else 0


if __name__ == "__main__":
    sys.exit(main())
