"""Sentence classification with stacked SRU layers (or Keras' LSTM/GRU).

Lei et al., "Simple Recurrent Units for Highly Parallelizable Recurrence"
(arXiv 1709.02755), Sec. 4.1: word embeddings, then `--layers` stacked
recurrent layers of `--units` units, the last one's final output into a dense
softmax. `--cell lstm|gru` trains the same model with Keras' cells, for a
side-by-side comparison; the script prints the test accuracy and the seconds
per epoch of the chosen cell and writes `OUT/text_classification.json` and
`OUT/text_classification_accuracy.png`.

Data: a TFDS text dataset (`--dataset glue/sst2`, `imdb_reviews`, ...; for
GLUE, whose test labels are hidden, the validation split is the test set), or
your own files with `--data PATH`: one example per line, the label as the
first whitespace-separated token and the text after it, e.g.

    pos a gripping , funny film
    neg the plot goes nowhere

evaluated on `--test-data PATH` or by `--cv K` folds (default 10 when no test
file is given). Words are lower-cased and split on whitespace and punctuation;
the embeddings are trained from scratch (the paper uses word2vec).

    python examples/text_classification.py --dataset glue/sst2
    python examples/text_classification.py --dataset imdb_reviews --max-length 256
    python examples/text_classification.py --data mr.txt --cv 10 --cell lstm
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    _common.add_tfds_args(parser, dataset="glue/sst2")
    parser.add_argument(
        "--data", default=None, help="local training file (replaces --dataset)"
    )
    parser.add_argument("--test-data", default=None, help="local test file")
    parser.add_argument(
        "--cv",
        type=int,
        default=None,
        help="K-fold cross-validation on --data (default 10 without --test-data)",
    )
    _common.add_training_args(
        parser, epochs=10, batch_size=32, out="results/text_classification"
    )
    _common.add_recurrent_args(parser, layers=2, units=128, embed_dim=128, dropout=0.3)
    parser.add_argument(
        "--bidirectional", action="store_true", help="bidirectional layers"
    )
    parser.add_argument(
        "--vocab-size",
        type=_common.positive_int,
        default=20_000,
        help="most frequent words kept (default 20000)",
    )
    parser.add_argument(
        "--max-length",
        type=_common.positive_int,
        default=64,
        help="words per example, longer ones are cut (default 64)",
    )
    return parser


def read_labeled_lines(path: str) -> tuple[list[str], list[str]]:
    """Labels and texts of a file with `LABEL text...` on each line."""
    labels, texts = [], []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            parts = line.split(None, 1)
            if len(parts) < 2:
                raise ValueError(
                    f"{path}:{number}: expected `LABEL text...`, found only "
                    f"a label. Received: line={line.rstrip()!r}"
                )
            labels.append(parts[0])
            texts.append(parts[1].strip())
    if not texts:
        raise ValueError(f"{path} holds no examples. Received: path={path!r}")
    return labels, texts


def encode_labels(train: list[str], test: list[str] | None):
    classes = sorted(set(train))
    if len(classes) < 2:
        raise ValueError(
            f"--data needs at least 2 distinct labels. Received: labels={classes}"
        )
    index = {label: i for i, label in enumerate(classes)}
    unknown = sorted(set(test or ()) - set(classes))
    if unknown:
        raise ValueError(
            "--test-data has labels that --data lacks. "
            f"Received: unknown labels={unknown}"
        )
    encode = lambda labels: np.array([index[x] for x in labels], np.int64)  # noqa: E731
    return classes, encode(train), None if test is None else encode(test)


def load_tfds(args):
    """(texts, labels) for train and test, and the class names, from TFDS."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    import keras_ndsru.datasets as nd_datasets

    test_split = "validation" if args.dataset.startswith("glue") else "test"
    (train, test), info = nd_datasets.load(
        args.dataset,
        split=["train", test_split],
        data_dir=args.data_dir,
        with_info=True,
    )
    text_keys = [
        key
        for key, feature in info.features.items()
        if getattr(feature, "tf_dtype", None) == tf.string and key != "label"
    ]
    if "label" not in info.features or len(text_keys) != 1:
        raise ValueError(
            f"`{args.dataset}` is not a single-text classification dataset "
            "(needs one string feature and a `label`). "
            f"Received: features={list(info.features)}"
        )
    key = text_keys[0]

    def arrays(split):
        texts, labels = [], []
        for example in tfds.as_numpy(split):
            texts.append(example[key].decode("utf-8"))
            labels.append(int(example["label"]))
        return np.array(texts, dtype=object), np.array(labels, np.int64)

    classes = info.features["label"].names
    return arrays(train), arrays(test), classes


def build_model(args, vocab_size: int, num_classes: int) -> keras.Model:
    import keras_ndsru

    inputs = keras.Input((args.max_length,), dtype="int64")
    x = keras.layers.Embedding(vocab_size, args.embed_dim, mask_zero=True)(inputs)
    for i in range(args.layers):
        sequences = i < args.layers - 1
        if args.cell == "sru":
            x = keras_ndsru.SRU(
                args.units,
                return_sequences=sequences,
                dropout=args.dropout,
                bidirectional=args.bidirectional,
            )(x)
            continue
        cell = keras.layers.LSTM if args.cell == "lstm" else keras.layers.GRU
        layer = cell(args.units, return_sequences=sequences, dropout=args.dropout)
        x = keras.layers.Bidirectional(layer)(x) if args.bidirectional else layer(x)
    logits = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, logits, name=f"{args.cell}_x{args.layers}")


def fit_and_evaluate(args, train, test, num_classes: int) -> dict:
    """Adapts a vocabulary on `train`, trains a fresh model, scores `test`."""
    (train_texts, train_labels), (test_texts, test_labels) = train, test
    vectorizer = keras.layers.TextVectorization(
        max_tokens=args.vocab_size, output_sequence_length=args.max_length
    )
    vectorizer.adapt(np.asarray(train_texts, dtype=object), batch_size=1024)

    def vectorize(texts):
        return np.asarray(vectorizer(np.asarray(texts, dtype=object)), np.int64)

    keras.utils.set_random_seed(args.seed)
    model = build_model(args, vectorizer.vocabulary_size(), num_classes)
    model.compile(
        optimizer=_common.make_optimizer(
            args.optimizer,
            args.lr or _common.DEFAULT_LR[args.optimizer],
            model=model,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        vectorize(train_texts),
        train_labels,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(vectorize(test_texts), test_labels),
        callbacks=[_common.EpochTimer()],
        verbose=args.verbose,
    )
    logs = _common.history_dict(history)
    return {
        "test_accuracy": logs["val_accuracy"][-1],
        "seconds_per_epoch": float(np.mean(logs["seconds"])),
        "parameters": model.count_params(),
        "history": logs,
    }


def folds(num_examples: int, k: int, seed: int) -> list[np.ndarray]:
    """`k` disjoint test-index sets covering a seeded permutation."""
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.array_split(order, k)


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None and (args.test_data or args.cv):
        parser.error("--test-data and --cv need --data")
    if args.test_data and args.cv:
        parser.error("give --test-data or --cv, not both")
    if args.data and not args.test_data and args.cv is None:
        args.cv = 10

    if args.data is None:
        train, test, classes = load_tfds(args)
        runs = [fit_and_evaluate(args, train, test, len(classes))]
        source = args.dataset
    else:
        labels, texts = read_labeled_lines(args.data)
        texts = np.array(texts, dtype=object)
        source = args.data
        if args.test_data:
            test_labels, test_texts = read_labeled_lines(args.test_data)
            classes, y, y_test = encode_labels(labels, test_labels)
            test = (np.array(test_texts, dtype=object), y_test)
            runs = [fit_and_evaluate(args, (texts, y), test, len(classes))]
        else:
            if not 2 <= args.cv <= len(texts):
                parser.error(
                    f"--cv must be in [2, {len(texts)}] (the number of "
                    f"examples). Received: cv={args.cv}"
                )
            classes, y, _ = encode_labels(labels, None)
            runs = []
            for fold, test_index in enumerate(folds(len(texts), args.cv, args.seed)):
                if args.verbose:
                    print(f"\n== fold {fold + 1}/{args.cv} ==")
                train_mask = np.ones(len(texts), bool)
                train_mask[test_index] = False
                runs.append(
                    fit_and_evaluate(
                        args,
                        (texts[train_mask], y[train_mask]),
                        (texts[test_index], y[test_index]),
                        len(classes),
                    )
                )

    accuracies = [run["test_accuracy"] for run in runs]
    results = {
        "args": vars(args),
        "source": source,
        "classes": list(classes),
        "test_accuracy": float(np.mean(accuracies)),
        "test_accuracy_std": float(np.std(accuracies)),
        "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in runs])),
        "runs": runs,
    }
    mean_curve = np.mean([run["history"]["val_accuracy"] for run in runs], axis=0)
    results["plots"] = [
        _common.plot_curves(
            os.path.join(args.out, "text_classification_accuracy.png"),
            {f"{args.cell} x{args.layers}": mean_curve.tolist()},
            title=f"{source}: test accuracy"
            + (f" (mean of {args.cv} folds)" if len(runs) > 1 else ""),
            ylabel="test accuracy",
        )
    ]
    results["json"] = _common.write_results(args.out, "text_classification", results)
    spread = f" +- {results['test_accuracy_std']:.4f}" if len(runs) > 1 else ""
    print(
        f"\n{args.cell} x{args.layers} ({args.units} units) on {source}: "
        f"test accuracy {results['test_accuracy']:.4f}{spread}, "
        f"{results['seconds_per_epoch']:.2f} s/epoch\n"
        f"results: {results['json']}; plot: {results['plots'][0]}"
    )
    return results


if __name__ == "__main__":
    _common.run_script(main)
