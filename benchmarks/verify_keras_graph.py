"""A Keras conv net on 28x28 digits on the graph engine.

Issue 19's report: a small conv net with max-pooling on 28x28 inputs died
in `from_keras` (then a dense lowering to one chain, since deleted) with
``MemoryError: Unable to allocate 4.05 GiB``. This trains such a net (Conv2D-MaxPool-Conv2D-MaxPool-Dense-Dense) on
scikit-learn's 8x8 digits scaled up to 28x28 (pixels in [0, 1]), then asks
Def. 1 (the label is constant on the L_inf ball, clipped to [0, 1]) at
``--points`` test images and three radii, once per engine, each engine in
its own process (peak resident memory measured per process):

- ``graph``: ``local_robustness(graph_from_keras(model), ...)`` (CROWN,
  alpha/beta-CROWN, branch and bound; PyTorch, one thread);
- ``graph-maxpool``: the same with max-pooling kept as one operator (its
  DeepPoly relaxation, not split: the engine before `max_as_relu`), for an
  ablation side by side;
- ``model``: ``local_robustness(model, ...)``, the public routing (the
  model is read by ``graph_from_keras``; not being an affine/ReLU chain, it
  goes to the graph engine too), its address space capped at
  ``--chain-gib`` so that running out of memory is a `MemoryError`.

Every robust verdict is checked against 2,000 random points and corners of
the ball, every counterexample in Keras. Prints one table.

    .venv/bin/python benchmarks/verify_keras_graph.py [--points 5]
        [--timeout 60] [--epochs 4] [--engines graph,graph-maxpool,model] [--chain-gib 12]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

DELTAS = (0.01, 0.03, 0.08)


def digits_28():
    """sklearn's digits as (n, 28, 28, 1) in [0, 1], and the fixed split."""
    from sklearn.datasets import load_digits

    from keras_ndsru.datasets.digits import split_indices

    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((3, 3)))  # 24x24
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None].astype(np.float32)
    return x, digits.target, split_indices()


def train(path, epochs):
    import keras

    x, y, split = digits_28()
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(8, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(32, activation="relu"),
            L.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.003),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x[split["train"]], y[split["train"]], epochs=epochs, verbose=0)
    accuracy = model.evaluate(x[split["test"]], y[split["test"]], verbose=0)[1]
    model.save(path)
    return accuracy


def run_engine(engine, path, points, timeout, queue):
    import keras
    import torch

    torch.set_num_threads(1)
    from keras_ndsru.verify import graph_from_keras, local_robustness
    from keras_ndsru.verify.formats.keras_model import keras_forward

    if engine == "graph-maxpool":
        from keras_ndsru.verify.search import complete

        complete.maxpool_as_relus = lambda graph: graph
    if engine == "model":
        cap = int(os.environ["CHAIN_GIB"]) << 30
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    model = keras.models.load_model(path)
    x, _, split = digits_28()
    rows, rng = [], np.random.default_rng(0)
    target = model
    try:
        start = time.time()
        if engine.startswith("graph"):
            target = graph_from_keras(model)
        load_s = time.time() - start
        for i in range(points):
            x0 = x[split["test"][i]].astype(np.float64)
            for delta in DELTAS:
                tick = time.time()
                res = local_robustness(
                    target, x0, delta, domain=(0.0, 1.0), timeout=timeout, workers=1
                )
                seconds = time.time() - tick
                wrong = False
                lower = np.maximum(x0 - delta, 0.0)
                upper = np.minimum(x0 + delta, 1.0)
                if res.robust:
                    pts = rng.uniform(lower, upper, size=(1000, *x0.shape))
                    corners = np.where(rng.integers(0, 2, pts.shape), lower, upper)
                    y = keras_forward(model, np.concatenate([pts, corners]))
                    wrong = bool(np.any(np.argmax(y, 1) != res.label))
                elif res.robust is False:
                    y = keras_forward(model, res.counterexample[None])[0]
                    wrong = bool(np.argmax(y) == res.label)
                rows.append((i, delta, res.robust, seconds, wrong))
    except MemoryError as error:
        rows.append((0, DELTAS[0], "MemoryError", time.time() - start, False))
        load_s = str(error).splitlines()[0][:60]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((engine, load_s, rows, peak))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--engines", default="graph")
    parser.add_argument("--chain-gib", type=int, default=12)
    args = parser.parse_args()
    os.environ["CHAIN_GIB"] = str(args.chain_gib)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits28.keras")
        accuracy = context.Pool(1).apply(train, (path, args.epochs))
        print(f"conv net on 28x28 digits: test accuracy {accuracy:.3f}")
        results = []
        for engine in args.engines.split(","):
            queue = context.Queue()
            process = context.Process(
                target=run_engine,
                args=(engine, path, args.points, args.timeout, queue),
            )
            process.start()
            results.append(queue.get())
            process.join()
    print()
    print(
        "| engine | queries | robust / not robust / unknown | wrong | total s "
        "| median s | max s | peak MiB | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for engine, load_s, rows, peak in results:
        verdicts = [r[2] for r in rows]
        seconds = [r[3] for r in rows]
        note = f"read in {load_s:.2f} s" if isinstance(load_s, float) else load_s
        print(
            f"| {engine} | {len(rows)} | {verdicts.count(True)} / "
            f"{verdicts.count(False)} / {verdicts.count(None)} | "
            f"{sum(r[4] for r in rows)} | {sum(seconds):.1f} | "
            f"{np.median(seconds):.2f} | {max(seconds):.2f} | {peak:.0f} | {note} |"
        )
    print()
    print("| engine | point | delta | verdict | seconds |")
    print("|---|---|---|---|---|")
    for engine, _, rows, _ in results:
        for i, delta, robust, seconds, _ in rows:
            verdict = {True: "robust", False: "not robust", None: "unknown"}.get(
                robust, robust
            )
            print(f"| {engine} | {i} | {delta} | {verdict} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
