"""Variational inference on a 1-D target you can see (lecture 2): which Gaussian does each KL choose?

For a Gaussian :math:`q = \\mathcal N(m, s^2)` and a target density :math:`p`:

- the **reverse** KL, :math:`\\mathrm{KL}(q\\,\\|\\,p) = \\mathbb E_q[\\log q(w) - \\log p(w)]`, the one the ELBO
  minimises, is fitted here by stochastic gradient steps with the reparametrization trick
  (:math:`w = m + s\\varepsilon`); it is *mode-seeking*: on a bimodal target it settles on one mode;
- the **forward** KL, :math:`\\mathrm{KL}(p\\,\\|\\,q)`, is minimised by matching moments,
  :math:`m = \\mathbb E_p[w]`, :math:`s^2 = \\mathrm{Var}_p[w]` (set its gradient to zero); it is
  *mass-covering*: it spreads over both modes and puts its mean where p has little mass.
"""
from __future__ import annotations

import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal

from bnn_teach._checks import check_positive

__all__ = ["mixture_target", "fit_gaussian", "linear_regression_posterior"]


def mixture_target(means=(-2.0, 2.0), stds=(0.6, 0.6), weights=(0.5, 0.5)) -> MixtureSameFamily:
    """A 1-D mixture of Gaussians (float64), by default two well separated modes of equal weight."""
    means, stds, weights = (torch.as_tensor(v, dtype=torch.float64) for v in (means, stds, weights))
    if not (means.shape == stds.shape == weights.shape) or means.dim() != 1:
        raise ValueError(f"means, stds and weights must be 1-D of one length, got {means.shape}, {stds.shape}, "
                         f"{weights.shape}")
    check_positive("stds", stds)
    check_positive("weights", weights)
    return MixtureSameFamily(Categorical(probs=weights / weights.sum()), Normal(means, stds))


def fit_gaussian(target, divergence: str, init_mean: float = 0.5, init_std: float = 0.5, steps: int = 2000,
                 num_samples: int = 64, lr: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """``(m, s)`` of the Gaussian that minimises ``"reverse"`` KL(q || target) or ``"forward"`` KL(target || q).

    Both run ``steps`` Adam steps from ``(init_mean, init_std)`` on a ``num_samples``-sample estimate, the
    learning rate decaying linearly to 0 so that the last iterate settles:

    - reverse, :math:`\\mathbb E_q[\\log q - \\log p]`, on reparametrized samples of q; which mode it finds
      depends on where it starts (and a wide start, e.g. ``init_std=1`` on the default target, can stop in
      a broad local optimum spanning both modes);
    - forward, :math:`\\mathbb E_p[\\log p - \\log q]`, on samples of the target p (drawn from ``seed``);
      only :math:`-\\mathbb E_p[\\log q]` depends on q. Its exact minimiser has the target's mean and
      variance (moment matching): the fit finds it, it is not told it.
    """
    if divergence not in ("reverse", "forward"):
        raise ValueError(f"divergence must be 'reverse' or 'forward', got {divergence!r}")
    check_positive("init_std", init_std)
    check_positive("steps", steps, integer=True)
    check_positive("num_samples", num_samples, integer=True)
    steps, num_samples = int(steps), int(num_samples)
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor(float(init_mean), dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor(float(init_std), dtype=torch.float64).log().requires_grad_(True)
    optimizer = torch.optim.Adam([mean, log_std], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    if divergence == "forward":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pool = target.sample((steps, num_samples)).to(torch.float64)
    for step in range(steps):
        if divergence == "reverse":
            eps = torch.randn(num_samples, generator=generator, dtype=torch.float64)
            w = mean + log_std.exp() * eps  # the reparametrization trick
            # E_q[log q(w)] = -log s - 1/2 log(2 pi) - 1/2 exactly; only -E_q[log p(w)] needs samples
            loss = -log_std - target.log_prob(w).mean()
        else:
            loss = -Normal(mean, log_std.exp()).log_prob(pool[step]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return float(mean.detach()), float(log_std.detach().exp())


def linear_regression_posterior(X: torch.Tensor, y: torch.Tensor, noise_var: float, prior_sigma: float):
    """The exact posterior of ``y = X w + noise`` with ``w ~ N(0, prior_sigma² I)`` and noise ``N(0, noise_var)``:

    .. math::

        \\Lambda = \\frac{X^\\top X}{\\sigma^2} + \\frac{I}{\\sigma_p^2}, \\qquad
        \\Sigma = \\Lambda^{-1}, \\qquad m = \\Sigma \\frac{X^\\top y}{\\sigma^2}.

    Returns ``(m, Sigma, Lambda)`` in float64; ``X`` of shape (N, p), ``y`` of shape (N,) or (N, 1).
    The best fully factorised Gaussian (mean-field VI) has the same mean ``m`` and standard deviations
    :math:`1/\\sqrt{\\Lambda_{ii}}`, never wider than the true marginals :math:`\\sqrt{\\Sigma_{ii}}`.
    """
    check_positive("noise_var", noise_var)
    check_positive("prior_sigma", prior_sigma)
    X = torch.as_tensor(X, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if X.dim() != 2 or len(X) != len(y):
        raise ValueError(f"X must be (N, p) and y (N,), got {tuple(X.shape)} and {tuple(y.shape)}")
    precision = X.T @ X / noise_var + torch.eye(X.shape[1], dtype=torch.float64) / prior_sigma**2
    covariance = torch.linalg.inv(precision)
    mean = covariance @ (X.T @ y) / noise_var
    return mean, covariance, precision
