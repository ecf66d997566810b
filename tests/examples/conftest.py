"""Puts examples/ on sys.path; a digits TFDS directory shared by the tests."""

import os
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
sys.path.insert(0, os.path.abspath(EXAMPLES))


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory):
    import keras_ndsru.datasets as nd_datasets

    data_dir = str(tmp_path_factory.mktemp("tfds_digits"))
    nd_datasets.load(nd_datasets.OFFLINE_DEFAULT, data_dir=data_dir)
    return data_dir


@pytest.fixture
def online(monkeypatch):
    """Lets the loader reach `download_and_prepare` (mocked by mock_data)."""
    import keras_ndsru.datasets.loading as loading

    monkeypatch.setattr(loading, "network_available", lambda timeout=3.0: True)


@pytest.fixture
def assert_png():
    """Checks that a file exists and starts with the PNG signature."""

    def check(path):
        with open(path, "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n", path

    return check
