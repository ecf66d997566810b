"""The shared argument checks: accepted values come back canonical, rejected
ones raise one `ValueError` that names the argument and ends with what was
received."""

import math

import numpy as np
import pytest

from keras_ndsru import validation

CASES = [
    # (check, accepted -> canonical, rejected)
    (validation.positive_int, [(3, 3), (np.int64(2), 2)], [0, -1, 2.5, True, "3"]),
    (validation.optional_int, [(None, None), (-4, -4)], [1.5, False, "1"]),
    (
        validation.positive_float,
        [(2, 2.0), (np.float32(0.5), 0.5)],
        [0, -1.0, math.inf, math.nan, True, "1"],
    ),
    (
        validation.optional_non_negative_float,
        [(None, None), (0, 0.0)],
        [-0.1, math.nan, math.inf, False],
    ),
    (validation.fraction, [(0, 0.0), (0.5, 0.5)], [1.0, -0.1, math.nan, True]),
    (validation.optional_bool, [(None, None), (True, True)], [1, "yes"]),
    (validation.non_empty_str, [("a", "a")], ["", None, 3]),
]


@pytest.mark.parametrize("check, accepted, rejected", CASES)
def test_accepts_canonical_values_and_rejects_the_rest(check, accepted, rejected):
    for value, canonical in accepted:
        got = check("arg", value)
        assert got == canonical and type(got) is type(canonical)
    for value in rejected:
        with pytest.raises(ValueError) as error:
            check("arg", value)
        message = str(error.value)
        assert message.startswith("`arg` must be ")
        assert message.endswith(f"Received: arg={value!r}")


def test_one_of_matches_bools_by_identity():
    choices = ("auto", True, False)
    assert validation.one_of("mode", "auto", choices) == "auto"
    assert validation.one_of("mode", False, choices) is False
    for value in (1, 0, "yes"):
        with pytest.raises(ValueError, match=f"Received: mode={value!r}$"):
            validation.one_of("mode", value, choices)
