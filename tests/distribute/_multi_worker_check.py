"""Subprocess check: SRU + NDAdam under MultiWorkerMirroredStrategy with two
worker processes on localhost gives the weights of one worker trained with
`model.fit` on the same global batches.

Run without TF_CONFIG, this script is the coordinator: it starts two workers
(itself, with a TF_CONFIG naming two free localhost ports and its index),
trains the one-worker reference meanwhile, and prints one JSON line. A worker
creates the strategy before anything else touches TensorFlow, trains with a
custom training loop, writes its weights to `--out`, and reports what
`model.fit` does under the strategy: Keras 3 fails there
(keras-team/keras#20585) before training starts, which is recorded, not
raised; if a Keras release fixes it, the fitted weights are compared too.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER_TIMEOUT_S = 240
# The start of the error Keras 3's fit raises under this strategy.
KERAS_FIT_ERROR = "Attempt to convert a value (PerReplica"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def custom_loop(strategy, training):
    """`training.train` as a custom training loop: each worker takes its half
    of every global batch, the loss is averaged over the global batch, and
    the optimizer sums the gradients of all replicas."""
    import keras
    import tensorflow as tf

    with strategy.scope():
        model = training.make_model()
        model.optimizer.build(model.trainable_variables)
    x, y = training.data()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    batches = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(training.GLOBAL_BATCH)
        .with_options(options)
    )

    def step(x, y):
        with tf.GradientTape() as tape:
            per_example = keras.losses.mean_squared_error(y, model(x, training=True))
            loss = tf.nn.compute_average_loss(
                per_example, global_batch_size=training.GLOBAL_BATCH
            )
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    @tf.function
    def distributed_step(x, y):
        strategy.run(step, args=(x, y))

    for _ in range(training.EPOCHS):
        for x_batch, y_batch in strategy.experimental_distribute_dataset(batches):
            distributed_step(x_batch, y_batch)
    graph = distributed_step.get_concrete_function(x_batch, y_batch).graph
    fused_ops = {op.type for op in graph.get_operations()}
    return model, sorted(t for t in fused_ops if t.startswith("KerasNdsru>"))


def keras_fit(strategy, training):
    """The weights `model.fit` gives under the strategy, or its error."""
    with strategy.scope():
        model = training.make_model()
    try:
        training.train(model)
    except ValueError as e:
        return None, str(e).splitlines()[0]
    return training.weights(model), None


def worker(out: Path) -> None:
    import tensorflow as tf

    # At program start, before any other TensorFlow op: collectives need it.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import _sru_training as training
    import numpy as np

    from keras_ndsru.ops import fused_kernel_status

    model, fused_ops = custom_loop(strategy, training)
    fitted, fit_error = keras_fit(strategy, training)
    np.savez(out, *training.weights(model))
    if fitted is not None:
        np.savez(out.with_suffix(".fit.npz"), *fitted)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "fused": fused_kernel_status().path,
                "fused_ops_in_train_step": fused_ops,
                "unit_norm_error": training.unit_norm_error(model.optimizer),
                "keras_fit_error": fit_error,
            }
        )
    )


def load(path: Path):
    import numpy as np

    with np.load(path) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays))]


def coordinator() -> dict:
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"worker{i}.npz" for i in range(2)]
        workers = []
        for index, out in enumerate(outs):
            task = {"type": "worker", "index": index}
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
            }
            workers.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--out", str(out)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        import _sru_training as training

        reference = training.weights(training.train(training.make_model()))
        for process in workers:
            log, _ = process.communicate(timeout=WORKER_TIMEOUT_S)
            if process.returncode != 0:
                raise SystemExit(f"a worker failed:\n{log[-4000:]}")
        trained = [load(out) for out in outs]
        reports = [json.loads(out.with_suffix(".json").read_text()) for out in outs]
        fitted = outs[0].with_suffix(".fit.npz")
        fit_diff = (
            training.max_difference(load(fitted), reference)
            if fitted.exists()
            else None
        )
    return {
        "workers": reports,
        "max_diff_vs_one_worker": training.max_difference(trained[0], reference),
        "max_diff_between_workers": training.max_difference(*trained),
        "max_change_by_training": training.max_difference(
            reference, training.weights(training.make_model())
        ),
        "keras_fit_max_diff_vs_one_worker": fit_diff,
        "known_keras_fit_error": KERAS_FIT_ERROR,
    }


if __name__ == "__main__":
    if "TF_CONFIG" in os.environ:
        worker(Path(sys.argv[sys.argv.index("--out") + 1]))
    else:
        print(json.dumps(coordinator()))
