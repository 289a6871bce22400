"""Mean-field Gaussians in natural parameters, and the vector of a Bayes-by-Backprop model's posterior.

Lecture 8. A diagonal Gaussian :math:`\\mathcal N(\\mu, \\mathrm{diag}\\,\\sigma^2)` over D numbers is kept as its
natural parameters, the precision :math:`\\lambda = 1/\\sigma^2` and the shift :math:`h = \\mu/\\sigma^2`
(both shape ``(D,)``). In these coordinates a product of Gaussian factors is a sum and a quotient a
difference, which is all expectation propagation needs:

.. math::

    q(\\theta) \\propto p(\\theta)\\prod_i t_i(\\theta) \\iff
    (h, \\lambda)_q = (h, \\lambda)_p + \\sum_i (h, \\lambda)_{t_i}.

A factor (an EP site) may have a zero or negative precision; a distribution may not
(:meth:`DiagGaussian.check_proper`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bnn_teach.nn.bbb import _BayesByBackprop
from bnn_teach.priors import GaussianPrior

__all__ = ["DiagGaussian", "bayes_layers", "posterior_of", "load_posterior_", "prior_of", "num_parameters",
           "inverse_softplus"]


@dataclass
class DiagGaussian:
    """A diagonal Gaussian (or an EP site) in natural parameters: ``shift`` = mu / sigma², ``precision`` = 1 / sigma².

    >>> q = DiagGaussian.from_moments(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5]))
    >>> product = q + DiagGaussian.from_moments(torch.tensor([3.0, 3.0]), torch.tensor([0.5, 0.5]))
    >>> product.mean, product.var          # precisions add; the mean is precision-weighted
    (tensor([2., 3.]), tensor([0.2500, 0.2500]))
    """

    shift: torch.Tensor
    precision: torch.Tensor

    @classmethod
    def from_moments(cls, mean: torch.Tensor, var: torch.Tensor) -> DiagGaussian:
        """From means and variances (shape ``(D,)``, variances > 0)."""
        if mean.shape != var.shape:
            raise ValueError(f"mean and var must have the same shape, got {tuple(mean.shape)} and {tuple(var.shape)}")
        if not bool((var > 0).all()):
            raise ValueError("every variance must be positive")
        precision = 1.0 / var
        return cls(mean * precision, precision)

    @classmethod
    def flat(cls, like: torch.Tensor) -> DiagGaussian:
        """The factor 1 (zero shift and precision), e.g. an EP site before it has seen data."""
        return cls(torch.zeros_like(like), torch.zeros_like(like))

    @property
    def mean(self) -> torch.Tensor:
        return self.shift / self.precision

    @property
    def var(self) -> torch.Tensor:
        return 1.0 / self.precision

    @property
    def sd(self) -> torch.Tensor:
        return self.precision.rsqrt()

    def __add__(self, other: DiagGaussian) -> DiagGaussian:   # product of the densities
        return DiagGaussian(self.shift + other.shift, self.precision + other.precision)

    def __sub__(self, other: DiagGaussian) -> DiagGaussian:   # quotient of the densities
        return DiagGaussian(self.shift - other.shift, self.precision - other.precision)

    def __mul__(self, power: float) -> DiagGaussian:         # density to a power
        return DiagGaussian(self.shift * power, self.precision * power)

    __rmul__ = __mul__

    def __len__(self) -> int:
        return self.shift.numel()

    def pack(self) -> torch.Tensor:
        """``(2 D,)``: shift then precision (what goes over the wire)."""
        return torch.cat([self.shift, self.precision])

    @classmethod
    def unpack(cls, packed: torch.Tensor) -> DiagGaussian:
        shift, precision = packed.chunk(2)
        return cls(shift.clone(), precision.clone())

    def clone(self) -> DiagGaussian:
        return DiagGaussian(self.shift.clone(), self.precision.clone())

    def check_proper(self, what: str = "the distribution") -> DiagGaussian:
        """Raise ``ValueError`` unless every precision is positive and finite (a normalisable Gaussian)."""
        bad = ~(torch.isfinite(self.precision) & (self.precision > 0)) | ~torch.isfinite(self.shift)
        if bool(bad.any()):
            raise ValueError(f"{what} is not a proper Gaussian: {int(bad.sum())} of {len(self)} coordinates have a "
                             "non-positive or non-finite precision")
        return self

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """log density at ``theta`` (shape ``(..., D)``), summed over the D coordinates."""
        var = self.var
        return (-0.5 * (theta - self.mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)


def inverse_softplus(sd: torch.Tensor) -> torch.Tensor:
    """``rho`` with ``softplus(rho) = sd`` (sd > 0): ``sd + log(1 - exp(-sd))``, stable for small sd."""
    return sd + torch.log(-torch.expm1(-sd))


def bayes_layers(model: nn.Module) -> list:
    """The Bayes-by-Backprop layers of ``model`` in module order (raises ``TypeError`` when there is none)."""
    layers = [m for m in model.modules() if isinstance(m, _BayesByBackprop)]
    if not layers:
        raise TypeError("the model has no Bayes-by-Backprop layer (bt.nn.BayesLinear, bt.nn.BayesConv2d); "
                        "build it with flavour 'bbb' (bt.models.lenet300('bbb')) or bt.nn.bayesianize(model, 'bbb')")
    return layers


def _pairs(model: nn.Module):
    """``(mu, rho)`` parameter pairs: each layer's weight, then its bias."""
    for layer in bayes_layers(model):
        yield layer.weight_mu, layer.weight_rho
        if layer.bias_mu is not None:
            yield layer.bias_mu, layer.bias_rho


def num_parameters(model: nn.Module) -> int:
    """D, the number of random weights and biases."""
    return sum(mu.numel() for mu, _ in _pairs(model))


@torch.no_grad()
def posterior_of(model: nn.Module) -> DiagGaussian:
    """The model's posterior q(w) = N(mu, softplus(rho)²) over all its weights and biases, as one ``(D,)`` Gaussian."""
    pairs = list(_pairs(model))
    mean = torch.cat([mu.reshape(-1) for mu, _ in pairs])
    sd = torch.cat([torch.nn.functional.softplus(rho).reshape(-1) for _, rho in pairs])
    return DiagGaussian.from_moments(mean.float(), sd.float() ** 2)


@torch.no_grad()
def load_posterior_(model: nn.Module, q: DiagGaussian, mean_only: bool = False) -> nn.Module:
    """Write ``q`` (or only its mean) into the model's ``mu`` and ``rho = softplus⁻¹(sigma)``; returns the model."""
    mean, sd = q.mean, q.sd
    offset = 0
    for mu, rho in _pairs(model):
        n = mu.numel()
        mu.copy_(mean[offset:offset + n].view_as(mu))
        if not mean_only:
            s = sd[offset:offset + n].view_as(rho).to(rho.dtype)
            rho.copy_(inverse_softplus(s))
        offset += n
    if offset != len(q):
        raise ValueError(f"the model has {offset} random parameters, the Gaussian {len(q)}")
    return model


def prior_of(model: nn.Module) -> DiagGaussian:
    """Each weight's prior N(mu_p, sigma_p²) from its layer's :class:`~bnn_teach.priors.GaussianPrior`, as one Gaussian.

    Expectation propagation needs a prior in the Gaussian family; another prior raises ``TypeError``."""
    means, variances = [], []
    for layer in bayes_layers(model):
        if not isinstance(layer.prior, GaussianPrior):
            raise TypeError(f"the posterior server needs Gaussian priors (bt.priors.GaussianPrior); {layer} has "
                            f"{layer.prior}")
        n = layer.weight_mu.numel() + (layer.bias_mu.numel() if layer.bias_mu is not None else 0)
        means.append(torch.full((n,), layer.prior.mu))
        variances.append(torch.full((n,), layer.prior.sigma ** 2))
    return DiagGaussian.from_moments(torch.cat(means), torch.cat(variances))
