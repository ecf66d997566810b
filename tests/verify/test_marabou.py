"""Optional cross-check against Marabou (skipped when maraboupy is missing).

One Marabou query per disjunct, with explicit input bounds (not its
``evaluateLocalRobustness`` helper): a disjunct is satisfiable iff our
verifier reports a violation of that disjunct's property.
"""

import warnings

import numpy as np
import pytest

# Not `maraboupy.Marabou`: it imports MarabouNetworkTF, which calls
# `tf.compat.v1.disable_v2_behavior()` for the whole process and breaks every
# Keras test that runs after it in the same worker.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    MarabouCore = pytest.importorskip("maraboupy.MarabouCore")
    MarabouNetworkNNet = pytest.importorskip(
        "maraboupy.MarabouNetworkNNet"
    ).MarabouNetworkNNet

from keras_ndsru.verify import load_nnet, local_robustness  # noqa: E402

ACASXU = "acasxu/ACASXU_experimental_v2a_1_1.nnet"  # under ../shared


def _marabou_def1_robust(path, lower, upper, label):
    """Robust iff for every j != label, y_j <= y_label is unsatisfiable."""
    options = MarabouCore.Options()
    options._verbosity = 0
    options._timeoutInSeconds = 120
    for j in range(5):
        if j == label:
            continue
        net = MarabouNetworkNNet(str(path), normalize=False)
        x, y = net.inputVars[0][0], net.outputVars[0][0]
        for i, var in enumerate(x):
            net.setLowerBound(var, lower[i])
            net.setUpperBound(var, upper[i])
        net.addInequality([y[j], y[label]], [1.0, -1.0], 0.0)  # y_j <= y_label
        exit_code, _, _ = net.solve(verbose=False, options=options)
        assert exit_code in ("sat", "unsat"), exit_code
        if exit_code == "sat":
            return False
    return True


@pytest.mark.parametrize(
    "x0, delta",
    [
        ([0.0, 0.0, 0.0, 0.0, 0.0], 0.018),  # robust
        ([0.0, 0.0, 0.0, 0.0, 0.0], 0.05),  # not robust
    ],
)
def test_def1_agrees_with_marabou_on_acasxu(x0, delta, shared_data):
    acasxu = shared_data(ACASXU)
    net = load_nnet(acasxu)
    x0 = np.array(x0)
    ours = local_robustness(net, x0, delta, label_mode="argmin", workers=1)
    lower = np.maximum(x0 - delta, net.input_domain[0])
    upper = np.minimum(x0 + delta, net.input_domain[1])
    assert ours.robust is _marabou_def1_robust(acasxu, lower, upper, ours.label)
