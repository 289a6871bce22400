"""Gradient estimators and their variance, measured (lectures 2 and 3).

Lecture 2 compares two estimators of :math:`\\nabla_\\mu \\mathbb E_{q}[f(w)]` for
:math:`q = \\mathcal N(\\mu, \\sigma^2)`:

.. math::

    \\text{score function:}\\quad f(w)\\,\\nabla_\\mu \\log q(w) = f(w)\\,\\frac{w - \\mu}{\\sigma^2},
    \\qquad
    \\text{reparametrization:}\\quad \\nabla_\\mu f(\\mu + \\sigma\\varepsilon) = f'(w),

both unbiased, with very different variances. Lecture 3 measures the variance of a network's
mini-batch gradient with weight sampling and with the local reparametrization trick, as Kingma,
Salimans & Welling (2015, Table 1) do.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bnn_teach._checks import check_positive

__all__ = ["gradient_samples", "gradient_variance"]


def gradient_samples(f: Callable, mu: float, sigma: float, num_samples: int, estimator: str,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``num_samples`` one-sample estimates of
    :math:`\\nabla_\\mu \\mathbb E_{w \\sim \\mathcal N(\\mu,\\sigma^2)}[f(w)]`.

    f : a function of a tensor of w's, elementwise and differentiable (``torch`` operations)
    estimator : ``"score"`` (REINFORCE) or ``"reparam"``
    Returns a float64 tensor of shape (num_samples,): their mean estimates the gradient, their
    variance is the estimator's.
    """
    if estimator not in ("score", "reparam"):
        raise ValueError(f"estimator must be 'score' or 'reparam', got {estimator!r}")
    check_positive("num_samples", num_samples, integer=True)
    check_positive("sigma", sigma)
    eps = torch.randn(int(num_samples), generator=generator, dtype=torch.float64)
    w = (float(mu) + float(sigma) * eps).requires_grad_(True)
    if estimator == "reparam":  # d/dmu f(mu + sigma eps) = f'(w), one per sample
        (grads,) = torch.autograd.grad(f(w).sum(), w)
        return grads.detach()
    with torch.no_grad():  # f(w) d/dmu log q(w) = f(w) (w - mu) / sigma^2
        return f(w) * (w - float(mu)) / float(sigma) ** 2


def gradient_variance(model: nn.Module, loss_fn: Callable, batches, params: dict | None = None) -> dict:
    """Mean over the elements of each parameter of the variance of its gradient across ``batches``.

    Each batch ``(X, y)`` gives one gradient of ``loss_fn(model(X), y)`` in train mode with fresh noise,
    at the same parameter values (nothing is updated), so the variance holds both the mini-batch
    noise and the sampling noise, as in Kingma et al. (2015). ``params``: ``{name: parameter}``,
    default every parameter of the model. Returns ``{name: mean variance}``.
    """
    params = dict(model.named_parameters()) if params is None else dict(params)
    if not params:
        raise ValueError("no parameters to measure")
    was_training = model.training
    model.train()
    total = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in params.items()}
    total_sq = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in params.items()}
    count = 0
    try:
        for X, y in batches:
            grads = torch.autograd.grad(loss_fn(model(X), y), list(params.values()), allow_unused=True)
            for (name, p), g in zip(params.items(), grads):
                g = torch.zeros_like(p) if g is None else g
                total[name] += g.double()
                total_sq[name] += g.double() ** 2
            count += 1
    finally:
        model.train(was_training)
    if count < 2:
        raise ValueError(f"the variance needs at least 2 batches, got {count}")
    return {name: float(((total_sq[name] - total[name] ** 2 / count) / (count - 1)).mean()) for name in params}
