"""NDAdam vs Adam vs AdamW: optimizer step, train step and state size.

Prints one table of ratios to Adam, measured side by side in one run, for
(a) an MLP with four 1024-wide hidden layers and (b) a WRN-16-4-sized conv
net (2.7M parameters). Steps are `tf.function`s, as `model.fit` runs them on
this backend (`--jit` compiles them with XLA instead), with the same
settings for every optimizer. Timings come from interleaved rounds (the
order rotates every round), so the three optimizers see the same machine
load. Each ratio is the best of the rounds, which filters out other
processes' bursts (shared CPUs), with the median of the per-round ratios in
brackets.

    .venv/bin/python benchmarks/ndadam_step.py            # ~70 s, 2 cores
    .venv/bin/python benchmarks/ndadam_step.py --batch 128 --size 32
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_ndsru import NDAdam  # noqa: E402

L = keras.layers


def mlp() -> keras.Model:
    inputs = keras.Input((1024,))
    h = inputs
    for _ in range(4):
        h = L.Dense(1024, activation="relu")(h)
    return keras.Model(inputs, L.Dense(10)(h), name="mlp")


def wrn_16_4(size: int) -> keras.Model:
    """Wide ResNet 16-4 (Zagoruyko & Komodakis): 3 groups of 2 blocks."""
    inputs = keras.Input((size, size, 3))
    h = L.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    for width, stride in ((64, 1), (128, 2), (256, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            a = L.ReLU()(L.BatchNormalization()(h))
            shortcut = h
            if block == 0:
                shortcut = L.Conv2D(width, 1, strides=s, use_bias=False)(a)
            r = L.Conv2D(width, 3, strides=s, padding="same", use_bias=False)(a)
            r = L.ReLU()(L.BatchNormalization()(r))
            r = L.Conv2D(width, 3, padding="same", use_bias=False)(r)
            h = L.Add()([shortcut, r])
    h = L.GlobalAveragePooling2D()(L.ReLU()(L.BatchNormalization()(h)))
    return keras.Model(inputs, L.Dense(10)(h), name="wrn_16_4")


OPTIMIZERS = {
    "Adam": lambda: keras.optimizers.Adam(1e-3),
    "AdamW": lambda: keras.optimizers.AdamW(1e-3, weight_decay=5e-4),
    "NDAdam": lambda: NDAdam(1e-3, vector_learning_rate=0.05),
}


class Case:
    """One model + optimizer with compiled optimizer and train steps."""

    def __init__(self, make_model, make_optimizer, x, y, jit):
        keras.utils.set_random_seed(0)
        self.model = make_model()
        self.optimizer = make_optimizer()
        variables = self.model.trainable_variables
        self.optimizer.build(variables)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.grads = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]

        @tf.function(jit_compile=jit)
        def optimizer_step():
            self.optimizer.apply(self.grads, variables)

        @tf.function(jit_compile=jit)
        def train_step():
            with tf.GradientTape() as tape:
                loss = loss_fn(y, self.model(x, training=True))
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        self.steps = {"optimizer": optimizer_step, "train": train_step}
        for step in self.steps.values():  # trace and warm up
            step()
            step()
        self.times = {name: [] for name in self.steps}

    def time(self, name, repeats):
        start = time.perf_counter()
        for _ in range(repeats):
            self.steps[name]()
        # Read a variable so the last step has finished.
        float(keras.ops.sum(self.model.trainable_variables[0]))
        self.times[name].append((time.perf_counter() - start) / repeats)

    def state_bytes(self):
        return sum(
            int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
            for v in self.optimizer.variables
        )


def run(args):
    rng = np.random.default_rng(0)
    nets = {
        "MLP 4x1024": (
            mlp,
            rng.normal(size=(args.batch, 1024)).astype("float32"),
        ),
        "WRN-16-4": (
            lambda: wrn_16_4(args.size),
            rng.normal(size=(args.batch, args.size, args.size, 3)).astype("float32"),
        ),
    }
    rows = []
    for net, (make_model, x) in nets.items():
        y = rng.integers(0, 10, size=(args.batch,))
        cases = {
            name: Case(make_model, make, x, y, args.jit)
            for name, make in OPTIMIZERS.items()
        }
        params = sum(
            int(np.prod(v.shape)) for v in cases["Adam"].model.trainable_variables
        )
        order = list(cases.values())
        for round_ in range(args.rounds):
            for name in ("optimizer", "train"):
                # Rotate who goes first, so no optimizer always follows the
                # same neighbour (cache state, CPU frequency).
                for case in order[round_ % len(order) :] + order[: round_ % len(order)]:
                    case.time(name, args.repeats)
        best = {
            (opt, step): float(np.min(case.times[step]))
            for opt, case in cases.items()
            for step in ("optimizer", "train")
        }
        # Median over rounds of the ratio within a round (same machine load).
        paired = {
            (opt, step): float(
                np.median(np.divide(case.times[step], cases["Adam"].times[step]))
            )
            for opt, case in cases.items()
            for step in ("optimizer", "train")
        }
        for opt, case in cases.items():
            rows.append(
                (
                    net,
                    f"{params / 1e6:.2f}M",
                    opt,
                    best[opt, "optimizer"] / best["Adam", "optimizer"],
                    paired[opt, "optimizer"],
                    best[opt, "train"] / best["Adam", "train"],
                    paired[opt, "train"],
                    case.state_bytes() / cases["Adam"].state_bytes(),
                    best[opt, "optimizer"] * 1e3,
                    best[opt, "train"] * 1e3,
                )
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument(
        "--size", type=int, default=16, help="WRN input side (default 16)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="steps per timing (default 3)"
    )
    parser.add_argument(
        "--rounds", type=int, default=15, help="interleaved rounds (default 15)"
    )
    parser.add_argument("--jit", action="store_true", help="XLA-compile the steps")
    args = parser.parse_args(argv)
    rows = run(args)
    print(
        f"batch {args.batch}, WRN input {args.size}x{args.size}, "
        f"{'XLA' if args.jit else 'tf.function'}, {os.cpu_count()} CPU cores, "
        f"{args.rounds} rounds x {args.repeats} steps; ratios: best of the "
        "rounds (median of the per-round ratios)"
    )
    print(
        "| model | params | optimizer | optimizer step / Adam | train step / Adam "
        "| state bytes / Adam | optimizer step (ms) | train step (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (
        net,
        params,
        opt,
        r_opt,
        m_opt,
        r_train,
        m_train,
        r_state,
        t_opt,
        t_train,
    ) in rows:
        print(
            f"| {net} | {params} | {opt} | {r_opt:.2f}x ({m_opt:.2f}x) | "
            f"{r_train:.2f}x ({m_train:.2f}x) | "
            f"{r_state:.3f}x | {t_opt:.2f} | {t_train:.1f} |"
        )


if __name__ == "__main__":
    main()
