"""The benchmark configurations and the seeded data every framework receives.

A config is an MLP ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ReLU after
every hidden Linear, softmax cross-entropy (mean) on integer labels, and a
batch of ``batch`` rows. Every framework starts from the same NumPy arrays:
x (N, D) standard normal, y (N,) int64 labels, weights W_l (in, out) scaled
1/sqrt(in) and biases zero (torch receives W_l.T, its (out, in) layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    sizes: tuple[int, ...]  # (D, H_1, ..., C)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def n_params(self) -> int:
        return sum(d * m + m for d, m in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def label(self) -> str:
        return f"{self.name} (N={self.batch}, {'-'.join(map(str, self.sizes))})"

    def gemm_flops(self, input_grad: bool = True) -> int:
        """2*N*D*M per product: forward x@W, backward dout@W.T (all layers if input_grad) and x.T@dout."""
        f = 0
        for i, (d, m) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            products = 3 if (input_grad or i > 0) else 2
            f += products * 2 * self.batch * d * m
        return f


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("tiny", 64, (2, 3, 2)),
        Config("small", 128, (784, 256, 10)),
        Config("medium", 256, (1024, 1024, 1024, 10)),
        Config("large", 1024, (4096, 4096, 10)),
    )
}
DTYPES = ("float32", "float64")
VARIANTS = ("grad", "sgd", "adam")  # fwd+loss+bwd; + SGD update; + Adam update
LR = 1e-3  # small enough that repeated steps on one batch stay finite


Layers = list[tuple[np.ndarray, np.ndarray]]


def make_data(cfg: Config, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Layers]:
    """x (N, D), y (N,) int64, and [(W (in, out), b (out,)) per layer], all in ``dtype``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg.batch, cfg.sizes[0])).astype(dtype)  # (N, D)
    y = rng.integers(0, cfg.sizes[-1], size=cfg.batch).astype(np.int64)  # (N,)
    layers = []
    for d, m in zip(cfg.sizes[:-1], cfg.sizes[1:]):
        W = (rng.standard_normal((d, m)) / np.sqrt(d)).astype(dtype)  # (in, out)
        b = np.zeros(m, dtype=dtype)  # (out,)
        layers.append((W, b))
    return x, y, layers
