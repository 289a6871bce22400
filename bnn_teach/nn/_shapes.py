"""Shapes, argument checks and initialisation shared by the Bayesian layers (no mathematics here).

:class:`LinearShape` and :class:`Conv2dShape` give a layer its sizes, ``weight_shape``, ``fan_in``,
the deterministic op ``_op(x, weight, bias)`` (``F.linear`` or ``F.conv2d``) and the input check.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair


def check_int(name, value, minimum=1):
    """``value`` as an int ≥ ``minimum``, else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def check_finite(name, value):
    """``value`` as a finite float, else a ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_input(layer, x, expected):
    """Type, dtype and device of the input against the layer's parameters (shape: the caller)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a tensor, got {type(x).__name__}")
    param = next(layer.parameters())
    if x.dtype != param.dtype:
        hint = " (images as bytes: x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise TypeError(f"input has dtype {x.dtype} but {type(layer).__name__} holds {param.dtype}: "
                        f"convert the input with x.to({param.dtype}){hint}, or the model with model.to({x.dtype})")
    if x.device != param.device:
        raise ValueError(f"input is on {x.device} but {type(layer).__name__} is on {param.device}: "
                         f"move the input with x.to({str(param.device)!r}) (or the model with model.to(device))")
    if x.dim() < 1 or not expected(x):
        raise ValueError(f"input of shape {tuple(x.shape)} does not fit {layer._shape_text()}")


class LinearShape:
    """``weight`` of shape (out_features, in_features); input (..., in_features)."""

    def _setup_shape(self, in_features, out_features):
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.weight_shape = (self.out_features, self.in_features)
        self.fan_in = self.in_features

    def _check_input(self, x):
        check_input(self, x, lambda x: x.shape[-1] == self.in_features)

    def _shape_text(self):
        return f"in_features={self.in_features} (expected (..., {self.in_features}))"

    def _op(self, x, weight, bias=None):
        return F.linear(x, weight, bias)

    def _op_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Conv2dShape:
    """``weight`` of shape (out_channels, in_channels // groups, kH, kW); input (N, C, H, W)."""

    def _setup_shape(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.groups = check_int("groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"in_channels={in_channels} and out_channels={out_channels} "
                             f"must be divisible by groups={groups}")
        for name, value, minimum in (("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                     ("padding", padding, 0), ("dilation", dilation, 1)):
            pair = _pair(value)
            if len(pair) != 2:
                raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
            setattr(self, name, tuple(check_int(name, v, minimum) for v in pair))
        self.weight_shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]

    def _check_input(self, x):
        check_input(self, x, lambda x: x.dim() == 4 and x.shape[1] == self.in_channels)

    def _shape_text(self):
        return f"in_channels={self.in_channels} (expected (batch, {self.in_channels}, height, width))"

    def _op(self, x, weight, bias=None):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def _op_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


def init_mean_(weight, bias, fan_in):
    """The ``nn.Linear``/``nn.Conv2d`` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) scaled as Kaiming."""
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1.0 / math.sqrt(fan_in)
        torch.nn.init.uniform_(bias, -bound, bound)
