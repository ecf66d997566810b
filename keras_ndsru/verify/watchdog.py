"""A hard deadline for one command: the work runs in a child process that is
killed when the time is up.

VNN-COMP gives a tool ``timeout`` seconds per instance, start-up included,
and expects its result file by then. Cooperative checks of the clock (every
stage of the verifier has them) cannot cover everything: a HiGHS solve, a
large matrix product or an import does not look at the clock. So the command
line forks before it imports anything heavy; the child does the work and
sends its answer through a pipe; the parent, which only waits, kills the
child's whole process group at the deadline and answers ``timeout`` itself.
The overrun past the deadline is then the parent's own reaction time
(milliseconds), whatever the child was doing.

Where ``os.fork`` does not exist (Windows), the work runs in-process and a
timer thread ends the process at the deadline instead (it needs the GIL,
which HiGHS and NumPy release in their long loops).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the work returned: its exit code and the text to write, or a
    usage error (a one-line message for the command line to report)."""

    code: int
    text: str
    error: str = ""


def process_start_time() -> float:
    """`time.time()` at which this process started (Linux: from /proc;
    elsewhere: now), so that a deadline counts the interpreter's start-up."""
    now = time.time()
    try:
        with open("/proc/self/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
        started = float(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return min(now, now - max(uptime - started, 0.0))


def run(
    work: Callable[[float], Answer],
    deadline: float,
    on_timeout: Answer,
    emit: Callable[[Answer], None],
) -> Answer:
    """Runs ``work(deadline)`` and emits its `Answer`, or ``on_timeout``
    when it is not done by ``deadline`` (a `time.time()` value).

    Args:
        work: called with the deadline, in a child process; it should itself
            stop a little before the deadline. An exception in it is
            printed and answered as exit code 1 with the text ``error``;
            ``SystemExit`` (a usage error) passes its code through with no
            text.
        deadline: when the answer is due.
        on_timeout: the answer given when the deadline passes first.
        emit: writes an answer (result file, standard output); called once,
            in this process, unless the work exited without an answer.

    Returns:
        The `Answer` (emitted already when it has a text).
    """
    if not hasattr(os, "fork"):
        return _run_with_timer(work, deadline, on_timeout, emit)
    answer = _run_forked(work, deadline, on_timeout)
    if answer.text:
        emit(answer)
    return answer


def _run_forked(work, deadline, on_timeout) -> Answer:
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        if "torch" in sys.modules:
            # PyTorch already ran in the parent (a library caller, not the
            # command line): its OpenMP/MKL thread pools do not survive a
            # fork, and a parallel region would wait for them forever.
            sys.modules["torch"].set_num_threads(1)
        _child(work, deadline, write_end)
    os.close(write_end)
    previous = signal.signal(
        signal.SIGTERM, lambda *_: (_kill_group(pid), sys.exit(143))
    )
    try:
        data, done = _read_until(read_end, deadline)
    finally:
        os.close(read_end)
        signal.signal(signal.SIGTERM, previous)
    if not done:
        _kill_group(pid)
        os.waitpid(pid, 0)
        return on_timeout
    _, status = os.waitpid(pid, 0)
    if data:
        return Answer(**json.loads(data.decode()))
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal (e.g. out of memory)
        print(
            f"keras-ndsru-verify: the verifier process died ({signal.Signals(-code).name})",
            file=sys.stderr,
        )
        return Answer(1, "error\n")
    return Answer(code, "")


def _child(work, deadline, write_end) -> None:
    """The child's whole life: never returns."""
    code = 1
    try:
        os.setpgid(0, 0)  # so that the parent can kill our workers with us
        answer = work(deadline)
        payload = json.dumps(dataclasses.asdict(answer)).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(write_end, view) :]
        code = 0
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 2
    except BaseException:  # noqa: BLE001 -- reported, answered as an error
        traceback.print_exc()
        payload = json.dumps({"code": 1, "text": "error\n"}).encode()
        os.write(write_end, payload)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to ``fd`` until EOF, and whether EOF came in time."""
    chunks = []
    while True:
        left = deadline - time.time()
        if left <= 0:
            return b"", False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, 9)):
        try:
            kill()
            return
        except (ProcessLookupError, PermissionError):
            continue


def _run_with_timer(work, deadline, on_timeout, emit) -> Answer:
    """No fork: a daemon thread ends the whole process at the deadline."""
    lock = threading.Lock()

    def expire():
        time.sleep(max(deadline - time.time(), 0.0))
        if lock.acquire(blocking=False):
            emit(on_timeout)
            os._exit(on_timeout.code)

    threading.Thread(target=expire, daemon=True).start()
    answer = work(deadline)
    if not lock.acquire(blocking=False):
        time.sleep(60)  # the timer is emitting its answer and will exit
    if answer.text:
        emit(answer)
    return answer
