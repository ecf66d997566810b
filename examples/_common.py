"""Shared pieces of the examples: arguments, optimizers, timing, results, plots.

Imported by the example scripts (`import _common`, next to them): run them from
anywhere with `python examples/NAME.py`, or put `examples/` on `sys.path` to
call their `main(argv)`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

OPTIMIZERS = ("ndadam", "adam", "sgd")
# Initial learning rates of the ND-Adam paper's CIFAR recipe (for ndadam: of
# the weight vectors, alpha_v; the other variables get Adam's 1e-3).
DEFAULT_LR = {"ndadam": 0.05, "adam": 1e-3, "sgd": 0.1}


def run_script(main) -> None:
    """Runs `main()`; a dataset that cannot be had or read is one line, not a
    traceback."""
    try:
        main()
    except Exception as error:
        if type(error).__name__ not in ("DatasetUnavailableError", "DataError"):
            raise
        sys.exit(f"error: {error}")


def add_training_args(
    parser: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    out: str | None,
    out_help: str | None = None,
    seeds_help: str | None = None,
) -> None:
    """Adds `--epochs`, `--batch-size`, `--seed`, `--out`, `--verbose`.

    With `seeds_help`, `--seeds S [S ...]` (default None: the script picks)
    replaces `--seed`. With `out=None`, `--out` defaults to None and
    `out_help` says what the script makes of that.
    """
    parser.add_argument(
        "--epochs", type=positive_int, default=epochs, help=f"default {epochs}"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        help=f"default {batch_size}",
    )
    if seeds_help:
        parser.add_argument(
            "--seeds", type=int, nargs="+", default=None, help=seeds_help
        )
    else:
        parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument(
        "--out",
        default=out,
        help="folder for the results JSON and the PNG plots "
        f"(default {out_help or out})",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras verbosity: 0 silent, 1 progress bars, 2 one line per epoch "
        "(default 1)",
    )


RECURRENT_CELLS = ("sru", "lstm", "gru")


def add_recurrent_args(
    parser: argparse.ArgumentParser,
    *,
    layers: int,
    units: int,
    embed_dim: int,
    dropout: float,
    lr_help: str = "learning rate",
    several_cells: bool = False,
) -> None:
    """Adds the model and optimizer arguments of the recurrent examples:
    `--cell`, `--layers`, `--units`, `--embed-dim`, `--dropout`,
    `--optimizer`, `--lr`. With `several_cells`, `--cell` takes a list
    (default `["sru"]`)."""
    if several_cells:
        parser.add_argument(
            "--cell",
            choices=RECURRENT_CELLS,
            nargs="+",
            default=["sru"],
            help="one or more cells, trained on the same data and seeds and "
            "compared in one table (default sru)",
        )
    else:
        parser.add_argument(
            "--cell", choices=RECURRENT_CELLS, default="sru", help="default sru"
        )
    parser.add_argument(
        "--layers", type=positive_int, default=layers, help=f"default {layers}"
    )
    parser.add_argument(
        "--units", type=positive_int, default=units, help=f"default {units}"
    )
    parser.add_argument(
        "--embed-dim",
        type=positive_int,
        default=embed_dim,
        help=f"default {embed_dim}",
    )
    parser.add_argument(
        "--dropout",
        type=non_negative_float,
        default=dropout,
        help=f"dropout on the inputs of each recurrent layer (default {dropout:g})",
    )
    parser.add_argument(
        "--optimizer", choices=OPTIMIZERS, default="adam", help="default adam"
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help=f"{lr_help}, of the weight vectors for ndadam (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ")",
    )


def add_tfds_args(parser: argparse.ArgumentParser, *, dataset: str) -> None:
    """Adds `--dataset` and `--data-dir` (TFDS)."""
    parser.add_argument(
        "--dataset", default=dataset, help=f"TFDS name (default {dataset})"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="TFDS data directory (default: TFDS' own, ~/tensorflow_datasets)",
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a float >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a float > 0, got {text}")
    return value


def make_optimizer(
    name: str,
    learning_rate,
    *,
    scalar_learning_rate=1e-3,
    model: keras.Model | None = None,
    momentum: float = 0.9,
):
    """NDAdam, Adam or SGD with momentum, by `--optimizer` name.

    For `"ndadam"`, `learning_rate` is the step size of the weight vectors
    (alpha_v) and `scalar_learning_rate` Adam's step size for the other
    variables (alpha_s); with a built `model`, the weight vectors are found
    from its layers' classes (`keras_ndsru.vector_axes_for_model`).
    """
    import keras_ndsru

    if name == "ndadam":
        return keras_ndsru.NDAdam(
            learning_rate=scalar_learning_rate,
            vector_learning_rate=learning_rate,
            vector_axes=None
            if model is None
            else keras_ndsru.vector_axes_for_model(model),
        )
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. Received: {name!r}")


def cosine_decay(learning_rate: float, total_steps: int):
    """Cosine decay from `learning_rate` to 0 over `total_steps` (no restarts)."""
    return keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=max(1, total_steps)
    )


def effective_lr_callback() -> keras.callbacks.Callback:
    """Logs `effective_learning_rate`, ||w_t - w_{t-1}|| / ||w_{t-1}|| of the
    weight vectors (ND-Adam paper, Sec. 3), for any of the optimizers."""
    import keras_ndsru

    return keras_ndsru.EffectiveLearningRate()


class EpochTimer(keras.callbacks.Callback):
    """Adds `seconds` (wall-clock time of the epoch) and `train_seconds`
    (the same without the validation at its end) to the epoch logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_seconds = None

    def on_test_begin(self, logs=None):
        if getattr(self, "_train_seconds", 0) is None:
            self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self._start
            logs["train_seconds"] = self._train_seconds or logs["seconds"]


def steady_seconds(seconds: Sequence[float]) -> float:
    """Median seconds per epoch without the first epoch (which includes
    tracing and compilation), or the first epoch when it is the only one."""
    return float(np.median(seconds[1:] if len(seconds) > 1 else seconds))


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current (scheduled) rates to the logs.

    `learning_rate`, and for NDAdam also `vector_learning_rate` (its
    `learning_rate` is then the rate of the biases and BN shifts).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = self.model.optimizer
        for name in ("learning_rate", "vector_learning_rate"):
            if hasattr(optimizer, name):
                value = getattr(optimizer, name)
                logs[name] = float(keras.ops.convert_to_numpy(value))


class LogitMagnitude(keras.callbacks.Callback):
    """Adds `logit_norm`, the mean L2 norm of the model's logits, to the logs.

    Measured at the end of each epoch on a fixed batch of inputs, in
    inference mode (the ND-Adam paper, Sec. 4: the softmax learning signal
    depends on this magnitude).
    """

    def __init__(self, inputs):
        super().__init__()
        self.inputs = inputs

    def on_epoch_end(self, epoch, logs=None):
        logits = np.asarray(self.model(self.inputs, training=False), np.float64)
        if logs is not None:
            logs["logit_norm"] = float(np.linalg.norm(logits, axis=-1).mean())


def history_dict(history: keras.callbacks.History) -> dict[str, list[float]]:
    """The per-epoch logs as plain floats (JSON-ready)."""
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def write_results(out_dir: str, name: str, results: dict) -> str:
    """Writes `results` to `out_dir/name.json` and returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as file:
        json.dump(results, file, indent=2, sort_keys=True, default=_to_builtin)
        file.write("\n")
    return path


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def plot_curves(
    path: str,
    curves: dict[str, Sequence[float]],
    *,
    title: str,
    ylabel: str,
    xlabel: str = "epoch",
) -> str:
    """Plots one line per entry of `curves` (x = 1, 2, ...) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for label, values in curves.items():
        axes.plot(range(1, len(values) + 1), values, marker=".", label=label)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def format_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-markdown table (readable in a terminal too)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(str(header)), *(len(row[i]) for row in cells))
        for i, header in enumerate(headers)
    ]

    def line(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    return "\n".join(
        [line(headers), line(["-" * w for w in widths]), *map(line, cells)]
    )


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) <= 1 else f"{value:.1f}"
    return str(value)
