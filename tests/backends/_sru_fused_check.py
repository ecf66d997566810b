"""Subprocess check: the fused SRU op on the torch or JAX backend.

Run as `python _sru_fused_check.py OUT.npz` with KERAS_BACKEND=torch or jax
(JAX with JAX_ENABLE_X64=1, for the float64 gradient cases), with
TensorFlow made unimportable. Runs `sru_recurrence(..., use_fused_kernel=
True)` on random inputs (every direction, right-padded masks with empty
rows, initial states, alpha, float64 / float32 / float16 / bfloat16),
takes the gradients of a random linear loss of all three outputs with the
backend's autograd, and writes inputs, outputs and gradients to OUT.npz for
tests/backends/test_sru_fused_backends.py to compare with the NumPy oracle
and its central differences. Prints one JSON line with the checks that need
no oracle: the loader's policy (status, the environment variable, a missing
library), a mask that is not right-padded, compilation (`torch.compile`
with `fullgraph=True`, `jax.jit`), the SRU layer's path and a short `fit`.
"""

import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

sys.modules["tensorflow"] = None  # an import of TensorFlow now raises

import keras  # noqa: E402
import numpy as np  # noqa: E402
from counting_task import counting_data, counting_model  # noqa: E402

from keras_ndsru import SRU  # noqa: E402
from keras_ndsru.ops import (  # noqa: E402
    FusedKernelWarning,
    fused_kernel_status,
    op_library,
    sru_recurrence,
    sru_reference,
    will_use_fused_kernel,
)
from keras_ndsru.ops.sru_recurrence import supports_jit  # noqa: E402

BACKEND = keras.backend.backend()
if BACKEND == "torch":
    import torch
else:
    import jax
    import jax.numpy as jnp

NAMES = ("u", "x_highway", "weight_c", "bias", "c0")
# name: (dtype, direction, lengths or None, with c0, alpha, (batch, time, units))
CASES = {
    "f64_forward": ("float64", "forward", [5, 2, 0], True, 1.3, (3, 5, 3)),
    "f64_backward": ("float64", "backward", [1, 5, 3], True, 0.7, (3, 5, 3)),
    "f64_bidirectional": ("float64", "bidirectional", [5, 0, 4], True, 1.3, (3, 5, 2)),
    "f64_no_mask_no_c0": ("float64", "bidirectional", None, False, 1.0, (2, 4, 3)),
    "f32_forward": ("float32", "forward", [16, 9, 1, 0], True, 1.7, (4, 16, 40)),
    "f32_bidirectional": ("float32", "bidirectional", None, False, 1.0, (4, 16, 40)),
    "f16_bidirectional": ("float16", "bidirectional", [8, 3], True, 1.3, (2, 8, 24)),
    "bf16_backward": ("bfloat16", "backward", [8, 5], True, 1.3, (2, 8, 24)),
}


def to_tensor(x, dtype=None):
    return keras.ops.convert_to_tensor(x, dtype)


def to_numpy(x):
    x = keras.ops.convert_to_tensor(x)
    if BACKEND == "torch":
        return x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x.astype(jnp.float32 if x.dtype == jnp.bfloat16 else x.dtype))


def random_inputs(rng, dtype, direction, with_c0, sizes):
    batch, steps, units = sizes
    n_dir = 2 if direction == "bidirectional" else 1
    state = "float64" if dtype == "float64" else "float32"
    shapes = {
        "u": ((batch, steps, n_dir * 3 * units), dtype),
        "x_highway": ((batch, steps, n_dir * units), dtype),
        "weight_c": ((n_dir * 2 * units,), state),
        "bias": ((n_dir * 2 * units,), state),
        "c0": ((batch, n_dir * units), state),
    }
    if not with_c0:
        del shapes["c0"]
    return {k: to_tensor(rng.normal(size=s), d) for k, (s, d) in shapes.items()}


def outputs_and_grads(fn, inputs, loss_weights):
    """`fn(**inputs)` and the gradients of sum(output * weight) with respect
    to every input, by the backend's autograd (losses in float64/32)."""
    names = list(inputs)
    if BACKEND == "torch":
        leaves = {k: v.detach().requires_grad_(True) for k, v in inputs.items()}
        out = fn(**leaves)
        loss = sum(
            torch.sum(o.to(torch.float64) * torch.as_tensor(w))
            for o, w in zip(out, loss_weights)
        )
        grads = torch.autograd.grad(loss, [leaves[k] for k in names])
        return out, dict(zip(names, grads))

    def loss(leaves):
        out = fn(**leaves)
        total = sum(
            jnp.sum(o.astype(jnp.float32) * jnp.asarray(w, jnp.float32))
            for o, w in zip(out, loss_weights)
        )
        return total, out

    (_, out), grads = jax.value_and_grad(loss, has_aux=True)(dict(inputs))
    return out, grads


def recurrence_cases(rng, arrays):
    cases = {}
    for name, (dtype, direction, lengths, with_c0, alpha, sizes) in CASES.items():
        inputs = random_inputs(rng, dtype, direction, with_c0, sizes)
        mask = None
        if lengths is not None:
            mask = np.arange(sizes[1])[None, :] < np.array(lengths)[:, None]
        out_shapes = [(sizes[0], sizes[1]), (sizes[0],), (sizes[0],)]
        width = inputs["x_highway"].shape[-1]
        loss_weights = [rng.normal(size=(*s, width)) for s in out_shapes]

        def fused(mask=mask, alpha=alpha, direction=direction, **kw):
            m = None if mask is None else to_tensor(mask)
            return sru_recurrence(
                **kw, mask=m, alpha=alpha, direction=direction, use_fused_kernel=True
            )

        out, grads = outputs_and_grads(fused, inputs, loss_weights)
        cases[name] = {
            "dtype": dtype,
            "direction": direction,
            "alpha": alpha,
            "out_dtypes": [str(o.dtype).replace("torch.", "") for o in out],
            "grad_dtypes": [str(grads[k].dtype).replace("torch.", "") for k in inputs],
        }
        for k, v in inputs.items():
            arrays[f"{name}/{k}"] = to_numpy(v)
        if mask is not None:
            arrays[f"{name}/mask"] = mask
        for i, (o, w) in enumerate(zip(out, loss_weights)):
            arrays[f"{name}/out{i}"] = to_numpy(o)
            arrays[f"{name}/loss_weights{i}"] = w
        for k in inputs:
            arrays[f"{name}/grad_{k}"] = to_numpy(grads[k])
    return cases


def small_inputs(rng):
    return random_inputs(rng, "float32", "forward", True, (2, 5, 3))


def ragged_mask_checks(rng):
    """A mask that is not right-padded: "auto" runs the reference, True
    raises."""
    inputs = small_inputs(rng)
    mask = to_tensor(np.array([[1, 0, 1, 1, 0], [1, 1, 1, 0, 0]], bool))
    auto = sru_recurrence(**inputs, mask=mask, alpha=1.3)
    want = sru_reference(**inputs, mask=mask, alpha=1.3)
    try:
        sru_recurrence(**inputs, mask=mask, use_fused_kernel=True)
        error = None
    except ValueError as e:
        error = str(e)
    return {
        "ragged_auto_diff": float(np.max(np.abs(to_numpy(auto.h) - to_numpy(want.h)))),
        "ragged_true_error": error,
    }


def policy_checks(rng):
    """The loader's policy on this backend: status, the environment
    variable, a missing library, a library built for another release of the
    framework (each "auto" fallback warns once)."""
    inputs = small_inputs(rng)
    want = to_numpy(sru_reference(**inputs).h)
    found = {
        "status": fused_kernel_status()._asdict(),
        "will_use_auto": will_use_fused_kernel("auto"),
        "supports_jit": supports_jit("auto"),
        "layer_supports_jit": SRU(3).supports_jit,
    }

    def fallback(tag):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            diffs = [
                float(np.max(np.abs(to_numpy(sru_recurrence(**inputs).h) - want)))
                for _ in range(2)
            ]
        try:
            sru_recurrence(**inputs, use_fused_kernel=True)
            error = None
        except RuntimeError as e:
            error = str(e)
        found[f"{tag}_status"] = fused_kernel_status().path
        found[f"{tag}_diff"] = max(diffs)
        found[f"{tag}_warnings"] = [
            str(w.message) for w in caught if w.category is FusedKernelWarning
        ]
        found[f"{tag}_true_error"] = error

    os.environ[op_library.DISABLE_ENV_VAR] = "1"
    try:
        fallback("disabled")
    finally:
        del os.environ[op_library.DISABLE_ENV_VAR]
    real = op_library._other_loaders[BACKEND]
    framework = real.framework
    with tempfile.TemporaryDirectory() as tmp:
        missing, other = Path(tmp, "missing"), Path(tmp, "other")
        other.mkdir()
        # The real library with a record naming another release.
        shutil.copy(real.library_path, other / framework.library_name)
        info = json.loads(real.build_info_path.read_text())
        info[framework.version_key] = "0.1.0"
        (other / framework.build_info_name).write_text(json.dumps(info))
        for tag, folder in (("missing", missing), ("other_version", other)):
            op_library._other_loaders[BACKEND] = op_library.OpLibraryLoader(
                folder, framework=framework
            )
            try:
                fallback(tag)
            finally:
                op_library._other_loaders[BACKEND] = real
    found["fused_after_restore"] = fused_kernel_status().path
    return found


def compile_checks(rng):
    """The fused recurrence compiled: torch.compile(fullgraph=True), i.e.
    no graph break, through AOT autograd (fake kernels + the registered
    gradient); jax.jit of the value and gradient. Returns the largest
    difference to the eager call, outputs and gradients."""
    inputs = random_inputs(rng, "float32", "bidirectional", True, (3, 7, 8))

    def loss(**kw):
        out = sru_recurrence(
            **kw, alpha=1.3, direction="bidirectional", use_fused_kernel=True
        )
        return keras.ops.sum(out.h * out.h) + keras.ops.sum(out.c_last)

    if BACKEND == "torch":

        def value_and_grads(fn):
            leaves = {k: v.detach().requires_grad_(True) for k, v in inputs.items()}
            value = fn(**leaves)
            return [value, *torch.autograd.grad(value, list(leaves.values()))]

        eager = value_and_grads(loss)
        compiled = value_and_grads(
            torch.compile(loss, fullgraph=True, backend="aot_eager")
        )
        u, x = inputs["u"], inputs["x_highway"]
        lengths = torch.tensor([7, 3, 0], dtype=torch.int32)
        args = (u, x, inputs["weight_c"], inputs["bias"], inputs["c0"], lengths)
        checks = torch.library.opcheck(
            torch.ops.keras_ndsru.sru_forward.default,
            (*[a.detach().requires_grad_(a.is_floating_point()) for a in args], 1.3),
            {"direction": "bidirectional"},
        )
        extra = {"opcheck": checks}
    else:

        def value_and_grads(fn):
            value, grads = fn(dict(inputs))
            return [value, *grads.values()]

        vg = jax.value_and_grad(lambda kw: loss(**kw))
        eager = value_and_grads(vg)
        compiled = value_and_grads(jax.jit(vg))
        lowered = jax.jit(vg).lower(dict(inputs)).as_text()
        extra = {"ffi_calls_in_hlo": lowered.count("keras_ndsru_sru")}
    diff = max(
        float(np.max(np.abs(to_numpy(a) - to_numpy(b))))
        for a, b in zip(eager, compiled)
    )
    return {"compiled_diff": diff, **extra}


def layer_checks(rng, arrays):
    """The SRU layer on the fused path (its outputs for the oracle; masked
    steps repeat the forward direction's last valid output) and a short fit
    (jit-compiled on JAX by jit_compile="auto")."""
    layer = SRU(
        5,
        bidirectional=True,
        return_sequences=True,
        return_state=True,
        zero_output_for_mask=False,
    )
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = np.arange(6)[None, :] < np.array([6, 2, 0])[:, None]
    c0 = rng.normal(size=(3, 10)).astype("float32")
    layer.build((None, 6, 4))
    for w in layer.trainable_weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    out, state = layer(to_tensor(x), initial_state=to_tensor(c0), mask=to_tensor(mask))
    arrays.update({"layer/x": x, "layer/mask": mask, "layer/c0": c0})
    arrays.update({"layer/output": to_numpy(out), "layer/state": to_numpy(state)})
    for i, w in enumerate(layer.weights):
        arrays[f"layer/weight{i}"] = to_numpy(w)

    tokens, y = counting_data(rng, samples=96)
    model = counting_model(keras, SRU)
    history = model.fit(tokens, y, batch_size=32, epochs=5, verbose=0)
    return {
        "layer_config": layer.get_config(),
        "fit_losses": history.history["loss"],
        "fit_jit_compile": bool(model.jit_compile),
    }


def main(npz_path):
    rng = np.random.default_rng(0)
    arrays = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = {"backend": BACKEND, "cases": recurrence_cases(rng, arrays)}
        result.update(ragged_mask_checks(rng))
        result.update(compile_checks(rng))
        result.update(layer_checks(rng, arrays))
    result["warnings_on_fused_path"] = [
        str(w.message) for w in caught if w.category is FusedKernelWarning
    ]
    result.update(policy_checks(rng))
    result["tensorflow_imported"] = sys.modules.get("tensorflow") is not None
    np.savez(npz_path, **arrays)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
