"""Subprocess check: the SRU layer on the torch backend (KERAS_BACKEND=torch).

Runs with TensorFlow made unimportable, so any tf.* call on the torch path
fails loudly. Writes the layers' configs, weights, inputs, outputs and
autograd gradients to the .npz file named on the command line, for
tests/layers/test_sru_backends.py to compare with the NumPy oracle, and
prints one JSON line with the checks that need no oracle.
"""

import json
import sys
import tempfile
import warnings

sys.modules["tensorflow"] = None  # an import of TensorFlow now raises

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from counting_task import counting_data, counting_model  # noqa: E402

from keras_ndsru import SRU  # noqa: E402
from keras_ndsru.ops import (  # noqa: E402
    FusedKernelWarning,
    sru_recurrence,
    will_use_fused_kernel,
)

RAGGED = np.array([[1, 0, 1, 0, 1], [0, 1, 1, 1, 0]], bool)
RIGHT_PADDED = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)

# name: (input_dim, SRU arguments, mask, with an initial state)
ORACLE_CASES = {
    "bidirectional_ragged_c0": (
        3,
        dict(units=3, bidirectional=True, return_sequences=True),
        RAGGED,
        True,
    ),
    # Masked steps repeat the last valid output (Keras' default).
    "forward_right_padded": (
        3,
        dict(units=3, return_sequences=True),
        RIGHT_PADDED,
        True,
    ),
    "projected_highway_go_backwards": (
        4,
        dict(units=3, go_backwards=True, return_sequences=True),
        RIGHT_PADDED,
        True,
    ),
    "bidirectional_go_backwards_highway_projection": (
        3,
        dict(units=3, bidirectional=True, go_backwards=True, highway_projection=True),
        RAGGED,
        True,
    ),
    # h_last of a row without valid steps is 0, not a carried-in value.
    "last_output_of_an_empty_row_c0": (
        3,
        dict(units=3, bidirectional=True),
        np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], bool),
        True,
    ),
    "layer_norm_projection": (
        3,
        dict(units=3, layer_norm=True, projection_size=2, highway_bias=-1.0),
        None,
        False,
    ),
    "mixed_float16_ragged": (
        4,
        dict(units=4, return_sequences=True, dtype="mixed_float16"),
        RAGGED,
        True,
    ),
}


def randomize(layer, rng):
    for w in layer.trainable_weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype(w.dtype))


def tensor(x):
    return None if x is None else keras.ops.convert_to_tensor(x)


def numpy(x):
    return keras.ops.convert_to_numpy(x).astype(np.float64)


def oracle_cases(rng, arrays):
    configs = {}
    for name, (input_dim, kwargs, mask, with_c0) in ORACLE_CASES.items():
        layer = SRU(return_state=True, **kwargs)
        x = rng.normal(size=(2, 5, input_dim)).astype("float32")
        c0 = None
        if with_c0:
            c0 = rng.normal(size=(2, layer.output_size)).astype("float32")
        layer.build((None, 5, input_dim))
        randomize(layer, rng)
        output, state = layer(tensor(x), initial_state=tensor(c0), mask=tensor(mask))
        configs[name] = {
            "config": layer.get_config(),
            "dtypes": [str(output.dtype), str(state.dtype)],
        }
        arrays[f"{name}/x"] = x
        arrays[f"{name}/output"] = numpy(output)
        arrays[f"{name}/state"] = numpy(state)
        if mask is not None:
            arrays[f"{name}/mask"] = mask
        if c0 is not None:
            arrays[f"{name}/c0"] = c0
        for i, w in enumerate(layer.weights):
            arrays[f"{name}/weight{i}"] = numpy(w)
    return configs


def gradient_case(rng, arrays):
    """float64, tiny: d(sum(h * R))/dx and /dkernel by autograd."""
    layer = SRU(2, bidirectional=True, return_sequences=True, dtype="float64")
    layer.build((None, 3, 3))
    randomize(layer, rng)
    x = rng.normal(size=(2, 3, 3))
    mask = np.array([[1, 0, 1], [1, 1, 0]], bool)
    weights = rng.normal(size=(2, 3, 4))
    x_t = torch.tensor(x, requires_grad=True)
    h = layer(x_t, mask=tensor(mask))
    loss = torch.sum(h * torch.tensor(weights))
    grad_x, grad_kernel = torch.autograd.grad(loss, [x_t, layer.kernel.value])
    arrays.update(
        {
            "grad/x": x,
            "grad/mask": mask,
            "grad/loss_weights": weights,
            "grad/grad_x": numpy(grad_x),
            "grad/grad_kernel": numpy(grad_kernel),
        }
    )
    for i, w in enumerate(layer.weights):
        arrays[f"grad/weight{i}"] = numpy(w)
    return {"config": layer.get_config()}


def recurrence_gradient_case(rng, arrays):
    """float64 end to end (no matmul): d(loss)/d(every input) by autograd
    of `sru_recurrence`, bidirectional with a ragged mask and c0."""
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool)
    inputs = {
        "u": rng.normal(size=(2, 4, 12)),
        "x_highway": rng.normal(size=(2, 4, 4)),
        "weight_c": rng.normal(size=8),
        "bias": rng.normal(size=8),
        "c0": rng.normal(size=(2, 4)),
    }
    loss_weights = [rng.normal(size=s) for s in ((2, 4, 4), (2, 4), (2, 4))]
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items()}
    out = sru_recurrence(
        **leaves, mask=tensor(mask), alpha=1.3, direction="bidirectional"
    )
    loss = sum(torch.sum(o * torch.tensor(w)) for o, w in zip(out, loss_weights))
    grads = torch.autograd.grad(loss, list(leaves.values()))
    for (name, value), grad in zip(inputs.items(), grads):
        arrays[f"recurrence/{name}"] = value
        arrays[f"recurrence/grad_{name}"] = numpy(grad)
    for i, w in enumerate(loss_weights):
        arrays[f"recurrence/loss_weights{i}"] = w
    arrays["recurrence/mask"] = mask
    return [str(o.dtype) for o in out]


def dropout_case(rng, arrays):
    """Projected highway, so the dropped x feeds every matmul."""
    layer = SRU(3, dropout=0.5, seed=3, return_sequences=True, highway_projection=True)
    layer.build((None, 4, 3))
    randomize(layer, rng)
    x = rng.normal(size=(4, 4, 3)).astype("float32")
    dropped = numpy(layer(tensor(x), training=True))
    again = SRU.from_config(layer.get_config())
    again.build((None, 4, 3))
    again.set_weights(layer.get_weights())
    arrays.update({"dropout/x": x, "dropout/output": dropped})
    for i, w in enumerate(layer.weights):
        arrays[f"dropout/weight{i}"] = numpy(w)
    return {
        "config": layer.get_config(),
        "same_seed_diff": float(
            np.max(np.abs(dropped - numpy(again(tensor(x), training=True))))
        ),
        "inference_vs_training_diff": float(
            np.max(np.abs(dropped - numpy(layer(tensor(x)))))
        ),
    }


def stateful_and_empty(rng):
    layer = SRU(3, stateful=True, return_state=True)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    layer(tensor(x[:, :4]))
    out, state = layer(tensor(x[:, 4:]))
    full = SRU(3, return_state=True)
    full.build((2, 6, 3))
    full.set_weights(layer.get_weights()[:-1])  # all but the stored state
    full_out, full_state = full(tensor(x))
    stored = numpy(layer.state)
    layer.reset_state()
    c0 = rng.normal(size=(2, 3)).astype("float32")
    seq, c_last = SRU(3, return_sequences=True, return_state=True)(
        tensor(np.zeros((2, 0, 3), "float32")), initial_state=tensor(c0)
    )
    batch0 = SRU(3, bidirectional=True)(tensor(np.zeros((0, 4, 3), "float32")))
    return {
        "stateful_output_diff": float(np.max(np.abs(numpy(out) - numpy(full_out)))),
        "stateful_state_diff": float(np.max(np.abs(numpy(state) - numpy(full_state)))),
        "stateful_stored_diff": float(np.max(np.abs(stored - numpy(full_state)))),
        "reset_state_max": float(np.max(np.abs(numpy(layer.state)))),
        "zero_steps_shape": list(seq.shape),
        "zero_steps_state_diff": float(np.max(np.abs(numpy(c_last) - c0))),
        "zero_batch_shape": list(batch0.shape),
    }


def fused_true_error():
    try:
        SRU(3, use_fused_kernel=True)
    except RuntimeError as error:
        return str(error)
    return None


def fit_and_save(rng):
    """Counts tokens in right-padded sequences: Embedding(mask_zero) ->
    Bidirectional(SRU) -> SRU; the loss must drop, save/load must match."""
    tokens, y = counting_data(rng)
    model = counting_model(keras, SRU)
    history = model.fit(tokens, y, batch_size=32, epochs=6, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
    reload_diff = np.max(
        np.abs(
            model.predict(tokens[:8], verbose=0) - loaded.predict(tokens[:8], verbose=0)
        )
    )
    return {"fit_losses": history.history["loss"], "reload_diff": float(reload_diff)}


def main(npz_path):
    rng = np.random.default_rng(0)
    arrays = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configs = oracle_cases(rng, arrays)
        configs["grad"] = gradient_case(rng, arrays)
        recurrence_dtypes = recurrence_gradient_case(rng, arrays)
        result = dropout_case(rng, arrays)
        configs["dropout"] = {"config": result.pop("config")}
        result.update(stateful_and_empty(rng))
        result.update(fit_and_save(rng))
        auto = will_use_fused_kernel("auto")
        direct = sru_recurrence(
            np.zeros((1, 2, 6), "float32"),
            np.zeros((1, 2, 2), "float32"),
            np.zeros(4, "float32"),
            np.zeros(4, "float32"),
        )
    np.savez(npz_path, **arrays)
    result.update(
        {
            "backend": keras.backend.backend(),
            "recurrence_dtypes": recurrence_dtypes,
            "configs": configs,
            "fused_true_error": fused_true_error(),
            "will_use_fused_auto": auto,
            "supports_jit": SRU(3).supports_jit,
            "direct_h_shape": list(direct.h.shape),
            "fused_kernel_warnings": sum(
                issubclass(w.category, FusedKernelWarning) for w in caught
            ),
            "tensorflow_imported": sys.modules.get("tensorflow") is not None,
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
