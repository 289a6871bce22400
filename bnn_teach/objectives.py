"""The training objective: the negative ELBO per data point, and KL-weight schedules (lecture 1).

One rule everywhere (derived in lecture 2, section 3): ``loss = nll_mean_over_batch + kl_weight * KL_sum / num_data``,
i.e. the negative ELBO divided by the number of training points ``num_data`` (not the batch size).
"""
from __future__ import annotations

import numbers

import torch

from bnn_teach._checks import check_positive

__all__ = ["elbo_loss", "gaussian_nll", "constant", "linear_warmup"]


def elbo_loss(nll: torch.Tensor, kl: torch.Tensor, num_data: int, kl_weight: float = 1.0) -> torch.Tensor:
    r"""Negative ELBO per training point.

    .. math::

        \mathcal L = \underbrace{-\frac1B \sum_{i \in \text{batch}} \log p(y_i \mid x_i, w)}_{\texttt{nll}}
                   + \beta\,\frac{\mathrm{KL}(q \,\|\, p)}{N}

    ``nll``: mean over the batch (scalar tensor); ``kl``: summed over all weights (scalar tensor);
    ``num_data``: N, the size of the training set; ``kl_weight``: β (1 for the true ELBO).
    """
    check_positive("num_data", num_data, integer=True)
    check_positive("kl_weight", kl_weight, allow_zero=True)
    if not isinstance(nll, torch.Tensor) or nll.dim() != 0:
        raise ValueError(f"nll must be a scalar tensor (the batch mean), got {getattr(nll, 'shape', nll)!r}")
    if not isinstance(kl, torch.Tensor) or kl.dim() != 0:
        raise ValueError(f"kl must be a scalar tensor (summed over weights), got {getattr(kl, 'shape', kl)!r}")
    return nll + kl_weight * kl / num_data


def gaussian_nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``y`` under a Gaussian whose mean and log variance the network predicts
    (heteroscedastic regression), constant ``log(2 pi) / 2`` dropped:

    .. math::

        \\tfrac1B \\textstyle\\sum_i \\tfrac12 \\big(\\log s_i + (y_i - m_i)^2 / s_i\\big),
        \\quad s_i = e^{\\text{out}_{i,1}}

    out : (B, 2), the mean ``m`` and the log noise variance ``log s``; y : (B, 1) or (B,). Returns a scalar.
    """
    if out.dim() != 2 or out.shape[1] != 2:
        raise ValueError(f"out must be (batch, 2): the mean and the log noise variance, got {tuple(out.shape)}")
    y = y.reshape(-1)
    if len(y) != len(out):
        raise ValueError(f"y holds {len(y)} targets for {len(out)} predictions")
    mean, log_var = out[:, 0], out[:, 1]
    return (0.5 * (log_var + (y - mean) ** 2 / torch.exp(log_var))).mean()


def constant(value: float = 1.0):
    """A schedule ``epoch -> value``."""
    check_positive("value", value, allow_zero=True)
    return lambda epoch: float(value)


def linear_warmup(num_epochs: int, start: float = 0.0, end: float = 1.0, delay: int = 0):
    """A schedule holding the KL weight at ``start`` for ``delay`` epochs, then raising it linearly to ``end``
    over ``num_epochs`` epochs, then flat.

    The SparseVD recipes: ``linear_warmup(50)`` raises it by 0.02 per epoch (summer school);
    ``linear_warmup(15, delay=5)`` is the paper's code (0 for 5 epochs, 1 from epoch 20 on).
    """
    for name, value in (("num_epochs", num_epochs), ("delay", delay)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    check_positive("start", start, allow_zero=True)
    check_positive("end", end, allow_zero=True)

    def schedule(epoch: float) -> float:
        if epoch < delay:
            return float(start)
        if num_epochs == 0:
            return float(end)
        frac = min(max((epoch - delay) / num_epochs, 0.0), 1.0)
        return float(start + (end - start) * frac)

    return schedule
