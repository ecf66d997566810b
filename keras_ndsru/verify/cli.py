"""Command line: verify a saved model or .nnet file at the points of a file,
or decide one VNN-COMP instance (an ONNX network and a VNN-LIB property).

keras-ndsru-verify MODEL POINTS --delta 0.018 [--eps 0.01] [--max-delta]
keras-ndsru-verify vnncomp NET.onnx PROP.vnnlib --timeout 60 [--out RESULT]
python -m keras_ndsru.verify ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _positive(option: str, integer: bool = False):
    """An argparse `type` accepting only positive (finite) numbers."""

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = None
        if value is None or not np.isfinite(value) or value <= 0:
            kind = "a positive integer" if integer else "a positive number"
            raise argparse.ArgumentTypeError(
                f"{option} must be {kind}. Received: {text}"
            )
        return value

    return parse


def _load_model(path: str, parser: argparse.ArgumentParser):
    if not os.path.isfile(path):
        parser.error(f"{path}: model file not found (a .keras or .nnet file)")
    if path.endswith(".nnet"):
        from keras_ndsru.verify.formats.nnet import load_nnet

        try:
            return load_nnet(path)
        except ValueError as error:
            parser.error(str(error))
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 -- any load failure is one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        parser.error(
            f"{path}: cannot load it as a Keras model ({type(error).__name__}: "
            f"{first}); pass a .keras file saved with model.save or a .nnet file"
        )


def _input_size(model) -> int:
    size = getattr(model, "n_inputs", None)
    if size is None:
        size = int(np.prod(model.input_shape[1:]))
    return int(size)


def _read_csv(path: str, parser: argparse.ArgumentParser) -> np.ndarray:
    """Rows of comma- or space-separated numbers; `#` comments and blank
    lines are skipped, and so (with a note) is a header as the first line."""
    rows, width = [], None
    with open(path, encoding="utf-8-sig") as file:
        for number, line in enumerate(file, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            fields = text.replace(",", " ").split()
            try:
                row = [float(v) for v in fields]
            except ValueError:
                if not rows and width is None:
                    print(
                        f"{path}:{number}: skipped the header line {text!r}",
                        file=sys.stderr,
                    )
                    width = -1
                    continue
                bad = next(v for v in fields if not _is_number(v))
                parser.error(
                    f"{path}:{number}: expected numbers separated by commas, "
                    f"found {bad!r}"
                )
            if rows and len(row) != len(rows[0]):
                parser.error(
                    f"{path}:{number}: expected {len(rows[0])} values like the "
                    f"first point, found {len(row)}"
                )
            rows.append(row)
    if not rows:
        return np.zeros((0, 0))
    return np.asarray(rows, np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_points(path: str, size: int, parser: argparse.ArgumentParser):
    if not os.path.isfile(path):
        parser.error(f"{path}: points file not found (a .npy or .csv file)")
    if path.endswith(".npy"):
        try:
            points = np.asarray(np.load(path), np.float64)
        except (ValueError, OSError) as error:
            parser.error(f"{path}: not a readable .npy array of points ({error})")
        points = points.reshape(1, -1) if points.ndim <= 1 else points
        points = points.reshape(len(points), -1)
    else:
        points = _read_csv(path, parser)
    if len(points) == 0:
        parser.error(f"{path} holds no points: write one point per row")
    if points.shape[1] != size:
        parser.error(
            f"{path}: {points.shape[1]} values per point, but the model has "
            f"{size} inputs. Received: points of shape {points.shape}"
        )
    if not np.all(np.isfinite(points)):
        row = int(np.argwhere(~np.isfinite(points))[0][0])
        parser.error(f"{path}: point {row} is not finite (NaN or inf)")
    return points


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-ndsru-verify",
        description=(
            "Prove or refute robustness (Katz et al., arXiv 1709.02802) of a Keras "
            "model (.keras) or a .nnet network at each point of a .npy/.csv file."
        ),
        epilog=(
            "VNN-COMP instances: keras-ndsru-verify vnncomp NET.onnx PROP.vnnlib "
            "--timeout SECONDS [--out RESULT] (see keras-ndsru-verify vnncomp --help)."
        ),
    )
    parser.add_argument("model", help="a .keras model file or a .nnet file")
    parser.add_argument("points", help=".npy (points, *input_shape) or .csv rows")
    parser.add_argument(
        "--delta", type=_positive("--delta"), required=True, help="radius (> 0)"
    )
    parser.add_argument(
        "--eps", type=_positive("--eps"), default=None, help="Def. 3 tolerance"
    )
    parser.add_argument("--norm", choices=["inf", "1"], default="inf")
    parser.add_argument(
        "--argmin", action="store_true", help="label = argmin (ACAS Xu advisories)"
    )
    _add_timeout_and_workers(parser, "seconds per point", required=False)
    parser.add_argument("--method", choices=["auto", "milp", "split"], default="auto")
    parser.add_argument(
        "--max-delta",
        action="store_true",
        help="also binary-search the largest robust delta (up to --delta)",
    )
    parser.add_argument("--precision", type=_positive("--precision"), default=1e-3)
    return parser


def build_vnncomp_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-ndsru-verify vnncomp",
        description=(
            "Decide one VNN-COMP instance: write unsat (the property holds), sat "
            "and a counterexample ((X_i v) ... (Y_j v)), timeout or unknown."
        ),
    )
    parser.add_argument("onnx", help="the network, an .onnx file")
    parser.add_argument("vnnlib", help="the property, a VNN-LIB 1.0 .vnnlib file")
    _add_timeout_and_workers(
        parser, "seconds for the whole instance, loading included", required=True
    )
    parser.add_argument(
        "--out", default=None, help="result file (default: standard output only)"
    )
    parser.add_argument(
        "--engine",
        choices=["auto", "split", "graph"],
        default="auto",
        help="split: input splitting (few inputs, e.g. ACAS Xu); graph: attack, "
        "alpha-CROWN and beta-CROWN branch and bound; auto: by input size",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="the graph engine's device (auto: CUDA when available)",
    )
    return parser


def _add_timeout_and_workers(parser, timeout_help: str, required: bool) -> None:
    parser.add_argument(
        "--timeout", type=_positive("--timeout"), required=required, help=timeout_help
    )
    parser.add_argument(
        "--workers",
        type=_positive("--workers", integer=True),
        default=1,
        help="processes for the disjuncts (1 = sequential)",
    )


def vnncomp_main(argv, started: float | None = None) -> int:
    """``keras-ndsru-verify vnncomp``: exit 0 when decided, 1 on timeout or
    unknown, 2 on a usage error (one line naming the input).

    The deadline is hard (`keras_ndsru.verify.watchdog`): by ``--timeout``
    seconds after ``started`` (a `time.time()` value; defaults to now), the
    result file holds an answer and the process has exited, whatever the
    verifier was doing (the watchdog acts half a second early).
    """
    from keras_ndsru.verify import watchdog

    deadline = time.time() if started is None else started
    parser = build_vnncomp_parser()
    args = parser.parse_args(argv)
    # Killed half a second early: a loaded machine may wake the waiting
    # parent late, and the answer must be out by the timeout.
    deadline += max(args.timeout - _KILL_MARGIN, 0.5 * args.timeout)
    for path, kind in ((args.onnx, "ONNX network"), (args.vnnlib, "VNN-LIB property")):
        if not os.path.isfile(path):
            parser.error(f"{path}: {kind} file not found")
    if args.out is not None and not os.path.isdir(os.path.dirname(args.out) or "."):
        # Checked now, not after the whole timeout has been spent.
        parser.error(f"{args.out}: the result file's folder does not exist")
    started = time.time()

    def emit(answer: watchdog.Answer) -> None:
        if args.out is not None:
            with open(args.out, "w") as file:
                file.write(answer.text)
        seconds = time.time() - started
        print(answer.text.splitlines()[0], f"{seconds:.3f} s", flush=True)

    answer = watchdog.run(
        lambda due: _decide_instance(args, due),
        deadline,
        on_timeout=watchdog.Answer(1, "timeout\n"),
        emit=emit,
    )
    if answer.error:
        parser.error(answer.error)
    return answer.code


# The verifier's own answer is due this long before the hard deadline, so that
# it normally answers itself (e.g. "unknown" rather than "timeout").
_ANSWER_MARGIN = 0.25
# The watchdog kills this long before --timeout.
_KILL_MARGIN = 0.5


def _decide_instance(args, deadline: float):
    """Runs in the watchdog's child: loads and decides the instance."""
    from concurrent.futures import ProcessPoolExecutor

    from keras_ndsru.verify.formats.errors import OnnxError
    from keras_ndsru.verify.formats.vnnlib import VnnlibError
    from keras_ndsru.verify.graph.network import NotAChain
    from keras_ndsru.verify.search.schedule import process_context
    from keras_ndsru.verify.vnncomp import run_instance
    from keras_ndsru.verify.watchdog import Answer

    pool = None
    if args.workers > 1:
        pool = ProcessPoolExecutor(args.workers, mp_context=process_context())
    timeout = max(deadline - _ANSWER_MARGIN - time.time(), 0.01)
    try:
        result = run_instance(
            args.onnx,
            args.vnnlib,
            timeout,
            executor=pool,
            engine=args.engine,
            device=args.device,
        )
    except (OnnxError, VnnlibError) as error:
        return Answer(2, "", error=str(error))
    except NotAChain as error:
        return Answer(
            2,
            "",
            error=f"{args.onnx}: --engine split needs an affine/ReLU chain: "
            f"{error} (use --engine graph or auto)",
        )
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    return Answer(0 if result.result in ("sat", "unsat") else 1, result.text())


def main(argv=None) -> int:
    """The command line; ``argv`` None means this process's own arguments,
    and then a ``vnncomp`` deadline counts from the process's start."""
    started = None
    if argv is None:
        from keras_ndsru.verify.watchdog import process_start_time

        started, argv = process_start_time(), sys.argv[1:]
    argv = list(argv)
    if argv and argv[0] == "vnncomp":
        return vnncomp_main(argv[1:], started)
    parser = build_parser()
    args = parser.parse_args(argv)
    from keras_ndsru.verify.queries import local_robustness, max_robust_delta

    model = _load_model(args.model, parser)
    points = _load_points(args.points, _input_size(model), parser)
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
