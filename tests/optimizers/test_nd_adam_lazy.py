"""NDAdam's lazy (row-sparse) updates against an independent NumPy LazyAdam."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from backend_subprocess import run_json  # tests/ is on pythonpath (pyproject)
from lazy_adam_numpy import NumpyLazyAdam
from ndadam_numpy import NumpyNDAdam

from keras_ndsru.optimizers import NDAdam

HERE = Path(__file__).resolve().parent
VOCAB, DIM = 12, 3
# Row indices of each step's gradient: repeated indices, and rows that are
# touched in one step and not in the next (where lazy and dense differ).
STEP_INDICES = [[1, 4, 1, 7, 1], [4, 2, 2], [9, 1, 4, 4, 0], [2, 11]]


def sparse_steps(seed=0):
    rng = np.random.default_rng(seed)
    for indices in STEP_INDICES:
        values = rng.normal(size=(len(indices), DIM)).astype("float32")
        yield np.array(indices, dtype="int32"), values


def indexed_slices(indices, values):
    return tf.IndexedSlices(
        tf.constant(values), tf.constant(indices), tf.constant([VOCAB, DIM])
    )


def dense(indices, values):
    out = np.zeros((VOCAB, DIM))
    np.add.at(out, indices, values)
    return out


def table(seed=1):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(VOCAB, DIM)).astype("float32")
    return keras.Variable(values, name="embeddings")


def state(optimizer, variable):
    i = optimizer._get_variable_index(variable)
    return [
        np.asarray(x)
        for x in (variable, optimizer._momentums[i], optimizer._velocities[i])
    ]


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf_function"])
def test_matches_numpy_lazy_adam_with_duplicate_indices(traced):
    variable = table()
    optimizer = NDAdam(learning_rate=0.01, lazy_sparse_updates=True)
    optimizer.build([variable])
    assert optimizer.scalar_variables == [variable]
    reference = NumpyLazyAdam(np.asarray(variable), lr=0.01)
    apply = lambda g: optimizer.apply([g], [variable])  # noqa: E731
    apply = tf.function(apply) if traced else apply
    for indices, values in sparse_steps():
        before = state(optimizer, variable)
        apply(indexed_slices(indices, values))
        reference.step(indices, values)
        w, m, v = after = state(optimizer, variable)
        np.testing.assert_allclose(w, reference.w, atol=1e-6)
        np.testing.assert_allclose(m, reference.m, atol=1e-7)
        np.testing.assert_allclose(v, reference.v, rtol=1e-5, atol=1e-12)
        untouched = sorted(set(range(VOCAB)) - set(indices))
        for old, new in zip(before, after):  # not read, not written
            np.testing.assert_array_equal(new[untouched], old[untouched])


def test_default_is_adam_on_every_row():
    """Off (the default), the same row-sparse gradients take Keras' Adam step,
    the `tf.IndexedSlices` included: untouched rows keep moving with their
    momentum, and repeated indices are treated as Keras' Adam treats them
    (each occurrence squared before the sum), so that NDAdam's theta_s part
    stays Keras' Adam number for number."""
    variable, twin = table(), table()
    optimizer = NDAdam(learning_rate=0.01)
    adam = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-8)
    assert optimizer.get_config()["lazy_sparse_updates"] is False
    lazy = NumpyLazyAdam(np.asarray(variable), lr=0.01)
    for indices, values in sparse_steps():
        optimizer.apply([indexed_slices(indices, values)], [variable])
        adam.apply([indexed_slices(indices, values)], [twin])
        lazy.step(indices, values)
    np.testing.assert_allclose(np.asarray(variable), np.asarray(twin), atol=1e-7)
    assert np.abs(np.asarray(variable) - lazy.w).max() > 1e-3  # the flag matters


def test_weight_vectors_stay_exact_nd_adam():
    """A row-sparse gradient of a weight-vector variable (unit-norm rows
    here) takes Algorithm 1's dense step, lazy or not."""
    variable = table()
    optimizer = NDAdam(
        vector_learning_rate=0.05,
        vector_axes={variable.path: [1]},
        lazy_sparse_updates=True,
    )
    optimizer.build([variable])
    reference = NumpyNDAdam(
        {"e": np.asarray(variable)}, {"e": (1,)}, lr_s=0.001, lr_v=0.05
    )
    for indices, values in sparse_steps():
        optimizer.apply([indexed_slices(indices, values)], [variable])
        reference.step({"e": dense(indices, values)})
        np.testing.assert_allclose(np.asarray(variable), reference.w["e"], atol=2e-6)


# -- in a model: fit under XLA, MirroredStrategy, .keras ----------------------


def embedding_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(VOCAB, DIM),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )


def token_data():
    """Two batches of 4: rows 5-8 only in the first, 9-11 only in the second."""
    rng = np.random.default_rng(3)
    first = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8], size=(4, 5))
    second = rng.choice([0, 1, 2, 3, 4, 9, 10, 11], size=(4, 5))
    x = np.concatenate([first, second]).astype("int32")
    y = rng.normal(size=(8, 1)).astype("float32")
    return x, y


def test_fit_with_jit_compile_matches_numpy_lazy_adam():
    x, y = token_data()
    fitted, stepped = embedding_model(), embedding_model()
    fitted.compile(
        optimizer=NDAdam(learning_rate=0.01, lazy_sparse_updates=True),
        loss="mse",
        jit_compile=True,
    )
    fitted.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)

    # The same steps by hand, each checked against NumPy: LazyAdam for the
    # embedding, Algorithm 1 (kernel) and Adam (bias) for the Dense layer.
    embeddings, kernel, bias = stepped.trainable_variables
    optimizer = NDAdam(learning_rate=0.01, lazy_sparse_updates=True)
    optimizer.build(stepped.trainable_variables)
    lazy = NumpyLazyAdam(np.asarray(embeddings), lr=0.01)
    nd = NumpyNDAdam(
        {"k": np.asarray(kernel), "b": np.asarray(bias)},
        {"k": (0,), "b": None},
        lr_s=0.01,
        lr_v=0.05,
    )
    for _ in range(2):
        for batch in (slice(0, 4), slice(4, 8)):
            with tf.GradientTape() as tape:
                loss = keras.ops.mean(keras.ops.square(stepped(x[batch]) - y[batch]))
            grads = tape.gradient(loss, stepped.trainable_variables)
            assert isinstance(grads[0], tf.IndexedSlices)
            lazy.step(grads[0].indices.numpy(), grads[0].values.numpy())
            nd.step({"k": grads[1].numpy(), "b": grads[2].numpy()})
            optimizer.apply(grads, stepped.trainable_variables)
            np.testing.assert_allclose(np.asarray(embeddings), lazy.w, atol=2e-6)
            np.testing.assert_allclose(np.asarray(kernel), nd.w["k"], atol=2e-6)
    for a, b in zip(fitted.trainable_variables, stepped.trainable_variables):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), atol=1e-5, err_msg=a.path
        )


@pytest.mark.slow
def test_mirrored_strategy_two_cpu_replicas():
    result = run_json([HERE / "_lazy_distribute_check.py"])
    assert result["replicas"] == 2
    assert result["sparse_gradient_in_replica"]
    assert result["max_diff_vs_single_device"] < 1e-6
    # Rows touched only in the first step stayed put in the second.
    assert result["max_move_of_rows_left_alone"] == 0.0


def test_config_and_keras_round_trip(tmp_path):
    optimizer = NDAdam(lazy_sparse_updates=True)
    config = optimizer.get_config()
    assert config["lazy_sparse_updates"] is True
    again = NDAdam.from_config(json.loads(json.dumps(config)))
    assert again.lazy_sparse_updates is True and again.get_config() == config

    x, y = token_data()
    model = embedding_model()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.lazy_sparse_updates is True
    # The next steps, lazy on both, are the same.
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path
        )


@pytest.mark.parametrize("value", [1, "yes", None])
def test_bad_flag_is_one_clear_error(value):
    with pytest.raises(ValueError, match="lazy_sparse_updates") as info:
        NDAdam(lazy_sparse_updates=value)
    assert str(info.value).endswith(f"Received: lazy_sparse_updates={value!r}")
