"""benchmarks/vnncomp_common.py: the pure parts of the VNN-COMP benchmark
scripts (instances, selection, the reference, verdicts, the tools' output)
and one timed run of a stand-in tool."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import vnncomp_common as common  # noqa: E402
from vnncomp_common import Run  # noqa: E402


def write_benchmark(root: Path, name: str, lines: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / f"{name}_instances.csv").write_text(lines)
    return folder


def test_every_line_is_read_the_last_one_without_a_newline_too(tmp_path):
    folder = write_benchmark(
        tmp_path,
        "mnistfc",
        "net_a.onnx,prop_0.vnnlib,120\n\nnet_b.onnx,prop_1.vnnlib,300",
    )
    instances = common.read_instances(folder)
    assert [i.name for i in instances] == ["net_a/prop_0", "net_b/prop_1"]
    assert [i.timeout for i in instances] == [120.0, 300.0]
    assert [i.row for i in instances] == [0, 1]
    last = instances[-1]
    assert last.benchmark == "mnistfc" and last.group == "net_b"
    assert (last.csv_onnx, last.csv_vnnlib) == ("net_b.onnx", "prop_1.vnnlib")
    assert last.onnx == folder / "net_b.onnx"


def test_names_are_the_csv_paths_where_file_stems_collide(tmp_path):
    folder = write_benchmark(
        tmp_path, "b", "onnx/n.onnx,a/prop.vnnlib,1\nonnx/n.onnx,b/prop.vnnlib,1\n"
    )
    names = [i.name for i in common.read_instances(folder)]
    assert names == ["onnx/n.onnx/a/prop.vnnlib", "onnx/n.onnx/b/prop.vnnlib"]


def test_selection_by_names_ranges_sample_and_limit(tmp_path):
    lines = "".join(f"n{k % 3}.onnx,prop_{k}.vnnlib,10\n" for k in range(12))
    instances = common.read_instances(write_benchmark(tmp_path, "b", lines))
    assert common.spread(90, 2) == [22, 67]
    assert common.spread(3, 5) == [0, 1, 2]
    picked = common.select(instances, "prop_1,5-6")
    assert [i.row for i in picked] == [1, 5, 6, 10, 11]  # prop_1 matches prop_1x
    anchored = common.select(instances, "prop_1", anchored=lambda p: True)
    assert [i.row for i in anchored] == [1]
    assert [i.row for i in common.select(instances, sample=3)] == [2, 6, 10]
    assert [i.row for i in common.select(instances, per_group=1)] == [0, 1, 2]
    assert len(common.select(instances, sample=4, limit=2)) == 2
    capped = common.cap_timeouts(instances, 4)
    assert {i.timeout for i in capped} == {4.0}


def test_the_reference_is_matched_by_benchmark_and_csv_paths(tmp_path):
    folder = write_benchmark(
        tmp_path, "oval21", "nets/a.onnx,vnnlib/p.vnnlib,720\nnets/a.onnx,q.vnnlib,720"
    )
    reference = tmp_path / "reference.csv"
    reference.write_text(
        textwrap.dedent(
            """\
            benchmark,onnx,vnnlib,timeout,reference,a-b-CROWN_verdict,a-b-CROWN_time
            oval21,./nets/a.onnx,vnnlib/p.vnnlib,720,sat,sat,14.0
            oval21,nets/a.onnx,q.vnnlib,720,none,-,
            mnistfc,nets/a.onnx,q.vnnlib,120,unsat,unsat,1.0
            """
        )
    )
    instances = common.read_instances(folder)
    ref = common.Reference(reference)
    assert ref.verdicts(instances) == {"a/p": "sat", "a/q": "none"}
    runs = ref.recorded_runs(instances, "a-b-CROWN", "old")
    assert runs[("old", "a/p")].result == "sat"
    assert runs[("old", "a/p")].overrun == 14.0 - 720.0
    assert runs[("old", "a/q")].result == "error"
    assert np.isnan(runs[("old", "a/q")].wall)
    row = common.summary_row("old", list(runs.values()), [])
    assert row[1:3] == ["1/2", "1"] and row[7] == "14.0"


class Tool:
    def __init__(self, name):
        self.name = name


def judged(verdicts, reference=None):
    """``verdicts``: tool -> (result, checked) on one instance ``i``."""
    inst = common.Instance(Path("n"), Path("p"), 1.0, "i", "n")
    runs = {
        (tool, "i"): Run(tool, "i", result, 1.0, 1.0, checked=checked)
        for tool, (result, checked) in verdicts.items()
    }
    tools = [Tool(t) for t in verdicts]
    return common.judge([inst], tools, runs, {"i": reference} if reference else {})


def test_judge_wrong_verdicts_and_disagreements():
    # A failing counterexample is wrong; an unsat against a checked one too.
    j = judged({"a": ("sat", "fails"), "b": ("unsat", None)})
    assert j.wrong == {"a": ["i"], "b": []} and j.disagree == [
        ("i", {"a": "sat", "b": "unsat"})
    ]
    j = judged({"a": ("sat", "exact"), "b": ("unsat", None)})
    assert j.wrong == {"a": [], "b": ["i"]} and not j.disagree
    # Against the reference, unless a checked counterexample overturns it.
    j = judged({"a": ("unsat", None), "b": ("timeout", None)}, reference="sat")
    assert j.wrong == {"a": ["i"], "b": []}
    j = judged({"a": ("sat", None)}, reference="unsat")
    assert j.wrong == {"a": ["i"]}
    j = judged({"a": ("sat", None), "b": ("sat", "exact")}, reference="unsat")
    assert j.wrong == {"a": [], "b": []}
    j = judged({"a": ("sat", "tolerance")}, reference="unsat")
    assert j.wrong == {"a": []} and "reference says unsat" in j.notes[0]
    j = judged({"a": ("sat", None), "b": ("unsat", None)}, reference="contested")
    assert j.failed and j.disagree
    j = judged({"a": ("sat", "channel-first"), "b": ("unsat", None)})
    assert j.wrong == {"a": [], "b": ["i"]} and "channel-first" in j.notes[0]


def test_the_tools_outputs_are_read(tmp_path):
    out = tmp_path / "result.txt"
    assert common.read_assignment("((X_1  2.5)\n(X_0 -1e-3)\n(Y_0  7))") == [
        -1e-3,
        2.5,
    ]
    assert common.read_assignment("((X_1 2.5))") is None  # X_0 missing
    out.write_text("sat\n((X_0  0.5)\n(X_1  -0.25)\n(Y_0  1.0))")
    runner = tmp_path / "run_instance.sh"  # ../shared's, which a checkout may lack
    runner.write_text("")
    abcrown = common.AbCrown("mnistfc", script=runner, home=tmp_path)
    stdout = "config: ...\nresult: sat\ntool_s: 3.89 (the tool's own)\nwall_s: 14.86\n"
    assert abcrown.parse(out, stdout) == ("sat", [0.5, -0.25])
    assert abcrown.reported(stdout) == 3.89
    assert abcrown.parse(out, "result: unknown\n") == ("unknown", None)
    assert abcrown.parse(out, "Traceback ...\n") == ("error", None)
    assert "not installed" in abcrown.skip_reason()
    missing = common.AbCrown("mnistfc", script=tmp_path / "none.sh", home=tmp_path)
    assert "no runner script" in missing.skip_reason()
    assert "no 2021 configuration" in common.AbCrown("x", home=tmp_path).skip_reason()
    out.write_text("violated")
    nnenum = common.Nnenum(tmp_path)
    printed = "Input: [np.float64(0.5), -0.25]\nRuntime: 0.9 sec\n"
    assert nnenum.parse(out, printed) == ("sat", [0.5, -0.25])
    assert nnenum.parse(out, "no input line") == ("sat", None)
    assert nnenum.reported(printed) == 0.9


def tiny_nhwc_network(path: Path):
    """y = [x[0, 0, 0, 1], -x[0, 0, 0, 1]] for an NHWC input (1, 3, 3, 2)."""
    import onnx
    from onnx import TensorProto, helper

    weight = np.zeros((18, 2), np.float32)
    weight[1, 0], weight[1, 1] = 1.0, -1.0
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x"], ["f"]),
            helper.make_node("MatMul", ["f", "w"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [onnx.numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_the_checker_reads_counterexamples_as_given(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx_path, prop = tmp_path / "n.onnx", tmp_path / "p.vnnlib"
    tiny_nhwc_network(onnx_path)
    lines = [f"(declare-const X_{i} Real)" for i in range(18)]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    for i in range(18):
        lines += [f"(assert (>= X_{i} 0.0))", f"(assert (<= X_{i} 1.0))"]
    lines.append("(assert (>= Y_0 0.5))")  # unsafe: input 1 (h0 w0 c1) >= 0.5
    prop.write_text("\n".join(lines) + "\n")
    inst = common.Instance(onnx_path, prop, 1.0, "n/p", "n")
    checker = common.Checker()
    nhwc = np.zeros((3, 3, 2))
    nhwc[0, 0, 1] = 0.75
    assert checker(inst, nhwc.ravel()) == "exact"
    assert checker(inst, np.full(18, 0.25)) == "fails"
    outside = nhwc.copy()
    outside[2, 2, 0] = 1.0 + 1e-7
    assert checker(inst, outside.ravel()) == "tolerance"
    assert checker(inst, nhwc.transpose(2, 0, 1).ravel()) == "channel-first"
    assert checker(inst, np.zeros(5)) == "fails"


class Sleeper:
    """A stand-in tool: allocates ~200 MiB, then sleeps ``seconds``."""

    name = "sleeper"

    def __init__(self, seconds):
        self.seconds = seconds

    def command(self, inst, out):
        code = (
            "import time, sys; b = b'x' * (200 * 2**20); "
            f"open(sys.argv[1], 'w').write('unsat'); time.sleep({self.seconds})"
        )
        return [sys.executable, "-c", code, str(out)]

    def env(self, out):
        return {}

    def reported(self, stdout):
        return None

    def parse(self, out, stdout):
        return out.read_text(), None


def test_a_run_is_timed_measured_and_killed_past_its_grace(tmp_path, monkeypatch):
    inst = common.Instance(Path("n"), Path("p"), 0.5, "n/p", "n")
    run = common.run_tool(Sleeper(0.6), inst, tmp_path)
    assert run.result == "unsat" and run.timeout == 0.5
    assert 0.0 < run.overrun < 5.0
    assert 200 <= run.peak_mb < 400
    monkeypatch.setattr(common, "GRACE", 0.5)
    run = common.run_tool(Sleeper(60), inst, tmp_path)
    assert run.result == "timeout" and "killed" in run.note
    assert run.wall < 10.0
