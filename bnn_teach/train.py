"""``fit`` and ``evaluate``: the one training loop of the course (lecture 1).

The loss is the negative ELBO per data point (lecture 2, section 3):
``loss = nll_mean_over_batch + kl_weight * KL_sum / num_data``. The history logs ``nll``, ``kl``
(KL / num_data, per data point) and ``elbo = -(nll + kl)`` separately; a plain network has KL 0.
Batches are slices of tensors already on the device (no DataLoader: it alone costs ~0.3 s per
MNIST epoch on a laptop CPU).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from bnn_teach._checks import check_positive, model_device
from bnn_teach.nn.base import kl_divergence, sampling
from bnn_teach.objectives import elbo_loss

__all__ = ["fit", "train_epoch", "evaluate", "History"]


class History:
    """Per-epoch records. ``history["nll"]`` is the list of a key over epochs; ``history[-1]`` the last record."""

    def __init__(self, records: Iterable[dict] = ()):
        self.records = [dict(r) for r in records]

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __len__(self):
        return len(self.records)

    def __getitem__(self, key):
        if isinstance(key, str):
            if self.records and key not in self.records[-1]:
                raise KeyError(f"{key!r} is not recorded; keys: {sorted(self.records[-1])}")
            return [r.get(key) for r in self.records]
        return self.records[key]

    def keys(self):
        return list(self.records[-1]) if self.records else []

    def to_json(self, path=None) -> str:
        text = json.dumps(self.records, indent=1)
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    @classmethod
    def from_json(cls, path) -> History:
        with open(path) as f:
            return cls(json.load(f))

    def __repr__(self):
        last = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (self.records[-1] if self.records else {}).items()
        )
        return f"History({len(self)} epochs; last: {last})"


def _check_data(name, data, finite=False):
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)):
        raise TypeError(f"{name} must be a pair of tensors (X, y), got {type(data).__name__}")
    X, y = data
    if len(X) != len(y):
        raise ValueError(f"{name}: X has {len(X)} rows but y has {len(y)}")
    if len(X) == 0:
        raise ValueError(f"{name} is empty")
    for part, tensor in (("X", X), ("y", y)):
        if finite and torch.is_floating_point(tensor) and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"{name}: {part} holds {bad} NaN/inf values; clean or drop those rows before training")
    return X, y


def _is_classification(output: torch.Tensor, y: torch.Tensor) -> bool:
    return output.dim() == 2 and y.dim() == 1 and not torch.is_floating_point(y)


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 1000, nll_fn: Callable | None = None,
             num_samples: int = 1, device=None) -> dict:
    """Evaluate ``model`` on ``data = (X, y)`` in eval mode.

    With ``num_samples == 1`` the deterministic eval-mode network (posterior mean, pruned where sparse);
    with more, the Monte Carlo predictive ``mean_s softmax(f(x; w_s))`` under :func:`bnn_teach.nn.sampling`.
    Returns ``{"nll": ..., "accuracy": ...}`` (accuracy only for classification; NLL of the predictive).

    >>> import torch, bnn_teach as bt
    >>> _ = torch.manual_seed(0)
    >>> X, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    >>> model = torch.nn.Sequential(bt.nn.BayesLinear(4, 3))
    >>> result = evaluate(model, (X, y), num_samples=10)
    >>> sorted(result), 0.0 <= result["accuracy"] <= 1.0
    (['accuracy', 'nll'], True)
    """
    X, y = _check_data("data", data)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("num_samples", num_samples, integer=True)
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    total_nll, correct, count, classification = 0.0, 0, 0, None
    try:
        with sampling(model, on=num_samples > 1):
            for start in range(0, len(X), batch_size):
                xb = X[start:start + batch_size].to(device)
                yb = y[start:start + batch_size].to(device)
                if num_samples == 1:
                    out = model(xb)
                    classification = _is_classification(out, yb) if classification is None else classification
                    nll = (nll_fn or F.cross_entropy)(out, yb) if (nll_fn or classification) else F.mse_loss(out, yb)
                    pred = out
                else:
                    outs = torch.stack([model(xb) for _ in range(num_samples)])
                    classification = _is_classification(outs[0], yb) if classification is None else classification
                    if not classification:
                        raise ValueError("num_samples > 1 is for classification; use bnn_teach.predict for regression")
                    log_probs = torch.logsumexp(F.log_softmax(outs, dim=-1), dim=0) - math.log(num_samples)
                    nll = F.nll_loss(log_probs, yb)
                    pred = log_probs
                total_nll += float(nll) * len(xb)
                if classification:
                    correct += int((pred.argmax(dim=-1) == yb).sum())
                count += len(xb)
    finally:
        model.train(was_training)
    result = {"nll": total_nll / count}
    if classification:
        result["accuracy"] = correct / count
    return result


def train_epoch(model: nn.Module, train_data, optimizer: torch.optim.Optimizer, *, batch_size: int, num_data: int,
                kl_weight: float = 1.0, nll_fn: Callable = F.cross_entropy) -> dict:
    """One pass over ``train_data = (X, y)`` in shuffled mini-batches, one optimiser step per batch.

    Each step minimises the negative ELBO per data point,
    ``elbo_loss(nll, KL, num_data, kl_weight) = nll + kl_weight * KL / num_data``.
    Returns the epoch's means over the data: ``nll``, ``kl`` (KL / num_data), ``loss``, ``elbo`` and
    ``kl_weight``, plus ``train_acc`` for classification.
    """
    X, y = train_data
    model.train()
    sums = {"nll": 0.0, "kl": 0.0, "loss": 0.0}
    correct = 0
    order = torch.randperm(len(X), device=X.device)
    for i in range(0, len(X), batch_size):
        batch = order[i:i + batch_size]
        xb, yb = X[batch], y[batch]
        out = model(xb)
        nll = nll_fn(out, yb)
        kl = kl_divergence(model)
        loss = elbo_loss(nll, kl, num_data, kl_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums["nll"] += float(nll.detach()) * len(batch)
        sums["kl"] += float(kl.detach()) / num_data * len(batch)
        sums["loss"] += float(loss.detach()) * len(batch)
        if _is_classification(out, yb):
            correct += int((out.argmax(dim=-1) == yb).sum())
    record = {key: total / len(X) for key, total in sums.items()}
    record["elbo"] = -(record["nll"] + record["kl"])
    record["kl_weight"] = kl_weight
    if _is_classification(out, yb):
        record["train_acc"] = correct / len(X)
    return record


def fit(model: nn.Module, train_data, num_epochs: int, optimizer: torch.optim.Optimizer, *,
        batch_size: int = 100, num_data: int | None = None, kl_weight=1.0, test_data=None,
        nll_fn: Callable | None = None, scheduler=None, callbacks: Iterable[Callable] = (),
        device=None, progress: bool = True, history: History | None = None,
        eval_batch_size: int = 1000) -> History:
    """Train ``model`` by minimising the negative ELBO per data point; return the :class:`History`.

    Parameters
    ----------
    model : the network; its Bayesian modules contribute ``kl_divergence(model)``
    train_data : ``(X, y)`` tensors, e.g. from :func:`bnn_teach.data.load_mnist`
    num_epochs : int, epochs to run (continuing the numbering of ``history`` when given)
    optimizer : a ``torch.optim`` optimiser over ``model.parameters()``
    batch_size : int
    num_data : N in ``KL / N``; defaults to ``len(X)``
    kl_weight : float, or a schedule ``epoch -> float`` (see :mod:`bnn_teach.objectives`)
    test_data : optional ``(X, y)`` evaluated after each epoch (``test_nll``, ``test_acc``)
    nll_fn : ``(output, y) -> mean NLL``; default cross-entropy
    scheduler : optional learning-rate scheduler stepped once per epoch
    callbacks : callables ``callback(epoch, model, history)`` run after each epoch (e.g. visual recorders)
    device : where to compute; default the model's device. Data are moved there once.
    progress : show a tqdm bar (the notebook widget inside Jupyter)
    history : a History to append to (resuming a run)

    Each record holds ``epoch, nll, kl, elbo, loss, kl_weight, lr, train_acc, seconds`` and, with
    ``test_data``, ``test_nll, test_acc``. ``train_acc`` is the accuracy on the training batches as
    they were seen (train mode, sampled weights).

    >>> import torch, bnn_teach as bt
    >>> _ = torch.manual_seed(0)
    >>> X = torch.randn(200, 2)
    >>> y = (X[:, 0] * X[:, 1] > 0).long()            # XOR-like labels, 2 classes
    >>> model = torch.nn.Sequential(bt.nn.BayesLinear(2, 16), torch.nn.ReLU(), bt.nn.BayesLinear(16, 2))
    >>> history = fit(model, (X, y), 5, torch.optim.Adam(model.parameters(), lr=0.05), progress=False)
    >>> len(history), history[-1]["epoch"]
    (5, 5)
    >>> history["nll"][-1] < history["nll"][0]       # the data term of the ELBO went down
    True
    """
    from tqdm.auto import tqdm

    X, y = _check_data("train_data", train_data, finite=True)
    check_positive("num_epochs", num_epochs, allow_zero=True, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    num_data = len(X) if num_data is None else check_positive("num_data", num_data, integer=True)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    schedule = kl_weight if callable(kl_weight) else None
    if schedule is None:
        check_positive("kl_weight", kl_weight, allow_zero=True)
    nll_fn = nll_fn or F.cross_entropy
    callbacks = list(callbacks)
    device = torch.device(device) if device is not None else model_device(model)
    model.to(device)
    X, y = X.to(device), y.to(device)
    history = history if history is not None else History()
    first_epoch = len(history) + 1

    bar = tqdm(range(first_epoch, first_epoch + int(num_epochs)), desc="epochs", disable=not progress,
               unit="epoch", dynamic_ncols=True)
    for epoch in bar:
        beta = float(schedule(epoch - 1)) if schedule is not None else float(kl_weight)
        start = time.perf_counter()
        record = {"epoch": epoch, **train_epoch(model, (X, y), optimizer, batch_size=batch_size, num_data=num_data,
                                                kl_weight=beta, nll_fn=nll_fn)}
        record["lr"] = optimizer.param_groups[0]["lr"]  # the rate this epoch used
        if scheduler is not None:
            scheduler.step()
        if test_data is not None:
            result = evaluate(model, test_data, batch_size=eval_batch_size,
                              nll_fn=None if nll_fn is F.cross_entropy else nll_fn, device=device)
            record["test_nll"] = result["nll"]
            if "accuracy" in result:
                record["test_acc"] = result["accuracy"]
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        bar.set_postfix({k: f"{record[k]:.4g}" for k in ("nll", "kl", "train_acc", "test_acc") if k in record})
        for callback in callbacks:
            callback(epoch, model, history)
        if not math.isfinite(record["loss"]):
            bar.close()
            raise FloatingPointError(f"epoch {epoch}: the loss is {record['loss']} (try a smaller lr)")
    bar.close()
    model.eval()
    return history
