"""SRU: the Simple Recurrent Unit as a Keras 3 recurrent layer."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_ndsru import validation
from keras_ndsru.ops.sru_layout import state_dtype
from keras_ndsru.ops.sru_recurrence import sru_recurrence, supports_jit

_LAYER_NORM_EPSILON = 1e-5
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# alpha = sqrt(1 + 2 exp(b)) <= float32 max  <=>  b <= log((max^2 - 1) / 2).
_MAX_RESCALED_HIGHWAY_BIAS = math.log(_FLOAT32_MAX**2 / 2.0)


@keras.saving.register_keras_serializable(package="keras_ndsru")
class SRU(keras.layers.Layer):
    """Simple Recurrent Unit layer (Lei et al., 2017, arXiv 1709.02755).

    Implements eqs. (1)-(4) of the paper with the v-terms and the highway
    scaling correction of Sec. 3.2, per unit and time step:

        f_t = sigmoid(W_f x_t + v_f * c_{t-1} + b_f)            # (1)
        c_t = f_t * c_{t-1} + (1 - f_t) * (W x_t)                 # (2)
        r_t = sigmoid(W_r x_t + v_r * c_{t-1} + b_r)            # (3)
        h_t = r_t * c_t + (1 - r_t) * x_t * alpha                 # (4)

    with `alpha = sqrt(1 + 2 * exp(highway_bias))` when `rescale=True`, else
    1. The matmul `U = x [W W_f W_r]` runs once over all time steps in the
    compute dtype; only the elementwise recurrence is sequential. It runs in
    the fused custom op when that can run (a TensorFlow op, PyTorch custom
    operators or a JAX FFI call, one set of kernels), else in the
    `keras.ops` reference (`keras_ndsru.ops.sru_recurrence`). The layer
    supports jit compilation except on the TensorFlow op, which has no XLA
    kernel. The state is `c` (one
    tensor); it is carried in float32 under a mixed-precision policy, and
    `return_state` returns it in float32 (float64 for a float64 layer).

    **Weights.** With `n_dir = 2` when `bidirectional=True`, else 1, and `d`
    the input size (or `projection_size`):

    - `kernel`: `(d, n_dir * 3 * units [+ n_dir * units])`. Column blocks of
      `units` columns, per direction `k`: `[W | W_f | W_r]` at columns
      `3k * units ... (3k + 3) * units`. When the input size differs from
      `units` (or `highway_projection=True`), `x_t` in eq. (4) is replaced
      by a projection `W_h x_t`, whose
      blocks (one per direction) follow all the gate blocks: columns
      `(3 n_dir + k) * units ... (3 n_dir + k + 1) * units`. Every column is
      the weight vector of one hidden unit (as ND-Adam expects).
    - `weight_c`: `(n_dir * 2 * units,)`, per direction `[v_f | v_r]`.
    - `bias`: `(n_dir * 2 * units,)`, per direction `[b_f | b_r]`; `b_r`
      starts at `highway_bias`, `b_f` at 0.
    - `projection_kernel` (only with `projection_size`): `(input_dim,
      projection_size)`, the `P` of "SRU with projection" (Table 4), so
      `U = (x P) W'`; it uses the kernel initializer, regularizer and
      constraint.
    - `gamma`, `beta` (only with `layer_norm=True`): `(input_dim,)`.

    Initialization (Sec. 3.2): kernels have zero mean and variance `1 / d`
    (`"lecun_uniform"`, as the official implementation); `v` starts at zero,
    so at initialization the gates do not depend on `c` (the official
    implementation draws `v` with variance 0.5 and shrinks the gate weights
    by `sqrt(0.5)`; pass `weight_c_initializer` to do so).

    **Layer norm** normalizes the input over its features before the matmul
    (the official "pre" layer norm); the highway term uses the raw input.
    **Dropout** is variational (Gal & Ghahramani; Sec. 3.1): one mask per
    sequence on the features of `x`, shared by every time step, applied to
    the matmul input only (not to the identity highway term).

    **Masks** (True = valid), e.g. from `Embedding(mask_zero=True)` or
    `Masking`: a masked step leaves `c` unchanged. With `return_sequences`
    it outputs, as Keras' `LSTM` and `GRU`, the last valid output its
    direction processed before it (0 before the first), or 0 with
    `zero_output_for_mask=True`; with `return_sequences=False` the output is
    the `h` of the last valid step of each row. Right-padded masks work on
    every path; other patterns work on the reference recurrence (the fused
    path raises a clear error or falls back, see `use_fused_kernel`).

    Args:
        units: Positive integer, dimension of `h` and `c` per direction.
        return_sequences: Boolean, return the whole sequence `h` instead of
            the last valid output. Defaults to `False`.
        return_state: Boolean, also return the final state `c`. Defaults to
            `False`.
        go_backwards: Boolean, process the sequence backwards and return the
            reversed sequence (as `keras.layers.LSTM`). Defaults to `False`.
        stateful: Boolean, the final state of batch row `i` is the initial
            state of row `i` in the next batch; needs a fixed batch size.
            Defaults to `False`.
        highway_bias: Float, initial value of `b_r` and the source of
            `alpha`; finite in float32, and at most about 176.75 when
            `rescale=True` (larger values overflow `alpha` in float32).
            Defaults to `0.0`.
        rescale: Boolean, scale the highway term by
            `alpha = sqrt(1 + 2 exp(highway_bias))` (Sec. 3.2). Defaults to
            `True`.
        dropout: Float in `[0, 1)`, variational dropout rate on the input.
            Defaults to `0.0`.
        layer_norm: Boolean, layer-normalize the input. Defaults to `False`.
        projection_size: `None` or positive integer, the inner size of the
            factorized input matmul `U = (x P) W'`. Defaults to `None`.
        bidirectional: Boolean, run a forward and a backward direction in
            one layer and concatenate their outputs (and states). Defaults to
            `False`.
        highway_projection: `None`, `True` or `False`: whether the highway
            term of eq. (4) uses a learned projection `W_h x_t` instead of
            `x_t`. `None` projects exactly when the input size differs from
            `units` (as the paper); `True` always projects (as the official
            implementation does for a bidirectional layer, see
            `keras_ndsru.layers.from_official_sru`); `False` requires the
            input size to equal `units`. Defaults to `None`.
        zero_output_for_mask: `None`, `True` or `False`: with
            `return_sequences` and a mask, whether masked steps output 0
            (True) or repeat the last valid output of their direction
            (False), as `keras.layers.RNN`. `None` is False, Keras' default,
            except for a bidirectional layer returning sequences: True, as
            `keras.layers.Bidirectional` sets on its layers (so that
            `SRU(bidirectional=True)` equals `Bidirectional(SRU(...))`).
            Defaults to `None`.
        use_fused_kernel: `"auto"` (fused op when it can run, else the
            reference with one warning; TensorFlow, torch and JAX have a
            fused op, other backends run the reference without a warning),
            `True` (fused op or a `RuntimeError` saying why not) or `False`
            (reference only). Defaults to `"auto"`.
        seed: Optional integer, seed of the dropout masks. Defaults to
            `None`.
        kernel_initializer: Initializer of `kernel` (and
            `projection_kernel`). Defaults to `"lecun_uniform"`.
        weight_c_initializer: Initializer of `weight_c`. Defaults to
            `"zeros"`.
        bias_initializer: Initializer of `bias`, to which `highway_bias` is
            added on the `b_r` blocks. Defaults to `"zeros"`.
        kernel_regularizer, weight_c_regularizer, bias_regularizer: Optional
            regularizers. Default to `None`.
        kernel_constraint, weight_c_constraint, bias_constraint: Optional
            constraints. Default to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        sequences: `(batch, time, features)` input.
        initial_state: Optional initial `c`, `(batch, n_dir * units)`, or a
            list holding that one tensor. Zeros (or the stored state when
            `stateful=True`) by default.
        mask: Optional `(batch, time)` boolean mask, True = valid step.
        training: Boolean, whether dropout is applied.

    Returns:
        `h` of shape `(batch, time, n_dir * units)` when `return_sequences`,
        else `(batch, n_dir * units)`; with `return_state`, the tuple
        `(output, c_last)` (as Keras' `LSTM` and `GRU`), `c_last` of shape
        `(batch, n_dir * units)`.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([
    ...     keras.Input((None, 8)),
    ...     SRU(16, return_sequences=True),
    ...     SRU(16),
    ...     keras.layers.Dense(2),
    ... ])
    >>> tuple(model(np.zeros((4, 5, 8), "float32")).shape)
    (4, 2)
    """

    def __init__(
        self,
        units: int,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        highway_bias: float = 0.0,
        rescale: bool = True,
        dropout: float = 0.0,
        layer_norm: bool = False,
        projection_size: int | None = None,
        bidirectional: bool = False,
        highway_projection: bool | None = None,
        zero_output_for_mask: bool | None = None,
        use_fused_kernel="auto",
        seed: int | None = None,
        kernel_initializer="lecun_uniform",
        weight_c_initializer="zeros",
        bias_initializer="zeros",
        kernel_regularizer=None,
        weight_c_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        weight_c_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = validation.positive_int("units", units)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.rescale = bool(rescale)
        _highway_alpha(highway_bias, self.rescale)  # validates highway_bias
        self.highway_bias = float(highway_bias)
        self.dropout = validation.fraction("dropout", dropout)
        self.layer_norm = bool(layer_norm)
        if projection_size is not None:
            projection_size = validation.positive_int(
                "projection_size", projection_size
            )
        self.projection_size = projection_size
        self.bidirectional = bool(bidirectional)
        self.highway_projection = validation.optional_bool(
            "highway_projection", highway_projection
        )
        zero_output_for_mask = validation.optional_bool(
            "zero_output_for_mask", zero_output_for_mask
        )
        if zero_output_for_mask is None:
            zero_output_for_mask = self.bidirectional and self.return_sequences
        # A plain attribute read at call time: keras.layers.Bidirectional
        # sets it on the layers it wraps.
        self.zero_output_for_mask = zero_output_for_mask
        # Validates the choice; raises when True and the op cannot run. The
        # TensorFlow op has no XLA kernel: keep jit_compile="auto" away from it.
        self.supports_jit = supports_jit(use_fused_kernel)
        self.use_fused_kernel = use_fused_kernel
        self.seed = validation.optional_int("seed", seed)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.weight_c_initializer = keras.initializers.get(weight_c_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.weight_c_regularizer = keras.regularizers.get(weight_c_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.weight_c_constraint = keras.constraints.get(weight_c_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.state = None
        self.projection_kernel = None
        self.gamma = None
        self.beta = None

    @property
    def num_directions(self) -> int:
        """2 when `bidirectional=True`, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Size of `h` and of the state `c`: `num_directions * units`."""
        return self.num_directions * self.units

    @property
    def alpha(self) -> float:
        """The highway scale of eq. (4): `sqrt(1 + 2 exp(highway_bias))` or 1."""
        return _highway_alpha(self.highway_bias, self.rescale)

    @property
    def states(self):
        """The state variables `[c]` of a stateful layer, else `None`."""
        return None if self.state is None else [self.state]

    def build(self, sequences_shape, initial_state_shape=None):
        sequences_shape = tuple(sequences_shape)
        if len(sequences_shape) != 3 or sequences_shape[-1] is None:
            raise ValueError(
                "`SRU` expects inputs of shape `(batch, time, features)` with a "
                f"known number of features. Received: input_shape={sequences_shape}"
            )
        input_dim = sequences_shape[-1]
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: input_dim})
        n_dir, units = self.num_directions, self.units
        if self.layer_norm:
            self.gamma = self.add_weight(
                shape=(input_dim,), name="gamma", initializer="ones", autocast=False
            )
            self.beta = self.add_weight(
                shape=(input_dim,), name="beta", initializer="zeros", autocast=False
            )
        matmul_dim = input_dim
        if self.projection_size is not None:
            self.projection_kernel = self.add_weight(
                shape=(input_dim, self.projection_size),
                name="projection_kernel",
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
                constraint=self.kernel_constraint,
            )
            matmul_dim = self.projection_size
        if self.highway_projection is False and input_dim != units:
            raise ValueError(
                "`highway_projection=False` needs the input size to equal "
                f"`units` ({units}): eq. (4) adds x_t to c_t. "
                f"Received: highway_projection=False, input_shape={sequences_shape}"
            )
        self._projects_highway = bool(self.highway_projection) or input_dim != units
        columns = n_dir * (4 if self._projects_highway else 3) * units
        self.kernel = self.add_weight(
            shape=(matmul_dim, columns),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        # Recurrence parameters stay in float32 under mixed precision.
        self.weight_c = self.add_weight(
            shape=(n_dir * 2 * units,),
            name="weight_c",
            initializer=self.weight_c_initializer,
            regularizer=self.weight_c_regularizer,
            constraint=self.weight_c_constraint,
            autocast=False,
        )
        self.bias = self.add_weight(
            shape=(n_dir * 2 * units,),
            name="bias",
            initializer=self._bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
            autocast=False,
        )
        if self.stateful:
            batch_size = sequences_shape[0]
            if batch_size is None:
                raise ValueError(
                    "A stateful `SRU` needs a fixed batch size: pass `batch_size` "
                    "to `keras.Input` (or `batch_shape`). "
                    f"Received: input_shape={sequences_shape}"
                )
            self.state = self.add_weight(
                shape=(batch_size, self.output_size),
                name="state",
                initializer="zeros",
                trainable=False,
                dtype=state_dtype(self.variable_dtype),
                autocast=False,
            )

    def _bias_initializer(self, shape, dtype=None):
        bias = self.bias_initializer(shape, dtype=dtype)
        units = self.units
        # Per direction [b_f | b_r]: add `highway_bias` to every b_r block,
        # built in the bias dtype (a float64 layer keeps it unrounded).
        offset = ops.concatenate(
            [
                ops.zeros((units,), bias.dtype),
                ops.full((units,), self.highway_bias, bias.dtype),
            ]
            * self.num_directions
        )
        return bias + offset

    def get_initial_state(self, batch_size):
        """Zero states `[c]` of shape `(batch_size, num_directions * units)`."""
        return [
            ops.zeros((batch_size, self.output_size), state_dtype(self.compute_dtype))
        ]

    def reset_state(self):
        """Sets the state of a stateful layer to zeros."""
        if self.state is not None:
            self.state.assign(ops.zeros(self.state.shape, self.state.dtype))

    def reset_states(self):
        """Alias of `reset_state` (as `keras.layers.RNN`)."""
        self.reset_state()

    def call(self, sequences, initial_state=None, mask=None, training=None):
        c0 = self._initial_state(sequences, initial_state)
        # go_backwards on one layer holding both directions: run it on the
        # unreversed input with the directions' roles swapped (keeps a
        # right-padded mask right-padded for the fused op), then flip time.
        swap = self.go_backwards and self.bidirectional
        u, x_highway = self._project(sequences, training, swap)
        weight_c, bias = self.weight_c, self.bias
        if mask is not None:
            mask = self._check_mask(mask, sequences)
        if swap:
            weight_c, bias = map(_swap_directions, (weight_c, bias))
            c0 = None if c0 is None else _swap_directions(c0)
        if self.bidirectional:
            direction = "bidirectional"
        else:
            direction = "backward" if self.go_backwards else "forward"
        inference_graph = _in_inference_graph(training)
        h, h_last, c_last = sru_recurrence(
            u,
            x_highway,
            weight_c,
            bias,
            c0,
            mask,
            self.alpha,
            direction,
            use_fused_kernel=self._call_path(inference_graph),
            # Only returned sequences show masked steps.
            zero_output_for_mask=self.zero_output_for_mask or not self.return_sequences,
            for_export=inference_graph,
        )
        if swap:
            h, h_last, c_last = map(_swap_directions, (h, h_last, c_last))
        if self.stateful:
            self.state.assign(ops.cast(c_last, self.state.dtype))
        if self.return_sequences:
            output = ops.flip(h, axis=1) if self.go_backwards else h
        else:
            output = h_last
        if self.return_state:
            return output, c_last
        return output

    def _call_path(self, inference_graph: bool):
        """`use_fused_kernel` for this call.

        `"auto"` keeps the fused op out of inference graphs (see
        `_in_inference_graph`): those are what `model.export`, the TFLite
        converter and other exporters save, and a graph holding our op
        loads only where our library does. Graphs that train (`fit`) and
        eager calls run the fused op. `True` puts it everywhere.
        """
        if self.use_fused_kernel == "auto" and inference_graph:
            return False
        return self.use_fused_kernel

    def _initial_state(self, sequences, initial_state):
        """Validates `initial_state`; returns it, the stored state, or None."""
        if initial_state is None:
            if self.stateful:
                self._check_batch_size(sequences, self.state.shape[0])
                return self.state.value
            return None
        if isinstance(initial_state, (list, tuple)):
            if len(initial_state) != 1:
                raise ValueError(
                    "`SRU` has one state tensor, `c`; `initial_state` must be a "
                    "tensor or a list of one tensor. "
                    f"Received: initial_state with {len(initial_state)} tensors"
                )
            initial_state = initial_state[0]
        shape = tuple(initial_state.shape)
        batch = sequences.shape[0]
        if (
            len(shape) != 2
            or shape[1] != self.output_size
            or (None not in (batch, shape[0]) and batch != shape[0])
        ):
            raise ValueError(
                "`initial_state` must have shape `(batch, num_directions * units)"
                f"` = ({batch}, {self.output_size}). "
                f"Received: initial_state.shape={shape}"
            )
        return initial_state

    def _check_batch_size(self, sequences, expected):
        batch = sequences.shape[0]
        if batch is not None and batch != expected:
            raise ValueError(
                "A stateful `SRU` needs the batch size it was built with, "
                f"{expected}. Received: batch_size={batch}"
            )

    def _check_mask(self, mask, sequences):
        shape = tuple(mask.shape)
        expected = tuple(sequences.shape[:2])
        if len(shape) != 2 or any(
            None not in (m, s) and m != s for m, s in zip(shape, expected)
        ):
            raise ValueError(
                f"`mask` must have shape `(batch, time)` = {expected}. "
                f"Received: mask.shape={shape}"
            )
        return ops.cast(mask, "bool")

    def _project(self, sequences, training, swap=False):
        """Returns `U = x [W W_f W_r]` per direction and the highway input.

        With `swap`, the two directions' blocks trade places; that is done
        on the kernel's columns, far cheaper than on U.
        """
        x = sequences
        if self.layer_norm:
            x = self._normalize(x)
        if training and self.dropout > 0.0:
            batch, _, features = ops.shape(x)
            x = keras.random.dropout(
                x,
                self.dropout,
                noise_shape=(batch, 1, features),
                seed=self.seed_generator,
            )
        if self.projection_kernel is not None:
            x = _matmul_over_steps(x, self.projection_kernel)
        if self._projects_highway:
            # Slice the kernel, not the product: slicing U costs a copy of it
            # forward and, backward, a zero-filled U-sized gradient per slice
            # plus their sum (about half the layer's fwd+bwd time on CPU).
            gate_columns = self.num_directions * 3 * self.units
            gates, highway = ops.split(self.kernel, [gate_columns], axis=1)
            if swap:
                gates, highway = _swap_directions(gates), _swap_directions(highway)
            return _matmul_over_steps(x, gates), _matmul_over_steps(x, highway)
        kernel = _swap_directions(self.kernel) if swap else self.kernel
        x_highway = sequences
        if self.bidirectional:
            # Both directions' halves are x: unchanged by a swap.
            x_highway = ops.concatenate([sequences, sequences], axis=-1)
        return _matmul_over_steps(x, kernel), x_highway

    def _normalize(self, x):
        """Layer norm over the features, computed in float32 or wider."""
        dtype = state_dtype(x.dtype)
        x32 = ops.cast(x, dtype)
        mean = ops.mean(x32, axis=-1, keepdims=True)
        variance = ops.var(x32, axis=-1, keepdims=True)
        x32 = (x32 - mean) * ops.rsqrt(variance + _LAYER_NORM_EPSILON)
        x32 = x32 * ops.cast(self.gamma, dtype) + ops.cast(self.beta, dtype)
        return ops.cast(x32, x.dtype)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        if self.return_sequences:
            output_shape = (batch, steps, self.output_size)
        else:
            output_shape = (batch, self.output_size)
        if self.return_state:
            return output_shape, (batch, self.output_size)
        return output_shape

    def compute_output_spec(
        self, sequences, initial_state=None, mask=None, training=None
    ):
        shapes = self.compute_output_shape(sequences.shape)
        if not self.return_state:
            return keras.KerasTensor(shapes, dtype=self.compute_dtype)
        return (
            keras.KerasTensor(shapes[0], dtype=self.compute_dtype),
            keras.KerasTensor(shapes[1], dtype=state_dtype(self.compute_dtype)),
        )

    def compute_mask(self, sequences, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = None
        if self.return_sequences and mask is not None:
            # The output sequence of go_backwards is reversed in time.
            output_mask = ops.flip(mask, axis=1) if self.go_backwards else mask
        if self.return_state:
            return [output_mask, None]
        return output_mask

    def get_config(self):
        config = {
            "units": self.units,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "highway_bias": self.highway_bias,
            "rescale": self.rescale,
            "dropout": self.dropout,
            "layer_norm": self.layer_norm,
            "projection_size": self.projection_size,
            "bidirectional": self.bidirectional,
            "highway_projection": self.highway_projection,
            "zero_output_for_mask": self.zero_output_for_mask,
            "use_fused_kernel": self.use_fused_kernel,
            "seed": self.seed,
        }
        for name in ("kernel", "weight_c", "bias"):
            config[f"{name}_initializer"] = keras.initializers.serialize(
                getattr(self, f"{name}_initializer")
            )
            config[f"{name}_regularizer"] = keras.regularizers.serialize(
                getattr(self, f"{name}_regularizer")
            )
            config[f"{name}_constraint"] = keras.constraints.serialize(
                getattr(self, f"{name}_constraint")
            )
        return {**super().get_config(), **config}


def _in_inference_graph(training) -> bool:
    """Whether this call is traced into a TensorFlow graph with `training`
    not True: `predict`, `evaluate`, `model.export`, the TFLite converter.
    There the reference recurrence runs in its TensorList-free loop, which
    TFLite lowers for a dynamic batch size and length (docs/deploy.md)."""
    if training is True or keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.inside_function()


def _matmul_over_steps(x, kernel):
    """`x @ kernel` for `x` of shape `(batch, time, features)`, as one 2-D
    matmul over all `batch * time` rows.

    Same numbers as the 3-D product, but a plain GEMM forward and backward
    on every backend: XLA:CPU lays the weight gradient of the 3-D product out
    as a transposed dot, which made the layer's fwd+bwd 1.75x slower at
    (32, 128, 512) x (512, 1536) under `jax.jit`.
    """
    shape = ops.shape(x)
    rows = ops.matmul(ops.reshape(x, (-1, shape[-1])), kernel)
    return ops.reshape(rows, (shape[0], shape[1], kernel.shape[-1]))


def _swap_directions(tensor):
    """Swaps the two direction halves of the last axis."""
    first, second = ops.split(tensor, 2, axis=-1)
    return ops.concatenate([second, first], axis=-1)


def _highway_alpha(highway_bias, rescale: bool) -> float:
    """alpha of eq. (4) (Sec. 3.2), computed in float64, after checking that
    `highway_bias` (the initial `b_r`) and alpha are finite in float32: the
    fused op takes alpha as a float32 attribute and the recurrence state is
    float32 unless the layer is float64."""
    # The range check first: math.isfinite overflows on a huge int.
    if (
        not validation.is_real(highway_bias)
        or abs(highway_bias) > _FLOAT32_MAX
        or not math.isfinite(highway_bias)
    ):
        raise ValueError(
            "`highway_bias` must be a finite float within the float32 range. "
            f"Received: highway_bias={highway_bias!r}"
        )
    if not rescale:
        return 1.0
    try:
        alpha = math.sqrt(1.0 + 2.0 * math.exp(highway_bias))
    except OverflowError:
        alpha = math.inf
    if alpha > _FLOAT32_MAX:
        raise ValueError(
            "`highway_bias` is too large for rescale=True: alpha = "
            "sqrt(1 + 2 exp(highway_bias)) overflows float32 above "
            f"highway_bias={_MAX_RESCALED_HIGHWAY_BIAS:.2f}. Pass a smaller "
            f"highway_bias or rescale=False. Received: highway_bias={highway_bias!r}"
        )
    return alpha
