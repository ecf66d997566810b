"""NdsruDigits: scikit-learn's bundled 8x8 digits as a TFDS dataset (no download)."""

import numpy as np
import tensorflow_datasets as tfds

NUM_CLASSES = 10
TEST_FRACTION = 0.2
SPLIT_SEED = 0
# sklearn's pixels are counts of set pixels in 4x4 blocks of the 32x32
# original bitmaps, so integers in 0..16; they are stored rescaled to 0..255.
SKLEARN_MAX_PIXEL = 16


def sklearn_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Maps sklearn's 0..16 digit pixels to 0..255 (one-to-one on integers)."""
    return np.round(np.asarray(pixels) * (255.0 / SKLEARN_MAX_PIXEL)).astype(np.uint8)


def uint8_to_sklearn(pixels: np.ndarray) -> np.ndarray:
    """Inverse of `sklearn_to_uint8`: 0..255 back to sklearn's 0..16."""
    return np.round(np.asarray(pixels) * (SKLEARN_MAX_PIXEL / 255.0)).astype(np.int64)


def split_indices() -> dict[str, np.ndarray]:
    """The fixed train/test partition of sklearn's 1,797 digits, by index.

    A seeded permutation (`SPLIT_SEED`), stratified by class so both splits
    hold every digit in the same proportion; 20% of each class is test.
    """
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        num_test = int(round(len(members) * TEST_FRACTION))
        test.append(members[:num_test])
        train.append(members[num_test:])
    return {
        "train": np.sort(np.concatenate(train)),
        "test": np.sort(np.concatenate(test)),
    }


class NdsruDigits(tfds.core.GeneratorBasedBuilder):
    """The 8x8 handwritten digits bundled with scikit-learn, as a TFDS dataset.

    1,797 real images of the digits 0-9 (the test part of the UCI "Optical
    Recognition of Handwritten Digits" set), read from the copy that ships
    inside scikit-learn, so preparing it needs no network. It is the offline
    default of the keras-ndsru examples.

    Importing `keras_ndsru.datasets` registers it as `"ndsru_digits"`:

    >>> import keras_ndsru.datasets  # registers "ndsru_digits"
    >>> import tensorflow_datasets as tfds
    >>> train = tfds.load("ndsru_digits", split="train", as_supervised=True)

    Features:
        image: `uint8` tensor of shape `(8, 8, 1)`, sklearn's 0..16 pixels
            rescaled to 0..255 by `round(v * 255 / 16)` (one-to-one;
            `uint8_to_sklearn` inverts it).
        label: the digit, `ClassLabel` with 10 classes.
        index: position of the image in `sklearn.datasets.load_digits()`.

    Splits: `train` (1,438 images) and `test` (359), a fixed stratified
    partition (20% of each class in `test`, seed 0; see `split_indices`).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "The 8x8 handwritten digits bundled with scikit-learn "
                "(sklearn.datasets.load_digits), 1,797 images, no download."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                    "index": np.int32,
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation=(
                "@misc{alpaydin1998optdigits, author={Alpaydin, E. and Kaynak, C.},"
                " title={Optical Recognition of Handwritten Digits}, year={1998},"
                " howpublished={UCI Machine Learning Repository}}"
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the data ships with scikit-learn.
        return {
            name: self._generate_examples(indices)
            for name, indices in split_indices().items()
        }

    def _generate_examples(self, indices):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = sklearn_to_uint8(digits.images)[..., np.newaxis]
        for index in indices:
            yield (
                int(index),
                {
                    "image": images[index],
                    "label": int(digits.target[index]),
                    "index": int(index),
                },
            )
