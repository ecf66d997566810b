"""Reading labeled sentence files and word-vector files as they come.

Helpers of `examples/text_classification.py` and `benchmarks/sst_accuracy.py`.
A UTF-8 byte-order mark is dropped, a file that is not UTF-8 is read as cp1252
(the Windows superset of Latin-1), lines with a label and no text are skipped,
and every such repair is reported in `notes`. What cannot be read correctly
raises a one-line `DataError` (a `ValueError`) naming the file, the line and
the fix.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

FALLBACK_ENCODING = "cp1252"
_SHOWN_LINES = 5


class DataError(ValueError):
    """A file that cannot be read correctly; the message names the fix."""


@dataclass
class LabeledText:
    """The examples of one file and what was done to read them."""

    path: str
    labels: list[str]
    texts: list[str]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


def decode_file(path: str, encoding: str | None = None) -> tuple[str, list[str]]:
    """The text of `path` and notes on how it was decoded.

    A UTF-8 byte-order mark is dropped. With `encoding=None` the file is read
    as UTF-8 (as UTF-16 after a UTF-16 mark), else as cp1252; an explicit
    `encoding` is used as is.
    """
    with _open_bytes(path) as file:
        raw = file.read()
    notes = []
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
        notes.append(f"{path}: dropped the UTF-8 byte-order mark at its start")
    if encoding is not None:
        return _decode(raw, encoding, path), notes
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        notes.append(f"{path}: UTF-16 byte-order mark: read as UTF-16")
        return _decode(raw, "utf-16", path), notes
    try:
        return raw.decode("utf-8"), notes
    except UnicodeDecodeError as error:
        text = _decode(raw, FALLBACK_ENCODING, path, utf8_error=error)
        notes.append(
            f"{path}: not UTF-8 (line {_line_of(raw, error.start)}, byte "
            f"0x{raw[error.start]:02x}): read as {FALLBACK_ENCODING} (Windows "
            "Latin-1); pass --encoding if that is wrong"
        )
        return text, notes


def _open_bytes(path: str):
    try:
        return open(path, "rb")
    except OSError as error:
        raise DataError(
            f"{path}: cannot be read ({error.strerror}). Received: path={path!r}"
        ) from None


def _decode(raw: bytes, encoding: str, path: str, utf8_error=None) -> str:
    try:
        return raw.decode(encoding)
    except LookupError:
        raise DataError(
            f"{path}: unknown encoding; pass a Python codec name such as utf-8, "
            f"cp1252 or latin-1. Received: encoding={encoding!r}"
        ) from None
    except UnicodeDecodeError as error:
        tried = f"UTF-8 nor {encoding}" if utf8_error else encoding
        raise DataError(
            f"{path}:{_line_of(raw, error.start)}: byte 0x{raw[error.start]:02x} "
            f"is not valid {tried}; pass the file's encoding with --encoding "
            f"(e.g. latin-1). Received: encoding={None if utf8_error else encoding!r}"
        ) from None


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def read_labeled_lines(path: str, encoding: str | None = None) -> LabeledText:
    """Reads a file with one `LABEL text...` example per line.

    The label is the first whitespace-separated token. Blank lines are
    ignored; lines with a label and no text are skipped and reported.
    """
    text, notes = decode_file(path, encoding)
    labels, texts, label_only = [], [], []
    lines = io.StringIO(text, newline=None)  # \n, \r\n and \r alike
    for number, line in enumerate(lines, start=1):
        parts = line.split(None, 1)
        if not parts:
            continue
        if len(parts) == 1:
            label_only.append(number)
            continue
        labels.append(parts[0])
        texts.append(parts[1].strip())
    if label_only:
        shown = ", ".join(map(str, label_only[:_SHOWN_LINES]))
        more = ", ..." if len(label_only) > _SHOWN_LINES else ""
        notes.append(
            f"{path}: skipped {len(label_only)} line(s) with a label and no "
            f"text (line {shown}{more})"
        )
    if not texts:
        raise DataError(
            f"{path}: no `LABEL text` lines; each example is one line, the label "
            "first, e.g. `pos a fine film`. "
            f"Received: path={path!r} ({number if text else 0} lines)"
        )
    distinct = len(set(labels))
    if len(texts) >= 20 and distinct > max(20, len(texts) // 2):
        raise DataError(
            f"{path}: {distinct} distinct labels in {len(texts)} lines, so the "
            "first token is probably not a label; put the label first on each "
            f"line, e.g. `pos a fine film`. Received: first labels={labels[:3]}"
        )
    return LabeledText(path, labels, texts, notes)


def class_names(labels: Iterable[str]) -> list[str]:
    """Sorted distinct labels; integer labels in numeric order."""
    names = set(labels)
    if all(re.fullmatch(r"[-+]?\d+", name) for name in names):
        return sorted(names, key=int)
    return sorted(names)


def encode_labels(
    classes: Sequence[str], data: LabeledText, option: str = "--test-data"
) -> np.ndarray:
    """Class indices of `data.labels`; unknown labels raise one line."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = [label for label in data.labels if label not in index]
    if unknown:
        names = sorted(set(unknown))
        raise DataError(
            f"{data.path}: {len(unknown)} example(s) have labels that the training "
            f"data lacks; {option} must use the training labels {list(classes)}. "
            f"Received: unknown labels={names[:_SHOWN_LINES]}"
        )
    return np.array([index[label] for label in data.labels], np.int32)


def read_word_vectors(
    path: str, words: set[str], encoding: str = "utf-8"
) -> tuple[dict[str, np.ndarray], int]:
    """Vectors of `words` from a word2vec or GloVe text file, and their size.

    word2vec text files start with a `COUNT DIM` line, GloVe files do not;
    every other line is a word and its values. A word missing in lower case
    takes the vector of its first other-case spelling (word2vec is cased).
    """
    vectors: dict[str, np.ndarray] = {}
    exact: set[str] = set()
    dim = None
    with _open_bytes(path) as file:
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode(encoding).rstrip()
            except UnicodeDecodeError:
                hint = (
                    "a binary word2vec file? Convert it to text, e.g. with gensim's "
                    "KeyedVectors.save_word2vec_format(path, binary=False)"
                    if number <= 2
                    else "pass the encoding of the vectors file"
                )
                raise DataError(
                    f"{path}:{number}: not {encoding} text ({hint}). "
                    f"Received: encoding={encoding!r}"
                ) from None
            if number == 1 and re.fullmatch(r"\d+\s+\d+", line.strip()):
                dim = int(line.split()[1])
                continue
            if not line.strip():
                continue
            if dim is None:
                dim = len(line.split(" ")) - 1
            parts = line.rsplit(" ", dim)
            if len(parts) != dim + 1:
                raise DataError(
                    f"{path}:{number}: expected a word and {dim} values (the size "
                    f"of the vectors above); is this a word2vec/GloVe text file? "
                    f"Received: {len(parts) - 1} values"
                )
            word = parts[0].strip()
            key = word if word in words else word.lower()
            if key not in words or key in exact or (key != word and key in vectors):
                continue
            try:
                vectors[key] = np.array(parts[1:], np.float32)
            except ValueError:
                raise DataError(
                    f"{path}:{number}: the values after the word must be numbers. "
                    f"Received: line={line[:60]!r}"
                ) from None
            if key == word:
                exact.add(key)
    if dim is None:
        raise DataError(f"{path}: no word vectors in the file. Received: path={path!r}")
    return vectors, dim
