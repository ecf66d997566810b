"""Search: falsification, input splitting, MILP, and scheduling the work."""
