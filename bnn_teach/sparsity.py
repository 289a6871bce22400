"""Sparsification: masks, pruning, compression ratio, per-layer tables, storage (lecture 4).

A weight is kept by SparseVD/ARD when ``log_alpha < threshold``; by Bayes by Backprop when its
signal-to-noise ratio ``|mu| / sigma`` is high enough; by the magnitude baseline when ``|w|`` is.
``compression_ratio = |W| / |W != 0|`` over the weights (not biases) of the prunable layers.
"""
from __future__ import annotations

import copy
import numbers

import torch
from torch import nn

from bnn_teach.nn.base import BayesianModule
from bnn_teach.nn.bbb import _BayesByBackprop
from bnn_teach.nn.sparse import LinearGroupSVDO, _SparseVD

__all__ = [
    "prunable_layers", "weight_mask", "mean_weight", "compression_ratio", "sparsity_table", "prune",
    "log_alpha_mask", "snr_mask", "magnitude_mask", "storage_bytes", "SparsityTable",
]

_PLAIN = (nn.Linear, nn.Conv2d)


def prunable_layers(model: nn.Module):
    """``(name, module)`` for every linear or convolutional layer, Bayesian or plain, in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (_BayesByBackprop, _SparseVD) + _PLAIN)]


def mean_weight(layer: nn.Module) -> torch.Tensor:
    """The layer's deterministic weight (posterior mean; for group SparseVD ``W * z_mu``), detached."""
    if isinstance(layer, _BayesByBackprop):
        return layer.weight_mu.detach()
    if isinstance(layer, LinearGroupSVDO):
        return (layer.weight * layer.z_mu.unsqueeze(0)).detach()
    return layer.weight.detach()


def weight_mask(layer: nn.Module) -> torch.Tensor:
    """Boolean mask of the weights the layer uses in eval mode (plain layers: non-zero weights)."""
    if isinstance(layer, BayesianModule):
        return layer.pruning_mask().detach()
    return layer.weight.detach() != 0


def _kept(layer: nn.Module) -> torch.Tensor:
    """Weights that count as stored: used in eval mode and not exactly zero."""
    return weight_mask(layer) & (mean_weight(layer) != 0)


def log_alpha_mask(layer: nn.Module, threshold: float | None = None) -> torch.Tensor:
    """SparseVD/ARD: keep ``log_alpha < threshold`` (the layer's own threshold by default)."""
    if not isinstance(layer, _SparseVD):
        raise TypeError(f"log_alpha masks need a SparseVD/ARD layer, got {type(layer).__name__}")
    threshold = layer.threshold if threshold is None else _number("threshold", threshold)
    mask = layer.log_alpha.detach() < threshold
    if isinstance(layer, LinearGroupSVDO):
        mask = mask & (layer.z_log_alpha.detach() < threshold).unsqueeze(0)
    return mask


def _snr_scores(layer: nn.Module) -> torch.Tensor:
    if not isinstance(layer, _BayesByBackprop):
        raise TypeError(f"signal-to-noise pruning needs BayesLinear/BayesConv2d layers, got {type(layer).__name__}")
    return layer.snr().detach()


def snr_mask(layer: nn.Module, threshold: float) -> torch.Tensor:
    """Bayes by Backprop: keep weights with ``|mu| / sigma >= threshold``."""
    return _snr_scores(layer) >= _number("threshold", threshold)


def magnitude_mask(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """Magnitude baseline: keep ``|w| >= threshold``."""
    return weight.detach().abs() >= _number("threshold", threshold)


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def compression_ratio(model: nn.Module) -> float:
    """``|W| / |W != 0|`` over the weights of the prunable layers, as used in eval mode."""
    total = kept = 0
    for _, layer in prunable_layers(model):
        mask = _kept(layer)
        total += mask.numel()
        kept += int(mask.sum())
    if total == 0:
        raise ValueError("the model has no linear or convolutional layers")
    return total / max(kept, 1)


class SparsityTable(list):
    """A list of per-layer rows ``{"layer", "kept", "total", "sparsity"}`` that prints as a table."""

    def __str__(self):
        lines = [f"{'layer':<20}{'kept':>10}{'total':>10}{'sparsity %':>12}"]
        for row in self:
            lines.append(f"{row['layer']:<20}{row['kept']:>10}{row['total']:>10}{row['sparsity']:>12.2f}")
        total = sum(r["total"] for r in self)
        kept = sum(r["kept"] for r in self)
        lines.append(f"{'all':<20}{kept:>10}{total:>10}{100 * (1 - kept / max(total, 1)):>12.2f}"
                     f"   compression {total / max(kept, 1):.1f}x")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(str(self))


def sparsity_table(model: nn.Module) -> SparsityTable:
    """One row per prunable layer: weights kept, total, and sparsity in percent."""
    rows = SparsityTable()
    for name, layer in prunable_layers(model):
        mask = _kept(layer)
        kept, total = int(mask.sum()), mask.numel()
        rows.append({"layer": name or type(layer).__name__, "kept": kept, "total": total,
                     "sparsity": 100.0 * (1 - kept / total)})
    return rows


def _plain_copy(layer: nn.Module, weight: torch.Tensor) -> nn.Module:
    bias = getattr(layer, "bias_mu", None) if isinstance(layer, _BayesByBackprop) else layer.bias
    if isinstance(layer, nn.Linear) or hasattr(layer, "in_features"):
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=bias is not None)
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias.detach())
    return new


def prune(model: nn.Module, method: str = "auto", threshold: float | None = None,
          fraction: float | None = None) -> nn.Module:
    """A deterministic copy of ``model`` with pruned weights set to 0 (``model`` is untouched).

    Every Bayesian layer becomes an ``nn.Linear``/``nn.Conv2d`` holding its pruned posterior mean.

    method
        ``"auto"``: each layer's own rule (SparseVD/ARD: ``log_alpha < layer.threshold``; BBB and plain: keep all);
        ``"log_alpha"``: SparseVD/ARD layers with ``threshold`` (default: each layer's);
        ``"snr"``: BBB layers by ``|mu|/sigma``; ``"magnitude"``: any layer by ``|mean weight|``.
    threshold, fraction
        for ``"snr"`` and ``"magnitude"`` give one: a score threshold, or the ``fraction`` of all
        weights (over every layer together, as in Blundell et al.) to remove.
    """
    if method not in ("auto", "log_alpha", "snr", "magnitude"):
        raise ValueError(f"method must be 'auto', 'log_alpha', 'snr' or 'magnitude', got {method!r}")
    if fraction is not None:
        fraction = _number("fraction", fraction)
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if method in ("snr", "magnitude") and (threshold is None) == (fraction is None):
        raise ValueError(f"method={method!r} needs exactly one of threshold= or fraction=")
    layers = prunable_layers(model)
    scores = {}
    if method in ("snr", "magnitude"):
        scores = {name: _snr_scores(layer) if method == "snr" else mean_weight(layer).abs() for name, layer in layers}
    strict = False
    if fraction is not None:
        flat = torch.cat([s.flatten().float().cpu() for s in scores.values()])
        k = int(round(fraction * flat.numel()))
        threshold = float(torch.kthvalue(flat, k).values) if k > 0 else float("-inf")
        strict = k > 0
    masks = {}
    for name, layer in layers:
        if method == "auto":
            masks[name] = weight_mask(layer)
        elif method == "log_alpha":
            masks[name] = log_alpha_mask(layer, threshold) if isinstance(layer, _SparseVD) else weight_mask(layer)
        else:
            masks[name] = (scores[name] > threshold) if strict else (scores[name] >= threshold)
    pruned = copy.deepcopy(model)
    for name, layer in prunable_layers(pruned):
        weight = mean_weight(layer)
        new = _plain_copy(layer, weight * masks[name].to(weight.dtype))
        if name:
            parent_name, _, child = name.rpartition(".")
            setattr(pruned.get_submodule(parent_name) if parent_name else pruned, child, new)
        else:
            pruned = new
    return pruned.eval()


def storage_bytes(model: nn.Module, sparse_format: str = "csr", value_bytes: int = 4, index_bytes: int = 4) -> int:
    """Bytes to store the prunable layers' kept weights: ``"dense"`` (every weight) or ``"csr"``
    (per layer, the weight reshaped to (out, -1): ``nnz * (value + index) + (rows + 1) * index``)."""
    if sparse_format not in ("csr", "dense"):
        raise ValueError(f"sparse_format must be 'csr' or 'dense', got {sparse_format!r}")
    total = 0
    for _, layer in prunable_layers(model):
        mask = _kept(layer)
        if sparse_format == "dense":
            total += mask.numel() * value_bytes
        else:
            rows = mask.shape[0]
            total += int(mask.sum()) * (value_bytes + index_bytes) + (rows + 1) * index_bytes
    return total
