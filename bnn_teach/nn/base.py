"""What every Bayesian module shares: ``kl()``, the sampling switch, and the model-level helpers.

Modes, the same for every layer: ``train()`` samples; ``eval()`` is deterministic (posterior mean, pruned
where sparse); inside ``with sampling(model):`` Bayesian modules and :class:`MCDropout` sample even in
``eval()``, while BatchNorm keeps its eval statistics. Lecture 4 (dropout as Bayes) explains why.
"""
from __future__ import annotations

import contextlib
import numbers

import torch
from torch import nn

__all__ = ["BayesianModule", "MCDropout", "kl_divergence", "sampling", "bayesian_modules"]

# epsilon_0 under the square root of the LRT variance: keeps its gradient finite where the variance is 0
LRT_EPS = 1e-8


class BayesianModule(nn.Module):
    """Base class: a module with a posterior, a ``kl()`` and a sampling switch.

    ``self.sampling_active`` is what forward() consults: the ``sampling()`` override when one is
    set, else ``self.training``.

    Every Bayesian weight layer also answers one protocol, which :mod:`bnn_teach.sparsity` and
    :mod:`bnn_teach.viz` use: ``mean_weight()`` and ``mean_bias()`` (what eval mode uses, before
    pruning), ``set_mean_(weight, bias)`` (copy a trained layer in), ``pruning_score()`` (per weight,
    high means keep) and ``pruning_mask()`` (the weights eval mode keeps).
    """

    def __init__(self):
        super().__init__()
        self._sample_override: bool | None = None

    @property
    def sampling_active(self) -> bool:
        return self.training if self._sample_override is None else self._sample_override

    def kl(self) -> torch.Tensor:
        """This module's KL(q || p), summed over its parameters: a scalar tensor (≥ 0)."""
        raise NotImplementedError

    def __getstate__(self):  # copies and pickles leave behind what a training step shares with kl()
        state = self.__dict__.copy()
        state.pop("_step_cache", None)
        return state


class MCDropout(BayesianModule):
    """Dropout that stays on when sampling (Gal & Ghahramani 2016): ``train()`` or ``sampling()``.

    In plain ``eval()`` it is the identity, like ``nn.Dropout``. Its KL is 0 here: the weight-decay
    term of the dropout-as-Bayes objective is the optimiser's ``weight_decay``.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
            raise ValueError(f"p must be a number in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x):
        return nn.functional.dropout(x, self.p, training=self.sampling_active)

    def kl(self):
        return torch.zeros(())

    def extra_repr(self):
        return f"p={self.p}"


def bayesian_modules(model: nn.Module):
    """The :class:`BayesianModule` instances of ``model`` (itself included), in order."""
    return [m for m in model.modules() if isinstance(m, BayesianModule)]


def kl_divergence(model: nn.Module) -> torch.Tensor:
    """Sum of ``kl()`` over every Bayesian module of ``model``: a scalar tensor (0 for a plain model)."""
    total = None
    for m in bayesian_modules(model):
        if isinstance(m, MCDropout):
            continue
        term = m.kl()
        total = term if total is None else total + term
    if total is None:
        param = next(model.parameters(), None)
        return torch.zeros((), device=param.device if param is not None else None,
                           dtype=param.dtype if param is not None else None)
    return total


@contextlib.contextmanager
def sampling(model: nn.Module, on: bool = True):
    """Context manager: Bayesian modules (and MC dropout) of ``model`` sample (``on=True``) or use the
    posterior mean (``on=False``) whatever their train/eval mode. BatchNorm and other modules are untouched.

    >>> model.eval()
    >>> with sampling(model):
    ...     probs = torch.stack([model(X).softmax(-1) for _ in range(10)])
    """
    modules = bayesian_modules(model)
    saved = [m._sample_override for m in modules]
    for m in modules:
        m._sample_override = bool(on)
    try:
        yield model
    finally:
        for m, s in zip(modules, saved):
            m._sample_override = s
