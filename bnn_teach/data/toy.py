"""Toy data sets of the course, each seeded and returned as float tensors.

- :func:`regression_1d`: heteroscedastic 1-D regression with a gap in the inputs (lecture on
  aleatoric vs epistemic uncertainty: noise grows with |x|, nothing is observed in the gap).
- :func:`two_moons`: 2-D binary classification.
- :func:`large_p_small_n`: Deng et al. 2019's sparse linear regression (n=100, p=1000).
- :func:`random_labels`: MNIST with shuffled labels (Molchanov et al. 2017, SparseVD prunes it all).
"""
from __future__ import annotations

import math

import torch

from bnn_teach._checks import check_positive

__all__ = ["regression_1d", "regression_1d_truth", "two_moons", "large_p_small_n", "random_labels"]

_GAP = (-1.0, 1.0)
_RANGE = (-4.0, 4.0)


def regression_1d_truth(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """True mean ``sin(x) + 0.1 x`` and noise standard deviation ``0.05 + 0.1 |x|`` at ``x``."""
    return torch.sin(x) + 0.1 * x, 0.05 + 0.1 * x.abs()


def regression_1d(num_data: int = 200, seed: int = 0, gap=_GAP, x_range=_RANGE):
    """Heteroscedastic 1-D regression with no inputs inside ``gap``.

    ``x`` is uniform on ``x_range`` minus ``gap``; ``y = sin(x) + 0.1 x + (0.05 + 0.1|x|) * eps``.

    Returns
    -------
    X : float32 tensor of shape (num_data, 1)
    y : float32 tensor of shape (num_data, 1)
    """
    check_positive("num_data", num_data, integer=True)
    lo, hi = x_range
    g_lo, g_hi = gap
    if not lo <= g_lo < g_hi <= hi:
        raise ValueError(f"gap {gap} must lie inside x_range {x_range}")
    gen = torch.Generator().manual_seed(seed)
    # Sample uniformly on the union [lo, g_lo] U [g_hi, hi] by sampling its total length.
    u = torch.rand(num_data, generator=gen) * ((g_lo - lo) + (hi - g_hi))
    x = torch.where(u < g_lo - lo, lo + u, g_hi + (u - (g_lo - lo)))
    x, _ = torch.sort(x)
    mean, noise_std = regression_1d_truth(x)
    y = mean + noise_std * torch.randn(num_data, generator=gen)
    return x.unsqueeze(1), y.unsqueeze(1)


def two_moons(num_data: int = 200, noise: float = 0.1, seed: int = 0):
    """Two interleaving half circles (class 0 on top, class 1 below), Gaussian noise ``noise``.

    Returns
    -------
    X : float32 tensor of shape (num_data, 2)
    y : int64 tensor of shape (num_data,), half of each class (the first class gets the odd one)
    """
    check_positive("num_data", num_data, integer=True)
    check_positive("noise", noise, allow_zero=True)
    gen = torch.Generator().manual_seed(seed)
    n0 = (num_data + 1) // 2
    n1 = num_data - n0
    t0 = torch.rand(n0, generator=gen) * math.pi
    t1 = torch.rand(n1, generator=gen) * math.pi
    top = torch.stack([torch.cos(t0), torch.sin(t0)], dim=1)
    bottom = torch.stack([1.0 - torch.cos(t1), 0.5 - torch.sin(t1)], dim=1)
    X = torch.cat([top, bottom]) + noise * torch.randn(num_data, 2, generator=gen)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    perm = torch.randperm(num_data, generator=gen)
    return X[perm], y[perm]


def large_p_small_n(n: int = 100, p: int = 1000, noise_var: float = 3.0, correlation: float = 0.6,
                    seed: int = 0, num_test: int = 0):
    """Deng et al. 2019's simulation: ``y = X beta + eta``, ``eta ~ N(0, noise_var I)``.

    ``beta = (beta1, beta2, beta3, 0, ..., 0)`` with ``beta1 ~ N(3, 0.2^2)``, ``beta2 ~ N(2, 0.2^2)``,
    ``beta3 ~ N(1, 0.2^2)``; rows of ``X ~ N_p(0, Sigma)`` with ``Sigma_ij = correlation^|i-j|``.

    Returns
    -------
    X : float32 tensor of shape (n, p); y : (n,); beta : (p,).
    With ``num_test > 0`` also ``X_test (num_test, p)`` and ``y_test (num_test,)`` from the same model.
    """
    check_positive("n", n, integer=True)
    check_positive("p", p, integer=True)
    check_positive("noise_var", noise_var)
    if p < 3:
        raise ValueError(f"p must be at least 3 (three non-zero coefficients), got {p}")
    if not 0 <= correlation < 1:
        raise ValueError(f"correlation must be in [0, 1), got {correlation}")
    gen = torch.Generator().manual_seed(seed)
    beta = torch.zeros(p, dtype=torch.float64)
    beta[:3] = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64) + 0.2 * torch.randn(
        3, generator=gen, dtype=torch.float64
    )

    def draw(rows):
        # AR(1) columns: x_j = rho x_{j-1} + sqrt(1 - rho^2) z_j has Cov(x_i, x_j) = rho^|i-j|.
        z = torch.randn(rows, p, generator=gen, dtype=torch.float64)
        X = torch.empty_like(z)
        X[:, 0] = z[:, 0]
        scale = math.sqrt(1.0 - correlation**2)
        for j in range(1, p):
            X[:, j] = correlation * X[:, j - 1] + scale * z[:, j]
        y = X @ beta + math.sqrt(noise_var) * torch.randn(rows, generator=gen, dtype=torch.float64)
        return X.float(), y.float()

    X, y = draw(n)
    if num_test:
        X_test, y_test = draw(num_test)
        return X, y, beta.float(), X_test, y_test
    return X, y, beta.float()


def random_labels(y: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The labels ``y`` randomly shuffled (seeded): class counts kept, no signal left to learn.

    ``X, y = load_mnist(); y_random = random_labels(y)`` gives random-label MNIST.
    """
    if not isinstance(y, torch.Tensor) or y.dim() != 1:
        raise ValueError(f"y must be a 1-D tensor of labels, got {type(y).__name__} {getattr(y, 'shape', '')}")
    gen = torch.Generator().manual_seed(seed)
    return y[torch.randperm(len(y), generator=gen)]
