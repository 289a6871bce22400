"""Argument checks and small shared helpers of the library (not part of the course's API).

Each check raises a ``TypeError``/``ValueError`` that names the argument and says how to fix it.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a check needs it: the CLI's grade, hub and lab commands run without torch
    import torch
    from torch import nn

_TRUE = {"1", "true", "yes", "on"}


class UsageError(ValueError):
    """An argument that cannot work (the CLI exits with status 2 and prints the message)."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``epoch`` epochs of ``part`` are in the checkpoint (0: none yet)."""

    def __init__(self, part: str, epoch: int, restart: bool):
        self.part, self.epoch, self.restart = part, epoch, restart
        again = "run the same command without --restart to resume" if restart else "run the same command to resume"
        if epoch:
            message = f"stopped after epoch {epoch} ({part}); the checkpoint is saved; {again}"
        else:
            message = (f"stopped during the first epoch ({part}); nothing was saved yet; "
                       "run the same command to start again")
        super().__init__(message)


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to 1, true, yes or on (any case)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def folder_problem(folder) -> str | None:
    """Why files cannot be written into ``folder`` (created later if missing), or None when they can.

    Probes by writing: a temporary file in the folder or in its nearest existing parent, removed at once
    (permission bits alone miss read-only mounts and do not bind root). Nothing is left behind."""
    import tempfile
    from pathlib import Path

    path = Path(folder).expanduser().absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so {path} cannot be a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".bnn-teach-probe-"):
            pass
    except OSError as err:
        return f"cannot write in {existing} ({err.strerror or err})"
    return None


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    import torch

    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def check_positive(name: str, value, *, allow_zero: bool = False, integer: bool = False):
    """Raise a ``TypeError``/``ValueError`` naming ``name`` unless ``value`` is a positive number.

    Tensors are checked elementwise. Returns ``value`` unchanged.
    """
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        if not torch.all(torch.isfinite(value)):
            raise ValueError(f"{name} must be finite, got {value}")
        bad = (value < 0) if allow_zero else (value <= 0)
        if torch.any(bad):
            raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if integer and not float(value).is_integer():
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}")
    return value


def check_tensor_device(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` for a tensor without data (the ``meta`` device): its values cannot be checked or used."""
    if tensor.device.type == "meta":
        raise ValueError(f"{name} is on the 'meta' device and holds no values; create it on 'cpu' or 'cuda'")
    return tensor


def check_probs(probs: torch.Tensor, name: str = "probs", atol: float = 1e-4) -> torch.Tensor:
    """Raise ``ValueError`` unless ``probs`` holds probabilities over its last axis."""
    import torch

    if not isinstance(probs, torch.Tensor) or not torch.is_floating_point(probs):
        kind = f"a tensor of dtype {probs.dtype}" if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise TypeError(f"{name} must be a floating-point tensor of probabilities, got {kind}")
    check_tensor_device(name, probs)
    if probs.dim() < 1 or probs.shape[-1] < 2:
        raise ValueError(f"{name} must have a class axis of size >= 2 last, got shape {tuple(probs.shape)}")
    if torch.any(probs < 0) or not torch.all(torch.isfinite(probs)):
        raise ValueError(f"{name} must be finite and non-negative: pass softmax outputs, not logits")
    sums = probs.sum(-1)
    worst = float((sums - 1).abs().max()) if sums.numel() else 0.0
    if worst > atol:
        raise ValueError(
            f"{name} must sum to 1 over the last axis (off by up to {worst:.3g}); pass softmax outputs, not logits"
        )
    return probs
