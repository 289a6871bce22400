"""Small helpers every notebook uses: device, seeds, Colab detection and FAST mode.

Lecture 0 (setup) explains them. Nothing here calls ``.cuda()``: code moves tensors with
``.to(get_device())`` so the same notebook runs on a laptop CPU, on Colab and on a GPU.
"""
from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

from bnn_teach._checks import env_flag

__all__ = ["get_device", "set_seed", "in_colab", "fast_mode"]


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given, else CUDA when present, else CPU.

    ``$BNN_TEACH_DEVICE`` overrides the automatic choice (e.g. ``cpu`` on a GPU box).
    """
    choice = prefer or os.environ.get("BNN_TEACH_DEVICE")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={choice!r} asked for, but CUDA is not available here")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def fast_mode() -> bool:
    """True when ``BNN_TEACH_FAST=1``: notebooks shrink data and epochs, same code path."""
    return env_flag("BNN_TEACH_FAST")
