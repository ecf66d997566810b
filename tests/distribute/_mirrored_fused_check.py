"""Subprocess check: the fused SRU op under MirroredStrategy on two logical
CPUs. Training SRU + NDAdam there gives the weights of one device with the
same global batch, and a replicated forward and backward step runs the op's
forward and gradient kernels on both devices.

Logical devices must be configured before TensorFlow initializes, hence a
separate process. Prints one JSON line.
"""

import json

import tensorflow as tf
from logical_cpus import split_cpu  # tests/support, on PYTHONPATH

split_cpu(2)

import _sru_training as training  # noqa: E402

from keras_ndsru.ops import fused_kernel_status  # noqa: E402


def fused_op_devices(strategy, model) -> list[list[str]]:
    """(op type, device) of every fused-op node in a traced replicated step."""

    @tf.function
    def replicated_step(x):
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model(x, training=True)))
            return tape.gradient(loss, model.trainable_variables)

        return strategy.run(step, args=(x,))

    spec = tf.TensorSpec((4, training.STEPS, training.FEATURES), tf.float32)
    graph = replicated_step.get_concrete_function(spec).graph
    return sorted(
        {
            (op.type, tf.DeviceSpec.from_string(op.device).to_string())
            for op in graph.get_operations()
            if op.type.startswith("KerasNdsru>")
        }
    )


strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = training.make_model()
training.train(mirrored)
single = training.train(training.make_model())

print(
    json.dumps(
        {
            "replicas": strategy.num_replicas_in_sync,
            "fused": fused_kernel_status().path,
            "fused_op_devices": fused_op_devices(strategy, mirrored),
            "max_diff_vs_single_device": training.max_difference(
                training.weights(mirrored), training.weights(single)
            ),
            "max_change_by_training": training.max_difference(
                training.weights(single), training.weights(training.make_model())
            ),
            "unit_norm_error": training.unit_norm_error(mirrored.optimizer),
        }
    )
)
