"""keras_ndsru.SRU against the official PyTorch implementation (PyPI `sru`).

`from_official_sru` converts the official modules' weights; the converted
layers must give the official outputs, last states and input gradients.

Importing `sru` JIT-compiles its C++ and CUDA kernels (tens of seconds, and
it needs ninja) and TorchScript-compiles wrappers that call them. The fixture
stubs `torch.utils.cpp_extension.load` and `torch.jit.script` during that
import, so nothing is compiled, and runs the official modules with autograd
on, where `sru` uses its pure-PyTorch recurrence
(`elementwise_recurrence_naive`): the code path official users train with on
CPU, which never calls the compiled kernels.
"""

import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ndsru
from keras_ndsru import SRU
from keras_ndsru.layers import from_official_sru

torch = pytest.importorskip("torch")

B, L = 3, 6


@pytest.fixture(scope="module")
def sru_package():
    import torch.utils.cpp_extension as cpp_extension

    real_load, real_script = cpp_extension.load, torch.jit.script
    cpp_extension.load = lambda *args, **kwargs: None
    torch.jit.script = lambda fn, *args, **kwargs: fn
    try:
        sru = pytest.importorskip("sru")
    finally:
        cpp_extension.load, torch.jit.script = real_load, real_script
    return sru


def _randomize(module, seed):
    """Random values in every parameter, gates far from saturation."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 1.2 - 0.6)


def _official(module, x, c0=None, mask=None):
    """Runs the official module on batch-major NumPy x; returns h, c, dh/dx."""
    xt = torch.tensor(np.transpose(x, (1, 0, 2)), requires_grad=True)
    kwargs = {}
    if c0 is not None:
        kwargs["c0"] = torch.tensor(c0)
    if mask is not None:
        kwargs["mask_pad"] = torch.tensor(~mask.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Running SRU on CPU with grad_enabled"
        h, c = module(xt, **kwargs)
    weights = torch.tensor(_loss_weights(h.shape[2]))
    (h.permute(1, 0, 2) * weights).sum().backward()
    return (
        h.detach().numpy().transpose(1, 0, 2),
        c.detach().numpy(),
        xt.grad.numpy().transpose(1, 0, 2),
    )


def _loss_weights(width):
    return np.random.default_rng(7).normal(size=(B, L, width)).astype(np.float32)


def _ours(layers, x, c0=None, mask=None):
    """Runs the converted layers; returns h, the last c per layer, dh/dx."""
    x = tf.constant(x)
    states = []
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = x
        for layer in layers:
            if isinstance(layer, SRU):
                layer.return_state = True
                kwargs = {"mask": None if mask is None else tf.constant(mask)}
                if c0 is not None:
                    kwargs["initial_state"] = tf.constant(c0[len(states)])
                h, c = layer(h, **kwargs)
                states.append(c.numpy())
            else:
                h = layer(h)
        loss = tf.reduce_sum(h * _loss_weights(h.shape[-1]))
    return h.numpy(), np.stack(states), tape.gradient(loss, x).numpy()


def _mask():
    lengths = np.array([L, 4, 1])
    return np.arange(L)[None, :] < lengths[:, None]


CASES = {
    # name: (SRU kwargs, input size)
    "uni_identity_highway": (dict(hidden_size=5, highway_bias=-1.0, rescale=True), 5),
    "uni_projected_highway": (dict(hidden_size=5, highway_bias=-0.5, rescale=True), 7),
    "bi_half_input_highway": (dict(hidden_size=4, bidirectional=True), 8),
    "bi_half_input_highway_rescaled": (
        dict(hidden_size=4, bidirectional=True, rescale=True, highway_bias=-1.0),
        8,
    ),
    "bi_projected_highway": (dict(hidden_size=4, bidirectional=True, rescale=True), 6),
    # the official cell learns W_3 although the input size equals hidden_size
    "bi_input_size_equals_units": (dict(hidden_size=4, bidirectional=True), 4),
    "layer_norm_projection": (
        dict(hidden_size=6, layer_norm=True, projection_size=3, highway_bias=-2.0),
        9,
    ),
    "input_to_hidden_first": (
        dict(hidden_size=4, bidirectional=True, proj_input_to_hidden_first=True),
        5,
    ),
}


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_stacked_sru_matches_official(sru_package, case, masked):
    kwargs, input_size = CASES[case]
    torch.manual_seed(0)
    module = sru_package.SRU(input_size, num_layers=2, **kwargs)
    _randomize(module, seed=1)
    module.train()  # autograd path; no dropout is configured
    n_dir = 2 if kwargs.get("bidirectional") else 1
    out = kwargs["hidden_size"] * n_dir
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, L, input_size)).astype(np.float32)
    c0 = rng.normal(size=(2, B, out)).astype(np.float32)
    mask = _mask() if masked else None

    h_ref, c_ref, dx_ref = _official(module, x, c0, mask)
    h, c, dx = _ours(from_official_sru(module, use_fused_kernel=False), x, c0, mask)

    np.testing.assert_allclose(h, h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c, c_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)
    if masked:  # padded steps output exactly zero in both
        assert np.all(h[~mask] == 0.0)


def test_fused_path_matches_official(sru_package):
    status = pytest.importorskip("keras_ndsru.ops").fused_kernel_status()
    if status.path != "fused":
        pytest.skip(f"fused op unavailable: {status.reason}")
    module = sru_package.SRU(8, 4, num_layers=2, bidirectional=True)
    _randomize(module, seed=2)
    x = np.random.default_rng(1).normal(size=(B, L, 8)).astype(np.float32)
    mask = _mask()
    h_ref, c_ref, dx_ref = _official(module, x, mask=mask)
    h, c, dx = _ours(from_official_sru(module, use_fused_kernel=True), x, mask=mask)
    np.testing.assert_allclose(h, h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c, c_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)


def test_single_cell(sru_package):
    cell = sru_package.SRUCell(6, 3, highway_bias=-1.0, rescale=True)
    _randomize(cell, seed=3)
    x = np.random.default_rng(2).normal(size=(B, L, 6)).astype(np.float32)
    layers = from_official_sru(cell, use_fused_kernel=False, name="conv")
    assert [layer.name for layer in layers] == ["conv_0"]
    h_ref, c_ref, dx_ref = _official(cell, x)
    h, c, dx = _ours(layers, x)
    np.testing.assert_allclose(h, h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c[0], c_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, received",
    [
        (dict(use_tanh=True), "use_tanh=True"),
        (dict(has_skip_term=False), "has_skip_term=False"),
        (dict(layer_norm=True, normalize_after=True), "normalize_after=True"),
    ],
)
def test_unsupported_options_raise(sru_package, kwargs, received):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sru's own deprecation warnings
        module = sru_package.SRU(4, 4, num_layers=1, **kwargs)
    with pytest.raises(ValueError, match="official SRU cell 0") as info:
        from_official_sru(module)
    assert str(info.value).endswith(f"Received: {received}")


def test_official_dropout_warns_once_per_conversion(sru_package):
    # The official stacked SRU puts `dropout` on every cell but the last.
    module = sru_package.SRU(4, 4, num_layers=3, dropout=0.3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers = from_official_sru(module, use_fused_kernel=False)
    dropout = [w for w in caught if "dropout" in str(w.message)]
    assert len(dropout) == 1, [str(w.message) for w in dropout]
    message = str(dropout[0].message)
    assert "cells [0, 1]" in message and "dropout=0.3" in message
    assert dropout[0].filename == __file__  # points at the caller
    assert len(layers) == 3


def test_converted_model_saves_and_reloads(sru_package, tmp_path):
    module = sru_package.SRU(6, 4, num_layers=2, bidirectional=True)
    _randomize(module, seed=4)
    layers = from_official_sru(module, use_fused_kernel=False)
    model = keras.Sequential([keras.Input((None, 6)), *layers])
    x = np.random.default_rng(3).normal(size=(B, L, 6)).astype(np.float32)
    path = tmp_path / "converted.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert [layer.highway_projection for layer in restored.layers] == [True, True]
    np.testing.assert_array_equal(restored(x), model(x))


def test_exported_at_top_level_and_importing_loads_no_torch():
    assert keras_ndsru.from_official_sru is from_official_sru
    assert "from_official_sru" in keras_ndsru.__all__
    assert "layers" in keras_ndsru.__all__
    script = (
        "import sys, keras_ndsru\n"
        "assert keras_ndsru.layers.from_official_sru is keras_ndsru.from_official_sru\n"
        "print(sorted(m for m in ('torch', 'sru') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.split("\n")[-2] == "[]"


def test_rejects_other_modules():
    with pytest.raises(TypeError, match="Received: module=LSTM"):
        from_official_sru(torch.nn.LSTM(3, 3))
