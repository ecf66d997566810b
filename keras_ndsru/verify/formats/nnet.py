"""Reader for the NNet text format of the ACAS Xu networks."""

from __future__ import annotations

import os

import numpy as np

from keras_ndsru.verify.graph.network import ReluNetwork


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


class _Lines:
    """The value lines of a `.nnet` file (comments and blank lines skipped),
    read in order; every error names the file, the line and what was
    expected there."""

    def __init__(self, path: str):
        self.path = path
        with open(path) as file:
            self._lines = [
                (number, text.strip())
                for number, text in enumerate(file, start=1)
                if text.strip() and not text.lstrip().startswith("//")
            ]
        self._next = 0
        self._last_number = 0

    def error(self, number: int | None, expected: str, found: str) -> ValueError:
        where = f"{self.path}:{number}" if number else self.path
        return ValueError(
            f"{where}: malformed .nnet file: expected {expected}, found {found}. "
            "Check the file against the .nnet layout (Julian et al.)."
        )

    def values(self, count: int, what: str, integers: bool = False) -> list:
        """The first `count` numbers of the next line."""
        if self._next >= len(self._lines):
            where = f"ends after line {self._last_number}" if self._last_number else ""
            raise ValueError(
                f"{self.path}: malformed .nnet file: it {where or 'has no header'}"
                f" line; expected {count} {what} next."
            )
        number, text = self._lines[self._next]
        self._next += 1
        self._last_number = number
        fields = [v for v in text.replace(",", " ").split()]
        if len(fields) < count:
            raise self.error(number, f"{count} {what}", f"{len(fields)}: {text!r}")
        numbers = []
        for field in fields[:count]:
            try:
                value = float(field)
            except ValueError:
                raise self.error(number, f"a number in {what}", repr(field)) from None
            if integers and (not value.is_integer() or value < 1):
                raise self.error(number, f"positive integers in {what}", repr(field))
            numbers.append(int(value) if integers else value)
        return numbers


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

    Raises:
        ValueError: the file does not follow the layout; the message names
            the file, the line and what was expected there.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: .nnet file not found. Received: path={path!r}"
        )
    lines = _Lines(path)
    n_layers, n_inputs, n_outputs, _ = lines.values(
        4, "header values (layers, inputs, outputs, max size)", integers=True
    )
    sizes = lines.values(n_layers + 1, "layer sizes", integers=True)
    if sizes[0] != n_inputs or sizes[-1] != n_outputs:
        raise lines.error(
            lines._last_number,
            f"layer sizes starting with {n_inputs} and ending with {n_outputs} "
            "(the header's inputs and outputs)",
            str(sizes),
        )
    lines.values(1, "the deprecated symmetric flag")
    input_min = lines.values(n_inputs, "input minimums")
    input_max = lines.values(n_inputs, "input maximums")
    means = lines.values(n_inputs + 1, "means (inputs, then the output)")
    ranges = lines.values(n_inputs + 1, "ranges (inputs, then the output)")
    weights, biases = [], []
    for k in range(n_layers):
        n_in, n_out = sizes[k], sizes[k + 1]
        rows = [
            lines.values(n_in, f"weights (layer {k + 1}, row {i + 1})")
            for i in range(n_out)
        ]
        bias = [
            lines.values(1, f"bias (layer {k + 1}, unit {i + 1})")[0]
            for i in range(n_out)
        ]
        weights.append(np.array(rows))
        biases.append(np.array(bias))
    return NNetNetwork(
        weights,
        biases,
        input_min,
        input_max,
        means,
        ranges,
        name=os.path.basename(path),
    )
