"""Priors over weights, built on :mod:`torch.distributions` (lecture 2, Bayes by Backprop).

A prior holds plain numbers; :meth:`distribution` builds the ``torch.distributions`` object on the
device and dtype of the weights it scores, so a layer moves to a GPU without its prior noticing.
"""
from __future__ import annotations

import math

import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal

from bnn_teach import kl as _kl
from bnn_teach._checks import check_positive

__all__ = ["Prior", "GaussianPrior", "ScaleMixturePrior", "LogUniform"]


class Prior:
    """Base class: ``log_prob(w)`` elementwise, ``distribution(like)``, optional closed-form KL."""

    def distribution(self, like: torch.Tensor) -> torch.distributions.Distribution:
        raise NotImplementedError

    def log_prob(self, w: torch.Tensor) -> torch.Tensor:
        """Elementwise log-density at ``w`` (same shape as ``w``)."""
        return self.distribution(w).log_prob(w)

    def kl_from_normal(self, mu_q: torch.Tensor, sigma_q: torch.Tensor):
        """Closed-form elementwise KL(N(mu_q, sigma_q^2) || prior), or ``None`` when there is none."""
        return None


class GaussianPrior(Prior):
    r"""Isotropic Gaussian prior :math:`w \sim \mathcal N(\mu, \sigma^2)` (``sigma`` a standard deviation)."""

    def __init__(self, sigma: float = 1.0, mu: float = 0.0):
        self.sigma = float(check_positive("sigma", sigma))
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu):
            raise TypeError(f"mu must be a finite number, got {mu!r}")
        self.mu = float(mu)

    def distribution(self, like):
        return Normal(torch.tensor(self.mu, dtype=like.dtype, device=like.device),
                      torch.tensor(self.sigma, dtype=like.dtype, device=like.device))

    def kl_from_normal(self, mu_q, sigma_q):
        return _kl.normal_normal(mu_q, sigma_q, self.mu, self.sigma)

    def __repr__(self):
        return f"GaussianPrior(sigma={self.sigma}, mu={self.mu})"


class ScaleMixturePrior(Prior):
    r"""Scale mixture of two zero-mean Gaussians (Blundell et al. 2015, Eq. 7).

    .. math::

        p(w) = \pi\,\mathcal N(w \mid 0, \sigma_1^2) + (1 - \pi)\,\mathcal N(w \mid 0, \sigma_2^2),
        \quad \sigma_1 > \sigma_2

    No closed-form KL: layers use a Monte Carlo estimate (:func:`bnn_teach.kl.monte_carlo`).
    The paper's grid: ``-log sigma1 in {0, 1, 2}``, ``-log sigma2 in {6, 7, 8}``, ``pi in {1/4, 1/2, 3/4}``.

    >>> import math, torch
    >>> prior = ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))
    >>> prior.log_prob(torch.tensor([0.0, 1.0]))  # a tall spike at 0, a wide slab around it
    tensor([ 4.3904, -2.1121])
    >>> ScaleMixturePrior(sigma1=0.001, sigma2=1.0)
    Traceback (most recent call last):
    ...
    ValueError: sigma1 must be larger than sigma2 ...
    """

    def __init__(self, pi: float = 0.5, sigma1: float = math.exp(-0.0), sigma2: float = math.exp(-6.0)):
        if isinstance(pi, bool) or not isinstance(pi, (int, float)) or not 0.0 < pi < 1.0:
            raise ValueError(f"pi must be a number strictly between 0 and 1, got {pi!r}")
        self.pi = float(pi)
        self.sigma1 = float(check_positive("sigma1", sigma1))
        self.sigma2 = float(check_positive("sigma2", sigma2))
        if not self.sigma1 > self.sigma2:
            raise ValueError(f"sigma1 must be larger than sigma2 (sigma1 the wide slab, sigma2 the narrow spike), got "
                             f"sigma1={sigma1!r}, sigma2={sigma2!r}; swap them, e.g. sigma1=1.0, sigma2=math.exp(-6)")

    def distribution(self, like):
        kw = dict(dtype=like.dtype, device=like.device)
        mixing = Categorical(probs=torch.tensor([self.pi, 1.0 - self.pi], **kw))
        components = Normal(torch.zeros(2, **kw), torch.tensor([self.sigma1, self.sigma2], **kw))
        return MixtureSameFamily(mixing, components)

    def log_prob(self, w):
        # log(pi N1 + (1-pi) N2) by logsumexp: stable for |w| far outside either scale. (Not torch.logaddexp:
        # its second derivative is NaN where one term underflows.)
        log_n1 = -0.5 * (w / self.sigma1) ** 2 - math.log(self.sigma1) - 0.5 * math.log(2 * math.pi)
        log_n2 = -0.5 * (w / self.sigma2) ** 2 - math.log(self.sigma2) - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(torch.stack([log_n1 + math.log(self.pi), log_n2 + math.log1p(-self.pi)]), dim=0)

    def __repr__(self):
        return f"ScaleMixturePrior(pi={self.pi}, sigma1={self.sigma1:.4g}, sigma2={self.sigma2:.4g})"


class LogUniform(torch.distributions.Distribution):
    r"""The improper log-uniform prior :math:`p(\lvert w\rvert) \propto 1/\lvert w\rvert` of SparseVD.

    ``log_prob`` is unnormalised (:math:`-\log|w|`). ``torch.distributions.kl_divergence(Normal(mu, sigma),
    LogUniform())`` dispatches to :func:`bnn_teach.kl.sparsevd` with
    :math:`\log\alpha = \log\sigma^2 - \log\mu^2`.
    """

    arg_constraints: dict = {}
    support = torch.distributions.constraints.real

    def __init__(self, validate_args=None):
        super().__init__(batch_shape=torch.Size(), validate_args=validate_args)

    def log_prob(self, value):
        return -torch.log(torch.abs(value))


@torch.distributions.register_kl(Normal, LogUniform)
def _kl_normal_loguniform(q, p):
    log_alpha = 2.0 * torch.log(q.scale) - 2.0 * torch.log(torch.abs(q.loc))
    return _kl.sparsevd(log_alpha)
