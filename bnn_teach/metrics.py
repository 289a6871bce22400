"""Metrics of predictive quality (lecture 7): accuracy, NLL, Brier score, calibration (ECE), AUROC.

Every function takes class probabilities: either the averaged predictive ``(batch, classes)`` or
Monte Carlo samples ``(num_samples, batch, classes)``, which are averaged first, and integer labels
``(batch,)``. Bad input is refused with a ``ValueError``/``TypeError`` naming it, never turned into a
number: NaN or inf, logits instead of probabilities, an empty batch, float or out-of-range labels.
"""
from __future__ import annotations

import torch

from bnn_teach._checks import check_positive, check_probs, check_tensor_device

__all__ = ["accuracy", "nll", "brier", "ece", "reliability_bins", "auroc"]


def _predictive(probs, y):
    check_probs(probs)
    if probs.dim() == 3:
        probs = probs.mean(0)
    if probs.dim() != 2:
        raise ValueError(f"probs must be (batch, classes) or (num_samples, batch, classes), got {tuple(probs.shape)}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(probs):
        raise ValueError(f"y must be a 1-D tensor of {len(probs)} labels, got {getattr(y, 'shape', y)!r}")
    check_tensor_device("y", y)
    if len(y) == 0:
        raise ValueError("probs and y are empty: a metric of no inputs is undefined")
    if torch.is_floating_point(y) or torch.is_complex(y) or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer labels (class indices, e.g. y.long()), got dtype {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= probs.shape[1]:
        raise ValueError(f"y must hold integer labels in [0, {probs.shape[1] - 1}], got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    return probs, y.to(probs.device)


def accuracy(probs, y) -> float:
    """Fraction of inputs whose most probable class is the label.

    >>> import torch
    >>> probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    >>> accuracy(probs, torch.tensor([0, 1, 1]))
    0.666...
    """
    probs, y = _predictive(probs, y)
    return float((probs.argmax(-1) == y).double().mean())


def nll(probs, y) -> float:
    r"""Negative log-likelihood of the predictive, :math:`-\frac1N \sum_i \log \bar p(y_i \mid x_i)` (nats).

    >>> import torch
    >>> round(nll(torch.tensor([[0.5, 0.5], [0.9, 0.1]]), torch.tensor([0, 0])), 4)  # (log 2 - log 0.9) / 2
    0.3993
    """
    probs, y = _predictive(probs, y)
    return float(-torch.log(probs[torch.arange(len(y)), y].double().clamp_min(1e-300)).mean())


def brier(probs, y) -> float:
    r"""Brier score :math:`\frac1N \sum_i \sum_c (\bar p_{ic} - [y_i = c])^2` (0 is perfect, 2 the worst).

    >>> import torch
    >>> round(brier(torch.tensor([[1.0, 0.0], [0.5, 0.5]]), torch.tensor([0, 1])), 4)  # (0 + 0.5) / 2
    0.25
    """
    probs, y = _predictive(probs, y)
    onehot = torch.nn.functional.one_hot(y, probs.shape[1]).to(probs.dtype)
    return float(((probs - onehot) ** 2).sum(-1).double().mean())


def reliability_bins(probs, y, num_bins: int = 15) -> dict:
    """Equal-width confidence bins over [0, 1] (bin ``b`` holds confidences in ``(b/M, (b+1)/M]``, the
    first also 0): per bin ``count``, mean ``confidence`` and ``accuracy`` (NaN where empty: no inputs,
    no mean), and ``edges``.

    >>> import torch
    >>> bins = reliability_bins(torch.tensor([[0.9, 0.1], [0.3, 0.7]]), torch.tensor([0, 0]), num_bins=5)
    >>> bins["count"], bins["accuracy"]
    (tensor([0., 0., 0., 1., 1.], dtype=torch.float64), tensor([nan, nan, nan, 0., 1.], dtype=torch.float64))
    """
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
    r"""Expected calibration error :math:`\sum_b \frac{n_b}{N}\,|\mathrm{acc}_b - \mathrm{conf}_b|`
    over equal-width bins.

    Four inputs predicted with confidence 0.9, three of them right: ECE = |0.75 - 0.9| = 0.15.

    >>> import torch
    >>> probs = torch.tensor([[0.9, 0.1]] * 4)
    >>> round(ece(probs, torch.tensor([0, 0, 0, 1])), 4)
    0.15
    """
    bins = reliability_bins(probs, y, num_bins)
    filled = bins["count"] > 0
    weights = bins["count"][filled] / bins["count"].sum()
    return float((weights * (bins["accuracy"][filled] - bins["confidence"][filled]).abs()).sum())


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for telling ``labels == 1`` (e.g. out-of-distribution) from 0.

    The Mann-Whitney statistic with average ranks for ties: the probability that a random positive
    scores higher than a random negative (ties count one half). NaN or infinite scores raise a
    ``ValueError`` (they have no rank).

    >>> import torch
    >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
    0.75
    """
    for name, value in (("scores", scores), ("labels", labels)):
        if isinstance(value, torch.Tensor):
            check_tensor_device(name, value)
    scores = torch.as_tensor(scores)
    if not (torch.is_floating_point(scores) or scores.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                                 torch.uint8, torch.bool)):
        raise TypeError(f"scores must be real numbers, got dtype {scores.dtype}")
    scores = scores.double().flatten()
    labels = torch.as_tensor(labels).flatten()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels must have the same length, got {len(scores)} and {len(labels)}")
    bad = int((~torch.isfinite(scores)).sum())
    if bad:
        raise ValueError(f"scores hold {bad} NaN or infinite value(s): an AUROC of them is meaningless; "
                         "find where they came from (e.g. a log of 0) and remove or fix them")
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
        rank_sums = torch.zeros(len(unique), dtype=torch.float64).index_add_(
            0, inverse, torch.arange(1, len(scores) + 1, dtype=torch.float64)
        )
        ranks[order] = (rank_sums / counts)[inverse]
    rank_pos = float(ranks[labels == 1].sum())
    return (rank_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
