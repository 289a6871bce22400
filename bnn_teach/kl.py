"""KL divergences of the course, as pure elementwise functions (no hidden reduction).

Every function returns a tensor of the broadcast shape of its inputs; layers sum it.
Lecture 2 (Bayes by Backprop) derives :func:`normal_normal`; lecture 4 (SparseVD and ARD)
derives :func:`sparsevd` and :func:`ard`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bnn_teach._checks import check_positive

__all__ = ["normal_normal", "sparsevd", "sparsevd_exact_mc", "ard", "monte_carlo", "K1", "K2", "K3"]

# Molchanov, Ashukha & Vetrov (2017), Eq. 14.
K1, K2, K3 = 0.63576, 1.87320, 1.48695


def _as_tensor(name, value, like=None):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a tensor or a number, got {value!r}")
    if like is not None:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return torch.as_tensor(float(value))


def normal_normal(mu_q, sigma_q, mu_p, sigma_p, *, validate: bool = True) -> torch.Tensor:
    r"""Elementwise :math:`\mathrm{KL}(\mathcal N(\mu_q, \sigma_q^2)\,\|\,\mathcal N(\mu_p, \sigma_p^2))`.

    .. math::

        \mathrm{KL} = \log\frac{\sigma_p}{\sigma_q}
                      + \frac{\sigma_q^2 + (\mu_q - \mu_p)^2}{2\sigma_p^2} - \frac12

    ``sigma_q`` and ``sigma_p`` are standard deviations (not variances), all arguments broadcast.
    ``validate=False`` skips the check that they are positive and finite (a layer, whose
    :math:`\sigma = \mathrm{softplus}(\rho)` is positive by construction, saves two passes).

    >>> import torch, bnn_teach as bt
    >>> bt.kl.normal_normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]), 0.0, 1.0)
    tensor([0.0000, 0.5000])
    """
    like = next((t for t in (mu_q, sigma_q, mu_p, sigma_p) if isinstance(t, torch.Tensor)), None)
    mu_q, sigma_q = _as_tensor("mu_q", mu_q, like), _as_tensor("sigma_q", sigma_q, like)
    mu_p, sigma_p = _as_tensor("mu_p", mu_p, like), _as_tensor("sigma_p", sigma_p, like)
    if validate:
        check_positive("sigma_q", sigma_q.detach())
        check_positive("sigma_p", sigma_p.detach())
    var_ratio = (sigma_q / sigma_p).pow(2)
    mahalanobis = ((mu_q - mu_p) / sigma_p).pow(2)
    return 0.5 * (var_ratio + mahalanobis - 1.0 - torch.log(var_ratio))


def sparsevd(log_alpha: torch.Tensor) -> torch.Tensor:
    r"""Elementwise approximate :math:`\mathrm{KL}(q(w)\,\|\,p(w))` for the log-uniform prior.

    Molchanov et al. (2017), with :math:`q(w) = \mathcal N(\theta, \alpha\theta^2)`:

    .. math::

        \mathrm{KL} \approx k_1 - k_1\,\sigma(k_2 + k_3 \log\alpha) + \tfrac12 \log(1 + \alpha^{-1}),
        \quad k_1 = 0.63576,\ k_2 = 1.87320,\ k_3 = 1.48695.

    The constant :math:`C = -k_1` is kept, so KL :math:`\ge 0` and KL :math:`\to 0` as
    :math:`\alpha \to \infty` (a pruned weight costs nothing).
    """
    if not isinstance(log_alpha, torch.Tensor):
        raise TypeError(f"log_alpha must be a tensor, got {type(log_alpha).__name__}")
    return K1 - K1 * torch.sigmoid(K2 + K3 * log_alpha) + 0.5 * F.softplus(-log_alpha)


def sparsevd_exact_mc(log_alpha: torch.Tensor, num_samples: int = 100_000, generator=None) -> torch.Tensor:
    r"""Monte Carlo estimate of the exact SparseVD KL, with the constant that makes it vanish as
    :math:`\alpha\to\infty`.

    .. math::

        \mathrm{KL} = -\tfrac12\log\alpha + \mathbb E_{\varepsilon\sim\mathcal N(0,1)}
        \log\lvert 1 + \sqrt{\alpha}\,\varepsilon\rvert + \tfrac12(\gamma + \log 2)

    (:math:`\gamma` is Euler's constant; :math:`\mathbb E \log|\varepsilon| = -\tfrac12(\gamma + \log 2)`).
    Used to check :func:`sparsevd`; common random numbers over ``log_alpha`` (shape ``(m,)``).
    """
    log_alpha = torch.as_tensor(log_alpha, dtype=torch.float64)
    eps = torch.randn(num_samples, generator=generator, dtype=torch.float64)
    sqrt_alpha = torch.exp(0.5 * log_alpha).reshape(-1, 1)
    expectation = torch.log(torch.abs(1.0 + sqrt_alpha * eps)).mean(dim=1).reshape(log_alpha.shape)
    return -0.5 * log_alpha + expectation + 0.5 * (0.5772156649015329 + math.log(2.0))


def ard(log_alpha: torch.Tensor) -> torch.Tensor:
    r"""Elementwise KL to the optimal ARD prior :math:`\mathcal N(0, \mu^2 + \sigma^2)`.

    .. math::

        \mathrm{KL} = \tfrac12 \log\left(1 + \alpha^{-1}\right), \quad \alpha = \sigma^2 / \mu^2
    """
    if not isinstance(log_alpha, torch.Tensor):
        raise TypeError(f"log_alpha must be a tensor, got {type(log_alpha).__name__}")
    return 0.5 * F.softplus(-log_alpha)


def monte_carlo(q: torch.distributions.Distribution, log_prob_p, num_samples: int = 1) -> torch.Tensor:
    r"""Elementwise Monte Carlo KL for priors without a closed form.

    .. math::

        \mathrm{KL}(q\,\|\,p) \approx \frac1S \sum_{s=1}^S \big[\log q(w_s) - \log p(w_s)\big],
        \quad w_s \sim q \text{ (reparametrised)}

    ``log_prob_p`` is a callable returning elementwise log-densities. Unbiased, differentiable.
    """
    check_positive("num_samples", num_samples, integer=True)
    w = q.rsample((num_samples,))
    return (q.log_prob(w) - log_prob_p(w)).mean(dim=0)
