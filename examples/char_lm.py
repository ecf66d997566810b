"""Character-level language model with stacked SRU layers, in bits per character.

Lei et al., "Simple Recurrent Units for Highly Parallelizable Recurrence"
(arXiv 1709.02755), Sec. 4.4: characters are embedded, run through
`--layers` stacked SRU layers (or `--cell lstm|gru`) and a dense softmax
predicts the next character; the score is the cross-entropy in bits per
character (BPC = nats / ln 2) on the test text. Training reads
non-overlapping windows of `--seq-len` characters in shuffled order (the
state is not carried across windows). Writes `OUT/char_lm.json` and
`OUT/char_lm_bpc.png` (train and validation BPC per epoch).

Data: a TFDS dataset with one text feature (`--dataset tiny_shakespeare`,
the default, whose train/validation/test splits are used as such), or a
local file (`--text PATH`), split into the first 90% / next 5% / last 5% of
its characters for train / validation / test.

    python examples/char_lm.py                      # tiny_shakespeare (download)
    python examples/char_lm.py --text book.txt --layers 2 --units 256
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

UNKNOWN = 0  # Index of characters absent from the training text.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    _common.add_tfds_args(parser, dataset="tiny_shakespeare")
    parser.add_argument(
        "--text", default=None, help="local text file (replaces --dataset)"
    )
    _common.add_training_args(parser, epochs=20, batch_size=64, out="results/char_lm")
    _common.add_recurrent_args(
        parser,
        layers=3,
        units=256,
        embed_dim=64,
        dropout=0.1,
        lr_help="initial learning rate, cosine-decayed to 0",
    )
    parser.add_argument(
        "--seq-len",
        type=_common.positive_int,
        default=100,
        help="characters per training window (default 100)",
    )
    return parser


def load_texts(args) -> tuple[str, str, str]:
    """Train, validation and test text."""
    if args.text is not None:
        with open(args.text, encoding="utf-8") as file:
            text = file.read()
        cut_valid, cut_test = int(len(text) * 0.9), int(len(text) * 0.95)
        return text[:cut_valid], text[cut_valid:cut_test], text[cut_test:]

    import tensorflow as tf
    import tensorflow_datasets as tfds

    import keras_ndsru.datasets as nd_datasets

    splits, info = nd_datasets.load(
        args.dataset,
        split=["train", "validation", "test"],
        data_dir=args.data_dir,
        with_info=True,
    )
    keys = [
        key
        for key, feature in info.features.items()
        if getattr(feature, "tf_dtype", None) == tf.string
    ]
    if len(keys) != 1:
        raise ValueError(
            f"`{args.dataset}` needs exactly one text feature. "
            f"Received: features={list(info.features)}"
        )
    return tuple(
        "\n".join(example[keys[0]].decode("utf-8") for example in tfds.as_numpy(split))
        for split in splits
    )


def windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (input, next-character target) windows of `seq_len`."""
    count = (len(ids) - 1) // seq_len
    if count < 1:
        raise ValueError(
            f"The text is too short for one window of {seq_len} characters "
            f"plus one. Received: length={len(ids)}"
        )
    inputs = ids[: count * seq_len].reshape(count, seq_len)
    targets = ids[1 : count * seq_len + 1].reshape(count, seq_len)
    return inputs, targets


def build_model(args, vocab_size: int) -> keras.Model:
    import keras_ndsru

    inputs = keras.Input((None,), dtype="int64")
    x = keras.layers.Embedding(vocab_size, args.embed_dim)(inputs)
    for _ in range(args.layers):
        if args.cell == "sru":
            x = keras_ndsru.SRU(
                args.units, return_sequences=True, dropout=args.dropout
            )(x)
        else:
            cell = keras.layers.LSTM if args.cell == "lstm" else keras.layers.GRU
            x = cell(args.units, return_sequences=True, dropout=args.dropout)(x)
    logits = keras.layers.Dense(vocab_size)(x)
    return keras.Model(inputs, logits, name=f"{args.cell}_lm_x{args.layers}")


class BitsPerCharacter(keras.callbacks.Callback):
    """Adds `bpc` and `val_bpc` (the losses in bits) to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key in ("loss", "val_loss"):
            if key in logs:
                logs[key.replace("loss", "bpc")] = float(logs[key]) / math.log(2)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    train_text, valid_text, test_text = load_texts(args)
    alphabet = sorted(set(train_text))
    index = {char: i + 1 for i, char in enumerate(alphabet)}
    vocab_size = len(alphabet) + 1

    def encode(text):
        return np.array([index.get(char, UNKNOWN) for char in text], np.int64)

    train, valid, test = (
        windows(encode(text), args.seq_len)
        for text in (train_text, valid_text, test_text)
    )
    keras.utils.set_random_seed(args.seed)
    model = build_model(args, vocab_size)
    steps = args.epochs * -(-len(train[0]) // args.batch_size)
    model.compile(
        optimizer=_common.make_optimizer(
            args.optimizer,
            _common.cosine_decay(args.lr or _common.DEFAULT_LR[args.optimizer], steps),
            scalar_learning_rate=_common.cosine_decay(1e-3, steps),
            model=model,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        *train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=valid,
        callbacks=[_common.EpochTimer(), BitsPerCharacter()],
        verbose=args.verbose,
    )
    test_loss = model.evaluate(
        *test, batch_size=args.batch_size, verbose=min(args.verbose, 1)
    )
    logs = _common.history_dict(history)
    results = {
        "args": vars(args),
        "source": args.text or args.dataset,
        "vocab_size": vocab_size,
        "characters": {
            "train": len(train_text),
            "validation": len(valid_text),
            "test": len(test_text),
        },
        "parameters": model.count_params(),
        "test_bpc": float(test_loss) / math.log(2),
        "seconds_per_epoch": float(np.mean(logs["seconds"])),
        "history": logs,
    }
    results["plots"] = [
        _common.plot_curves(
            os.path.join(args.out, "char_lm_bpc.png"),
            {"train": logs["bpc"], "validation": logs["val_bpc"]},
            title=f"{args.cell} x{args.layers} on {results['source']}",
            ylabel="bits per character",
        )
    ]
    results["json"] = _common.write_results(args.out, "char_lm", results)
    print(
        f"\n{args.cell} x{args.layers} ({args.units} units) on {results['source']}: "
        f"test {results['test_bpc']:.3f} bits/char, "
        f"{results['seconds_per_epoch']:.2f} s/epoch\n"
        f"results: {results['json']}; plot: {results['plots'][0]}"
    )
    return results


if __name__ == "__main__":
    _common.run_script(main)
