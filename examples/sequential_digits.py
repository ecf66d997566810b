"""The offline demo: row-by-row digits with stacked SRU, NDAdam vs Adam, and BN-Softmax.

Needs no download: the data is `ndsru_digits` (`keras_ndsru.datasets`), the
1,797 8x8 digits bundled with scikit-learn. It trains, with the same seed and
a cosine learning-rate decay:

1. two stacked SRU layers reading each image as a sequence of 8 rows of 8
   pixels, with NDAdam (Zhang et al., arXiv 1709.04546) and with Adam;
2. a small CNN (BN without scale, global average pooling) with NDAdam, with
   a plain softmax and with BN-Softmax (the same paper, Sec. 4),

then prints a comparison table (test accuracy, training seconds) and writes
`OUT/sequential_digits.json` and the plots `OUT/sequential_digits_accuracy.png`
(test accuracy per epoch) and `OUT/sequential_digits_loss.png`.

    python examples/sequential_digits.py                 # about 1-2 min on 2 cores
    python examples/sequential_digits.py --epochs 5 --verbose 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402

NUM_CLASSES = 10
# The ND-Adam authors' BN momentum; with ~23 steps an epoch, Keras' 0.99
# would leave the moving statistics (used for testing) behind for epochs.
BN_MOMENTUM = 0.9


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="TFDS data directory (default: TFDS' own, ~/tensorflow_datasets)",
    )
    _common.add_training_args(parser, epochs=30, batch_size=64, out="results/demo")
    parser.add_argument(
        "--units", type=_common.positive_int, default=64, help="SRU units (default 64)"
    )
    parser.add_argument(
        "--filters",
        type=_common.positive_int,
        default=32,
        help="CNN filters of the first conv; the second has twice (default 32)",
    )
    parser.add_argument(
        "--lr-ndadam",
        type=_common.positive_float,
        default=0.05,
        help="initial NDAdam step size of the weight vectors (default 0.05, "
        "the paper's)",
    )
    parser.add_argument(
        "--lr-adam",
        type=_common.positive_float,
        default=3e-3,
        help="initial Adam learning rate, also NDAdam's for biases and BN "
        "shifts (default 3e-3)",
    )
    parser.add_argument(
        "--gamma",
        type=_common.positive_float,
        default=2.5,
        help="BN-Softmax gamma_C (default 2.5, the paper's CIFAR-10 value)",
    )
    return parser


def load_digits(data_dir: str | None):
    """Train/test images as float32 in [0, 1], shape (N, 8, 8), and labels."""
    import tensorflow_datasets as tfds

    import keras_ndsru.datasets as nd_datasets

    splits = nd_datasets.load(
        nd_datasets.OFFLINE_DEFAULT,
        split=["train", "test"],
        data_dir=data_dir,
        as_supervised=True,
    )
    arrays = []
    for split in splits:
        images, labels = next(iter(tfds.as_numpy(split.batch(1_000_000))))
        arrays.append((images[..., 0].astype("float32") / 255.0, labels))
    return arrays


def sru_model(units: int) -> keras.Model:
    """Two stacked SRU layers over the 8 rows of an image, then a dense layer."""
    import keras_ndsru

    return keras.Sequential(
        [
            keras.Input((8, 8)),
            keras_ndsru.SRU(units, return_sequences=True),
            keras_ndsru.SRU(units),
            keras.layers.Dense(NUM_CLASSES),
        ],
        name="sru_x2",
    )


def cnn_model(filters: int, gamma: float | None) -> keras.Model:
    """Conv-BN-ReLU x2 (the second with stride 2), 1x1 conv head, GAP.

    BN has no scale, as in the paper's WRN.

    With `gamma`, the logits go through BN-Softmax.
    """
    import keras_ndsru

    def conv_bn_relu(n, strides=1):
        return [
            keras.layers.Conv2D(n, 3, strides=strides, padding="same", use_bias=False),
            keras.layers.BatchNormalization(scale=False, momentum=BN_MOMENTUM),
            keras.layers.ReLU(),
        ]

    layers = [
        keras.Input((8, 8)),
        keras.layers.Reshape((8, 8, 1)),
        *conv_bn_relu(filters),
        *conv_bn_relu(2 * filters, strides=2),
        keras.layers.Conv2D(NUM_CLASSES, 1),
        keras.layers.GlobalAveragePooling2D(),
    ]
    if gamma is not None:
        layers.append(keras_ndsru.BNSoftmax(gamma=gamma, momentum=BN_MOMENTUM))
    name = "cnn_bn_softmax" if gamma is not None else "cnn_softmax"
    return keras.Sequential(layers, name=name)


def train(args, label: str, model: keras.Model, optimizer_name: str, data) -> dict:
    (x_train, y_train), (x_test, y_test) = data
    learning_rate = args.lr_ndadam if optimizer_name == "ndadam" else args.lr_adam
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    model.compile(
        optimizer=_common.make_optimizer(
            optimizer_name,
            _common.cosine_decay(learning_rate, steps),
            scalar_learning_rate=_common.cosine_decay(args.lr_adam, steps),
            model=model,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = [
        _common.EpochTimer(),
        _common.LogitMagnitude(x_test[:256]),
        _common.effective_lr_callback(),
    ]
    if args.verbose:
        print(f"\n== {label} ({model.count_params():,} parameters) ==")
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_test, y_test),
        callbacks=callbacks,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - start
    logs = _common.history_dict(history)
    return {
        "model": model.name,
        "optimizer": optimizer_name,
        "learning_rate": learning_rate,
        "parameters": model.count_params(),
        "test_accuracy": logs["val_accuracy"][-1],
        "best_test_accuracy": max(logs["val_accuracy"]),
        "train_seconds": seconds,
        "history": logs,
    }


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    data = load_digits(args.data_dir)
    plan = [
        ("SRU x2, NDAdam", lambda: sru_model(args.units), "ndadam"),
        ("SRU x2, Adam", lambda: sru_model(args.units), "adam"),
        ("CNN, softmax, NDAdam", lambda: cnn_model(args.filters, None), "ndadam"),
        (
            f"CNN, BN-Softmax {args.gamma:g}, NDAdam",
            lambda: cnn_model(args.filters, args.gamma),
            "ndadam",
        ),
    ]
    runs = {}
    for label, build, optimizer_name in plan:
        keras.utils.set_random_seed(args.seed)
        runs[label] = train(args, label, build(), optimizer_name, data)
    import keras_ndsru

    kernel = keras_ndsru.ops.fused_kernel_status()
    results = {
        "args": vars(args),
        "sru_recurrence": {"path": kernel.path, "reason": kernel.reason},
        "train_size": len(data[0][1]),
        "test_size": len(data[1][1]),
        "runs": runs,
        "total_seconds": time.perf_counter() - start,
    }
    results["plots"] = [
        _common.plot_curves(
            os.path.join(args.out, "sequential_digits_accuracy.png"),
            {label: run["history"]["val_accuracy"] for label, run in runs.items()},
            title="8x8 digits (ndsru_digits): test accuracy",
            ylabel="test accuracy",
        ),
        _common.plot_curves(
            os.path.join(args.out, "sequential_digits_loss.png"),
            {label: run["history"]["loss"] for label, run in runs.items()},
            title="8x8 digits (ndsru_digits): training loss",
            ylabel="training loss",
        ),
    ]
    table = _common.format_table(
        ["model", "test acc", "best test acc", "||logits||", "train s", "params"],
        [
            [
                label,
                run["test_accuracy"],
                run["best_test_accuracy"],
                run["history"]["logit_norm"][-1],
                run["train_seconds"],
                f"{run['parameters']:,}",
            ]
            for label, run in runs.items()
        ],
    )
    results["table"] = table
    results["json"] = _common.write_results(args.out, "sequential_digits", results)
    print(
        f"\nndsru_digits: {results['train_size']} train / {results['test_size']} "
        f"test images, {args.epochs} epochs, batch {args.batch_size}, seed "
        f"{args.seed}; SRU recurrence: {kernel.path} ({kernel.reason})\n{table}\n"
        f"total {time.perf_counter() - start:.0f} s; results: {results['json']}\n"
        f"plots: {', '.join(results['plots'])}"
    )
    return results


if __name__ == "__main__":
    _common.run_script(main)
