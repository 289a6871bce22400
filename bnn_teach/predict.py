"""Monte Carlo prediction: the posterior predictive from Bayesian layers, MC dropout or sample ensembles.

Lecture 7 (uncertainty). Classification:
:math:`p(y \\mid x, D) \\approx \\frac1S \\sum_s \\mathrm{softmax}(f(x; w_s))`, :math:`w_s \\sim q(w)`.
Regression: predictive mean and variance, split into aleatoric (mean of the predicted noise
variances) and epistemic (variance of the predicted means).
"""
from __future__ import annotations

import torch
from torch import nn

from bnn_teach._checks import check_positive, check_tensor_device, model_device
from bnn_teach.nn.base import sampling
from bnn_teach.sgmcmc import SampleEnsemble

__all__ = ["mc_predict", "predictive_regression"]


def _outputs(model: nn.Module, X: torch.Tensor, num_samples: int, batch_size: int) -> torch.Tensor:
    """Raw outputs ``(S, N, ...)`` in eval mode with Bayesian sampling on, batched, without autograd."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a tensor, got {type(X).__name__}")
    check_tensor_device("X", X)
    check_positive("batch_size", batch_size, integer=True)
    if len(X) == 0:
        raise ValueError("X is empty (0 inputs): there is nothing to predict")
    if not torch.is_floating_point(X):
        hint = " (images: X.float() / 255)" if X.dtype == torch.uint8 else " (X.float())"
        raise TypeError(f"X must be a floating-point tensor, got dtype {X.dtype}; convert it first{hint}")
    bad = int((~torch.isfinite(X)).sum())
    if bad:
        raise ValueError(f"X holds {bad} NaN or infinite value(s); predictions of them would be NaN. "
                         "Clean the inputs first (e.g. torch.nan_to_num or drop those rows)")
    device = model_device(model)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad(), sampling(model, on=True):
            for start in range(0, len(X), batch_size):
                xb = X[start:start + batch_size].to(device)
                if isinstance(model, SampleEnsemble):
                    chunks.append(model(xb))
                else:
                    chunks.append(torch.stack([model(xb) for _ in range(num_samples)]))
    finally:
        model.train(was_training)
    return torch.cat(chunks, dim=1)


def mc_predict(model: nn.Module, X: torch.Tensor, num_samples: int = 20, batch_size: int = 1000) -> torch.Tensor:
    """Class probabilities from ``num_samples`` posterior samples.

    Parameters
    ----------
    model : a network returning logits ``(batch, classes)``; Bayesian layers and MC dropout sample
        (via :func:`bnn_teach.nn.sampling`, BatchNorm stays in eval mode); a
        :class:`~bnn_teach.sgmcmc.SampleEnsemble` uses each of its members once (``num_samples`` ignored).
    X : tensor of shape (N, ...)

    Returns
    -------
    probs : tensor of shape (num_samples, N, classes), on the model's device; each row sums to 1.

    ``X`` must be a non-empty floating-point tensor without NaN/inf (else ``ValueError``/``TypeError``).

    >>> import torch, bnn_teach as bt
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(bt.nn.BayesLinear(4, 3, init_rho=-1.0))
    >>> probs = mc_predict(model, torch.randn(5, 4), num_samples=10)
    >>> probs.shape                         # (num_samples, N, classes)
    torch.Size([10, 5, 3])
    >>> torch.allclose(probs.sum(-1), torch.ones(10, 5))
    True
    >>> bool((probs[0] != probs[1]).any())  # each sample draws new weights
    True
    """
    check_positive("num_samples", num_samples, integer=True)
    logits = _outputs(model, X, num_samples, batch_size)
    if logits.dim() != 3:
        raise ValueError(f"the model must return logits of shape (batch, classes), got {tuple(logits.shape[1:])}")
    return torch.softmax(logits, dim=-1)


def predictive_regression(model: nn.Module, X: torch.Tensor, num_samples: int = 50, noise_var=None,
                          batch_size: int = 1000) -> dict:
    """Predictive mean and variance for regression, with their aleatoric/epistemic split.

    The model returns either ``(N, 2)``: the mean and the log noise variance (heteroscedastic), or
    ``(N, 1)``/``(N,)``: the mean, with a fixed ``noise_var``.

    .. math::

        \\mathbb E[y] = \\bar\\mu = \\tfrac1S \\textstyle\\sum_s \\mu_s, \\quad
        \\mathrm{aleatoric} = \\tfrac1S \\textstyle\\sum_s \\sigma_s^2, \\quad
        \\mathrm{epistemic} = \\tfrac1S \\textstyle\\sum_s (\\mu_s - \\bar\\mu)^2, \\quad
        \\mathrm{var} = \\mathrm{aleatoric} + \\mathrm{epistemic}.

    Returns a dict of tensors of shape (N,): ``mean, var, aleatoric, epistemic``, and ``samples`` (S, N).
    """
    check_positive("num_samples", num_samples, integer=True)
    out = _outputs(model, X, num_samples, batch_size)
    if out.dim() == 3 and out.shape[-1] == 2:
        mu, noise = out[..., 0], torch.exp(out[..., 1])
        if noise_var is not None:
            raise ValueError("the model predicts its noise variance (2 outputs); do not pass noise_var")
    elif out.dim() == 2 or (out.dim() == 3 and out.shape[-1] == 1):
        if noise_var is None:
            raise ValueError("the model predicts only a mean: pass noise_var (the aleatoric variance)")
        mu = out.reshape(out.shape[0], out.shape[1])
        noise = torch.as_tensor(check_positive("noise_var", noise_var), dtype=mu.dtype, device=mu.device).expand_as(mu)
    else:
        raise ValueError(f"regression outputs must be (N,), (N, 1) or (N, 2), got {tuple(out.shape[1:])}")
    mean = mu.mean(0)
    aleatoric = noise.mean(0)
    epistemic = mu.var(0, unbiased=False)
    return {"mean": mean, "var": aleatoric + epistemic, "aleatoric": aleatoric, "epistemic": epistemic, "samples": mu}
