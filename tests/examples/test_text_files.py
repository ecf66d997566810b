"""Reading sentence files and word-vector files as they come (examples/_text_files.py)."""

import numpy as np
import pytest
from _text_files import (
    DataError,
    class_names,
    encode_labels,
    read_labeled_lines,
    read_word_vectors,
)


def test_utf8_file_with_blank_lines_and_crlf(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"pos  a fine film \r\n\r\nneg\tdull\r\n")
    data = read_labeled_lines(str(path))
    assert (data.labels, data.texts, data.notes) == (
        ["pos", "neg"],
        ["a fine film", "dull"],
        [],
    )


def test_cp1252_file_is_read_and_reported(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("pos un film très réussi\nneg “ennuyeux”\n".encode("cp1252"))
    data = read_labeled_lines(str(path))
    assert data.texts == ["un film très réussi", "“ennuyeux”"]
    assert len(data.notes) == 1
    assert "latin.txt: not UTF-8 (line 1, byte 0xe8): read as cp1252" in data.notes[0]


def test_undecodable_file_names_file_line_and_fix(tmp_path):
    path = tmp_path / "bad.txt"
    # 0x81 is undefined in cp1252 and invalid as UTF-8.
    path.write_bytes(b"pos fine\nneg bad \x81 byte\n")
    with pytest.raises(ValueError) as error:
        read_labeled_lines(str(path))
    message = str(error.value)
    assert "\n" not in message
    assert "bad.txt:2: byte 0x81 is not valid UTF-8 nor cp1252" in message
    assert "--encoding" in message and message.endswith("Received: encoding=None")


def test_explicit_encoding(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("pos ça va\n".encode("latin-1"))
    assert read_labeled_lines(str(path), encoding="latin-1").texts == ["ça va"]
    path.write_bytes("pos ça va\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt:1: .*Received: encoding='utf-8'"):
        read_labeled_lines(str(path), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown encoding.*Received: encoding='nope'"):
        read_labeled_lines(str(path), encoding="nope")


def test_byte_order_mark_is_not_part_of_the_first_label(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf1 good\n0 bad\n1 fine\n")
    data = read_labeled_lines(str(path))
    assert class_names(data.labels) == ["0", "1"]
    assert data.notes == [f"{path}: dropped the UTF-8 byte-order mark at its start"]
    path.write_bytes("1 good\n0 bad\n".encode("utf-16"))
    assert read_labeled_lines(str(path)).labels == ["1", "0"]


def test_label_only_lines_are_skipped_and_reported(tmp_path):
    path = tmp_path / "gaps.txt"
    path.write_text("pos fine\nneg\npos good\nneg   \nneg dull\n")
    data = read_labeled_lines(str(path))
    assert data.texts == ["fine", "good", "dull"]
    assert data.notes == [
        f"{path}: skipped 2 line(s) with a label and no text (line 2, 4)"
    ]


def test_files_that_cannot_be_examples(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\npos\n")
    with pytest.raises(ValueError, match=r"empty.txt: no `LABEL text` lines"):
        read_labeled_lines(str(path))
    path.write_text("".join(f"word{i} is not a label\n" for i in range(40)))
    with pytest.raises(ValueError, match=r"40 distinct labels in 40 lines.*'word2'\]$"):
        read_labeled_lines(str(path))


def test_labels_encode_in_numeric_order_and_unknown_labels_fail(tmp_path):
    assert class_names(["10", "2", "1"]) == ["1", "2", "10"]
    assert class_names(["pos", "neg"]) == ["neg", "pos"]
    path = tmp_path / "test.txt"
    path.write_text("a x\nmeh y\n")
    data = read_labeled_lines(str(path))
    with pytest.raises(ValueError, match=r"test.txt: 1 example\(s\).*\['meh'\]$"):
        encode_labels(["a", "b"], data)
    np.testing.assert_array_equal(encode_labels(["a", "meh"], data), [0, 1])


def test_word2vec_and_glove_text_files(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 1 0 0\nfilm 0 3 4\nunused 1 1 1\n")
    vectors, dim = read_word_vectors(str(glove), {"the", "film", "dull"})
    assert dim == 3 and sorted(vectors) == ["film", "the"]
    np.testing.assert_array_equal(vectors["film"], [0, 3, 4])
    word2vec = tmp_path / "w2v.txt"
    word2vec.write_text("3 2\nFilm 1 0\nfilm 0 2\nDull 5 0\n")
    vectors, dim = read_word_vectors(str(word2vec), {"film", "dull"})
    assert dim == 2
    np.testing.assert_array_equal(vectors["film"], [0, 2])  # exact case wins
    np.testing.assert_array_equal(vectors["dull"], [5, 0])  # cased fallback


def test_word_vector_errors_name_file_and_line(tmp_path):
    path = tmp_path / "vec.txt"
    path.write_text("the 1 0 0\nfilm 0 3\n")
    with pytest.raises(ValueError, match=r"vec.txt:2: expected a word and 3 values"):
        read_word_vectors(str(path), {"film"})
    path.write_text("the 1 0 x\n")
    with pytest.raises(ValueError, match=r"vec.txt:1: the values .* numbers"):
        read_word_vectors(str(path), {"the"})
    path.write_bytes(b"2 3\n\x80\xfe\xff binary")
    with pytest.raises(ValueError, match=r"vec.txt:2: .*binary word2vec"):
        read_word_vectors(str(path), {"the"})


def test_missing_files_are_one_line_errors(tmp_path):
    for path in (tmp_path / "nope.txt", tmp_path):
        with pytest.raises(DataError, match=rf"^{path}: cannot be read \(.+\)"):
            read_labeled_lines(str(path))
        with pytest.raises(DataError, match=rf"^{path}: cannot be read \(.+\)"):
            read_word_vectors(str(path), {"the"})
