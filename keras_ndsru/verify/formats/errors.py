"""Errors of the input formats: one line naming the file and what is wrong."""


class OnnxError(ValueError):
    """A graph the verifier cannot read (one line naming the node)."""
