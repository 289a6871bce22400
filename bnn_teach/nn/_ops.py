"""Linear and 2-D convolution as interchangeable ops, so each Bayesian layer is written once."""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair


def check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_threshold(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"threshold must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"threshold must be finite, got {value!r}")
    return float(value)


class LinearOp:
    """``F.linear`` with ``weight`` of shape (out_features, in_features); input (..., in_features)."""

    def _setup_op(self, in_features, out_features):
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.weight_shape = (self.out_features, self.in_features)
        self.fan_in = self.in_features

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a tensor, got {type(x).__name__}")
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not fit in_features={self.in_features} "
                f"(expected (..., {self.in_features}))"
            )

    def _op(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def _op_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Conv2dOp:
    """``F.conv2d`` with ``weight`` of shape (out_channels, in_channels // groups, kH, kW); input (N, C, H, W)."""

    def _setup_op(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.groups = check_int("groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"in_channels={in_channels} and out_channels={out_channels} must be divisible by groups={groups}")
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        for name in ("kernel_size", "stride", "dilation"):
            for v in getattr(self, name):
                check_int(name, v)
        self.weight_shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input of shape {tuple(x.shape)} does not fit in_channels={self.in_channels} "
                f"(expected (batch, {self.in_channels}, height, width))"
            )

    def _op(self, x, weight, bias):
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
