"""The network the verifier reasons about, and how graphs are lowered to it."""
