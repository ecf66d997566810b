"""WRN recipe: the architecture, and one epoch on mocked CIFAR-10."""

import json

import cifar_wrn
import keras
import pytest
import tensorflow_datasets as tfds


def test_wrn_22_7_5_widths_head_and_bn_without_scale():
    model = cifar_wrn.wide_resnet((32, 32, 3), 10, depth=22, width=7.5)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # Stem, 3 stages x 3 blocks x 2 convs, 3 projection shortcuts, 1x1 head.
    assert len(convs) == 1 + 18 + 3 + 1
    assert sorted({c.filters for c in convs}) == [10, 16, 120, 240, 480]
    assert all(not c.use_bias for c in convs)
    norms = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and all(not bn.scale and bn.center for bn in norms)
    tail = [type(layer).__name__ for layer in model.layers[-4:]]
    assert tail == ["BatchNormalization", "ReLU", "Conv2D", "GlobalAveragePooling2D"]
    assert convs[-1].kernel_size == (1, 1)
    assert model.output_shape == (None, 10)


def test_depth_must_be_6n_plus_4():
    with pytest.raises(ValueError, match="depth=12"):
        cifar_wrn.wide_resnet((8, 8, 1), 10, depth=12, width=1)


def test_bn_softmax_and_logit_l2_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        cifar_wrn.main(["--bn-softmax", "2.5", "--logit-l2", "1e-3"])
    assert "not allowed with" in capsys.readouterr().err


def test_one_epoch_on_mocked_cifar10_per_optimizer(assert_png, online, tmp_path):
    with tfds.testing.mock_data(num_examples=16):
        results = cifar_wrn.main(
            [
                "--dataset", "cifar10", "--data-dir", str(tmp_path / "tfds"),
                "--epochs", "1", "--batch-size", "8", "--depth", "10",
                "--width", "0.25", "--optimizer", "ndadam", "sgd",
                "--logit-l2", "1e-3", "--verbose", "0", "--out", str(tmp_path),
            ]
        )  # fmt: skip
    assert list(results["runs"]) == ["ndadam", "sgd"]
    for name, run in results["runs"].items():
        history = run["history"]
        for key in ("val_accuracy", "logit_norm", "effective_learning_rate"):
            assert len(history[key]) == 1, key
        assert history["logit_norm"][0] > 0
        # Cosine decay to 0 over the run: after its only epoch the rate is 0.
        assert history["learning_rate"][0] == pytest.approx(0.0, abs=1e-7)
        assert ("vector_learning_rate" in history) == (name == "ndadam")
        assert run["learning_rate"] == {"ndadam": 0.05, "sgd": 0.1}[name]
    with open(results["json"]) as file:
        assert set(json.load(file)["runs"]) == {"ndadam", "sgd"}
    for path in results["plots"]:
        assert_png(path)
