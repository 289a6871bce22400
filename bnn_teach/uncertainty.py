"""Total = aleatoric + epistemic: the entropy decomposition of the predictive distribution (lecture 7).

.. math::

    \\underbrace{\\mathbb H\\Big[\\tfrac1S \\textstyle\\sum_s p_s\\Big]}_{\\text{total}}
    = \\underbrace{\\tfrac1S \\textstyle\\sum_s \\mathbb H[p_s]}_{\\text{aleatoric (expected entropy)}}
    + \\underbrace{\\tfrac1S \\textstyle\\sum_s \\mathrm{KL}\\big(p_s \\,\\|\\, \\bar p\\big)}
      _{\\text{epistemic (mutual information)}}

in nats. The epistemic part is computed as the mean KL to the mean, not as a difference, so the
identity is a check and not a definition.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from bnn_teach._checks import check_probs

__all__ = ["decompose", "entropy", "Uncertainty"]


class Uncertainty(NamedTuple):
    total: torch.Tensor
    aleatoric: torch.Tensor
    epistemic: torch.Tensor


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats over the last axis, with 0 log 0 = 0: :math:`H[p] = -\\sum_c p_c \\log p_c`.

    >>> import torch
    >>> entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))  # log 2 and 0
    tensor([0.6931, 0.0000])
    """
    return -torch.special.xlogy(probs, probs).sum(-1) + 0.0  # + 0.0 turns -0.0 into 0.0


def decompose(probs: torch.Tensor) -> Uncertainty:
    """Split predictive uncertainty per input.

    Parameters
    ----------
    probs : tensor of shape (num_samples, batch, classes) from :func:`bnn_teach.predict.mc_predict`
        (a (batch, classes) tensor is one sample: all uncertainty is aleatoric).

    Returns
    -------
    Uncertainty(total, aleatoric, epistemic), each of shape (batch,), in nats. An empty batch gives
    empty tensors. Raises ``ValueError`` for NaN/inf, negative values or rows that do not sum to 1.

    Two samples that agree (input 0) and two confident samples that disagree (input 1):

    >>> import torch
    >>> probs = torch.tensor([[[0.5, 0.5], [1.0, 0.0]],
    ...                       [[0.5, 0.5], [0.0, 1.0]]])   # (num_samples=2, batch=2, classes=2)
    >>> u = decompose(probs)
    >>> u.aleatoric, u.epistemic       # input 0: all aleatoric; input 1: all epistemic (log 2)
    (tensor([0.6931, 0.0000]), tensor([0.0000, 0.6931]))
    >>> torch.allclose(u.total, u.aleatoric + u.epistemic)
    True
    """
    check_probs(probs)
    if probs.dim() == 2:
        probs = probs.unsqueeze(0)
    if probs.dim() != 3:
        raise ValueError(f"probs must have shape (num_samples, batch, classes), got {tuple(probs.shape)}")
    mean = probs.mean(0)
    total = entropy(mean)
    aleatoric = entropy(probs).mean(0)
    log_ratio = torch.log(probs.clamp_min(1e-30)) - torch.log(mean.clamp_min(1e-30)).unsqueeze(0)
    epistemic = (probs * log_ratio).sum(-1).mean(0).clamp_min(0.0)
    return Uncertainty(total, aleatoric, epistemic)
