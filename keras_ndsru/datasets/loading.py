"""Loads a TFDS dataset, failing fast (not after minutes of retries) offline."""

import os
import socket

import tensorflow_datasets as tfds

OFFLINE_DEFAULT = "ndsru_digits"
# Builders whose preparation needs no network (their data ships with a package).
OFFLINE_DATASETS = frozenset({OFFLINE_DEFAULT})
# TFDS downloads most data from Google Cloud Storage or the original hosts; a
# DNS lookup plus a TCP connect to GCS is a cheap proxy for "there is a network".
_PROBE_HOST = ("storage.googleapis.com", 443)
_PROBE_TIMEOUT_S = 3.0


class DatasetUnavailableError(RuntimeError):
    """A dataset is not prepared locally and cannot be downloaded now."""


def network_available(timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to Google Cloud Storage opens within `timeout` s.

    Set `KERAS_NDSRU_OFFLINE=1` to answer `False` without trying.
    """
    if os.environ.get("KERAS_NDSRU_OFFLINE", "") not in ("", "0"):
        return False
    try:
        with socket.create_connection(_PROBE_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def load(
    name: str,
    *,
    split=None,
    data_dir: str | None = None,
    download: bool = True,
    as_supervised: bool = False,
    with_info: bool = False,
    **as_dataset_kwargs,
):
    """`tfds.load` that fails fast and clearly when the data cannot be had.

    Prepared data in `data_dir` is read as is. Datasets that need no network
    (`OFFLINE_DATASETS`, such as `"ndsru_digits"`) are prepared on first use.
    Any other dataset that is not prepared is downloaded only when `download`
    is true and the network answers; otherwise this raises
    `DatasetUnavailableError` at once, naming the offline default, where
    `tfds.load` would retry the download for minutes.

    Args:
        name: TFDS name, with an optional config and version
            (`"glue/sst2"`, `"imdb_reviews"`, `"ndsru_digits"`).
        split: Which split(s), as for `tfds.load`. Defaults to `None` (all).
        data_dir: TFDS data directory. Defaults to `None` (TFDS' default,
            `~/tensorflow_datasets` or `$TFDS_DATA_DIR`).
        download: Whether a missing dataset may be downloaded. Defaults to
            `True`.
        as_supervised: As for `tfds.load`. Defaults to `False`.
        with_info: Also return the `tfds.core.DatasetInfo`. Defaults to `False`.
        **as_dataset_kwargs: Passed to `builder.as_dataset` (`batch_size`,
            `shuffle_files`, `read_config`, ...).

    Returns:
        The dataset(s), and the info when `with_info` is true.
    """
    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        _check_can_prepare(name, builder, download)
        builder.download_and_prepare()
    datasets = builder.as_dataset(
        split=split, as_supervised=as_supervised, **as_dataset_kwargs
    )
    return (datasets, builder.info) if with_info else datasets


def _check_can_prepare(name: str, builder, download: bool) -> None:
    if builder.name in OFFLINE_DATASETS:
        return
    hint = (
        f"The examples' offline default, `{OFFLINE_DEFAULT}` (scikit-learn's "
        "bundled digits), needs no download; or prepare the dataset on a "
        "machine with a network and copy its data directory here."
    )
    if not download:
        raise DatasetUnavailableError(
            f"TFDS dataset `{name}` is not prepared in {builder.data_dir} and "
            f"`download=False`. {hint} Received: name={name!r}"
        )
    if not network_available():
        raise DatasetUnavailableError(
            f"TFDS dataset `{name}` is not prepared in {builder.data_dir} and "
            f"there is no network to download it ({_PROBE_HOST[0]} does not "
            f"answer). {hint} Received: name={name!r}"
        )
