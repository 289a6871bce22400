"""The course's networks in every flavour: LeNet-300-100 and LeNet-5-Caffe (lectures 2-4), a small MLP (lecture 8).

``flavour``: ``"deterministic"``, ``"bbb"``, ``"svdo"``, ``"ard"``, ``"group_svdo"`` (LeNet-300-100
only: neuron-level sparsity on the inputs of each fully connected layer) or ``"mcdropout"``.
Layer keyword arguments (``prior=``, ``threshold=``, ...) go to every Bayesian layer.

The layers are named as in the lectures: ``fc1, fc2, fc3`` (LeNet-300-100) and ``conv1, conv2, fc1, fc2``
(LeNet-5), so ``model.fc1`` is the first layer, tables and figures show those names, and
``model[1]`` still indexes by position.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from bnn_teach.nn._shapes import check_int
from bnn_teach.nn.base import MCDropout
from bnn_teach.nn.convert import FLAVOURS, bayesianize

__all__ = ["mlp", "lenet300", "lenet5", "MODEL_FLAVOURS"]

MODEL_FLAVOURS = ("deterministic", "mcdropout") + tuple(FLAVOURS)


def _finish(model: nn.Sequential, flavour: str, p: float, layer_kwargs: dict) -> nn.Sequential:
    if flavour not in MODEL_FLAVOURS:
        raise ValueError(f"flavour must be one of {MODEL_FLAVOURS}, got {flavour!r}")
    if flavour in ("deterministic", "mcdropout"):
        if layer_kwargs:
            raise TypeError(f"flavour={flavour!r} takes no layer arguments, got {sorted(layer_kwargs)}")
        if flavour == "mcdropout":  # MC dropout after each fully connected hidden layer's ReLU
            layers, previous = [], None
            for name, layer in model.named_children():
                layers.append((name, layer))
                if isinstance(layer, nn.ReLU) and isinstance(previous, nn.Linear):
                    layers.append((f"drop{sum(isinstance(m, MCDropout) for _, m in layers) + 1}", MCDropout(p)))
                previous = layer
            model = nn.Sequential(OrderedDict(layers))
        return model
    return bayesianize(model, flavour, **layer_kwargs)


def mlp(hidden: int = 100, flavour: str = "deterministic", p: float = 0.5, **layer_kwargs) -> nn.Sequential:
    """784 → ``hidden`` → 10 with ReLU (``fc1, fc2``): small enough to train on many processes at once
    (lecture 8: 79,510 weights and biases at ``hidden=100``). Input (N, 1, 28, 28) or (N, 784); output logits (N, 10).
    """
    check_int("hidden", hidden)
    model = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(784, hidden)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(hidden, 10)),
    ]))
    return _finish(model, flavour, p, layer_kwargs)


def lenet300(flavour: str = "deterministic", p: float = 0.5, **layer_kwargs) -> nn.Sequential:
    """LeNet-300-100: 784 → 300 → 100 → 10 with ReLU. Input (N, 1, 28, 28) or (N, 784); output logits (N, 10).

    ``p`` is the MC dropout rate after each hidden layer (``flavour="mcdropout"``).
    """
    model = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(784, 300)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(300, 100)), ("relu2", nn.ReLU()),
        ("fc3", nn.Linear(100, 10)),
    ]))
    return _finish(model, flavour, p, layer_kwargs)


def lenet5(flavour: str = "deterministic", p: float = 0.5, **layer_kwargs) -> nn.Sequential:
    """LeNet-5-Caffe: conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 500, fc 10 (ReLU).

    Input (N, 1, 28, 28); output logits (N, 10). MC dropout goes after the fully connected hidden layer.
    """
    if flavour == "group_svdo":
        raise ValueError("flavour='group_svdo' is for fully connected networks (lenet300)")
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 20, 5)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(20, 50, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(800, 500)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(500, 10)),
    ]))
    return _finish(model, flavour, p, layer_kwargs)
