"""Sentence classification with stacked SRU layers, side by side with LSTM and GRU.

Lei et al., "Simple Recurrent Units for Highly Parallelizable Recurrence"
(arXiv 1709.02755), Sec. 4.1: word embeddings, `--layers` stacked recurrent
layers of `--units` units and a dense softmax over `--head` (the mean of the
last layer's outputs, or its last output). The paper's protocol: every epoch
is scored on a dev split, the epoch with the best dev accuracy is restored
and scored once on test; each run is repeated for several `--seeds` and the
table gives mean +- std. `--cell sru lstm gru` trains each cell on the same
data and seeds and prints them side by side, with the steady-state seconds
per training epoch (epochs 2..N: the first one includes tracing). Pretrained
word vectors (`--embeddings PATH`, word2vec or GloVe text format) are
unit-normalized and frozen, as the paper does; without them the embeddings
are learned. Batches hold sentences of similar length, padded to the longest
one in the batch. Writes `OUT/text_classification.json` and
`OUT/text_classification_dev_accuracy.png`.

Data: your files with `--data PATH` (one example per line: the label, then
the text), e.g.

    pos a gripping , funny film
    neg the plot goes nowhere

with `--dev-data` (default: 10% of --data held out) and `--test-data`, or
with `--cv K` folds when there is no test file (default 10, as the paper for
MR, CR, SUBJ and MPQA); or a TFDS dataset (`--dataset glue/sst2`; the
validation split of GLUE, whose test labels are hidden, is the test set).
Files that are not UTF-8 are read as cp1252 (or `--encoding`), a byte-order
mark is dropped, lines with a label and no text are skipped; each repair is
printed. The plan (runs x epochs) is printed first, and a time estimate
after the first few batches.

    D=../shared/data/sst   # SST-2: stsa.binary.{train,dev,test}
    python examples/text_classification.py --data $D/stsa.binary.train \\
        --dev-data $D/stsa.binary.dev --test-data $D/stsa.binary.test --cell sru lstm
    python examples/text_classification.py --data mr.txt --embeddings glove.840B.300d.txt
    python examples/text_classification.py --dataset imdb_reviews --max-length 400
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import _text_files  # noqa: E402
import _text_inputs  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

HEADS = ("mean", "max", "last")
DEFAULT_HEAD = "mean"
DEFAULT_SEEDS = (0, 1, 2)
# The held-out dev split does not depend on --seeds: every run selects its
# epoch on the same examples.
DEV_SPLIT_SEED = 1234


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    _common.add_tfds_args(parser, dataset="glue/sst2")
    data = parser.add_argument_group("local files")
    data.add_argument("--data", default=None, help="training file (replaces --dataset)")
    data.add_argument("--dev-data", default=None, help="dev file (selects the epoch)")
    data.add_argument("--test-data", default=None, help="test file")
    data.add_argument(
        "--cv",
        type=_common.positive_int,
        default=None,
        help="K-fold cross-validation on --data (default 10 without --test-data)",
    )
    data.add_argument(
        "--encoding",
        default=None,
        help="encoding of the files (default: UTF-8, else cp1252, reported)",
    )
    parser.add_argument(
        "--dev-fraction",
        type=_fraction,
        default=0.1,
        help="share of the training data held out as dev when there is no dev "
        "split (default 0.1)",
    )
    _common.add_training_args(
        parser,
        epochs=10,
        batch_size=32,
        out=None,
        out_help="results/text_classification/DATA-CELLS",
        seeds_help="one run per seed, reported as mean +- std "
        f"(default {' '.join(map(str, DEFAULT_SEEDS))}; 0 with --cv, whose folds "
        "give the spread)",
    )
    _common.add_recurrent_args(
        parser, layers=2, units=128, embed_dim=128, dropout=0.3, several_cells=True
    )
    parser.add_argument(
        "--head",
        choices=HEADS,
        default=DEFAULT_HEAD,
        help="classifier input: the mean or the maximum of the last layer's "
        f"outputs over the valid steps, or its last output (default {DEFAULT_HEAD})",
    )
    parser.add_argument(
        "--embed-dropout",
        type=_common.non_negative_float,
        default=0.0,
        help="dropout on the word vectors (default 0)",
    )
    parser.add_argument(
        "--output-dropout",
        type=_common.non_negative_float,
        default=0.0,
        help="dropout on the classifier input (default 0)",
    )
    parser.add_argument(
        "--bidirectional", action="store_true", help="bidirectional layers"
    )
    parser.add_argument(
        "--embeddings",
        default=None,
        help="pretrained word vectors, word2vec or GloVe text format (unit-"
        "normalized, frozen; replaces --embed-dim)",
    )
    parser.add_argument(
        "--train-embeddings",
        action="store_true",
        help="fine-tune the --embeddings vectors instead of freezing them",
    )
    parser.add_argument(
        "--vocab-size",
        type=_common.positive_int,
        default=20_000,
        help="most frequent training words kept (default 20000)",
    )
    parser.add_argument(
        "--min-count",
        type=_common.positive_int,
        default=2,
        help="training words seen fewer times are unknown words (default 2)",
    )
    parser.add_argument(
        "--max-length",
        type=_common.positive_int,
        default=256,
        help="words per example; longer ones are cut and counted (default 256)",
    )
    return parser


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


# ------------------------------------------------------------------ data


@dataclass
class Split:
    """One train / dev / test partition of tokenized texts and class indices."""

    train: tuple[list[list[str]], np.ndarray]
    dev: tuple[list[list[str]], np.ndarray]
    test: tuple[list[list[str]], np.ndarray]
    name: str = ""


@dataclass
class Corpus:
    """What was read: the splits (one, or one per fold), classes and repairs."""

    source: str
    classes: list[str]
    splits: list[Split]
    plan: str
    notes: list[str] = field(default_factory=list)


def hold_out(texts, labels, fraction: float):
    """(rest, held-out) of a fixed random `fraction` of the examples."""
    order = np.random.default_rng(DEV_SPLIT_SEED).permutation(len(texts))
    count = max(1, round(fraction * len(texts)))
    take = lambda index: ([texts[i] for i in index], labels[index])  # noqa: E731
    return take(np.sort(order[count:])), take(np.sort(order[:count]))


def folds(num_examples: int, k: int, seed: int = DEV_SPLIT_SEED) -> list[np.ndarray]:
    """`k` disjoint test-index sets covering a seeded permutation."""
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.array_split(order, k)


def _tokenized(texts: list[str]) -> list[list[str]]:
    return [_text_inputs.tokenize(text) for text in texts]


def load_files(args) -> Corpus:
    read = lambda path: _text_files.read_labeled_lines(path, args.encoding)  # noqa: E731
    train = read(args.data)
    tokens = _tokenized(train.texts)
    classes = _text_files.class_names(train.labels)
    if len(classes) < 2:
        raise _text_files.DataError(
            f"{args.data}: needs at least 2 distinct labels (the first token of "
            f"each line). Received: labels={classes}"
        )
    notes = list(train.notes)
    labels = _text_files.encode_labels(classes, train, "--data")
    dev = None
    if args.dev_data:
        dev_file = read(args.dev_data)
        notes += dev_file.notes
        dev = (
            _tokenized(dev_file.texts),
            _text_files.encode_labels(classes, dev_file, "--dev-data"),
        )
    dev_plan = (
        f"dev {args.dev_data}"
        if dev
        else f"dev = {args.dev_fraction:.0%} of the training data, held out"
    )
    if args.test_data:
        test_file = read(args.test_data)
        notes += test_file.notes
        test = (
            _tokenized(test_file.texts),
            _text_files.encode_labels(classes, test_file),
        )
        rest = (tokens, labels)
        if dev is None:
            rest, dev = hold_out(tokens, labels, args.dev_fraction)
        plan = f"train {args.data}, {dev_plan}, test {args.test_data}"
        return Corpus(args.data, classes, [Split(rest, dev, test)], plan, notes)
    if not 2 <= args.cv <= len(train):
        raise _text_files.DataError(
            f"{args.data}: --cv must be in [2, {len(train)}] (the number of "
            f"examples). Received: cv={args.cv}"
        )
    splits = []
    for k, test_index in enumerate(folds(len(train), args.cv)):
        mask = np.ones(len(train), bool)
        mask[test_index] = False
        train_index = np.flatnonzero(mask)
        fold_tokens = [tokens[i] for i in train_index]
        rest = (fold_tokens, labels[train_index])
        fold_dev = dev
        if fold_dev is None:
            rest, fold_dev = hold_out(
                fold_tokens, labels[train_index], args.dev_fraction
            )
        test = ([tokens[i] for i in test_index], labels[test_index])
        splits.append(Split(rest, fold_dev, test, f"fold {k + 1}/{args.cv}"))
    why = "" if args.cv_given else " (no --test-data; --cv K sets the folds)"
    plan = f"{args.cv}-fold cross-validation of {args.data}{why}, {dev_plan}"
    return Corpus(args.data, classes, splits, plan, notes)


def load_tfds(args) -> Corpus:
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
            texts.append(_text_inputs.tokenize(example[key].decode("utf-8")))
            labels.append(int(example["label"]))
        return texts, np.array(labels, np.int32)

    rest, dev = hold_out(*arrays(train), args.dev_fraction)
    plan = (
        f"TFDS {args.dataset}: train, dev = {args.dev_fraction:.0%} of train "
        f"held out, test = its {test_split} split"
    )
    split = Split(rest, dev, arrays(test))
    return Corpus(args.dataset, list(info.features["label"].names), [split], plan)


@dataclass
class Encoded:
    """A split as token ids, with its vocabulary and embedding matrix."""

    train: tuple[list[np.ndarray], np.ndarray]
    dev: tuple[list[np.ndarray], np.ndarray]
    test: tuple[list[np.ndarray], np.ndarray]
    vocabulary: list[str]
    embeddings: np.ndarray | None
    stats: dict


def encode_split(split: Split, args, vectors=None, dim=None) -> Encoded:
    tokens = {name: getattr(split, name)[0] for name in ("train", "dev", "test")}
    # Words of dev/test that have a pretrained vector keep it (no labels used).
    extra = (
        ()
        if vectors is None
        else [t for ts in tokens.values() for s in ts for t in s if t in vectors]
    )
    vocabulary = _text_inputs.build_vocabulary(
        tokens["train"], args.vocab_size, extra, args.min_count
    )
    stats, encoded = {}, {}
    for name, token_lists in tokens.items():
        result = _text_inputs.encode_texts(token_lists, vocabulary, args.max_length)
        encoded[name] = (result.ids, getattr(split, name)[1])
        stats[name] = {
            "examples": len(result.ids),
            "truncated": result.truncated,
            "longest": result.longest,
            "oov_rate": result.oov_tokens / max(1, result.tokens),
        }
    embeddings = None
    if vectors is not None:
        embeddings = _text_inputs.embedding_matrix(vocabulary, vectors, dim, seed=0)
        stats["pretrained_words"] = sum(word in vectors for word in vocabulary)
    stats["vocabulary"] = len(vocabulary)
    return Encoded(**encoded, vocabulary=vocabulary, embeddings=embeddings, stats=stats)


def describe(corpus: Corpus, encoded: Encoded, args) -> list[str]:
    stats = encoded.stats
    train_labels = [corpus.classes[i] for i in encoded.train[1]]
    counts = ", ".join(
        f"{name} {train_labels.count(name):,}" for name in corpus.classes
    )
    lines = [
        f"data: {len(corpus.classes)} classes ({counts} in train); "
        + ", ".join(f"{s} {stats[s]['examples']:,}" for s in ("train", "dev", "test"))
        + " examples"
        + (f" (first of {len(corpus.splits)} folds)" if len(corpus.splits) > 1 else ""),
        f"vocabulary: {stats['vocabulary']:,} words (--vocab-size {args.vocab_size}, "
        f"--min-count {args.min_count}); "
        f"unknown words: {stats['dev']['oov_rate']:.1%} of dev, "
        f"{stats['test']['oov_rate']:.1%} of test tokens",
    ]
    longest = max(stats[s]["longest"] for s in ("train", "dev", "test"))
    truncated = {s: stats[s]["truncated"] for s in ("train", "dev", "test")}
    lines.append(
        f"lengths: longest {longest} words; "
        + (
            "cut to --max-length {}: {} examples".format(
                args.max_length,
                ", ".join(f"{n:,} {s}" for s, n in truncated.items()),
            )
            if any(truncated.values())
            else f"none cut (--max-length {args.max_length})"
        )
        + "; batches padded to their own longest example"
    )
    if encoded.embeddings is not None:
        lines.append(
            f"embeddings: {args.embeddings}, {encoded.embeddings.shape[1]} dims; "
            f"{stats['pretrained_words']:,} of {stats['vocabulary']:,} words have a "
            "vector (others: random), unit-normalized, "
            + ("fine-tuned" if args.train_embeddings else "frozen")
        )
    return lines


# ------------------------------------------------------------------ model


def build_model(
    args,
    cell: str,
    vocab_size: int,
    num_classes: int,
    embeddings: np.ndarray | None = None,
    sru_options: dict | None = None,
) -> keras.Model:
    """Embedding, `args.layers` recurrent layers, the head, a dense layer.

    `sru_options`: extra `keras_ndsru.SRU` arguments (benchmark ablations).
    """
    import keras_ndsru

    inputs = keras.Input((None,), dtype="int32")
    if embeddings is None:
        embedding = keras.layers.Embedding(vocab_size, args.embed_dim, mask_zero=True)
    else:
        embedding = keras.layers.Embedding(
            *embeddings.shape,
            mask_zero=True,
            weights=[embeddings],
            trainable=args.train_embeddings,
        )
    x = embedding(inputs)
    if args.embed_dropout:
        x = keras.layers.Dropout(args.embed_dropout)(x)
    for i in range(args.layers):
        sequences = args.head != "last" or i < args.layers - 1
        if cell == "sru":
            x = keras_ndsru.SRU(
                args.units,
                return_sequences=sequences,
                dropout=args.dropout,
                bidirectional=args.bidirectional,
                **(sru_options or {}),
            )(x)
            continue
        layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell](
            args.units, return_sequences=sequences, dropout=args.dropout
        )
        x = keras.layers.Bidirectional(layer)(x) if args.bidirectional else layer(x)
    if args.head == "mean":
        x = keras.layers.GlobalAveragePooling1D()(x)  # over the valid steps
    elif args.head == "max":
        x = MaskedGlobalMax()(x)
    if args.output_dropout:
        x = keras.layers.Dropout(args.output_dropout)(x)
    logits = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs, logits, name=f"{cell}_x{args.layers}")


class MaskedGlobalMax(keras.layers.Layer):
    """Maximum over the valid time steps (`GlobalMaxPooling1D` ignores masks)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            lowest = keras.ops.full_like(inputs, float("-inf"))
            inputs = keras.ops.where(mask[..., None], inputs, lowest)
        return keras.ops.max(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None


# ------------------------------------------------------------------ training


class TimeEstimate(keras.callbacks.Callback):
    """Prints, early in the first epoch, the expected time of the plan."""

    WARMUP, MEASURED = 3, 20

    def __init__(self, cell: str, epochs_in_plan: int):
        super().__init__()
        self.cell, self.epochs = cell, epochs_in_plan
        self.printed = False

    def on_train_batch_end(self, batch, logs=None):
        if self.printed:
            return
        if batch == self.WARMUP:
            self.start = time.perf_counter()
        steps = self.params["steps"]
        measured = min(self.MEASURED, steps - 1 - self.WARMUP)
        if measured > 0 and batch == self.WARMUP + measured:
            per_step = (time.perf_counter() - self.start) / measured
            epoch = per_step * steps
            print(
                f"time estimate ({self.cell}): ~{epoch:.1f} s per training epoch "
                f"-> ~{_minutes(epoch * self.epochs)} for its {self.epochs} "
                "epochs in the plan (plus evaluation)",
                flush=True,
            )
            self.printed = True


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def train_once(args, cell, encoded: Encoded, num_classes, seed, callbacks=()) -> dict:
    """Trains one model; restores the best-dev epoch and scores test once."""
    keras.utils.set_random_seed(seed)
    model = build_model(
        args, cell, len(encoded.vocabulary), num_classes, encoded.embeddings
    )
    model.compile(
        optimizer=_common.make_optimizer(
            args.optimizer, args.lr or _common.DEFAULT_LR[args.optimizer], model=model
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    batches = _text_inputs.bucketed_batches
    best = keras.callbacks.EarlyStopping(
        monitor="val_accuracy",
        mode="max",
        patience=args.epochs,
        restore_best_weights=True,
    )
    train = batches(*encoded.train, args.batch_size, shuffle_seed=seed)
    history = model.fit(
        train.repeat(),  # one iterator: epoch k sees the k-th shuffle
        steps_per_epoch=int(train.cardinality()),
        validation_data=batches(*encoded.dev, 256),
        epochs=args.epochs,
        callbacks=[_common.EpochTimer(), best, *callbacks],
        shuffle=False,  # the batches are reshuffled by the dataset
        verbose=args.verbose,
    )
    logs = _common.history_dict(history)
    test = model.evaluate(batches(*encoded.test, 256), verbose=0, return_dict=True)
    return {
        "seed": seed,
        "epoch": best.best_epoch + 1,
        "dev_accuracy": logs["val_accuracy"][best.best_epoch],
        "test_accuracy": float(test["accuracy"]),
        "seconds_per_epoch": _common.steady_seconds(logs["train_seconds"]),
        "first_epoch_seconds": logs["train_seconds"][0],
        "parameters": model.count_params(),
        "history": logs,
    }


def summarize(cell: str, runs: list[dict]) -> dict:
    test = [run["test_accuracy"] for run in runs]
    dev = [run["dev_accuracy"] for run in runs]
    return {
        "cell": cell,
        "runs": len(runs),
        "test_accuracy": float(np.mean(test)),
        "test_accuracy_std": float(np.std(test, ddof=1)) if len(runs) > 1 else 0.0,
        "dev_accuracy": float(np.mean(dev)),
        "epochs": [run["epoch"] for run in runs],
        "seconds_per_epoch": float(np.median([r["seconds_per_epoch"] for r in runs])),
        "first_epoch_seconds": float(
            np.median([r["first_epoch_seconds"] for r in runs])
        ),
        "parameters": runs[0]["parameters"],
    }


def comparison_table(summaries: list[dict]) -> str:
    fastest = min(s["seconds_per_epoch"] for s in summaries)
    rows = []
    for s in summaries:
        spread = f" +- {100 * s['test_accuracy_std']:.2f}" if s["runs"] > 1 else ""
        rows.append(
            [
                s["cell"],
                f"{100 * s['test_accuracy']:.2f}{spread}",
                f"{100 * s['dev_accuracy']:.2f}",
                " ".join(map(str, s["epochs"])),
                f"{s['seconds_per_epoch']:.2f}",
                f"{s['seconds_per_epoch'] / fastest:.1f}x",
                f"{s['parameters']:,}",
            ]
        )
    headers = [
        "cell",
        "test acc %",
        "dev acc %",
        "best-dev epochs",
        "s/epoch",
        "time vs fastest",
        "params",
    ]
    return _common.format_table(headers, rows)


def default_out(args) -> str:
    name = (
        os.path.splitext(os.path.basename(args.data))[0] if args.data else args.dataset
    )
    name = re.sub(r"[^\w.-]+", "_", name)
    cells = "-".join(args.cell) + ("-bi" if args.bidirectional else "")
    return os.path.join("results", "text_classification", f"{name}-{cells}")


def check_args(parser, args) -> None:
    local = ("--dev-data", "--test-data", "--cv", "--encoding")
    if args.data is None and any(getattr(args, o[2:].replace("-", "_")) for o in local):
        parser.error(f"{', '.join(local)} need --data")
    if args.test_data and args.cv:
        parser.error("give --test-data or --cv, not both")
    if args.train_embeddings and not args.embeddings:
        parser.error("--train-embeddings needs --embeddings")
    args.cv_given = args.cv is not None
    if args.data and not args.test_data and args.cv is None:
        args.cv = 10
    if args.seeds is None:
        args.seeds = [0] if args.cv else list(DEFAULT_SEEDS)
    args.cell = list(dict.fromkeys(args.cell))  # once each, in order
    if args.out is None:
        args.out = default_out(args)


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    corpus = load_files(args) if args.data else load_tfds(args)
    for note in corpus.notes:
        print(f"note: {note}")
    vectors = dim = None
    if args.embeddings:
        words = {
            token
            for split in corpus.splits
            for part in (split.train, split.dev, split.test)
            for tokens in part[0]
            for token in tokens
        }
        vectors, dim = _text_files.read_word_vectors(args.embeddings, words)
    encoded = [encode_split(split, args, vectors, dim) for split in corpus.splits]
    for line in describe(corpus, encoded[0], args):
        print(line)
    if "sru" in args.cell:
        import keras_ndsru

        status = keras_ndsru.ops.fused_kernel_status()
        print(f"SRU recurrence: {status.path} ({status.reason})")
    runs_per_cell = len(corpus.splits) * len(args.seeds)
    print(
        f"plan: {corpus.plan}; cells {' '.join(args.cell)}; seeds "
        f"{' '.join(map(str, args.seeds))} -> {runs_per_cell} run(s) per cell x "
        f"{args.epochs} epochs, each scored on test at its best dev epoch",
        flush=True,
    )

    num_classes = len(corpus.classes)
    results = {"args": vars(args), "source": corpus.source, "classes": corpus.classes}
    results.update(plan=corpus.plan, notes=corpus.notes, data=encoded[0].stats)
    results["cells"] = {}
    for cell in args.cell:
        runs = []
        estimate = TimeEstimate(cell, runs_per_cell * args.epochs)
        for split, data in zip(corpus.splits, encoded):
            for seed in args.seeds:
                if args.verbose and (len(corpus.splits) > 1 or len(args.seeds) > 1):
                    print(f"\n== {cell} {split.name} seed {seed} ==".replace("  ", " "))
                callbacks = [estimate] if not runs else []
                run = train_once(args, cell, data, num_classes, seed, callbacks)
                runs.append({"split": split.name, **run})
        results["cells"][cell] = {"summary": summarize(cell, runs), "runs": runs}

    summaries = [results["cells"][cell]["summary"] for cell in args.cell]
    table = comparison_table(summaries)
    curves = {
        cell: np.mean(
            [run["history"]["val_accuracy"] for run in results["cells"][cell]["runs"]],
            axis=0,
        ).tolist()
        for cell in args.cell
    }
    title = f"{os.path.basename(corpus.source)}: dev accuracy (mean of {runs_per_cell} runs)"
    results["table"] = table
    results["plots"] = [
        _common.plot_curves(
            os.path.join(args.out, "text_classification_dev_accuracy.png"),
            curves,
            title=title,
            ylabel="dev accuracy",
        )
    ]
    results["json"] = _common.write_results(args.out, "text_classification", results)
    print(
        f"\n{corpus.source}: {args.layers} x {args.units} units, head {args.head}; "
        f"test accuracy at the best dev epoch, mean +- std of {runs_per_cell} run(s); "
        "s/epoch: median training time of epochs 2..N\n"
        f"{table}\nresults: {results['json']}; plot: {results['plots'][0]}"
    )
    return results


if __name__ == "__main__":
    _common.run_script(main)
