"""Conversion of trained PyTorch models of the official SRU package.

The official implementation of Lei et al. (arXiv 1709.02755) is the PyPI
package `sru` (`sru.SRU`, `sru.SRUCell`). `from_official_sru` turns one of its
modules into `keras_ndsru.SRU` layers that compute the same eqs. (1)-(4), so a
model trained in PyTorch can be evaluated or fine-tuned in Keras. PyTorch is
not imported here: the module's tensors are read through `.detach()`.
"""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np

from keras_ndsru.layers.sru import SRU


def _array(tensor) -> np.ndarray:
    """A PyTorch tensor (or array-like) as a float32 NumPy array."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu().float().numpy()
    return np.asarray(tensor, dtype=np.float32)


def _cell_error(index: int, what: str, received: str) -> ValueError:
    return ValueError(
        f"Cannot convert official SRU cell {index}: keras_ndsru.SRU has no "
        f"equivalent of {what}. Received: {received}"
    )


def _check_cell(cell, index: int) -> None:
    if getattr(cell, "custom_m", None) is not None:
        raise _cell_error(index, "a custom input module", f"custom_m={cell.custom_m!r}")
    if getattr(cell, "activation_type", 0) != 0:
        raise _cell_error(index, "a tanh on c in eq. (4)", "use_tanh=True")
    if not getattr(cell, "has_skip_term", True):
        raise _cell_error(
            index, "a cell without the highway term of eq. (4)", "has_skip_term=False"
        )
    if cell.layer_norm is not None:
        if getattr(cell, "normalize_after", False):
            raise _cell_error(index, "a layer norm on h", "normalize_after=True")
        if not math.isclose(float(cell.layer_norm.eps), 1e-5):
            raise _cell_error(
                index,
                "a layer norm epsilon other than 1e-5",
                f"layer_norm.eps={cell.layer_norm.eps}",
            )
        if getattr(cell.layer_norm, "weight", None) is None:
            raise _cell_error(
                index,
                "a layer norm without affine parameters",
                "layer_norm.elementwise_affine=False",
            )


def _alpha(cell) -> float:
    """The highway scale of the official cell, checked against eq. (4)."""
    if not cell.rescale:
        return 1.0
    alpha = float(_array(cell.scale_x).reshape(-1)[0])
    expected = math.sqrt(1.0 + 2.0 * math.exp(float(cell.highway_bias)))
    if not math.isclose(alpha, expected, rel_tol=1e-5):
        raise ValueError(
            f"The official cell's scale_x ({alpha}) is not sqrt(1 + 2 exp("
            f"highway_bias)) = {expected}, which keras_ndsru.SRU computes from "
            f"highway_bias. Received: scale_x={alpha}, "
            f"highway_bias={cell.highway_bias}"
        )
    return alpha


def _warn_dropout(cells) -> None:
    """One warning per conversion for the cells with the official `dropout`."""
    rate = [float(getattr(cell, "dropout", 0.0) or 0.0) for cell in cells]
    dropped = [i for i, r in enumerate(rate) if r > 0.0]
    if dropped:
        rates = sorted({rate[i] for i in dropped})
        warnings.warn(
            f"Official SRU cells {dropped} have dropout="
            f"{', '.join(map(str, rates))} (a mask on the gated term of h, "
            f"training only). keras_ndsru.SRU has no such dropout; the "
            f"converted layers compute the same outputs at inference but do "
            f"not reproduce it in training.",
            stacklevel=3,
        )


def _convert_cell(cell, index: int, use_fused_kernel, name: str | None) -> SRU:
    """One `sru.SRUCell` -> a built `keras_ndsru.SRU` with the same weights."""
    _check_cell(cell, index)
    input_size, units = int(cell.input_size), int(cell.hidden_size)
    n_dir = 2 if cell.bidirectional else 1
    k = int(cell.num_matrices)
    projection = int(getattr(cell, "projection_size", 0) or 0)
    layer_norm = cell.layer_norm is not None
    alpha = _alpha(cell)

    # Official: weight (m, n_dir * units * k), columns ordered (dir, unit, k).
    weight = _array(cell.weight)
    weight = weight.reshape(weight.shape[0], n_dir, units, k)
    gates = [weight[:, i, :, g] for i in range(n_dir) for g in range(3)]
    highway = []
    if k == 4:
        # h = r c + (1 - r) U_3: no run-time scale (it is folded into W_3 at
        # initialization), while keras_ndsru.SRU multiplies x W_h by alpha.
        highway = [weight[:, i, :, 3] / alpha for i in range(n_dir)]
    elif n_dir == 2:
        # k = 3 and input size 2 * units: direction i's highway term is its
        # half of the raw input, x[:, i * units:(i + 1) * units] * alpha:
        # a highway projection that selects that half.
        if projection or layer_norm:
            raise _cell_error(
                index,
                "a bidirectional cell with projection or layer norm whose "
                "highway term is half of the raw input",
                f"projection_size={projection}, layer_norm={layer_norm}",
            )
        eye = np.eye(input_size, dtype=np.float32)
        highway = [eye[:, i * units : (i + 1) * units] for i in range(n_dir)]
    kernel = np.concatenate(gates + highway, axis=1)

    layer = SRU(
        units,
        return_sequences=True,
        highway_bias=float(cell.highway_bias),
        rescale=bool(cell.rescale),
        dropout=float(getattr(cell, "rnn_dropout", 0.0)),
        layer_norm=layer_norm,
        projection_size=projection or None,
        bidirectional=bool(cell.bidirectional),
        highway_projection=True if highway else None,
        zero_output_for_mask=True,  # the official SRU's padded steps output 0
        use_fused_kernel=use_fused_kernel,
        name=name,
    )
    layer.build((None, None, input_size))
    if tuple(layer.kernel.shape) != kernel.shape:
        raise _cell_error(
            index,
            f"weights that map to a kernel of shape {kernel.shape}, not "
            f"{tuple(layer.kernel.shape)}",
            f"weight.shape={tuple(cell.weight.shape)}",
        )
    layer.kernel.assign(kernel)
    # Official weight_c / bias: (2, n_dir, units); ours: (n_dir, 2, units).
    for ours, theirs in ((layer.weight_c, cell.weight_c), (layer.bias, cell.bias)):
        ours.assign(
            _array(theirs).reshape(2, n_dir, units).transpose(1, 0, 2).reshape(-1)
        )
    if projection:
        layer.projection_kernel.assign(_array(cell.weight_proj))
    if layer_norm:
        layer.gamma.assign(_array(cell.layer_norm.weight))
        layer.beta.assign(_array(cell.layer_norm.bias))
    return layer


def from_official_sru(module, use_fused_kernel="auto", name: str | None = None) -> list:
    """Converts an official PyTorch SRU module into `keras_ndsru.SRU` layers.

    The official implementation of "Simple Recurrent Units for Highly
    Parallelizable Recurrence" (Lei et al., arXiv 1709.02755) is the PyPI
    package `sru`. This reads the weights of an `sru.SRU` (stacked layers) or
    `sru.SRUCell` and returns built `keras_ndsru.SRU` layers
    (`return_sequences=True`) that compute the same eqs. (1)-(4): the same
    `h` sequence and last `c`, for the same masks (`mask_pad` there is
    `~mask` here) and initial states, and therefore the same gradients.
    Layouts differ and are converted: the official kernel interleaves the
    matrices per unit (`(dir, unit, k)` columns) where ours keeps blocks per
    direction, its `weight_c` and `bias` are `(gate, dir, unit)` where ours
    are `(dir, gate, unit)`, and its input is time-major where ours is
    batch-major.

    Supported: both directions, `highway_bias` and `rescale`, an input size
    different from the hidden size (the official 4th matrix becomes the
    highway projection `W_h` (`highway_projection=True`), divided by alpha
    since ours scales it at run time), `projection_size`, pre layer norm,
    `rnn_dropout` (variational input dropout, ours `dropout`), `v1` (its
    `weight_c` is zero and frozen there; here it starts at zero but is
    trained when fine-tuning), and `proj_input_to_hidden_first` (a leading
    `keras.layers.Dense` without bias). Not supported (a `ValueError` naming
    the cell): `use_tanh`, `has_skip_term=False`, `normalize_after` and
    `custom_m`. The official `dropout` (a mask on the gated part of `h`,
    training only) has no equivalent: the conversion drops it with one
    warning naming the cells that had it.

    Args:
        module: An `sru.SRU` or `sru.SRUCell` (PyTorch; read-only).
        use_fused_kernel: Passed to every `keras_ndsru.SRU`. Defaults to
            `"auto"`.
        name: Optional name prefix of the layers. Defaults to `None`.

    Returns:
        A list of built layers, to be applied in order.

    Example:

    ```python
    import sru, keras, keras_ndsru
    torch_model = sru.SRU(64, 128, num_layers=2, bidirectional=True)
    layers = keras_ndsru.layers.from_official_sru(torch_model.eval())
    model = keras.Sequential([keras.Input((None, 64)), *layers])
    # model(x) == torch_model(x.transpose(0, 1))[0].transpose(0, 1)
    ```
    """
    if hasattr(module, "rnn_lst"):
        cells = list(module.rnn_lst)
        to_hidden = getattr(module, "input_to_hidden", None)
    elif hasattr(module, "num_matrices") and hasattr(module, "weight_c"):
        cells, to_hidden = [module], None
    else:
        raise TypeError(
            "`module` must be an official `sru.SRU` or `sru.SRUCell` (PyPI "
            f"package `sru`). Received: module={type(module).__name__}"
        )
    if name is not None and not isinstance(name, str):
        raise TypeError(f"`name` must be a string or None. Received: name={name!r}")
    layers = []
    if to_hidden is not None:
        weight = _array(to_hidden.weight).T  # nn.Linear stores (out, in)
        dense = keras.layers.Dense(
            weight.shape[1],
            use_bias=False,
            name=None if name is None else f"{name}_input_to_hidden",
        )
        dense.build((None, None, weight.shape[0]))
        dense.kernel.assign(weight)
        layers.append(dense)
    for i, cell in enumerate(cells):
        layer_name = None if name is None else f"{name}_{i}"
        layers.append(_convert_cell(cell, i, use_fused_kernel, layer_name))
    _warn_dropout(cells)
    return layers
