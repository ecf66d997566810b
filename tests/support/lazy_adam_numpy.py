"""Independent NumPy (float64) LazyAdam, from TF Addons' equations.

`tfa.optimizers.LazyAdam` (tensorflow_addons/optimizers/lazy_adam.py) steps a
row-sparse gradient after the Keras optimizer base class has summed the
gradients of repeated indices (`_deduplicate_indexed_slices`); then, for the
touched rows only,

    m[rows] = beta_1 m[rows] + (1 - beta_1) g
    v[rows] = beta_2 v[rows] + (1 - beta_2) g^2
    w[rows] -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m[rows] / (sqrt(v[rows]) + eps)

and every other row of w, m and v is left as it is. Depends only on NumPy.
"""

import numpy as np


class NumpyLazyAdam:
    """LazyAdam on one table `w` (rows on axis 0)."""

    def __init__(self, w, lr, beta_1=0.9, beta_2=0.999, eps=1e-8):
        self.w = np.asarray(w, dtype=np.float64).copy()
        self.m = np.zeros_like(self.w)
        self.v = np.zeros_like(self.w)
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, eps
        self.t = 0

    def step(self, indices, values):
        """One iteration with gradient rows `values[i]` for `indices[i]`."""
        self.t += 1
        indices = np.asarray(indices)
        rows = np.unique(indices)
        g = np.zeros((len(rows),) + self.w.shape[1:])
        np.add.at(g, np.searchsorted(rows, indices), np.asarray(values, np.float64))
        b1, b2, t = self.b1, self.b2, self.t
        self.m[rows] = b1 * self.m[rows] + (1 - b1) * g
        self.v[rows] = b2 * self.v[rows] + (1 - b2) * g * g
        lr_t = self.lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        self.w[rows] -= lr_t * self.m[rows] / (np.sqrt(self.v[rows]) + self.eps)
