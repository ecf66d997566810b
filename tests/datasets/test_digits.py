"""The offline digits dataset against scikit-learn, and the fail-fast loader."""

import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

import keras_ndsru.datasets as nd_datasets
from keras_ndsru.datasets.digits import sklearn_to_uint8, uint8_to_sklearn


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _arrays(dataset):
    batch = next(iter(tfds.as_numpy(dataset.batch(10_000))))
    return batch["image"], batch["label"], batch["index"]


def test_splits_match_sklearn_images_and_labels(data_dir):
    splits, info = nd_datasets.load("ndsru_digits", data_dir=data_dir, with_info=True)
    digits = load_digits()
    seen = []
    for name, size in (("train", 1438), ("test", 359)):
        images, labels, index = _arrays(splits[name])
        assert info.splits[name].num_examples == size == len(index)
        assert images.shape == (size, 8, 8, 1) and images.dtype == np.uint8
        np.testing.assert_array_equal(
            uint8_to_sklearn(images[..., 0]), digits.images[index]
        )
        np.testing.assert_array_equal(labels, digits.target[index])
        # Stratified: each class has ~20% of its images in test.
        share = np.bincount(labels, minlength=10) / np.bincount(digits.target)
        expected = 0.2 if name == "test" else 0.8
        np.testing.assert_allclose(share, expected, atol=0.01)
        seen.append(index)
    assert np.intersect1d(*seen).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(1797))


def test_tfds_load_by_name_reads_the_same_data(data_dir):
    nd_datasets.load("ndsru_digits", data_dir=data_dir, split="test")
    images, labels = next(
        iter(
            tfds.as_numpy(
                tfds.load(
                    "ndsru_digits",
                    split="test",
                    data_dir=data_dir,
                    as_supervised=True,
                    download=False,
                ).batch(10_000)
            )
        )
    )
    assert images.shape == (359, 8, 8, 1) and labels.shape == (359,)


def test_pixel_mapping_is_one_to_one_on_sklearn_values():
    values = np.arange(17)
    mapped = sklearn_to_uint8(values)
    assert mapped[0] == 0 and mapped[-1] == 255
    assert len(np.unique(mapped)) == 17
    np.testing.assert_array_equal(uint8_to_sklearn(mapped), values)


def test_missing_download_dataset_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(
        nd_datasets.loading, "network_available", lambda timeout=3.0: False
    )
    start = time.monotonic()
    with pytest.raises(nd_datasets.DatasetUnavailableError, match="ndsru_digits"):
        nd_datasets.load("imdb_reviews", data_dir=str(tmp_path))
    with pytest.raises(nd_datasets.DatasetUnavailableError, match="download=False"):
        nd_datasets.load("glue/sst2", data_dir=str(tmp_path), download=False)
    assert time.monotonic() - start < 30  # tfds.load would retry for minutes


def test_offline_env_var_disables_the_network_probe(monkeypatch):
    monkeypatch.setenv("KERAS_NDSRU_OFFLINE", "1")
    assert nd_datasets.network_available() is False


def test_top_level_import_does_not_import_tfds():
    code = (
        "import sys, keras_ndsru; "
        "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
