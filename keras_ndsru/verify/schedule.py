"""Running disjuncts on an executor, with the network sent once per worker.

Tasks reference the network by its content hash (`ReluNetwork.key`); each
worker process keeps the networks it has seen. A worker that does not hold
the network answers `NetworkMissing` at once and the task is resubmitted with
the network attached, so a network crosses to each worker about once instead
of being pickled into every task. This works with any
`concurrent.futures.Executor` (thread pools share the parent's cache; forked
pools inherit it).
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait

from keras_ndsru.verify.decide import Options, Screen, decide
from keras_ndsru.verify.spec import Property

_NETWORKS: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 4


def install(network) -> None:
    """Keeps ``network`` in this process's cache (the most recent few)."""
    _NETWORKS[network.key] = network
    _NETWORKS.move_to_end(network.key)
    while len(_NETWORKS) > _CACHE_SIZE:
        _NETWORKS.popitem(last=False)


class NetworkMissing:
    """A worker's answer when it does not hold the task's network yet."""


@dataclasses.dataclass
class Task:
    """One disjunct of one property, to decide on some worker."""

    group: int
    key: str
    prop: Property
    index: int
    screen: Screen
    deadline: float
    options: Options
    network: object = None  # attached only after a worker missed it


def run_task(task: Task):
    """Decides ``task`` with the worker's cached network (a worker entry point)."""
    if task.network is not None:
        install(task.network)
    network = _NETWORKS.get(task.key)
    if network is None:
        return NetworkMissing()
    return decide(
        network, task.prop, task.index, task.screen, task.deadline, task.options
    )


_POOL = None


def process_context():
    """``fork`` where available (workers start at once and need no ``__main__``
    guard; they only run NumPy and single-threaded HiGHS), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def default_executor() -> Executor:
    """A process pool shared by all calls (one worker per CPU), made on demand."""
    global _POOL
    if _POOL is None:
        _POOL = ProcessPoolExecutor(os.cpu_count() or 1, mp_context=process_context())
        atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
    return _POOL


def run_tasks(network, tasks: list[Task], executor: Executor | None, record) -> None:
    """Decides every task; ``record(task, outcome)`` returns True when the
    task's group is settled (a confirmed violation), cancelling the group's
    other tasks.

    Args:
        network: the `ReluNetwork` all tasks refer to.
        tasks: `Task`s, in the order to try them.
        executor: a `concurrent.futures.Executor`, or None to run in-process.
        record: the callback above.
    """
    install(network)
    settled = set()
    if executor is None:
        for task in tasks:
            if task.group not in settled and record(task, run_task(task)):
                settled.add(task.group)
        return
    pending = {executor.submit(run_task, task): task for task in tasks}
    while pending:
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in finished:
            task = pending.pop(future)
            if future.cancelled() or task.group in settled:
                continue
            outcome = future.result()
            if isinstance(outcome, NetworkMissing):
                # A copy: the executor may pickle the task after submit returns.
                carrying = dataclasses.replace(task, network=network)
                pending[executor.submit(run_task, carrying)] = task
                continue
            if record(task, outcome):
                settled.add(task.group)
                for other, other_task in list(pending.items()):
                    if other_task.group == task.group and other.cancel():
                        pending.pop(other)
