"""Sparsification: masks, pruning, compression ratio, per-layer tables, storage (lecture 4).

Every Bayesian weight layer answers ``mean_weight()``, ``pruning_score()`` (high means keep) and
``pruning_mask()``: SparseVD/ARD keep a weight when ``log_alpha < threshold``; Bayes by Backprop
keeps every weight in eval mode and is pruned here by its signal-to-noise ratio ``|mu| / sigma``;
the magnitude baseline keeps the largest ``|w|``.
``compression_ratio = |W| / |W != 0|`` over the weights (not biases) of the prunable layers.
"""
from __future__ import annotations

import copy
import numbers

import torch
from torch import nn

from bnn_teach.nn.bbb import BayesConv2d, BayesLinear

__all__ = [
    "prunable_layers", "weight_mask", "compression_ratio", "sparsity_table", "prune", "pruning_curve",
    "storage_bytes", "SparsityTable", "shrink", "SelectInputs",
]

_PLAIN = (nn.Linear, nn.Conv2d)


def prunable_layers(model: nn.Module):
    """``(name, module)`` for every weight layer, Bayesian (it has ``pruning_mask()``) or plain, in order."""
    return [(name, m) for name, m in model.named_modules() if hasattr(m, "pruning_mask") or isinstance(m, _PLAIN)]


def _mean(layer: nn.Module) -> torch.Tensor:
    """The weight eval mode uses before pruning, detached."""
    return (layer.mean_weight() if hasattr(layer, "mean_weight") else layer.weight).detach()


def weight_mask(layer: nn.Module) -> torch.Tensor:
    """Boolean mask of the weights eval mode uses: ``layer.pruning_mask()``, or a plain layer's non-zero weights."""
    return layer.pruning_mask().detach() if hasattr(layer, "pruning_mask") else layer.weight.detach() != 0


def _kept(layer: nn.Module) -> torch.Tensor:
    """Weights that count as stored: used in eval mode and not exactly zero."""
    return weight_mask(layer) & (_mean(layer) != 0)


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _score(layer: nn.Module, method: str) -> torch.Tensor:
    """Per weight, high means keep: ``-log_alpha``, the SNR ``|mu|/sigma``, or ``|mean weight|``."""
    if method == "magnitude":
        return _mean(layer).abs()
    if method == "snr" and not isinstance(layer, (BayesLinear, BayesConv2d)):
        raise TypeError(f"signal-to-noise pruning needs BayesLinear/BayesConv2d layers, got {type(layer).__name__}")
    return layer.pruning_score().detach()


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
    bias = layer.mean_bias() if hasattr(layer, "mean_bias") else layer.bias
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
    if method == "log_alpha" and threshold is not None:
        threshold = -_number("threshold", threshold)  # log_alpha < t  <=>  -log_alpha > -t
    layers = prunable_layers(model)
    masks = {name: weight_mask(layer) for name, layer in layers}
    if method == "log_alpha" and threshold is not None:
        masks.update({name: _score(layer, method) > threshold for name, layer in layers if hasattr(layer, "log_alpha")})
    elif method in ("snr", "magnitude"):
        scores = {name: _score(layer, method) for name, layer in layers}
        strict = False
        if fraction is not None:  # one threshold over every layer together
            flat = torch.cat([s.flatten().float().cpu() for s in scores.values()])
            k = int(round(fraction * flat.numel()))
            threshold = float(torch.kthvalue(flat, k).values) if k > 0 else float("-inf")
            strict = k > 0
        else:
            threshold = _number("threshold", threshold)
        masks = {name: (score > threshold) if strict else (score >= threshold) for name, score in scores.items()}
    pruned = copy.deepcopy(model)
    for name, layer in prunable_layers(pruned):
        weight = _mean(layer)
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


def pruning_curve(model: nn.Module, test_data, method: str = "snr",
                  fractions=(0.0, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99)) -> list[dict]:
    """Test error of ``prune(model, method, fraction=f)`` for each fraction ``f`` of all weights removed
    (``f = 0``: the unpruned deterministic network): ``[{"removed %": ..., "error %": ...}, ...]``.
    What pruning by signal-to-noise (lecture 3) or by magnitude costs in accuracy."""
    from bnn_teach.train import evaluate

    if method not in ("snr", "magnitude"):
        raise ValueError(f"method must be 'snr' or 'magnitude', got {method!r}")
    curve = []
    for fraction in fractions:
        fraction = _number("fraction", fraction)
        pruned = prune(model, method, fraction=fraction) if fraction > 0 else prune(model)
        error = 100 * (1 - evaluate(pruned, test_data)["accuracy"])
        curve.append({"removed %": 100 * fraction, "error %": round(error, 2)})
    return curve


class SelectInputs(nn.Module):
    """Keep the input features ``index`` (after flattening): the first module of a :func:`shrink` network."""

    def __init__(self, index: torch.Tensor):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long))

    def forward(self, x):
        return x.flatten(1).index_select(1, self.index)

    def extra_repr(self):
        return f"{len(self.index)} inputs"


_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.Identity, nn.Dropout)


def shrink(model: nn.Module) -> nn.Sequential:
    """The smallest dense network with the eval output of a pruned fully connected ``nn.Sequential``.

    ``model`` is Flatten (optional), then linear layers (Bayesian or plain) with element-wise modules
    between them (ReLU, dropout, ...). Removed: every input whose column of the first layer is pruned,
    and every hidden unit whose outgoing weights are all pruned, or whose incoming weights are all pruned
    (its output is then the constant ``act(bias)``, folded into the next layer's bias). Group SparseVD
    (``lenet300("group_svdo")``) removes whole neurons, so the result is much smaller; weight-level
    sparsity alone rarely empties a whole row or column. Returns ``nn.Sequential(SelectInputs(kept
    pixels), nn.Linear, act, ..., nn.Linear)`` in eval mode, on ``model``'s device.

    >>> net = bnn_teach.models.lenet300("group_svdo")                   # doctest: +SKIP
    >>> small = shrink(net.eval()); torch.allclose(small(X), net(X), atol=1e-5)   # doctest: +SKIP
    True
    """
    from bnn_teach.nn import MCDropout

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"shrink takes an nn.Sequential of linear layers, got {type(model).__name__}")
    modules = list(model)
    if modules and isinstance(modules[0], nn.Flatten):
        modules = modules[1:]
    layers, between, pending = [], [], []
    for module in modules:
        if hasattr(module, "pruning_mask") or isinstance(module, _PLAIN):
            if getattr(module, "weight", None) is None or module.weight.dim() != 2:
                raise ValueError(f"shrink handles fully connected networks; {type(module).__name__} is not linear")
            if layers:
                between.append(pending)
            layers.append(module)
            pending = []
        elif isinstance(module, (*_ELEMENTWISE, MCDropout)):
            if not layers:
                raise ValueError(f"shrink: {type(module).__name__} before the first linear layer is not supported")
            pending.append(module)
        else:
            raise ValueError(f"shrink: {type(module).__name__} is neither a linear layer nor element-wise "
                             "(ReLU, Tanh, dropout, ...)")
    if not layers:
        raise ValueError("the model has no linear layers")
    tail = pending  # element-wise modules after the last layer stay at the end
    weights = [_mean(layer) * weight_mask(layer) for layer in layers]  # the eval weights (bool mask promotes)
    biases = []
    for layer, w in zip(layers, weights):
        bias = layer.mean_bias() if hasattr(layer, "mean_bias") else layer.bias
        biases.append(bias.detach().clone() if bias is not None else torch.zeros(w.shape[0], dtype=w.dtype,
                                                                                  device=w.device))
    keep_out = []
    for k in range(len(layers) - 1):
        has_input = weights[k].ne(0).any(1)
        used = weights[k + 1].ne(0).any(0)
        constant = used & ~has_input  # output act(bias): fold it into the next layer's bias
        if constant.any():
            value = biases[k].unsqueeze(0)
            with torch.no_grad():
                for module in between[k]:
                    value = module.eval()(value) if not isinstance(module, MCDropout) else value
            biases[k + 1] = biases[k + 1] + weights[k + 1][:, constant] @ value[0, constant]
        keep_out.append(torch.nonzero(has_input & used).flatten())
    keep_in = torch.nonzero(weights[0].ne(0).any(0)).flatten()
    out = [SelectInputs(keep_in.cpu())]
    rows_in = keep_in
    for k, (w, b) in enumerate(zip(weights, biases)):
        rows = keep_out[k] if k < len(keep_out) else torch.arange(w.shape[0], device=w.device)
        dense = nn.Linear(len(rows_in), len(rows)).to(device=w.device, dtype=w.dtype)
        with torch.no_grad():
            dense.weight.copy_(w[rows][:, rows_in])
            dense.bias.copy_(b[rows])
        out.append(dense)
        if k < len(between):
            out.extend(copy.deepcopy(m) for m in between[k] if not isinstance(m, (MCDropout, nn.Dropout)))
        rows_in = rows
    out.extend(copy.deepcopy(m) for m in tail if not isinstance(m, (MCDropout, nn.Dropout)))
    return nn.Sequential(*out).to(weights[0].device).eval()
