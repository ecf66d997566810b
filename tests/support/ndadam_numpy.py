"""Independent NumPy (float64) transcription of ND-Adam, Algorithm 1 of
arXiv 1709.04546, with Adam (in Keras' epsilon-hat form) for theta_s.

Imported by the tests and by the subprocess checks; depends only on NumPy.
"""

import numpy as np


class NumpyNDAdam:
    """Algorithm 1 on a dict of arrays; `axes[name]` is None for theta_s."""

    def __init__(self, weights, axes, lr_s, lr_v, beta_1=0.9, beta_2=0.999, eps=1e-8):
        self.axes = dict(axes)
        self.lr_s = lr_s if callable(lr_s) else (lambda step, lr=lr_s: lr)
        self.lr_v = lr_v if callable(lr_v) else (lambda step, lr=lr_v: lr)
        self.b1, self.b2, self.eps = beta_1, beta_2, eps
        self.t = 0
        self.w, self.m, self.v = {}, {}, {}
        for name, value in weights.items():
            w = np.asarray(value, dtype=np.float64)
            a = self.axes[name]
            if a is not None:
                w = w / np.sqrt(np.sum(w * w, axis=a, keepdims=True))
                self.v[name] = np.zeros_like(np.sum(w, axis=a, keepdims=True))
            else:
                self.v[name] = np.zeros_like(w)
            self.w[name] = w
            self.m[name] = np.zeros_like(w)

    def step(self, grads):
        """One iteration; `grads` maps every name to its gradient."""
        lr_s, lr_v = self.lr_s(self.t), self.lr_v(self.t)
        self.t += 1
        t, b1, b2 = self.t, self.b1, self.b2
        for name, g in grads.items():
            g = np.asarray(g, dtype=np.float64)
            w, a = self.w[name], self.axes[name]
            if a is None:  # Adam, as keras.optimizers.Adam computes it
                self.m[name] = b1 * self.m[name] + (1 - b1) * g
                self.v[name] = b2 * self.v[name] + (1 - b2) * g * g
                alpha = lr_s * np.sqrt(1 - b2**t) / (1 - b1**t)
                self.w[name] = w - alpha * self.m[name] / (
                    np.sqrt(self.v[name]) + self.eps
                )
                continue
            # Algorithm 1, lines 5-11.
            g_bar = g - np.sum(g * w, axis=a, keepdims=True) * w
            self.m[name] = b1 * self.m[name] + (1 - b1) * g_bar
            self.v[name] = b2 * self.v[name] + (1 - b2) * np.sum(
                g_bar**2, axis=a, keepdims=True
            )
            m_hat = self.m[name] / (1 - b1**t)
            v_hat = self.v[name] / (1 - b2**t)
            w_bar = w - lr_v * m_hat / (np.sqrt(v_hat) + self.eps)
            self.w[name] = w_bar / np.sqrt(np.sum(w_bar**2, axis=a, keepdims=True))
