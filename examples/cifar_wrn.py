"""Wide ResNet on CIFAR with ND-Adam, Adam or SGD: the ND-Adam paper's recipe.

Zhang et al., "Normalized Direction-preserving Adam" (arXiv 1709.04546),
Sec. 5: a WRN-d-k (default WRN-22-7.5) whose last layers are
BN-ReLU-1x1 conv-global average pooling (no dense layer), batch normalization
without a trainable scale, a cosine learning-rate decay, pad-crop and
horizontal-flip augmentation, optionally BN-Softmax (`--bn-softmax GAMMA`) or
the logit-L2 penalty (`--logit-l2 LAMBDA`). Each optimizer named by
`--optimizer` is trained in turn; the per-epoch test accuracy, effective
learning rate and logit magnitude go to `OUT/cifar_wrn.json`, and the test
accuracy per optimizer (the paper's Fig. 2) to `OUT/cifar_wrn_accuracy.png`.

    python examples/cifar_wrn.py --dataset cifar10 --optimizer ndadam adam sgd
    python examples/cifar_wrn.py --dataset cifar100 --bn-softmax 1
    python examples/cifar_wrn.py --dataset ndsru_digits --epochs 5 --depth 10 \
        --width 1   # offline, on scikit-learn's 8x8 digits (no flip)

CIFAR needs a download (through TFDS) on first use; offline the script stops
at once with a message naming the offline default, `ndsru_digits`.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Paper defaults per optimizer: initial learning rate and L2 weight decay.
DEFAULT_WEIGHT_DECAY = {"ndadam": 0.0, "adam": 5e-4, "sgd": 5e-4}
STATS_SAMPLE = 10_000
BN_MOMENTUM = 0.9  # The authors' (Keras' default is 0.99).


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    _common.add_tfds_args(parser, dataset="cifar10")
    _common.add_training_args(parser, epochs=200, batch_size=128, out="results/cifar")
    parser.add_argument(
        "--optimizer",
        nargs="+",
        choices=_common.OPTIMIZERS,
        default=list(_common.OPTIMIZERS),
        help="one or more; each is trained in turn (default: ndadam adam sgd)",
    )
    parser.add_argument(
        "--lr",
        type=_common.positive_float,
        default=None,
        help="initial learning rate, of the weight vectors for ndadam "
        "(default per optimizer: "
        + ", ".join(f"{k} {v}" for k, v in _common.DEFAULT_LR.items())
        + ")",
    )
    parser.add_argument(
        "--scalar-lr",
        type=_common.positive_float,
        default=1e-3,
        help="ND-Adam's Adam step size for biases and BN shifts (default 1e-3)",
    )
    parser.add_argument(
        "--weight-decay",
        type=_common.non_negative_float,
        default=None,
        help="L2 weight decay of the conv kernels (default per optimizer: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_WEIGHT_DECAY.items())
        + "; ND-Adam normalizes the kernels, so none)",
    )
    parser.add_argument(
        "--depth", type=int, default=22, help="WRN depth d, 6n+4 (default 22)"
    )
    parser.add_argument(
        "--width",
        type=_common.positive_float,
        default=7.5,
        help="WRN widening factor k; widths round(16k), round(32k), round(64k) "
        "(default 7.5)",
    )
    parser.add_argument(
        "--dropout",
        type=_common.non_negative_float,
        default=0.0,
        help="dropout between the convs of a block (default 0)",
    )
    softmax = parser.add_mutually_exclusive_group()
    softmax.add_argument(
        "--bn-softmax",
        type=_common.positive_float,
        default=None,
        metavar="GAMMA",
        help="batch-normalize the logits, scaled by GAMMA (paper: 2.5 on "
        "CIFAR-10, 1 on CIFAR-100)",
    )
    softmax.add_argument(
        "--logit-l2",
        type=_common.non_negative_float,
        default=None,
        metavar="LAMBDA",
        help="add LAMBDA/2 * ||logits||^2 to the loss (paper: 1e-3)",
    )
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random horizontal flips (default: on, off for ndsru_digits)",
    )
    return parser


def wide_resnet(
    input_shape,
    num_classes: int,
    *,
    depth: int,
    width: float,
    dropout: float = 0.0,
    weight_decay: float = 0.0,
    bn_softmax: float | None = None,
) -> keras.Model:
    """WRN-d-k with pre-activation blocks; the head is BN-ReLU-1x1 conv-GAP.

    Returns logits (BN-Softmax'ed when `bn_softmax` is a gamma).
    """
    import keras_ndsru

    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"`depth` must be 6n+4 with n >= 1. Received: depth={depth}")
    blocks = (depth - 4) // 6
    widths = [max(1, round(base * width)) for base in (16, 32, 64)]
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None

    def conv(filters, kernel, strides=1):
        return keras.layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
        )

    def bn_relu(x):
        x = keras.layers.BatchNormalization(scale=False, momentum=BN_MOMENTUM)(x)
        return keras.layers.ReLU()(x)

    inputs = keras.Input(input_shape)
    x = conv(16, 3)(inputs)
    for stage, filters in enumerate(widths):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            activated = bn_relu(x)
            if strides != 1 or x.shape[-1] != filters:
                shortcut = conv(filters, 1, strides)(activated)
            else:
                shortcut = x
            y = conv(filters, 3, strides)(activated)
            y = bn_relu(y)
            if dropout:
                y = keras.layers.Dropout(dropout)(y)
            y = conv(filters, 3)(y)
            x = keras.layers.Add()([shortcut, y])
    x = bn_relu(x)
    x = conv(num_classes, 1)(x)
    logits = keras.layers.GlobalAveragePooling2D(name="logits")(x)
    if bn_softmax is not None:
        logits = keras_ndsru.BNSoftmax(
            gamma=bn_softmax, momentum=BN_MOMENTUM, name="bn_softmax"
        )(logits)
    return keras.Model(inputs, logits, name=f"wrn_{depth}_{width:g}")


def load_data(args):
    """Normalized train/test `tf.data` pipelines, with augmentation on train."""
    import keras_ndsru.datasets as nd_datasets

    splits, info = nd_datasets.load(
        args.dataset,
        split=["train", "test"],
        data_dir=args.data_dir,
        as_supervised=True,
        with_info=True,
    )
    train, test = splits
    image_shape = tuple(info.features["image"].shape)
    num_classes = info.features["label"].num_classes
    sample = next(iter(train.take(STATS_SAMPLE).batch(STATS_SAMPLE)))[0]
    sample = tf.cast(sample, tf.float32) / 255.0
    mean = tf.reduce_mean(sample, axis=(0, 1, 2))
    std = tf.math.reduce_std(sample, axis=(0, 1, 2)) + 1e-6

    def normalize(image, label):
        return (tf.cast(image, tf.float32) / 255.0 - mean) / std, label

    pad = max(1, image_shape[0] // 8)
    flip = args.flip if args.flip is not None else args.dataset != "ndsru_digits"

    def augment(image, label):
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.random_crop(padded, image_shape)
        if flip:
            image = tf.image.random_flip_left_right(image)
        return image, label

    autotune = tf.data.AUTOTUNE
    num_train = _num_examples(train)
    train = (
        train.map(normalize, num_parallel_calls=autotune)
        .cache()
        .shuffle(min(num_train, 50_000), seed=args.seed)
        .map(augment, num_parallel_calls=autotune)
        .batch(args.batch_size)
        .prefetch(autotune)
    )
    test = (
        test.map(normalize, num_parallel_calls=autotune)
        .batch(args.batch_size)
        .cache()
        .prefetch(autotune)
    )
    steps = -(-num_train // args.batch_size)
    return train, test, image_shape, num_classes, steps


def _num_examples(dataset) -> int:
    count = int(dataset.cardinality())
    if count < 0:  # Unknown: count them once.
        count = int(dataset.reduce(0, lambda total, _: total + 1))
    return count


def train_one(args, optimizer_name: str, data) -> dict:
    import keras_ndsru

    train, test, image_shape, num_classes, steps = data
    keras.utils.set_random_seed(args.seed)
    weight_decay = (
        args.weight_decay
        if args.weight_decay is not None
        else DEFAULT_WEIGHT_DECAY[optimizer_name]
    )
    model = wide_resnet(
        image_shape,
        num_classes,
        depth=args.depth,
        width=args.width,
        dropout=args.dropout,
        weight_decay=weight_decay,
        bn_softmax=args.bn_softmax,
    )
    learning_rate = (
        args.lr if args.lr is not None else _common.DEFAULT_LR[optimizer_name]
    )
    total_steps = args.epochs * steps
    optimizer = _common.make_optimizer(
        optimizer_name,
        _common.cosine_decay(learning_rate, total_steps),
        scalar_learning_rate=_common.cosine_decay(args.scalar_lr, total_steps),
        model=model,
    )
    if args.logit_l2 is not None:
        loss = keras_ndsru.losses.LogitL2SparseCategoricalCrossentropy(l2=args.logit_l2)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    probe = next(iter(test))[0][:256]
    callbacks = [
        _common.EpochTimer(),
        _common.LogitMagnitude(probe),
        _common.LearningRateLogger(),
        _common.effective_lr_callback(),
    ]
    print(
        f"\n== {model.name} on {args.dataset} with {optimizer_name} "
        f"(lr {learning_rate:g}, weight decay {weight_decay:g}) =="
    )
    history = model.fit(
        train,
        validation_data=test,
        epochs=args.epochs,
        callbacks=callbacks,
        shuffle=False,  # The pipeline shuffles.
        verbose=args.verbose,
    )
    logs = _common.history_dict(history)
    return {
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "parameters": model.count_params(),
        "test_accuracy": logs["val_accuracy"][-1],
        "seconds_per_epoch": float(np.mean(logs["seconds"])),
        "history": logs,
    }


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    data = load_data(args)
    runs = {name: train_one(args, name, data) for name in args.optimizer}
    results = {"args": vars(args), "runs": runs}
    results["plots"] = [
        _common.plot_curves(
            os.path.join(args.out, "cifar_wrn_accuracy.png"),
            {name: run["history"]["val_accuracy"] for name, run in runs.items()},
            title=f"WRN-{args.depth}-{args.width:g} on {args.dataset}",
            ylabel="test accuracy",
        ),
        _common.plot_curves(
            os.path.join(args.out, "cifar_wrn_logit_norm.png"),
            {name: run["history"]["logit_norm"] for name, run in runs.items()},
            title="mean L2 norm of the logits (test batch)",
            ylabel="||logits||",
        ),
    ]
    results["json"] = _common.write_results(args.out, "cifar_wrn", results)
    print(
        _common.format_table(
            ["optimizer", "test accuracy", "s/epoch", "final ||logits||"],
            [
                [
                    name,
                    run["test_accuracy"],
                    run["seconds_per_epoch"],
                    run["history"]["logit_norm"][-1],
                ]
                for name, run in runs.items()
            ],
        )
    )
    print(f"results: {results['json']}; plots: {', '.join(results['plots'])}")
    return results


if __name__ == "__main__":
    _common.run_script(main)
