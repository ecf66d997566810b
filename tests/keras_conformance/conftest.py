"""Fixtures of the Keras conformance suite (ports of Keras' own tests)."""

import pytest


@pytest.fixture(params=[True, False], ids=["fused", "reference"])
def use_fused_kernel(request):
    """Every SRU port runs on the fused op and on the reference recurrence."""
    return request.param
