"""Metrics of predictive quality (lecture 7): accuracy, NLL, Brier score, calibration (ECE), AUROC.

Every function takes class probabilities: either the averaged predictive ``(batch, classes)`` or
Monte Carlo samples ``(num_samples, batch, classes)``, which are averaged first.
"""
from __future__ import annotations

import torch

from bnn_teach.uncertainty import check_probs
from bnn_teach.utils import check_positive

__all__ = ["accuracy", "nll", "brier", "ece", "reliability_bins", "auroc"]


def _predictive(probs, y):
    check_probs(probs)
    if probs.dim() == 3:
        probs = probs.mean(0)
    if probs.dim() != 2:
        raise ValueError(f"probs must be (batch, classes) or (num_samples, batch, classes), got {tuple(probs.shape)}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(probs):
        raise ValueError(f"y must be a 1-D tensor of {len(probs)} labels, got {getattr(y, 'shape', y)!r}")
    if torch.is_floating_point(y) or int(y.min()) < 0 or int(y.max()) >= probs.shape[1]:
        raise ValueError(f"y must hold integer labels in [0, {probs.shape[1] - 1}]")
    return probs, y.to(probs.device)


def accuracy(probs, y) -> float:
    """Fraction of inputs whose most probable class is the label."""
    probs, y = _predictive(probs, y)
    return float((probs.argmax(-1) == y).double().mean())


def nll(probs, y) -> float:
    r"""Negative log-likelihood of the predictive, :math:`-\frac1N \sum_i \log \bar p(y_i \mid x_i)` (nats)."""
    probs, y = _predictive(probs, y)
    return float(-torch.log(probs[torch.arange(len(y)), y].double().clamp_min(1e-300)).mean())


def brier(probs, y) -> float:
    r"""Brier score :math:`\frac1N \sum_i \sum_c (\bar p_{ic} - [y_i = c])^2` (0 is perfect, 2 the worst)."""
    probs, y = _predictive(probs, y)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).to(probs.dtype)
    return float(((probs - onehot) ** 2).sum(-1).double().mean())


def reliability_bins(probs, y, num_bins: int = 15) -> dict:
    """Equal-width confidence bins over [0, 1] (bin ``b`` holds confidences in ``(b/M, (b+1)/M]``, the
    first also 0): per bin ``count``, mean ``confidence`` and ``accuracy`` (NaN where empty), and ``edges``."""
    check_positive("num_bins", num_bins, integer=True)
    probs, y = _predictive(probs, y)
    confidence, pred = probs.max(-1)
    correct = (pred == y).double()
    confidence = confidence.double()
    index = (torch.ceil(confidence * num_bins).long() - 1).clamp(0, num_bins - 1)
    count = torch.bincount(index, minlength=num_bins).double()
    conf_sum = torch.bincount(index, weights=confidence, minlength=num_bins)
    acc_sum = torch.bincount(index, weights=correct, minlength=num_bins)
    nan = torch.full_like(count, float("nan"))
    return {
        "edges": torch.linspace(0, 1, num_bins + 1, dtype=torch.float64),
        "count": count.cpu(),
        "confidence": torch.where(count > 0, conf_sum / count.clamp_min(1), nan).cpu(),
        "accuracy": torch.where(count > 0, acc_sum / count.clamp_min(1), nan).cpu(),
    }


def ece(probs, y, num_bins: int = 15) -> float:
    r"""Expected calibration error :math:`\sum_b \frac{n_b}{N}\,|\mathrm{acc}_b - \mathrm{conf}_b|` over equal-width bins."""
    bins = reliability_bins(probs, y, num_bins)
    filled = bins["count"] > 0
    weights = bins["count"][filled] / bins["count"].sum()
    return float((weights * (bins["accuracy"][filled] - bins["confidence"][filled]).abs()).sum())


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for telling ``labels == 1`` (e.g. out-of-distribution) from 0.

    The Mann-Whitney statistic with average ranks for ties: the probability that a random positive
    scores higher than a random negative (ties count one half).
    """
    scores = torch.as_tensor(scores).double().flatten()
    labels = torch.as_tensor(labels).flatten()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels must have the same length, got {len(scores)} and {len(labels)}")
    if not torch.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be 0 or 1")
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auroc needs both positives and negatives")
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # average the ranks of tied scores
    unique, inverse, counts = torch.unique(sorted_scores, return_inverse=True, return_counts=True)
    if len(unique) < len(scores):
        rank_sums = torch.zeros(len(unique), dtype=torch.float64).index_add_(0, inverse, torch.arange(1, len(scores) + 1, dtype=torch.float64))
        ranks[order] = (rank_sums / counts)[inverse]
    rank_pos = float(ranks[labels == 1].sum())
    return (rank_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
