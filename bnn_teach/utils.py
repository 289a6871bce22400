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

__all__ = ["get_device", "set_seed", "set_threads", "in_colab", "fast_mode"]


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


def set_threads(num_threads: int | None = None) -> int:
    """Set torch's CPU threads and return how many: ``num_threads``, else ``$BNN_TEACH_THREADS``, else the
    idle cores: the cores this process may use less those busy with other work (the 1-minute load
    average), at least 1.

    Threads that outnumber the idle cores fight the other processes for them and every step slows down
    many times over; one thread per idle core avoids that on a busy machine and costs nothing on an idle one.
    """
    if num_threads is None and os.environ.get("BNN_TEACH_THREADS"):
        text = os.environ["BNN_TEACH_THREADS"]
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"BNN_TEACH_THREADS must be a whole number >= 1, got {text!r}")
        num_threads = int(text)
    if num_threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        num_threads = max(1, min(cores, round(cores - busy)))
    elif isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a whole number >= 1, got {num_threads!r}")
    torch.set_num_threads(num_threads)
    return num_threads


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def fast_mode() -> bool:
    """True when ``BNN_TEACH_FAST=1``: notebooks shrink data and epochs, same code path."""
    return env_flag("BNN_TEACH_FAST")
