"""Keras models users train, through the public queries: affine/ReLU chains
(`from_keras`, the exact chain engine) against Keras' forward pass; models
with pooling, residual Add or LeakyReLU (the graph engine) refused by
`from_keras` and decided by the queries, against the brute-force oracle
(tiny nets, hand-derived chains) and sampling (a conv net trained on the
8x8 digits)."""

import keras
import numpy as np
import pytest
from keras_nets import layer_zoo, randomize, tiny_chain, tiny_models
from verify_brute import def1_min_margin

from keras_ndsru.verify import (
    from_keras,
    graph_from_keras,
    local_robustness,
    max_robust_delta,
)
from keras_ndsru.verify.formats.keras_model import keras_forward
from keras_ndsru.verify.graph.chain import chain_reason

L = keras.layers
AMBIGUOUS = 1e-5


def assert_reproduces(model, seed=1):
    net = from_keras(model)
    x = np.random.default_rng(seed).normal(size=(32, *net.input_shape))
    got = net(x.reshape(32, -1))
    np.testing.assert_allclose(got, keras_forward(model, x), rtol=1e-5, atol=1e-5)
    return net


def test_conv_chain_reproduces_keras():
    """Conv2D, BatchNormalization, padding, rescaling and Dense with ReLUs
    and no pooling: a chain (one dense matrix per layer)."""
    inp = keras.Input((5, 5, 2))
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(inp)
    h = L.Conv2D(3, 3, padding="same", strides=2, activation="relu")(h)
    h = L.BatchNormalization()(h)
    h = L.ReLU()(L.Conv2D(4, 2)(h))
    h = L.Flatten()(L.Rescaling(0.5, offset=0.1)(h))
    out = L.Dense(3)(L.Dropout(0.5)(L.Dense(6, activation="relu")(h)))
    model = randomize(keras.Model(inp, out), 1)
    net = assert_reproduces(model)
    assert net.hidden_sizes == [27, 16, 6]


@pytest.mark.parametrize("index", [0, 1])
def test_layer_zoo_is_not_a_chain(index):
    _, model = list(layer_zoo())[index]
    with pytest.raises(
        ValueError, match="not an affine/ReLU chain: node .* is a"
    ) as info:
        from_keras(model)
    assert "\n" not in str(info.value) and "graph_from_keras" in str(info.value)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_tiny_models_match_the_brute_force_oracle(index):
    """Not chains: the queries take the graph engine (and refuse the chain
    engine's methods in one line)."""
    name, model = list(tiny_models())[index]
    randomize(model, 2)  # a seed whose labels vary over the inputs
    weights, biases = tiny_chain(name, model)
    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(20 + index)
    verdicts = []
    for _ in range(3):
        x0 = rng.uniform(-1, 1, weights[0].shape[1])
        for delta in (0.05, 0.5, 2.0):
            exact = def1_min_margin(weights, biases, x0, delta, "inf")
            if abs(exact) < AMBIGUOUS:
                continue
            res = local_robustness(model, x0.reshape(shape), delta, workers=1)
            assert res.robust == (exact > 0), (name, delta, exact)
            verdicts.append(res.robust)
    assert {True, False} <= set(verdicts), name
    with pytest.raises(ValueError, match="method='milp' needs an affine/ReLU chain"):
        local_robustness(model, np.zeros(shape), 0.1, method="milp")


@pytest.fixture(scope="module")
def digits_conv_net():
    """A small conv net trained on sklearn's 8x8 digits (keras_ndsru.datasets'
    fixed train/test split), pixels scaled to [0, 1]."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from keras_ndsru.datasets.digits import split_indices

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target
    split = split_indices()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(4, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train, test = split["train"], split["test"]
    model.fit(x[train], y[train], epochs=8, batch_size=64, verbose=0)
    accuracy = model.evaluate(x[test], y[test], verbose=0)[1]
    return model, x[test], y[test], accuracy


def test_digits_conv_net_at_several_deltas(digits_conv_net):
    model, x_test, y_test, accuracy = digits_conv_net
    assert accuracy > 0.85
    graph = graph_from_keras(model)
    assert graph.n_relus > 100 and "MaxPool" in chain_reason(graph)
    rng = np.random.default_rng(0)
    verdicts = {}
    for i in range(3):
        x0 = x_test[i].astype(np.float64)
        label = int(np.argmax(keras_forward(model, x0[None])[0]))
        for delta in (0.002, 0.02, 0.3):
            res = local_robustness(
                model, x0, delta, domain=(0.0, 1.0), workers=1, timeout=60
            )
            verdicts[(i, delta)] = res.robust
            assert res.label == label
            lower, upper = np.maximum(x0 - delta, 0.0), np.minimum(x0 + delta, 1.0)
            if res.robust:
                # Sampling (random points and corners) never changes the label.
                pts = rng.uniform(lower, upper, size=(1500, *x0.shape))
                corners = np.where(rng.integers(0, 2, pts.shape), lower, upper)
                y = keras_forward(model, np.concatenate([pts, corners]))
                assert np.all(np.argmax(y, axis=1) == label)
            elif res.robust is False:
                x = res.counterexample
                assert np.all(x >= lower) and np.all(x <= upper)
                y = keras_forward(model, x[None])[0]
                assert np.any(np.delete(y, label) >= y[label])
    decided = [v for v in verdicts.values() if v is not None]
    assert {True, False} <= set(decided), verdicts
    assert all(verdicts[(i, 0.002)] is True for i in range(3)), verdicts
    assert all(verdicts[(i, 0.3)] is False for i in range(3)), verdicts


def test_digits_conv_net_max_robust_delta(digits_conv_net):
    # The binary search's last steps sit at the decision boundary, where the
    # bounds no longer suffice and branch and bound decides.
    model, x_test, _, _ = digits_conv_net
    x0 = x_test[0].astype(np.float64)
    res = max_robust_delta(
        model, x0, upper=0.3, precision=1e-3, domain=(0.0, 1.0), workers=1, timeout=60
    )
    assert res.exact and 0 < res.delta < res.upper <= res.delta + 1e-3
    label = int(np.argmax(keras_forward(model, x0[None])[0]))
    y = keras_forward(model, res.counterexample[None])[0]
    assert np.any(np.delete(y, label) >= y[label])
    assert np.abs(res.counterexample - x0).max() <= res.upper
    rng = np.random.default_rng(1)
    lower = np.maximum(x0 - res.delta, 0.0)
    upper = np.minimum(x0 + res.delta, 1.0)
    pts = rng.uniform(lower, upper, size=(3000, *x0.shape))
    assert np.all(np.argmax(keras_forward(model, pts), axis=1) == label)


def test_chains_with_many_inputs_take_the_graph_engine(monkeypatch):
    """A Keras MLP with <= 16 inputs goes to the chain engine (input
    splitting); with more, to the graph engine (branch and bound: on 784
    inputs it decided 3 of 3 MNIST queries where the chain's MILP decided 1
    in 60 s); method="milp" keeps the chain."""
    from keras_ndsru.verify import queries

    engines = []
    run = queries._run

    def recorded(network, *args):
        engines.append(type(network).__name__)
        return run(network, *args)

    monkeypatch.setattr(queries, "_run", recorded)
    for inputs in (4, 20):
        model = randomize(
            keras.Sequential(
                [keras.Input((inputs,)), L.Dense(6, activation="relu"), L.Dense(3)]
            ),
            inputs,
        )
        x0 = np.zeros(inputs)
        auto = local_robustness(model, x0, 0.05, workers=1)
        milp = local_robustness(model, x0, 0.05, workers=1, method="milp")
        assert auto.robust == milp.robust and auto.robust is not None
    assert engines == ["ReluNetwork", "ReluNetwork", "Graph", "ReluNetwork"]
