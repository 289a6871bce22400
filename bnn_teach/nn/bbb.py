"""Bayes by Backprop layers (Blundell et al. 2015), with and without the local reparametrization trick.

Posterior :math:`q(w) = \\prod \\mathcal N(\\mu, \\sigma^2)`, :math:`\\sigma = \\mathrm{softplus}(\\rho)`,
on weights and biases. Lecture 2 derives them; ``forward`` and ``kl`` below are the lecture's formulas.

- ``local_reparam=True`` (LRT, Kingma et al. 2015): sample the pre-activations,
  :math:`B = A\\mu + \\sqrt{A^2 \\sigma^2 + \\epsilon_0} \\odot \\varepsilon` (elementwise squares;
  ``A ⋆`` in place of ``A`` for convolutions; :math:`\\epsilon_0 = 10^{-8}` keeps the square root's
  gradient finite). Independent noise per example: lower-variance gradients.
- ``local_reparam=False``: sample one weight matrix :math:`w = \\mu + \\sigma \\odot \\varepsilon` per forward pass.
- ``fused=True`` (default): the same LRT sample and Gaussian KL with hand-written backward passes
  (:mod:`bnn_teach.nn._fused`), and :math:`\\sigma` computed once a step: a training forward pass keeps
  it for the next ``kl()``. Faster on a CPU, differentiable once. ``fused=False`` runs the plain
  formulas through autograd (second derivatives, ``torch.func``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from bnn_teach import kl as _kl
from bnn_teach.nn import _fused
from bnn_teach.nn._shapes import Conv2dShape, LinearShape, check_bool, check_finite, init_mean_
from bnn_teach.nn.base import LRT_EPS, BayesianModule
from bnn_teach.priors import GaussianPrior, Prior

__all__ = ["BayesLinear", "BayesConv2d"]


class _BayesByBackprop(BayesianModule):
    """Parameters ``weight_mu``, ``weight_rho`` (and ``bias_mu``, ``bias_rho``), the sampling rule and the KL."""

    def _setup_posterior(self, bias, prior, local_reparam, init_rho, fused):
        if prior is None:
            prior = GaussianPrior(1.0)
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a bnn_teach.priors.Prior, got {prior!r}")
        init_rho = check_finite("init_rho", init_rho)
        self.prior = prior
        self.local_reparam = check_bool("local_reparam", local_reparam)
        self.fused = check_bool("fused", fused)
        self.weight_mu = nn.Parameter(torch.empty(self.weight_shape))
        self.weight_rho = nn.Parameter(torch.full(self.weight_shape, init_rho))
        if check_bool("bias", bias):
            self.bias_mu = nn.Parameter(torch.empty(self.weight_shape[0]))
            self.bias_rho = nn.Parameter(torch.full((self.weight_shape[0],), init_rho))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        init_mean_(self.weight_mu.data, None if self.bias_mu is None else self.bias_mu.data, self.fan_in)

    def _sigmas(self, for_kl: bool = False):
        """``(weight_sigma, bias_sigma)`` on the fused path, computed once a step: a training forward pass
        computes them and the next ``kl()`` takes them, so each softplus and its backward run once."""
        rhos = [p for p in (self.weight_rho, self.bias_rho) if p is not None]

        def compute():
            sigmas = [_fused.Softplus.apply(p) for p in rhos]
            return sigmas[0], (sigmas[1] if len(sigmas) == 2 else None)

        return _fused.shared_with_kl(self, "sigmas", rhos, compute, for_kl)

    @property
    def weight_sigma(self) -> torch.Tensor:
        """Posterior standard deviation of the weights, ``softplus(weight_rho)``."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self):
        """Posterior standard deviation of the bias, ``softplus(bias_rho)`` (``None`` without a bias)."""
        return None if self.bias_rho is None else F.softplus(self.bias_rho)

    def forward(self, x):
        self._check_input(x)
        if not self.sampling_active:  # eval(): the posterior mean
            return self._op(x, self.weight_mu, self.bias_mu)
        fused = _fused.use_fused(self)
        weight_sigma, bias_sigma = self._sigmas() if fused else (self.weight_sigma, self.bias_sigma)
        if not self.local_reparam:  # one weight sample w = mu + sigma * eps for the whole batch
            weight = self.weight_mu + weight_sigma * torch.randn_like(self.weight_mu)
            bias = None if self.bias_mu is None else self.bias_mu + bias_sigma * torch.randn_like(self.bias_mu)
            return self._op(x, weight, bias)
        if fused:
            return _fused.LocalReparam.apply(x, self.weight_mu, self.bias_mu, weight_sigma, bias_sigma, self, LRT_EPS,
                                             True)
        # LRT: b ~ N(x mu^T + mu_b, x² sigma²^T + sigma_b²), one independent sample per output
        mean = self._op(x, self.weight_mu, self.bias_mu)
        var = self._op(x * x, self.weight_sigma ** 2, None if self.bias_rho is None else self.bias_sigma ** 2)
        return mean + torch.sqrt(var + LRT_EPS) * torch.randn_like(mean)

    def kl(self) -> torch.Tensor:
        """KL(q || prior) summed over weights and biases: :func:`bnn_teach.kl.normal_normal` for a Gaussian
        prior, a one-sample Monte Carlo estimate (:func:`bnn_teach.kl.monte_carlo`) otherwise."""
        fused = _fused.use_fused(self)
        weight_sigma, bias_sigma = self._sigmas(for_kl=True) if fused else (self.weight_sigma, self.bias_sigma)
        pairs = [(self.weight_mu, weight_sigma)]
        if self.bias_mu is not None:
            pairs.append((self.bias_mu, bias_sigma))
        total = 0.0
        for mu, sigma in pairs:
            if not isinstance(self.prior, GaussianPrior):
                term = _kl.monte_carlo(Normal(mu, sigma), self.prior.log_prob).sum()
            elif fused:
                term = _fused.GaussianKLSum.apply(mu, sigma, self.prior.mu, self.prior.sigma)
            else:  # sigma > 0 by construction: no argument checks on the training path
                term = _kl.normal_normal(mu, sigma, self.prior.mu, self.prior.sigma, validate=False).sum()
            total = total + term
        return total

    # the layer protocol (bnn_teach.sparsity, bnn_teach.viz)
    def mean_weight(self) -> torch.Tensor:
        """The weight used in eval mode: the posterior mean ``weight_mu``."""
        return self.weight_mu

    def mean_bias(self):
        """The bias used in eval mode (``None`` without a bias)."""
        return self.bias_mu

    @torch.no_grad()
    def set_mean_(self, weight, bias=None):
        """Copy ``weight`` (and ``bias``) into the posterior mean, e.g. from a trained ``nn.Linear``."""
        self.weight_mu.copy_(weight)
        if bias is not None:
            self.bias_mu.copy_(bias)

    def pruning_score(self) -> torch.Tensor:
        """Signal-to-noise ratio ``|mu| / sigma`` of each weight (Blundell et al.): high means keep."""
        return self.weight_mu.abs() / self.weight_sigma

    def pruning_mask(self) -> torch.Tensor:
        """Weights kept in eval mode: all of them (prune by SNR with :func:`bnn_teach.sparsity.prune`)."""
        return torch.ones(self.weight_shape, dtype=torch.bool, device=self.weight_mu.device)

    def extra_repr(self):
        fused = "" if self.fused else ", fused=False"
        return (f"{self._op_repr()}, bias={self.bias_mu is not None}, local_reparam={self.local_reparam}, "
                f"prior={self.prior}{fused}")


class BayesLinear(LinearShape, _BayesByBackprop):
    """Bayesian ``nn.Linear``: Gaussian posterior on weights and bias, ``sigma = softplus(rho)``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, whether there is a (Bayesian) bias
    prior : :class:`~bnn_teach.priors.Prior`, default ``GaussianPrior(1.0)``
    local_reparam : bool, sample pre-activations (LRT, default) or weights
    init_rho : float, initial ``rho`` of every weight (``softplus(-5) ≈ 0.0067``)
    fused : bool, hand-written backward passes (default) or plain autograd (see the module docstring)

    Shapes: input ``(..., in_features)`` → output ``(..., out_features)``.

    >>> import torch, bnn_teach as bt
    >>> _ = torch.manual_seed(0)
    >>> layer = bt.nn.BayesLinear(3, 2, prior=bt.priors.GaussianPrior(1.0))
    >>> x = torch.randn(4, 3)
    >>> layer(x).shape                                        # train(): a sample
    torch.Size([4, 2])
    >>> bool((layer(x) != layer(x)).all())                    # two samples differ
    True
    >>> _ = layer.eval(); torch.equal(layer(x), layer(x))     # eval(): the posterior mean
    True
    >>> layer.kl().shape, bool(layer.kl() > 0)                # KL(q || p), summed: a scalar
    (torch.Size([]), True)
    """

    def __init__(self, in_features, out_features, bias=True, prior=None, local_reparam=True, init_rho=-5.0,
                 fused=True):
        super().__init__()
        self._setup_shape(in_features, out_features)
        self._setup_posterior(bias, prior, local_reparam, init_rho, fused)


class BayesConv2d(Conv2dShape, _BayesByBackprop):
    """Bayesian ``nn.Conv2d`` (the parameters of :class:`BayesLinear` plus the convolution's).

    Shapes: input ``(N, in_channels, H, W)`` → output ``(N, out_channels, H', W')``.

    >>> import torch, bnn_teach as bt
    >>> conv = bt.nn.BayesConv2d(1, 4, kernel_size=3, padding=1)
    >>> conv(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 4, 8, 8])
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, prior=None, local_reparam=True, init_rho=-5.0, fused=True):
        super().__init__()
        self._setup_shape(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self._setup_posterior(bias, prior, local_reparam, init_rho, fused)
