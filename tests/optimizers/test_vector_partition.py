"""The weight-vector partition (`keras_ndsru.optimizers.vector_partition`):
which axes one weight vector spans, per layer class, written out by hand from
the Keras kernel layouts."""

import math
import re
import warnings

import keras
import pytest

import keras_ndsru
from keras_ndsru.optimizers import (
    NDAdam,
    PartitionRules,
    automatic_axes,
    vector_axes_for_model,
    weight_vectors,
)

LAYERS = keras.layers


def _sru():
    return keras_ndsru.SRU(3, use_fused_kernel=False)


# (layer factory, input shape, {variable name: expected axes}, number of units)
PARTITION_CASES = [
    ("dense", lambda: LAYERS.Dense(3), (4,), {"kernel": (0,)}, 3),
    ("conv1d", lambda: LAYERS.Conv1D(3, 2), (5, 2), {"kernel": (0, 1)}, 3),
    ("conv2d", lambda: LAYERS.Conv2D(3, 2), (5, 5, 2), {"kernel": (0, 1, 2)}, 3),
    ("conv3d", lambda: LAYERS.Conv3D(3, 2), (4, 4, 4, 2), {"kernel": (0, 1, 2, 3)}, 3),
    (
        "conv1d_transpose",
        lambda: LAYERS.Conv1DTranspose(3, 2),
        (5, 2),
        {"kernel": (0, 2)},
        3,
    ),
    (
        "conv2d_transpose",
        lambda: LAYERS.Conv2DTranspose(3, 2),
        (5, 5, 2),
        {"kernel": (0, 1, 3)},
        3,
    ),
    (
        "conv3d_transpose",
        lambda: LAYERS.Conv3DTranspose(3, 2),
        (4, 4, 4, 2),
        {"kernel": (0, 1, 2, 4)},
        3,
    ),
    (
        "depthwise_conv1d",
        lambda: LAYERS.DepthwiseConv1D(2, depth_multiplier=2),
        (5, 3),
        {"kernel": (0,)},
        6,
    ),
    (
        "depthwise_conv2d",
        lambda: LAYERS.DepthwiseConv2D(2, depth_multiplier=2),
        (5, 5, 3),
        {"kernel": (0, 1)},
        6,
    ),
    (
        "separable_conv2d",
        lambda: LAYERS.SeparableConv2D(4, 2, depth_multiplier=2),
        (5, 5, 3),
        {"depthwise_kernel": (0, 1), "pointwise_kernel": (0, 1, 2)},
        6 + 4,
    ),
    (
        "separable_conv1d",
        lambda: LAYERS.SeparableConv1D(4, 2),
        (5, 3),
        {"depthwise_kernel": (0,), "pointwise_kernel": (0, 1)},
        3 + 4,
    ),
    ("sru", _sru, (5, 4), {"kernel": (0,)}, None),
    ("embedding", lambda: LAYERS.Embedding(10, 3), (5,), {}, 0),
    ("batch_normalization", LAYERS.BatchNormalization, (4,), {}, 0),
]


def _partition_model(factory, shape, name):
    layer = factory()
    if name is not None:
        layer.name = name
    dtype = "int32" if isinstance(layer, LAYERS.Embedding) else "float32"
    inputs = keras.Input(shape, dtype=dtype)
    return keras.Model(inputs, layer(inputs)), layer


@pytest.mark.parametrize("renamed", [False, True])
@pytest.mark.parametrize("case", PARTITION_CASES, ids=[c[0] for c in PARTITION_CASES])
def test_partition_every_layer_type(case, renamed):
    _, factory, shape, expected, units = case
    model, layer = _partition_model(factory, shape, "my_layer" if renamed else None)
    by_name = {v.path.split("/")[-1]: v for v in layer.trainable_weights}
    expected_paths = {by_name[n].path: axes for n, axes in expected.items()}

    scanned = vector_axes_for_model(model)
    assert {p: a for p, a in scanned.items() if a is not None} == expected_paths
    assert set(scanned) == {v.path for v in model.trainable_variables}

    # The automatic partition (no model) is right for default names and for
    # renamed layers whose kernels are unambiguous; the scan fixes the rest.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = NDAdam()
        auto.build(model.trainable_variables)
    auto_axes = {v.path: a for v, a in auto.vector_variables}
    ambiguous = [w for w in caught if "vector_axes_for_model" in str(w.message)]
    if auto_axes != expected_paths:
        assert renamed and ambiguous, (auto_axes, expected_paths)
    scanned_opt = NDAdam(vector_axes=scanned)
    scanned_opt.build(model.trainable_variables)
    assert {v.path: a for v, a in scanned_opt.vector_variables} == expected_paths

    # One vector per output unit of the layer.
    n_vectors = sum(
        math.prod(scanned_opt._velocities[scanned_opt._get_variable_index(v)].shape)
        for v, _ in scanned_opt.vector_variables
    )
    if units is None:  # SRU: kernel columns (k * units)
        units = int(by_name["kernel"].shape[-1])
    assert n_vectors == units


def test_sru_projection_kernel_is_theta_s():
    # P of "SRU with projection" is a linear low-rank factor of the kernel,
    # not the input weights of hidden units: NDAdam leaves it to Adam.
    layer = keras_ndsru.SRU(3, projection_size=2, use_fused_kernel=False)
    inputs = keras.Input((5, 4))
    model = keras.Model(inputs, layer(inputs))
    scanned = vector_axes_for_model(model)
    assert scanned[layer.projection_kernel.path] is None
    assert scanned[layer.kernel.path] == (0,)
    opt = NDAdam()
    opt.build(model.trainable_variables)
    assert {v.path for v, _ in opt.vector_variables} == {layer.kernel.path}
    assert any(v is layer.projection_kernel for v in opt.scalar_variables)
    # Users who want its columns normalized opt in explicitly.
    opted = NDAdam(vector_axes={layer.projection_kernel.path: [0]})
    opted.build(model.trainable_variables)
    assert dict((v.path, a) for v, a in opted.vector_variables) == {
        layer.kernel.path: (0,),
        layer.projection_kernel.path: (0,),
    }


def test_partition_einsum_dense_and_nested_layers():
    inner = keras.Sequential([LAYERS.Dense(3, name="fc")], name="inner")
    inputs = keras.Input((5, 4))
    h = LAYERS.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), name="proj")(
        inputs
    )
    h = LAYERS.Reshape((5, 6))(h)
    h = LAYERS.Bidirectional(_sru())(h)
    model = keras.Model(inputs, inner(h))
    scanned = vector_axes_for_model(model)
    vectors = {
        p.split("/")[-2] + "/" + p.split("/")[-1]: a for p, a in scanned.items() if a
    }
    assert vectors["proj/kernel"] == (0,)  # contracted index c
    assert vectors["fc/kernel"] == (0,)
    sru_kernels = [p for p in vectors if p.endswith("/kernel") and "sru" in p]
    assert len(sru_kernels) == 2  # forward and backward SRU kernels
    assert all(a is None for p, a in scanned.items() if p.endswith("weight_c"))


def test_weight_vectors_lists_each_vector_variable_once():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            LAYERS.Dense(3),
            LAYERS.BatchNormalization(),
            LAYERS.Dense(2),
        ]
    )
    got = [(v.path, axes) for v, axes in weight_vectors(model)]
    assert got == [
        (model.layers[0].kernel.path, (0,)),
        (model.layers[2].kernel.path, (0,)),
    ]


def test_rules_resolve_in_order_exclude_given_patterns_automatic():
    model = keras.Sequential(
        [keras.Input((4,)), LAYERS.Dense(3, name="a"), LAYERS.Dense(2, name="b")]
    )
    a, b = model.layers
    rules = PartitionRules.from_arguments(
        vector_variables=["a/bias"],
        exclude_from_vectors=["b/"],
        vector_axes={a.kernel.path: [-1]},
    )
    assert rules.resolve(a.kernel) == ((1,), False)  # given axes, normalized
    assert rules.resolve(a.bias) == ((0,), False)  # pattern, rank 1
    assert rules.resolve(b.kernel) == (None, False)  # excluded first
    assert automatic_axes(b.kernel) == ((0,), False)
    # A given path matches the end of a longer one (a reloaded model's
    # outer prefix differs).
    short = PartitionRules.from_arguments(vector_axes={"a/kernel": None})
    assert short.resolve(a.kernel) == (None, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vector_variables": "a/kernel"}, "must be a list of variables"),
        ({"exclude_from_vectors": [3]}, "must be a variable or a regex"),
        ({"vector_axes": ["a"]}, "must be a dict"),
        ({"vector_axes": {"a/kernel": []}}, "non-empty lists of int axes"),
    ],
)
def test_bad_rules_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + ".*Received: "):
        PartitionRules.from_arguments(**kwargs)
