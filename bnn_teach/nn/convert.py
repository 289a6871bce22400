"""``bayesianize``: turn an existing network into a Bayesian one, layer by layer (lecture 2)."""
from __future__ import annotations

from torch import nn

from bnn_teach.nn.bbb import BayesConv2d, BayesLinear
from bnn_teach.nn.sparse import Conv2dARD, Conv2dSVDO, LinearARD, LinearGroupSVDO, LinearSVDO

__all__ = ["bayesianize", "FLAVOURS"]

# flavour -> (class for nn.Linear, class for nn.Conv2d)
FLAVOURS = {
    "bbb": (BayesLinear, BayesConv2d),
    "svdo": (LinearSVDO, Conv2dSVDO),
    "ard": (LinearARD, Conv2dARD),
    "group_svdo": (LinearGroupSVDO, Conv2dSVDO),
}


def _convert(layer: nn.Module, flavour: str, kwargs: dict) -> nn.Module:
    linear_cls, conv_cls = FLAVOURS[flavour]
    has_bias = layer.bias is not None
    if isinstance(layer, nn.Linear):
        new = linear_cls(layer.in_features, layer.out_features, bias=has_bias, **kwargs)
    else:
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ValueError(f"cannot bayesianize {layer}: only numeric zero padding is supported")
        new = conv_cls(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                       padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=has_bias, **kwargs)
    new = new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    new.set_mean_(layer.weight, layer.bias)
    return new


def bayesianize(model: nn.Module, flavour: str = "bbb", skip=(), **layer_kwargs) -> nn.Module:
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` (in place) by a Bayesian layer.

    The posterior means start at the existing weights and biases, so a trained network becomes
    the mean of the posterior. ``flavour`` is one of ``"bbb"``, ``"svdo"``, ``"ard"``, ``"group_svdo"``;
    ``layer_kwargs`` go to each new layer (e.g. ``prior=``, ``local_reparam=`` for BBB,
    ``threshold=`` for SparseVD); ``skip`` names submodules (as in ``named_modules``) to leave alone.
    Returns ``model``.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {sorted(FLAVOURS)}, got {flavour!r}")
    skip = set(skip)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if full in skip or type(child) not in (nn.Linear, nn.Conv2d):
                continue
            setattr(module, child_name, _convert(child, flavour, layer_kwargs))
    return model
