"""Bayes by Backprop layers (Blundell et al. 2015) with and without the local reparametrization trick.

Posterior :math:`q(w) = \\prod \\mathcal N(\\mu, \\sigma^2)`, :math:`\\sigma = \\mathrm{softplus}(\\rho)`,
on weights and biases. Lecture 2 derives them.

- ``local_reparam=True`` (LRT, Kingma et al. 2015): sample the pre-activations,
  :math:`B = A\\mu + \\sqrt{A^2 \\sigma^2 + \\epsilon_0} \\odot \\varepsilon` (elementwise squares;
  ``A ⋆`` in place of ``A`` for convolutions; :math:`\\epsilon_0 = 10^{-8}` keeps the square root's
  gradient finite). Fewer, independent samples per example: lower-variance gradients.
- ``local_reparam=False``: sample one weight matrix :math:`w = \\mu + \\sigma \\odot \\varepsilon` per forward pass.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from bnn_teach import kl as _kl
from bnn_teach.nn._ops import Conv2dOp, LinearOp, init_mean_, lrt_sample_softplus
from bnn_teach.nn.base import BayesianModule
from bnn_teach.priors import GaussianPrior, Prior

__all__ = ["BayesLinear", "BayesConv2d"]

LRT_EPS = 1e-8


class _BayesByBackprop(BayesianModule):
    def _setup_posterior(self, bias, prior, local_reparam, init_rho):
        if prior is None:
            prior = GaussianPrior(1.0)
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a bnn_teach.priors.Prior, got {prior!r}")
        if isinstance(init_rho, bool) or not isinstance(init_rho, numbers.Real):
            raise TypeError(f"init_rho must be a number, got {init_rho!r}")
        self.prior = prior
        self.local_reparam = bool(local_reparam)
        self.weight_mu = nn.Parameter(torch.empty(self.weight_shape))
        self.weight_rho = nn.Parameter(torch.full(self.weight_shape, float(init_rho)))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(self.weight_shape[0]))
            self.bias_rho = nn.Parameter(torch.full((self.weight_shape[0],), float(init_rho)))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        init_mean_(self.weight_mu.data, None if self.bias_mu is None else self.bias_mu.data, self.fan_in)

    @property
    def weight_sigma(self) -> torch.Tensor:
        """Posterior standard deviation of the weights, ``softplus(weight_rho)``."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self):
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio ``|mu| / sigma`` of each weight (Blundell et al.'s pruning score)."""
        return self.weight_mu.abs() / self.weight_sigma

    def pruning_mask(self) -> torch.Tensor:
        """Weights kept in eval mode: all of them (prune by SNR with :func:`bnn_teach.sparsity.prune`)."""
        return torch.ones(self.weight_shape, dtype=torch.bool, device=self.weight_mu.device)

    def forward(self, x):
        self._check_input(x)
        if not self.sampling_active:
            return self._op(x, self.weight_mu, self.bias_mu)
        if self.local_reparam:
            return lrt_sample_softplus(self, x, self.weight_mu, self.weight_rho, self.bias_mu, self.bias_rho, LRT_EPS)
        weight_sigma, bias_sigma = self.weight_sigma, self.bias_sigma
        weight = self.weight_mu + weight_sigma * torch.randn_like(weight_sigma)
        bias = None if bias_sigma is None else self.bias_mu + bias_sigma * torch.randn_like(bias_sigma)
        return self._op(x, weight, bias)

    def kl(self):
        """KL(q || prior) summed over weights and biases: closed form for a Gaussian prior,
        a one-sample Monte Carlo estimate otherwise (scale mixture)."""
        pairs = [(self.weight_mu, self.weight_sigma)]
        if self.bias_mu is not None:
            pairs.append((self.bias_mu, self.bias_sigma))
        total = 0.0
        for mu, sigma in pairs:
            term = self.prior.kl_from_normal(mu, sigma)
            if term is None:
                term = _kl.monte_carlo(Normal(mu, sigma), self.prior.log_prob)
            total = total + term.sum()
        return total

    def extra_repr(self):
        return f"{self._op_repr()}, bias={self.bias_mu is not None}, local_reparam={self.local_reparam}, prior={self.prior}"


class BayesLinear(LinearOp, _BayesByBackprop):
    """Bayesian ``nn.Linear``: Gaussian posterior on weights and bias, ``sigma = softplus(rho)``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, whether there is a (Bayesian) bias
    prior : :class:`~bnn_teach.priors.Prior`, default ``GaussianPrior(1.0)``
    local_reparam : bool, sample pre-activations (LRT, default) or weights
    init_rho : float, initial ``rho`` of every weight (``softplus(-5) ≈ 0.0067``)

    Shapes: input ``(..., in_features)`` → output ``(..., out_features)``.
    """

    def __init__(self, in_features, out_features, bias=True, prior=None, local_reparam=True, init_rho=-5.0):
        super().__init__()
        self._setup_op(in_features, out_features)
        self._setup_posterior(bias, prior, local_reparam, init_rho)


class BayesConv2d(Conv2dOp, _BayesByBackprop):
    """Bayesian ``nn.Conv2d`` (same parameters as :class:`BayesLinear` plus the convolution's).

    Shapes: input ``(N, in_channels, H, W)`` → output ``(N, out_channels, H', W')``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, prior=None, local_reparam=True, init_rho=-5.0):
        super().__init__()
        self._setup_op(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self._setup_posterior(bias, prior, local_reparam, init_rho)
