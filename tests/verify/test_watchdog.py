"""The hard deadline of the `vnncomp` command: its answer and its exit come by
``timeout + 1 s`` after the process started, whatever the verifier does."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_ndsru.verify import watchdog

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# The allowance of VNN-COMP's rules past the timeout.
GRACE = 1.0


def _busy(seconds):
    """Work that never looks at the clock: a long native call."""
    a = np.random.default_rng(0).normal(size=(400, 400))
    end = time.time() + seconds
    while time.time() < end:
        np.linalg.inv(a @ a.T + np.eye(400))
    return watchdog.Answer(0, "unsat\n")


def test_answer_of_fast_work_is_emitted():
    emitted = []
    answer = watchdog.run(
        lambda due: watchdog.Answer(0, f"unsat {due > time.time()}\n"),
        time.time() + 30,
        watchdog.Answer(1, "timeout\n"),
        emitted.append,
    )
    assert answer.code == 0
    assert emitted == [watchdog.Answer(0, "unsat True\n")]


def test_slow_work_is_killed_at_the_deadline():
    emitted = []
    start = time.time()
    answer = watchdog.run(
        lambda due: _busy(30),
        start + 1.0,
        watchdog.Answer(1, "timeout\n"),
        emitted.append,
    )
    took = time.time() - start
    assert answer.code == 1 and emitted == [watchdog.Answer(1, "timeout\n")]
    assert took < 1.0 + GRACE, took


def test_worker_processes_of_the_work_die_with_it(tmp_path):
    """A process the work started (e.g. a --workers pool) is killed too."""
    marker = tmp_path / "pid"

    def work(due):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        marker.write_text(str(child.pid))
        time.sleep(60)

    watchdog.run(work, time.time() + 2.0, watchdog.Answer(1, "timeout\n"), print)
    pid = int(marker.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # A killed child stays a zombie until reaped by its new parent.
        with open(f"/proc/{pid}/stat") as file:
            if file.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail("the work's own child process outlived the deadline")


def test_exception_in_the_work_is_an_error_answer(capfd):
    def work(due):
        raise RuntimeError("boom")

    emitted = []
    answer = watchdog.run(
        work, time.time() + 30, watchdog.Answer(1, "t\n"), emitted.append
    )
    assert answer.code == 1 and emitted == [watchdog.Answer(1, "error\n")]
    assert "RuntimeError: boom" in capfd.readouterr().err


def test_process_start_time_is_before_now():
    started = watchdog.process_start_time()
    assert started <= time.time()
    assert time.time() - started < 24 * 3600


def _deep_net(path, rng):
    """784 -> 6 x 256 -> 10 ReLU network (He init), as ONNX."""
    sizes = [784, 256, 256, 256, 256, 256, 256, 10]
    nodes, inits, name = [], [], "x"
    for k in range(len(sizes) - 1):
        w = rng.normal(size=(sizes[k], sizes[k + 1])) * np.sqrt(2.0 / sizes[k])
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{k}"),
            numpy_helper.from_array(np.zeros(sizes[k + 1], np.float32), f"b{k}"),
        ]
        nodes.append(helper.make_node("Gemm", [name, f"w{k}", f"b{k}"], [f"z{k}"]))
        name = f"z{k}"
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [name], [f"r{k}"]))
            name = f"r{k}"
    nodes.append(helper.make_node("Identity", [name], ["y"]))
    graph = helper.make_graph(
        nodes,
        "deep",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_vnncomp_command_answers_and_exits_by_the_timeout(tmp_path):
    """A hard instance: a deep network, a wide box and the unsafe set
    ``Y_0 == Y_1``, which sampling and gradients reach only approximately and
    bounds cannot exclude, so that no stage decides it in seconds."""
    rng = np.random.default_rng(0)
    net, prop, out = tmp_path / "net.onnx", tmp_path / "prop.vnnlib", tmp_path / "out"
    _deep_net(net, rng)
    lines = [f"(declare-const X_{i} Real)" for i in range(784)]
    lines += [f"(declare-const Y_{i} Real)" for i in range(10)]
    center = rng.uniform(0.2, 0.8, size=784)
    for i, c in enumerate(center):
        lines += [
            f"(assert (>= X_{i} {float(c) - 0.15!r}))",
            f"(assert (<= X_{i} {float(c) + 0.15!r}))",
        ]
    lines += ["(assert (<= Y_0 Y_1))", "(assert (>= Y_0 Y_1))"]
    prop.write_text("\n".join(lines) + "\n")
    timeout = 4.0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "keras_ndsru.verify", "vnncomp", str(net), str(prop)]
        + ["--timeout", str(timeout), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    took = time.time() - start
    assert took <= timeout + GRACE, (took, done.stdout, done.stderr[-2000:])
    assert out.read_text().split("\n")[0] in ("sat", "unsat", "timeout", "unknown")
    assert done.returncode in (0, 1), done.stderr[-2000:]


def test_vnncomp_command_imports_no_tensorflow(tmp_path):
    """Start-up: deciding an ONNX network imports neither Keras nor
    TensorFlow (``-X importtime`` lists every module the process and its
    child import)."""
    net, prop, out = tmp_path / "net.onnx", tmp_path / "prop.vnnlib", tmp_path / "out"
    rng = np.random.default_rng(1)
    _deep_net(net, rng)
    lines = [f"(declare-const X_{i} Real)" for i in range(784)]
    lines += [f"(declare-const Y_{i} Real)" for i in range(10)]
    lines += [f"(assert (>= X_{i} 0.5))" for i in range(784)]
    lines += [f"(assert (<= X_{i} 0.5))" for i in range(784)]
    lines.append("(assert (>= Y_0 1e9))")
    prop.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keras_ndsru.verify", "vnncomp"]
        + [str(net), str(prop), "--timeout", "60", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.read_text() == "unsat\n", done.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert "onnx" in imported  # the listing is real
    assert not {"tensorflow", "keras"} & imported
