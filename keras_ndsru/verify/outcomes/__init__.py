"""Outcomes out: typed verdicts and results."""
