"""SRU against LSTM, GRU and the official PyTorch SRU on real sentences (SST).

The SRU paper's Table 1 claim on the Stanford Sentiment Treebank, measured
side by side in one process: every model is `examples/text_classification.py`'s
model on its data pipeline (the official SRU in a PyTorch copy of it), reads
the same batches (bucketed by length, padded per batch, one shuffle per epoch
from the seed), starts from the same embedding and classifier weights, trains
the same epochs, and is scored on test at the epoch with the best dev
accuracy (ties: the earlier epoch). The table gives mean +- std over seeds.

Speed, two ways: the runs' own steady-state training seconds per epoch
(median over epochs 2..N, which excludes tracing; no evaluation), and after
all runs an interleaved timing: every model trains on the same 64 real
batches in turns, `--timing-rounds` times, so that load changes on a shared
machine hit all models alike; its median, scaled to a full epoch, gives the
speed ratios. `--timing-models` are only timed, e.g.
`sru:frozen_embeddings=True` (random unit vectors in place of pretrained ones,
frozen: the paper recipe's compute).

Models are specs, `NAME[:key=value,...]`:

- `sru`: `keras_ndsru.SRU` layers (the recipe of examples/text_classification.py)
- `lstm`, `gru`: Keras' layers
- `official`: the official PyTorch `sru.SRU` 2.6.0 (CPU, its trainable
  eager path), with the same embedding and head in PyTorch.

Keys (defaults: the example's): layers, units, embed_dim, dropout
(variational dropout on each recurrent layer's input), embed_dropout,
output_dropout (before the classifier), head (mean | max | last),
bidirectional, min_count, optimizer (adam | ndadam), lr, vector_lr,
nd_classifier (vector | scalar: NDAdam's partition of the classifier kernel),
lazy (NDAdam's `lazy_sparse_updates`: the embedding steps in the rows a batch
touched),
batch, frozen_embeddings, and for SRU highway_bias, rescale, layer_norm,
forget_bias (initial b_f), weight_c (zeros | official: uniform with variance
0.5 and gate columns scaled by sqrt(0.5)); for `official` also its own
`dropout` between layers (`hidden_dropout`; then `dropout` is its deprecated
per-layer input dropout, `rnn_dropout`).

    .venv/bin/python benchmarks/sst_accuracy.py --task sst2 sst5 \
        --models sru official lstm sru:optimizer=ndadam
    .venv/bin/python benchmarks/sst_accuracy.py --seeds 0 1 --timing-rounds 0 \
        --models sru sru:head=last sru:forget_bias=1.0
    .venv/bin/python benchmarks/sst_accuracy.py --task sst2 --out results/sst_lazy \
        --models lstm sru sru:optimizer=ndadam sru:optimizer=ndadam,lazy=True

Every finished run is appended to `--out`/runs.jsonl; an identical run
(task, spec, seed, epochs) found there is reused, so an interrupted sweep
resumes where it stopped (and a finished one reprints its table at once).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import _common  # noqa: E402
import _text_inputs  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import text_classification  # noqa: E402

import keras_ndsru  # noqa: E402

TASKS = {"sst2": "stsa.binary", "sst5": "stsa.fine"}
# Options that are arguments of examples/text_classification.py.
EXAMPLE_KEYS = (
    "layers",
    "units",
    "embed_dim",
    "dropout",
    "embed_dropout",
    "output_dropout",
    "head",
    "bidirectional",
)
# The example's defaults (its parser's), then the benchmark-only knobs.
_EXAMPLE = vars(text_classification.build_parser().parse_args([]))
DEFAULTS = {
    **{key: _EXAMPLE[key] for key in EXAMPLE_KEYS},
    "optimizer": _EXAMPLE["optimizer"],
    "lr": 1e-3,
    "vector_lr": 0.05,
    "batch": _EXAMPLE["batch_size"],
    "highway_bias": 0.0,
    "rescale": True,
    "layer_norm": False,
    "forget_bias": 0.0,
    "weight_c": "zeros",
    "hidden_dropout": None,
    "nd_classifier": "vector",
    "lazy": False,
    "min_count": _EXAMPLE["min_count"],
    "frozen_embeddings": False,
}


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    if name not in ("sru", "lstm", "gru", "official"):
        raise SystemExit(f"unknown model {name!r} in spec {spec!r}")
    options = dict(DEFAULTS)
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in DEFAULTS:
            raise SystemExit(f"unknown key {key!r} in spec {spec!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return name, options


# ----------------------------------------------------------------- data


def load_task(data_dir: str, task: str, min_count: int) -> dict:
    """The example's data pipeline on one SST task's train/dev/test files."""
    stem = os.path.join(data_dir, TASKS[task])
    args = text_classification.build_parser().parse_args(
        ["--data", f"{stem}.train", "--dev-data", f"{stem}.dev"]
        + ["--test-data", f"{stem}.test", "--min-count", str(min_count)]
    )
    corpus = text_classification.load_files(args)
    encoded = text_classification.encode_split(corpus.splits[0], args)
    return {
        "classes": corpus.classes,
        "vocabulary": encoded.vocabulary,
        "train": encoded.train,
        "dev": encoded.dev,
        "test": encoded.test,
        "truncated": sum(
            encoded.stats[s]["truncated"] for s in ("train", "dev", "test")
        ),
    }


def batches(data, split, batch, seed=None):
    ids, labels = data[split]
    return _text_inputs.bucketed_batches(ids, labels, batch, shuffle_seed=seed)


# ----------------------------------------------------------------- keras


def sru_kwargs(options: dict) -> dict:
    kwargs = {
        "highway_bias": float(options["highway_bias"]),
        "rescale": bool(options["rescale"]),
        "layer_norm": bool(options["layer_norm"]),
    }
    forget_bias = float(options["forget_bias"])
    units = options["units"]
    n_dir = 2 if options["bidirectional"] else 1
    if forget_bias:
        bias = np.concatenate([np.full(units, forget_bias), np.zeros(units)] * n_dir)
        kwargs["bias_initializer"] = keras.initializers.Constant(bias)
    if options["weight_c"] == "official":
        kwargs["weight_c_initializer"] = keras.initializers.RandomUniform(
            -(1.5**0.5), 1.5**0.5
        )
        kwargs["kernel_initializer"] = OfficialKernel(n_dir, units)
    return kwargs


class OfficialKernel(keras.initializers.Initializer):
    """lecun_uniform with the gate blocks [W_f | W_r] scaled by sqrt(0.5)."""

    def __init__(self, n_dir, units):
        self.n_dir, self.units = n_dir, units

    def __call__(self, shape, dtype=None):
        w = keras.initializers.LecunUniform()(shape, dtype)
        scale = np.ones(shape[-1], np.float32)
        for k in range(self.n_dir):
            scale[(3 * k + 1) * self.units : (3 * k + 3) * self.units] = 0.5**0.5
        return w * scale


def build_keras(name: str, options: dict, vocab: int, classes: int) -> keras.Model:
    """The example's model (`text_classification.build_model`)."""
    args = argparse.Namespace(
        train_embeddings=False,
        **{key: options[key] for key in EXAMPLE_KEYS},
    )
    sru_options = sru_kwargs(options) if name == "sru" else None
    embeddings = None
    if options["frozen_embeddings"]:
        # Random unit vectors in place of pretrained ones: the paper recipe's
        # compute (no embedding updates), for timing only.
        rng = np.random.default_rng(0)
        embeddings = rng.normal(size=(vocab, options["embed_dim"])).astype("float32")
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return text_classification.build_model(
        args, name, vocab, classes, embeddings, sru_options=sru_options
    )


def make_optimizer(options, model):
    if options["lazy"] and options["optimizer"] != "ndadam":
        raise SystemExit(
            "lazy=True needs optimizer=ndadam (Keras' Adam has no lazy update). "
            f"Received: optimizer={options['optimizer']!r}"
        )
    if options["optimizer"] == "ndadam":
        axes = keras_ndsru.vector_axes_for_model(model)
        if options["nd_classifier"] == "scalar":  # Adam on the classifier kernel
            axes[model.layers[-1].kernel.path] = None
        return keras_ndsru.NDAdam(
            learning_rate=options["lr"],
            vector_learning_rate=options["vector_lr"],
            vector_axes=axes,
            lazy_sparse_updates=bool(options["lazy"]),
        )
    return keras.optimizers.Adam(options["lr"])


class Scores(keras.callbacks.Callback):
    """Per epoch: training seconds (before any evaluation), dev and test acc."""

    def __init__(self, predict, evaluations):
        super().__init__()
        self.predict, self.evaluations = predict, evaluations
        self.log = {"seconds": [], "loss": [], "train_accuracy": []}
        self.log.update({name: [] for name in evaluations})

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.log["seconds"].append(time.perf_counter() - self.start)
        self.log["loss"].append(float(logs["loss"]))
        self.log["train_accuracy"].append(float(logs["accuracy"]))
        for name, dataset in self.evaluations.items():
            self.log[name].append(accuracy(self.predict, dataset))


def accuracy(predict, dataset) -> float:
    correct = total = 0
    for x, y in dataset:
        logits = predict(x)
        correct += int(np.sum(np.argmax(logits, -1) == np.asarray(y)))
        total += len(y)
    return correct / total


def compiled_keras(name, options, data, seed) -> keras.Model:
    """A fresh model from `seed`, compiled as the example compiles it."""
    keras.utils.set_random_seed(seed)
    model = build_keras(name, options, len(data["vocabulary"]), len(data["classes"]))
    model.compile(
        optimizer=make_optimizer(options, model),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def keras_run(name, options, data, seed, epochs) -> dict:
    model = compiled_keras(name, options, data, seed)
    predict = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, None), tf.int32)],
    )
    evaluations = {s: batches(data, s, 256) for s in ("dev", "test")}
    scores = Scores(lambda x: predict(x).numpy(), evaluations)
    train = batches(data, "train", options["batch"], seed)
    model.fit(
        train.repeat(),  # one iterator: epoch k sees the k-th shuffle, as torch
        steps_per_epoch=int(train.cardinality()),
        epochs=epochs,
        callbacks=[scores],
        shuffle=False,
        verbose=0,
    )
    return {"parameters": model.count_params(), **scores.log}


# ----------------------------------------------------------------- torch


def import_official_sru():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its CUDA build warns on CPU machines
        import sru
    warnings.filterwarnings("ignore", "Running SRU on CPU with grad_enabled")
    return sru


def torch_setup(options, data, seed):
    """The official SRU classifier with the Keras models' initial embedding
    and head (same seed) and its Adam. Returns `(train_step, predict,
    parameters)`; `train_step(x, y)` returns the batch's loss and hits."""
    import torch

    sru = import_official_sru()
    torch.set_num_threads(
        max(1, tf.config.threading.get_intra_op_parallelism_threads() or 2)
    )
    keras.utils.set_random_seed(seed)
    init = build_keras("sru", options, len(data["vocabulary"]), len(data["classes"]))
    embedding = init.layers[1].get_weights()[0]
    head_w, head_b = init.layers[-1].get_weights()
    torch.manual_seed(seed)
    model = OfficialClassifier(torch, sru, options, embedding, head_w, head_b)
    if options["optimizer"] != "adam":
        raise SystemExit("official: only optimizer=adam")
    # Keras' Adam epsilon, so that only the recurrent layer differs.
    optimizer = torch.optim.Adam(model.parameters(), lr=options["lr"], eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step(x, y):
        model.train()
        logits = model(torch.as_tensor(x, dtype=torch.long))
        target = torch.as_tensor(y, dtype=torch.long)
        loss = loss_fn(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach()), int((logits.argmax(-1) == target).sum())

    def predict(x):
        model.eval()
        with torch.no_grad():
            return model(torch.as_tensor(np.array(x), dtype=torch.long)).numpy()

    parameters = sum(p.numel() for p in model.parameters())
    return train_step, predict, parameters


def torch_run(options, data, seed, epochs) -> dict:
    train_step, predict, parameters = torch_setup(options, data, seed)
    evaluations = {s: batches(data, s, 256) for s in ("dev", "test")}
    train = batches(data, "train", options["batch"], seed)
    steps, stream = int(train.cardinality()), train.repeat().as_numpy_iterator()
    log = {"seconds": [], "loss": [], "train_accuracy": [], "dev": [], "test": []}
    for _ in range(epochs):
        start = time.perf_counter()
        loss_sum, correct, total = 0.0, 0, 0
        for _, (x, y) in zip(range(steps), stream):
            loss, hits = train_step(x, y)
            loss_sum, correct, total = (
                loss_sum + loss * len(y),
                correct + hits,
                total + len(y),
            )
        log["seconds"].append(time.perf_counter() - start)
        log["loss"].append(loss_sum / total)
        log["train_accuracy"].append(correct / total)
        for name, dataset in evaluations.items():
            log[name].append(accuracy(predict, dataset))
    return {"parameters": parameters, **log}


def keras_train_step(name, options, data, seed):
    """`train_on_batch` of a fresh, compiled Keras model (timing only)."""
    return compiled_keras(name, options, data, seed).train_on_batch


def interleaved_seconds(specs, data, rounds: int, chunk: int = 64) -> dict:
    """Seconds per training epoch of each spec, timed in turns.

    Each spec trains on the same `chunk` real batches (the first ones of
    seed 0's first epoch), untimed until traced, then once per round in
    turn with the others, so that load changes on a shared machine hit all
    models alike. A round's time, scaled by (batches per epoch / chunk), is
    one estimate of an epoch.
    """
    steppers = {}
    for spec in specs:
        name, options = parse_spec(spec)
        train = batches(data, "train", options["batch"], 0)
        steps = int(train.cardinality())
        sample = list(itertools.islice(train.as_numpy_iterator(), min(chunk, steps)))
        if name == "official":
            step = torch_setup(options, data, 0)[0]
        else:
            step = keras_train_step(name, options, data, 0)
        for x, y in sample + sample:  # Keras relaxes its traced shapes twice
            step(x, y)
        steppers[spec] = (step, sample, steps / len(sample))
    times = {spec: [] for spec in specs}
    # The first round after all models exist is slower for the SRU models
    # (seen in every run, cause unknown): it is not timed.
    for timed in [False] + [True] * rounds:
        for spec, (step, sample, scale) in steppers.items():
            start = time.perf_counter()
            for x, y in sample:
                step(x, y)
            if timed:
                times[spec].append((time.perf_counter() - start) * scale)
    return times


def OfficialClassifier(torch, sru, options, embedding, head_w, head_b):  # noqa: N802
    nn = torch.nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding.from_pretrained(
                torch.tensor(embedding), freeze=False, padding_idx=0
            )
            hidden = options["hidden_dropout"]
            self.rnn = sru.SRU(
                embedding.shape[1],
                options["units"],
                num_layers=options["layers"],
                dropout=options["dropout"] if hidden is None else hidden,
                rnn_dropout=options["dropout"] if hidden is not None else 0.0,
                bidirectional=options["bidirectional"],
                highway_bias=options["highway_bias"],
                rescale=options["rescale"],
                layer_norm=options["layer_norm"],
            )
            self.embed_dropout = nn.Dropout(options["embed_dropout"])
            self.output_dropout = nn.Dropout(options["output_dropout"])
            self.head = nn.Linear(head_w.shape[0], head_w.shape[1])
            with torch.no_grad():
                self.head.weight.copy_(torch.tensor(head_w.T))
                self.head.bias.copy_(torch.tensor(head_b))

        def forward(self, ids):
            valid = ids != 0
            x = self.embed_dropout(self.embedding(ids)).transpose(0, 1)
            h, _ = self.rnn(x, mask_pad=~valid.T)
            h = h.transpose(0, 1)  # (batch, time, features)
            lengths = valid.sum(1)
            if options["head"] == "mean":
                out = (h * valid[..., None]).sum(1) / lengths[:, None]
            elif options["head"] == "max":
                out = h.masked_fill(~valid[..., None], -1e9).max(1).values
            else:
                out = h[torch.arange(len(ids)), lengths - 1]
            return self.head(self.output_dropout(out))

    return Classifier()


# ----------------------------------------------------------------- report


def select(run: dict) -> dict:
    best = int(np.argmax(run["dev"]))  # first maximum: the earlier epoch
    return {
        "epoch": best + 1,
        "dev": run["dev"][best],
        "test": run["test"][best],
        "seconds": _common.steady_seconds(run["seconds"]),
        "train_accuracy": run["train_accuracy"][best],
    }


def mean_std(values) -> str:
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def report(
    runs: list[dict], reference: str | None, timings: dict, timing_reference=None
) -> str:
    """The table: one row per (task, spec); `timings[(task, spec)]` holds the
    interleaved epoch times, which give the speed ratio when measured. Specs
    that were only timed compare with `timing_reference`."""
    rows, by_key = [], {}
    for run in runs:
        by_key.setdefault((run["task"], run["spec"]), []).append(run)

    def seconds(key):
        if timings.get(key):
            return statistics.median(timings[key])
        return statistics.median(select(r)["seconds"] for r in by_key[key])

    for (task, spec), group in by_key.items():
        picked = [select(r) for r in group]
        ratio = ""
        if (task, reference) in by_key and reference != spec:
            ratio = f"{seconds((task, reference)) / seconds((task, spec)):.1f}x"
        interleaved = timings.get((task, spec))
        rows.append(
            [
                task,
                spec,
                len(group),
                mean_std([p["dev"] for p in picked]),
                mean_std([p["test"] for p in picked]),
                " ".join(str(p["epoch"]) for p in picked),
                f"{statistics.median(p['seconds'] for p in picked):.2f}",
                f"{statistics.median(interleaved):.2f}" if interleaved else "",
                ratio,
                f"{statistics.mean(p['train_accuracy'] for p in picked):.3f}",
            ]
        )
    headers = [
        "task",
        "model",
        "seeds",
        "dev acc %",
        "test acc % at best dev epoch",
        "best epochs",
        "s/epoch (runs)",
        "s/epoch (interleaved)",
        f"{reference} time / model time" if reference else "",
        "train acc",
    ]
    for (task, spec), interleaved in timings.items():
        if (task, spec) in by_key:
            continue
        ratio = ""
        if timing_reference and (task, timing_reference) in timings:
            ratio = f"{seconds((task, timing_reference)) / seconds((task, spec)):.1f}x"
            ratio += f" ({timing_reference})" if timing_reference != spec else ""
        median = statistics.median(interleaved)
        rows.append([task, spec, "", "", "", "", "", f"{median:.2f}", ratio, ""])
    return _common.format_table(headers, rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--task", nargs="+", choices=sorted(TASKS), default=["sst2", "sst5"]
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=[
            "sru",
            "official",
            "lstm",
            "sru:optimizer=ndadam",
            "sru:optimizer=ndadam,lazy=True",
        ],
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--data-dir",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "sst"),
        help="folder of stsa.{binary,fine}.{train,dev,test} (default: ../shared/data/sst "
        "beside the checkout)",
    )
    parser.add_argument("--out", default="results/sst_accuracy")
    parser.add_argument(
        "--reference", default="lstm", help="spec the s/epoch ratios use"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--limit", type=int, default=None, help="first N training examples (smoke test)"
    )
    parser.add_argument(
        "--timing-models",
        nargs="*",
        default=["sru:frozen_embeddings=True", "lstm:frozen_embeddings=True"],
        help="specs that are only timed (default: SRU and LSTM with frozen "
        "embeddings, the compute of the paper's recipe)",
    )
    parser.add_argument(
        "--timing-reference",
        default="lstm:frozen_embeddings=True",
        help="the timing-only spec the other timing-only specs are compared with",
    )
    parser.add_argument(
        "--timing-rounds",
        type=int,
        default=15,
        help="rounds of interleaved timing after the accuracy runs (0: ratios "
        "from the runs' own epochs; default 15)",
    )
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "runs.jsonl")
    done = []
    if os.path.exists(log_path):
        with open(log_path) as file:
            done = [json.loads(line) for line in file if line.strip()]
    status = keras_ndsru.ops.fused_kernel_status()
    print(f"SRU recurrence: {status.path} ({status.reason})", flush=True)
    runs = []
    datasets = {}
    for task in args.task:
        for spec in args.models:
            name, options = parse_spec(spec)
            data_key = (task, options["min_count"])
            if data_key not in datasets:
                datasets[data_key] = data = load_task(args.data_dir, *data_key)
                if args.limit:
                    data["train"] = tuple(part[: args.limit] for part in data["train"])
                print(
                    f"{task}: {len(data['train'][1])} train / {len(data['dev'][1])} "
                    f"dev / {len(data['test'][1])} test, {len(data['classes'])} "
                    f"classes, vocabulary {len(data['vocabulary'])} (min_count "
                    f"{options['min_count']}), {data['truncated']} truncated",
                    flush=True,
                )
            data = datasets[data_key]
            for seed in args.seeds:
                key = {"task": task, "spec": spec, "seed": seed, "epochs": args.epochs}
                cached = [r for r in done if all(r.get(k) == v for k, v in key.items())]
                if cached:
                    runs.append(cached[-1])
                    continue
                start = time.perf_counter()
                if name == "official":
                    result = torch_run(options, data, seed, args.epochs)
                else:
                    result = keras_run(name, options, data, seed, args.epochs)
                run = {**key, **result, "wall": time.perf_counter() - start}
                with open(log_path, "a") as file:
                    file.write(json.dumps(run) + "\n")
                runs.append(run)
                picked = select(run)
                print(
                    f"{task} {spec} seed {seed}: dev {picked['dev']:.4f} test "
                    f"{picked['test']:.4f} @ epoch {picked['epoch']}, "
                    f"{picked['seconds']:.1f} s/epoch, wall {run['wall']:.0f} s; "
                    f"dev per epoch {' '.join(f'{v:.3f}' for v in run['dev'])}",
                    flush=True,
                )
    timings = {}
    for (task, min_count), data in datasets.items() if args.timing_rounds else ():
        specs = [
            m
            for m in args.models + args.timing_models
            if parse_spec(m)[1]["min_count"] == min_count
        ]
        times = interleaved_seconds(specs, data, args.timing_rounds)
        with open(os.path.join(args.out, "timing.jsonl"), "a") as file:
            file.write(json.dumps({"task": task, "seconds": times}) + "\n")
        for spec, values in times.items():
            timings[(task, spec)] = values
            print(f"{task} {spec}: interleaved s/epoch {values}", flush=True)
    print()
    reference = args.reference if args.reference in args.models else None
    print(report(runs, reference, timings, args.timing_reference))


if __name__ == "__main__":
    _common.run_script(main)
