"""Mean logit magnitude with Adam, NDAdam and SGD, with and without each fix.

The ND-Adam paper (Zhang et al., arXiv 1709.04546, section 4 and Fig. 3)
observes that the softmax learning signal depends on the overall magnitude of
the logits, which grows during training, most with adaptive optimizers, and
proposes two fixes: BN-Softmax (`keras_ndsru.BNSoftmax`) and the logit-L2
penalty of eq. 21 (`keras_ndsru.losses.LogitL2SparseCategoricalCrossentropy`).

This script trains the same small MLP on scikit-learn's bundled 8x8 digits
(offline) with each optimizer x {no fix, BN-Softmax, logit-L2}, side by side
in one run, and records after every epoch the mean absolute value of the
logits that enter the softmax, on the held-out split, in inference mode. It
prints a table (final magnitude, its ratio to the same optimizer without a
fix, test accuracy) and saves a plot of the curves and a JSON of the numbers.

    python benchmarks/logit_magnitude.py            # ~2 minutes on 2 CPU cores
    python benchmarks/logit_magnitude.py --epochs 5 --out /tmp/quick
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ndsru  # noqa: E402

OPTIMIZERS = ("adam", "ndadam", "sgd")
FIXES = ("none", "bn_softmax", "logit_l2")
NUM_CLASSES = 10


def load_digits_split(seed: int, test_fraction: float = 0.2):
    """Scikit-learn's 8x8 digits, scaled to [0, 1], stratified train/test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )


def make_optimizer(name: str, learning_rates: dict[str, float]):
    rate = learning_rates[name]
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9)
    # NDAdam: Adam's step size for biases etc., its own for the weight vectors.
    return keras_ndsru.NDAdam(
        learning_rate=learning_rates["adam"], vector_learning_rate=rate
    )


def build_model(fix: str, args) -> keras.Model:
    """MLP 64-128-128-10 whose output is always the logits."""
    layers = [
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(NUM_CLASSES),
    ]
    if fix == "bn_softmax":
        # momentum 0.9 as in the authors' code: the moving statistics must
        # follow logits that change quickly over a short run.
        layers.append(
            keras_ndsru.BNSoftmax(gamma=args.gamma, output="logits", momentum=0.9)
        )
    return keras.Sequential(layers)


def make_loss(fix: str, l2: float) -> keras.losses.Loss:
    if fix == "logit_l2":
        return keras_ndsru.losses.LogitL2SparseCategoricalCrossentropy(l2=l2)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class LogitMagnitude(keras.callbacks.Callback):
    """Mean |logit| on fixed inputs, in inference mode, after every epoch."""

    def __init__(self, x):
        super().__init__()
        self.x = x
        self.values: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model(self.x, training=False)
        self.values.append(float(keras.ops.mean(keras.ops.abs(logits))))


def train_one(optimizer: str, fix: str, data, args) -> dict:
    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(args.seed)
    model = build_model(fix, args)
    model.compile(
        optimizer=make_optimizer(optimizer, args.learning_rates),
        loss=make_loss(fix, args.l2),
        metrics=["accuracy"],
    )
    magnitude = LogitMagnitude(x_test)
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        callbacks=[magnitude],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {
        "magnitude": magnitude.values,
        "test_accuracy": float(accuracy),
        "seconds": seconds,
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def results_table(results: dict) -> str:
    rows = []
    for optimizer, by_fix in results.items():
        baseline = by_fix["none"]["magnitude"][-1]
        for fix, run in by_fix.items():
            final = run["magnitude"][-1]
            rows.append(
                [
                    optimizer,
                    fix,
                    f"{final:.2f}",
                    f"{final / baseline:.3f}",
                    f"{run['test_accuracy']:.3f}",
                ]
            )
    headers = [
        "optimizer",
        "fix",
        "mean abs logit",
        "ratio to no fix",
        "test accuracy",
    ]
    return format_table(headers, rows)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(results), figsize=(4.2 * len(results), 3.4), sharey=True
    )
    for axis, (optimizer, by_fix) in zip(np.atleast_1d(axes), results.items()):
        for fix, run in by_fix.items():
            epochs = np.arange(1, len(run["magnitude"]) + 1)
            axis.plot(epochs, run["magnitude"], label=fix)
        axis.set_title(optimizer)
        axis.set_xlabel("epoch")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("mean |logit| (test split)")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels))
    figure.suptitle("Logit magnitude on 8x8 digits (ND-Adam paper, Fig. 3 effect)")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=50, help="default 50")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument(
        "--gamma", type=float, default=2.5, help="BN-Softmax gamma_C (default 2.5)"
    )
    parser.add_argument(
        "--l2", type=float, default=1e-3, help="logit-L2 lambda_C (default 1e-3)"
    )
    parser.add_argument(
        "--lr-adam",
        type=float,
        default=1e-3,
        help="Adam, and NDAdam's scalars (default 1e-3)",
    )
    parser.add_argument(
        "--lr-ndadam",
        type=float,
        default=0.05,
        help="NDAdam vector_learning_rate; its scalars use --lr-adam (default 0.05)",
    )
    parser.add_argument(
        "--lr-sgd", type=float, default=0.05, help="SGD, momentum 0.9 (default 0.05)"
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        choices=OPTIMIZERS,
        default=list(OPTIMIZERS),
        help="default: all",
    )
    parser.add_argument(
        "--out", default="results", help="folder for the PNG and JSON (default results)"
    )
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error(
            f"--epochs and --batch-size must be >= 1. "
            f"Received: epochs={args.epochs}, batch_size={args.batch_size}"
        )
    args.learning_rates = {
        "adam": args.lr_adam,
        "ndadam": args.lr_ndadam,
        "sgd": args.lr_sgd,
    }
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    data = load_digits_split(args.seed)
    results: dict[str, dict[str, dict]] = {}
    for optimizer in args.optimizers:
        results[optimizer] = {}
        for fix in FIXES:
            results[optimizer][fix] = train_one(optimizer, fix, data, args)
    print(
        f"8x8 digits, MLP 64-128-128-10, {args.epochs} epochs, batch "
        f"{args.batch_size}, seed {args.seed}; BN-Softmax gamma_C={args.gamma}, "
        f"logit-L2 lambda_C={args.l2}; mean |logit| on the test split, "
        "inference mode, after the last epoch"
    )
    print(results_table(results))
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "logit_magnitude.png")
    plot(results, png)
    with open(os.path.join(args.out, "logit_magnitude.json"), "w") as file:
        settings = {k: v for k, v in vars(args).items() if k != "learning_rates"}
        json.dump({"settings": settings, "results": results}, file, indent=1)
    print(f"plot: {png}")
    return results


if __name__ == "__main__":
    main()
