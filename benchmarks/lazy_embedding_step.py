"""One training step of an embedding table: Adam, NDAdam dense, NDAdam lazy.

Each step looks up `--lookups` random rows of a (rows x dim) table, sums them
and applies the gradient (a `tf.IndexedSlices`) with the optimizer, in one
`tf.function`, as `model.fit` runs it on the TensorFlow backend. The rows are
read two ways: densely, as `keras.layers.Embedding` does (`ops.take` reads the
whole variable, then gathers), and sparsely (`tf.gather` on the variable).
Once a variable has been scattered into, TensorFlow copies it at every dense
read ("copy-on-read"), which the lazy update's scatter triggers: the two reads
show what that copy costs. Rounds are interleaved, so all variants see the
same machine load; the table gives the median ms per step.

    .venv/bin/python benchmarks/lazy_embedding_step.py    # ~2 min, 2 cores
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_ndsru import NDAdam  # noqa: E402

OPTIMIZERS = {
    "Adam": lambda: keras.optimizers.Adam(),
    "NDAdam": lambda: NDAdam(),
    "NDAdam lazy": lambda: NDAdam(lazy_sparse_updates=True),
}


def make_step(rows, dim, indices, optimizer, sparse_read):
    table = keras.Variable(np.zeros((rows, dim), "float32"), name="embeddings")
    optimizer.build([table])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            if sparse_read:
                looked_up = tf.gather(table.value, indices)
            else:
                looked_up = keras.ops.take(table, indices, axis=0)
            loss = tf.reduce_sum(looked_up)
        optimizer.apply(tape.gradient(loss, [table.value]), [table])

    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        default=["7142x128", "8000x4096"],
        help="ROWSxDIM; default: SST-2's (benchmarks/sst_accuracy.py) and 131 MB",
    )
    parser.add_argument("--lookups", type=int, default=640, help="batch 32 x 20 words")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.get_logger().setLevel("ERROR")  # one trace per step function, by design
    indices = tf.constant(
        np.random.default_rng(0).integers(0, 7142, args.lookups), tf.int32
    )
    rows_out = []
    for spec in args.tables:
        rows, dim = (int(n) for n in spec.split("x"))
        steps = {
            (name, read): make_step(rows, dim, indices, make(), read == "sparse")
            for name, make in OPTIMIZERS.items()
            for read in ("Embedding (dense)", "sparse")
        }
        for step in steps.values():
            step()  # trace
        times = {key: [] for key in steps}
        for _ in range(args.rounds):
            for key, step in steps.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[key].append((time.perf_counter() - start) / args.steps * 1e3)
        for (name, read), values in times.items():
            rows_out.append([spec, read, name, f"{statistics.median(values):.2f}"])
    headers = ["table", "read", "optimizer", "ms / step (median)"]
    print(_common.format_table(headers, rows_out))


if __name__ == "__main__":
    _common.run_script(main)
