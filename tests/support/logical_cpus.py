"""Splits the CPU into logical devices, for `tf.distribute` checks on one
machine. Call before TensorFlow initializes its devices (first thing in a
subprocess check script)."""

import tensorflow as tf


def split_cpu(count: int = 2) -> list[str]:
    """Makes `count` logical CPU devices; returns their names."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )
    return [f"/cpu:{i}" for i in range(count)]
