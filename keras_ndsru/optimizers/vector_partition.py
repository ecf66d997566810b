"""The partition of a model's variables into weight vectors and the rest.

ND-Adam (arXiv 1709.04546, Sec. 3 and Algorithm 1) treats the input weight
vector of each hidden unit (theta_v) differently from every other parameter
(theta_s). This module decides, per variable, which axes one weight vector
spans (or `None` for theta_s): from the layer classes of a model
(`vector_axes_for_model`), from a variable's own name and rank
(`automatic_axes`), and from the user's rules (`PartitionRules`, the
`vector_variables`, `exclude_from_vectors` and `vector_axes` arguments of
`NDAdam`). `NDAdam` and the `EffectiveLearningRate` callback use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import keras

# Layer-name components that Keras gives these layers by default; used only to
# read the layer type from a variable path when no model scan is available.
_DEFAULT_TRANSPOSE_NAME = re.compile(r"conv[123]d_transpose(_\d+)?")
_DEFAULT_DEPTHWISE_NAME = re.compile(r"depthwise_conv[12]d(_\d+)?")
_DEFAULT_CONV_NAME = re.compile(r"conv[123]d(_\d+)?")

_CONV_TRANSPOSE_LAYERS = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_SEPARABLE_LAYERS = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_DEPTHWISE_LAYERS = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_CONV_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
# The SRU layer (keras_ndsru.layers.SRU) is matched by class name so that this
# module does not import the layer package (and its op loader).
_SRU_CLASS_NAME = "SRU"


def variable_path(variable) -> str:
    """`variable.path` (its name for variables without one), without a
    `:0` suffix."""
    path = getattr(variable, "path", None) or variable.name
    return path.split(":")[0]


def _lookup(table: Mapping, path: str):
    """`(found, value)` for `path` in `table`: the exact path, else the longest
    key that is a suffix of `path` or has `path` as a suffix at a `/` boundary
    (the outer model's prefix of a path changes when a saved model is
    loaded)."""
    if path in table:
        return True, table[path]
    matches = [k for k in table if path.endswith("/" + k) or k.endswith("/" + path)]
    if not matches:
        return False, None
    return True, table[max(matches, key=len)]


def _all_but(rank: int, *kept: int) -> tuple[int, ...]:
    kept = {k % rank for k in kept}
    return tuple(i for i in range(rank) if i not in kept)


def automatic_axes(variable) -> tuple[tuple[int, ...] | None, bool]:
    """Reduction axes of a variable from its own name, rank and path alone.

    Returns `(axes, ambiguous)`. `axes` is `None` for theta_s variables.
    `ambiguous` is True for a rank >= 3 `kernel` of a layer without a default
    Keras name: ConvND, ConvNDTranspose, DepthwiseConvND and EinsumDense
    kernels look alike from the variable alone (the layer class decides).
    """
    parts = variable_path(variable).split("/")
    name, layer_name = parts[-1], parts[-2] if len(parts) > 1 else ""
    rank = len(variable.shape)
    if name == "kernel" and rank == 2:
        return (0,), False  # Dense, SRU, RNN cells: one vector per column
    if name == "kernel" and 3 <= rank <= 5:
        if _DEFAULT_TRANSPOSE_NAME.fullmatch(layer_name):
            return _all_but(rank, -2), False
        if _DEFAULT_DEPTHWISE_NAME.fullmatch(layer_name):
            return _all_but(rank, -2, -1), False
        ambiguous = not _DEFAULT_CONV_NAME.fullmatch(layer_name)
        return _all_but(rank, -1), ambiguous
    if name == "depthwise_kernel" and 3 <= rank <= 5:
        return _all_but(rank, -2, -1), False
    if name == "pointwise_kernel" and rank >= 2:
        return _all_but(rank, -1), False
    return None, False


def _einsum_kernel_axes(layer, kernel) -> tuple[int, ...] | None:
    """Axes of an EinsumDense kernel contracted away (the unit's inputs)."""
    equation = getattr(layer, "equation", "")
    if "->" not in equation or "," not in equation or "." in equation:
        return None
    left, output = equation.replace(" ", "").split("->")
    kernel_spec = left.split(",")[1]
    if len(kernel_spec) != len(kernel.shape):
        return None
    axes = tuple(i for i, c in enumerate(kernel_spec) if c not in output)
    return axes or None


def _layer_axes(layer) -> dict[int, tuple[int, ...] | None] | None:
    """`{id(variable): axes}` for a layer whose class NDAdam knows, else None."""
    is_sru = any(c.__name__ == _SRU_CLASS_NAME for c in type(layer).__mro__)
    known = (
        _CONV_TRANSPOSE_LAYERS
        + _SEPARABLE_LAYERS
        + _DEPTHWISE_LAYERS
        + _CONV_LAYERS
        + (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)
    )
    if not (is_sru or isinstance(layer, known)):
        return None
    result = {}
    for variable in layer.trainable_weights:
        name, rank = variable_path(variable).split("/")[-1], len(variable.shape)
        axes = None
        if isinstance(layer, _CONV_TRANSPOSE_LAYERS) and name == "kernel":
            axes = _all_but(rank, -2)
        elif isinstance(layer, _SEPARABLE_LAYERS + _DEPTHWISE_LAYERS):
            if name in ("depthwise_kernel", "kernel"):
                axes = _all_but(rank, -2, -1)
            elif name == "pointwise_kernel":
                axes = _all_but(rank, -1)
        elif isinstance(layer, _CONV_LAYERS) and name == "kernel":
            axes = _all_but(rank, -1)
        elif isinstance(layer, keras.layers.EinsumDense) and name == "kernel":
            axes = _einsum_kernel_axes(layer, variable)
        elif (is_sru or isinstance(layer, keras.layers.Dense)) and name == "kernel":
            axes = (0,) if rank == 2 else None
        result[id(variable)] = axes
    return result


def _sublayers(layer) -> list:
    found = list(getattr(layer, "layers", None) or [])
    for value in vars(layer).values():
        values = value.values() if isinstance(value, Mapping) else value
        if isinstance(values, (list, tuple)):
            found.extend(v for v in values if isinstance(v, keras.layers.Layer))
        elif isinstance(value, keras.layers.Layer):
            found.append(value)
    return found


def vector_axes_for_model(model) -> dict[str, tuple[int, ...] | None]:
    """Partition a model's trainable variables by their layers' classes.

    Walks every layer of `model` (nested models and layers held as
    attributes included) and returns `{variable.path: axes}` for each
    trainable variable: `axes` are the axes each weight vector spans (NDAdam
    reduces over them) or `None` for theta_s. Layers of known classes (Dense,
    EinsumDense, ConvND, ConvNDTranspose, DepthwiseConvND, SeparableConvND,
    SRU, Embedding) are resolved from their class, so user-chosen layer names
    do not matter; the variables of other layers follow NDAdam's automatic
    rule. Pass the result as `NDAdam(vector_axes=...)`.

    Args:
        model: A built `keras.Model` or `keras.layers.Layer`.

    Returns:
        A dict from variable path to a tuple of axes, or `None`.
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"`model` must be a keras.Model or keras.layers.Layer. Received: model={model!r}"
        )
    known: dict[int, tuple[int, ...] | None] = {}
    stack, seen = [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        axes = _layer_axes(layer)
        if axes is not None:
            known.update(axes)
        else:
            stack.extend(_sublayers(layer))
    partition: dict[str, tuple[int, ...] | None] = {}
    for variable in model.trainable_variables:
        axes = known.get(id(variable), automatic_axes(variable)[0])
        path = variable_path(variable)
        if path in partition and partition[path] != axes:
            raise ValueError(
                f"Two trainable variables share the path '{path}' but need "
                "different vector axes; give the layers unique names. "
                f"Received: axes={partition[path]} and {axes}"
            )
        partition[path] = axes
    return partition


def _patterns(entries, argument: str) -> list[str] | None:
    """Regex patterns from a list of patterns and/or variables."""
    if entries is None:
        return None
    if isinstance(entries, str) or not isinstance(entries, Iterable):
        raise ValueError(
            f"`{argument}` must be a list of variables or path regex patterns. "
            f"Received: {argument}={entries!r}"
        )
    patterns = []
    for entry in entries:
        if isinstance(entry, str):
            re.compile(entry)
            patterns.append(entry)
        elif hasattr(entry, "shape") and hasattr(entry, "name"):
            # Layer and variable name only: the outer model's prefix of a
            # path changes when a saved model is loaded.
            short = "/".join(variable_path(entry).split("/")[-2:])
            patterns.append("(^|/)" + re.escape(short) + "$")
        else:
            raise ValueError(
                f"Each entry of `{argument}` must be a variable or a regex "
                f"string. Received: {argument}={entries!r}"
            )
    return patterns


def _vector_axes_map(vector_axes) -> dict[str, tuple[int, ...] | None]:
    if vector_axes is None:
        return {}
    if not isinstance(vector_axes, Mapping):
        raise ValueError(
            "`vector_axes` must be a dict from variable path to a list of "
            f"axes or None. Received: vector_axes={vector_axes!r}"
        )
    result = {}
    for path, axes in vector_axes.items():
        if not isinstance(path, str):
            raise ValueError(
                f"`vector_axes` keys must be variable paths (str). Received: vector_axes={vector_axes!r}"
            )
        if axes is not None:
            if isinstance(axes, int):
                axes = (axes,)
            if (
                not all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
                or not axes
            ):
                raise ValueError(
                    "`vector_axes` values must be non-empty lists of int axes "
                    f"or None. Received: vector_axes={vector_axes!r}"
                )
            axes = tuple(axes)
        result[path] = axes
    return result


def weight_vectors(model) -> list:
    """`[(variable, axes), ...]` for the weight vectors of `model`'s
    trainable variables, as `vector_axes_for_model` partitions them."""
    partition = vector_axes_for_model(model)
    return [
        (v, partition[variable_path(v)])
        for v in model.trainable_variables
        if partition.get(variable_path(v)) is not None
    ]


@dataclass
class PartitionRules:
    """The user's rules for the partition, checked (the `NDAdam` arguments
    `vector_variables`, `exclude_from_vectors`, `vector_axes`).

    A variable's axes are resolved in this order: an `exclude` pattern
    (theta_s); `vector_axes` (exact path, or a path that ends with the key at
    a `/` boundary); when `vector_patterns` is given, only matching
    variables are vectors, with the automatic axes or all axes but the last;
    else the automatic rule (`automatic_axes`).
    """

    vector_patterns: list[str] | None = None
    exclude_patterns: list[str] = field(default_factory=list)
    vector_axes: dict[str, tuple[int, ...] | None] = field(default_factory=dict)

    @classmethod
    def from_arguments(
        cls, vector_variables=None, exclude_from_vectors=None, vector_axes=None
    ) -> PartitionRules:
        return cls(
            vector_patterns=_patterns(vector_variables, "vector_variables"),
            exclude_patterns=_patterns(exclude_from_vectors, "exclude_from_vectors")
            or [],
            vector_axes=_vector_axes_map(vector_axes),
        )

    def resolve(self, variable) -> tuple[tuple[int, ...] | None, bool]:
        """`(axes, ambiguous)` for `variable`; see `automatic_axes`."""
        path = variable_path(variable)
        if any(re.search(p, path) for p in self.exclude_patterns):
            return None, False
        given, axes = _lookup(self.vector_axes, path)
        if not given:
            axes, ambiguous = automatic_axes(variable)
            if self.vector_patterns is None:
                return axes, ambiguous
            if not any(re.search(p, path) for p in self.vector_patterns):
                return None, False
            if axes is None:
                rank = len(variable.shape)
                axes = _all_but(rank, -1) if rank > 1 else (0,)
            return axes, ambiguous
        if axes is None:
            return None, False
        rank = len(variable.shape)
        if any(not -rank <= a < rank for a in axes):
            raise ValueError(
                f"`vector_axes['{path}']` names an axis outside the variable's "
                f"rank {rank}. Received: vector_axes['{path}']={axes}"
            )
        return tuple(sorted({a % rank for a in axes})), False
