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

from keras_ndsru.verify.properties.spec import Property
from keras_ndsru.verify.search.decide import Options, Screen, decide_all

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
    """Open disjuncts of one property, to decide on some worker (one, or all
    of them when they are split jointly)."""

    group: int
    key: str
    prop: Property
    indices: tuple[int, ...]
    screens: tuple[Screen, ...]
    deadline: float
    options: Options
    network: object = None  # attached only after a worker missed it


def run_task(task: Task):
    """Decides ``task`` with the worker's cached network (a worker entry
    point): one `Outcome` per index, or `NetworkMissing`."""
    if task.network is not None:
        install(task.network)
    network = _NETWORKS.get(task.key)
    if network is None:
        return NetworkMissing()
    return decide_all(
        network, task.prop, task.indices, task.screens, task.deadline, task.options
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
    """Decides every task; ``record(task, outcome)`` (once per outcome of a
    task) returns True when the task's group is settled (a confirmed
    violation), cancelling the group's other tasks.

    Args:
        network: the `ReluNetwork` all tasks refer to.
        tasks: `Task`s, in the order to try them.
        executor: a `concurrent.futures.Executor`, or None to run in-process.
        record: the callback above.
    """
    install(network)
    settled = set()

    def record_all(task, outcomes):
        if any([record(task, outcome) for outcome in outcomes]):
            settled.add(task.group)

    if executor is None:
        for task in tasks:
            if task.group not in settled:
                record_all(task, run_task(task))
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
            record_all(task, outcome)
            if task.group in settled:
                for other, other_task in list(pending.items()):
                    if other_task.group == task.group and other.cancel():
                        pending.pop(other)
