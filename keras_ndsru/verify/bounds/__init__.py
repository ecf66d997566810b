"""Bounds on a network's values over an input region."""
