"""The VNN-LIB 1.0 reader: its grammar on good and malformed inputs."""

import numpy as np
import pytest

from keras_ndsru.verify.formats.vnnlib import VnnlibError, parse_vnnlib, read_vnnlib

HEADER = """; two inputs, two outputs
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
"""
BOX = """(assert (<= X_0 1.0))
(assert (>= X_0 -1))
(assert (<= X_1 0.5e0))
(assert (>= X_1 -.5))
"""


def test_bounds_and_one_output_constraint():
    (prop,) = parse_vnnlib(HEADER + BOX + "(assert (>= Y_0 3.5))\n")
    np.testing.assert_array_equal(prop.region.lower, [-1.0, -0.5])
    np.testing.assert_array_equal(prop.region.upper, [1.0, 0.5])
    (disjunct,) = prop.disjuncts
    # Y_0 >= 3.5 is -Y_0 <= -3.5
    np.testing.assert_array_equal(disjunct.mat, [[-1.0, 0.0]])
    np.testing.assert_array_equal(disjunct.rhs, [-3.5])


def test_conjunction_of_asserts_is_one_disjunct_with_rows():
    text = HEADER + BOX + "(assert (<= Y_1 Y_0))\n(assert (<= Y_0 2))\n"
    (prop,) = parse_vnnlib(text)
    (disjunct,) = prop.disjuncts
    np.testing.assert_array_equal(disjunct.mat, [[-1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(disjunct.rhs, [0.0, 2.0])
    y = np.array([[3.0, 1.0], [1.0, 0.0], [1.0, 2.0]])
    # margins: max(y1 - y0, y0 - 2): only the second output pair is unsafe
    np.testing.assert_array_equal(disjunct.margin(y), [1.0, -1.0, 1.0])


def test_or_of_ands_and_input_cases():
    text = (
        HEADER
        + """(assert (or
    (and (<= X_0 0) (>= X_0 -1) (<= X_1 1) (>= X_1 0))
    (and (<= X_0 1) (>= X_0 0) (<= X_1 1) (>= X_1 0))))
(assert (or (and (<= Y_0 Y_1)) (and (>= Y_0 (+ Y_1 (* 2 1.5))) (<= Y_0 (- 10 Y_1)))))
"""
    )
    props = parse_vnnlib(text)
    assert len(props) == 2  # one property per input box
    for prop in props:
        assert len(prop.disjuncts) == 2
        first, second = prop.disjuncts
        np.testing.assert_array_equal(first.mat, [[1.0, -1.0]])
        # Y_0 >= Y_1 + 3 and Y_0 + Y_1 <= 10
        np.testing.assert_array_equal(second.mat, [[-1.0, 1.0], [1.0, 1.0]])
        np.testing.assert_array_equal(second.rhs, [-3.0, 10.0])
    assert {tuple(p.region.lower) for p in props} == {(-1.0, 0.0), (0.0, 0.0)}


def test_general_input_constraint_becomes_a_row():
    text = HEADER + BOX + "(assert (<= (+ X_0 X_1) 0.25))\n(assert (>= Y_0 0))\n"
    (prop,) = parse_vnnlib(text)
    np.testing.assert_array_equal(prop.region.a_ub, [[1.0, 1.0]])
    np.testing.assert_array_equal(prop.region.b_ub, [0.25])
    assert prop.region.contains(np.array([0.1, 0.1]))
    assert not prop.region.contains(np.array([0.2, 0.1]))


@pytest.mark.parametrize(
    "body, line, expected",
    [
        ("(assert (< Y_0 1))", 10, "<=, >=, and or or"),
        ("(assert (<= Y_0 1)", 10, "')' closing the command"),
        ("(assert (<= Y_2 1))", 10, "a declared variable"),
        ("(assert (<= (* Y_0 Y_1) 1))", 10, "a linear term"),
        ("(assert (<= (+ X_0 Y_0) 1))", 10, "mixes inputs and outputs"),
        ("(assert (<= Y_0 1e))", 10, "a number, a variable"),
        ("(declare-const Z_0 Real)", 10, "a variable named X_<i> or Y_<i>"),
        ("(declare-const X_0 Real)", 10, "not declared before"),
        ("(declare-const X_9 Int)", 10, "the sort Real"),
        ("(check-sat)", 10, "declare-const or assert"),
        ("(assert (<= Y_0\n   ", 11, "the file ends"),
    ],
)
def test_malformed_input_is_one_line_naming_file_and_line(body, line, expected):
    with pytest.raises(VnnlibError) as error:
        parse_vnnlib(HEADER + BOX + body + "\n", "prop.vnnlib")
    message = str(error.value)
    assert message.startswith(f"prop.vnnlib:{line}: "), message
    assert expected in message and "Received:" in message and "\n" not in message


def test_declarations_and_bounds_are_checked():
    with pytest.raises(
        VnnlibError, match=r"p:3: the network has 3 inputs, the file declares 2"
    ):
        parse_vnnlib(HEADER + BOX + "(assert (>= Y_0 0))", "p", n_inputs=3)
    with pytest.raises(VnnlibError, match=r"no lower bound for X_1"):
        parse_vnnlib(
            HEADER + "(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= X_1 1))"
        )
    with pytest.raises(VnnlibError, match=r"must all be declared.*missing X_1"):
        parse_vnnlib(
            "(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)"
        )
    with pytest.raises(VnnlibError, match="admit no input"):
        parse_vnnlib(
            HEADER + "(assert (<= X_0 0))(assert (>= X_0 1))"
            "(assert (<= X_1 1))(assert (>= X_1 0))(assert (>= Y_0 0))"
        )


def test_acasxu_properties(shared_data):
    folder = shared_data("vnncomp/acasxu")
    counts = {}
    for i in range(1, 11):
        props = read_vnnlib(folder / f"prop_{i}.vnnlib", 5, 5)
        counts[i] = [len(p.disjuncts) for p in props]
        for prop in props:
            assert np.all(prop.region.lower <= prop.region.upper)
    # prop 1: one disjunct (COC >= 1500); 2: COC maximal (4 rows); 6: two
    # input boxes, COC not minimal (4 disjuncts each); 7: two disjuncts.
    assert counts[1] == [1] and counts[6] == [4, 4] and counts[7] == [2]
    (prop2,) = read_vnnlib(folder / "prop_2.vnnlib")
    assert prop2.disjuncts[0].mat.shape == (4, 5)
    (prop1,) = read_vnnlib(folder / "prop_1.vnnlib")
    np.testing.assert_allclose(prop1.region.lower, [0.6, -0.5, -0.5, 0.45, -0.5])
    np.testing.assert_allclose(prop1.disjuncts[0].rhs, [-3.991125645861615])
