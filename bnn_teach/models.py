"""The course's networks in every flavour: LeNet-300-100 and LeNet-5-Caffe (lectures 2-4).

``flavour``: ``"deterministic"``, ``"bbb"``, ``"svdo"``, ``"ard"``, ``"group_svdo"`` (LeNet-300-100
only: neuron-level sparsity on the inputs of each fully connected layer) or ``"mcdropout"``.
Layer keyword arguments (``prior=``, ``threshold=``, ...) go to every Bayesian layer.
"""
from __future__ import annotations

from torch import nn

from bnn_teach.nn.base import MCDropout
from bnn_teach.nn.convert import FLAVOURS, bayesianize

__all__ = ["lenet300", "lenet5", "MODEL_FLAVOURS"]

MODEL_FLAVOURS = ("deterministic", "mcdropout") + tuple(FLAVOURS)


def _finish(model: nn.Sequential, flavour: str, p: float, layer_kwargs: dict) -> nn.Sequential:
    if flavour not in MODEL_FLAVOURS:
        raise ValueError(f"flavour must be one of {MODEL_FLAVOURS}, got {flavour!r}")
    if flavour in ("deterministic", "mcdropout"):
        if layer_kwargs:
            raise TypeError(f"flavour={flavour!r} takes no layer arguments, got {sorted(layer_kwargs)}")
        if flavour == "mcdropout":
            layers = []
            for layer in model:
                layers.append(layer)
                if isinstance(layer, nn.ReLU) and not isinstance(layers[-2] if len(layers) > 1 else None, nn.Conv2d):
                    layers.append(MCDropout(p))
            model = nn.Sequential(*layers)
        return model
    return bayesianize(model, flavour, **layer_kwargs)


def lenet300(flavour: str = "deterministic", p: float = 0.5, **layer_kwargs) -> nn.Sequential:
    """LeNet-300-100: 784 → 300 → 100 → 10 with ReLU. Input (N, 1, 28, 28) or (N, 784); output logits (N, 10).

    ``p`` is the MC dropout rate after each hidden layer (``flavour="mcdropout"``).
    """
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    return _finish(model, flavour, p, layer_kwargs)


def lenet5(flavour: str = "deterministic", p: float = 0.5, **layer_kwargs) -> nn.Sequential:
    """LeNet-5-Caffe: conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 500, fc 10 (ReLU).

    Input (N, 1, 28, 28); output logits (N, 10). MC dropout goes after the fully connected hidden layer.
    """
    if flavour == "group_svdo":
        raise ValueError("flavour='group_svdo' is for fully connected networks (lenet300)")
    model = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
    )
    return _finish(model, flavour, p, layer_kwargs)
