"""Reader for the NNet text format of the ACAS Xu networks."""

from __future__ import annotations

import os

import numpy as np

from keras_ndsru.verify.network import ReluNetwork


class NNetNetwork(ReluNetwork):
    """A `ReluNetwork` read from a `.nnet` file, with its normalization.

    The network itself maps *normalized* inputs to *normalized* outputs, as in
    the Reluplex paper's experiments; queries are posed in that space. Raw
    sensor values are normalized as ``(clip(x, min, max) - mean) / range``
    and outputs de-normalized as ``y * range + mean`` (`normalize_input`,
    `denormalize_output`, `evaluate_raw`). The valid input box ``[min, max]``
    in normalized coordinates is the network's ``input_domain``, so queries
    never leave the region where the raw network is defined.

    Attributes:
        input_min, input_max, input_mean, input_range: raw-input statistics.
        output_mean, output_range: output de-normalization.
    """

    def __init__(self, weights, biases, input_min, input_max, means, ranges, name):
        n = np.asarray(weights[0]).shape[1]
        self.input_min = np.asarray(input_min, np.float64)
        self.input_max = np.asarray(input_max, np.float64)
        self.input_mean = np.asarray(means[:n], np.float64)
        self.input_range = np.asarray(ranges[:n], np.float64)
        self.output_mean = float(means[n])
        self.output_range = float(ranges[n])
        if np.any(self.input_range <= 0) or self.output_range <= 0:
            raise ValueError(f"{name}: input and output ranges must be positive.")
        domain = (
            self.normalize_input(self.input_min),
            self.normalize_input(self.input_max),
        )
        super().__init__(weights, biases, input_domain=domain, name=name)

    def normalize_input(self, x_raw) -> np.ndarray:
        x_raw = np.clip(np.asarray(x_raw, np.float64), self.input_min, self.input_max)
        return (x_raw - self.input_mean) / self.input_range

    def denormalize_output(self, y) -> np.ndarray:
        return np.asarray(y, np.float64) * self.output_range + self.output_mean

    def evaluate_raw(self, x_raw) -> np.ndarray:
        """De-normalized outputs for raw (physical) inputs."""
        return self.denormalize_output(self(self.normalize_input(x_raw)))


def _numbers(line: str) -> list[float]:
    return [float(v) for v in line.replace(",", " ").split()]


def load_nnet(path) -> NNetNetwork:
    """Reads a `.nnet` file (format of Julian et al., used by Reluplex).

    Layout after ``//`` comment lines: ``n_layers, n_inputs, n_outputs,
    max_size``; the layer sizes; a deprecated flag; input minimums; input
    maximums; means (inputs, then outputs); ranges (inputs, then outputs); then
    per layer its weight rows and its biases, one value list per line.

    Args:
        path: path of the `.nnet` file.

    Returns:
        An `NNetNetwork` (normalized input space, ReLU on all hidden layers).
    """
    path = os.fspath(path)
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("//")]
    try:
        header = [int(v) for v in _numbers(lines[0])]
        n_layers, n_inputs, n_outputs = header[:3]
        sizes = [int(v) for v in _numbers(lines[1])]
        if len(sizes) != n_layers + 1 or sizes[0] != n_inputs or sizes[-1] != n_outputs:
            raise ValueError(f"layer sizes {sizes} disagree with header {header}")
        input_min, input_max = _numbers(lines[3]), _numbers(lines[4])
        means, ranges = _numbers(lines[5]), _numbers(lines[6])
        for what, values, count in (
            ("input minimums", input_min, n_inputs),
            ("input maximums", input_max, n_inputs),
            ("means", means, n_inputs + 1),
            ("ranges", ranges, n_inputs + 1),
        ):
            if len(values) < count:
                raise ValueError(f"expected {count} {what}, found {len(values)}")
        row = 7
        weights, biases = [], []
        for k in range(n_layers):
            n_in, n_out = sizes[k], sizes[k + 1]
            w = np.array([_numbers(lines[row + i])[:n_in] for i in range(n_out)])
            row += n_out
            b = np.array([_numbers(lines[row + i])[0] for i in range(n_out)])
            row += n_out
            if w.shape != (n_out, n_in):
                raise ValueError(f"layer {k}: weight rows have the wrong length")
            weights.append(w)
            biases.append(b)
    except (IndexError, ValueError) as error:
        raise ValueError(f"Malformed .nnet file {path!r}: {error}") from error
    return NNetNetwork(
        weights,
        biases,
        input_min[:n_inputs],
        input_max[:n_inputs],
        means[: n_inputs + 1],
        ranges[: n_inputs + 1],
        name=os.path.basename(path),
    )
