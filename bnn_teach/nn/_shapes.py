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


def _lrt_forward(ctx, layer, x, mean_w, var_w, mean_b, var_b, eps0, var_grad_scale=1.0):
    """``out = A*mean_w + mean_b + sqrt(A^2*var_w + var_b + eps0) * noise``, and the tensors the backward needs.

    The backward returns ``2 * var_grad_scale`` times the gradients w.r.t. ``var_w`` and ``var_b``
    (``var_grad_scale=0.5``: the gradients themselves); a caller that multiplies them by 2 anyway saves a pass.
    """
    xsq = x * x
    mean = layer._op(x, mean_w, mean_b)
    # eps0 enters as a bias of the variance product (added inside the GEMM, not as another pass)
    var_bias = torch.full((var_w.shape[0],), eps0, dtype=var_w.dtype, device=var_w.device)
    if var_b is not None:
        var_bias += var_b
    std = layer._op(xsq, var_w, var_bias).sqrt_()
    noise = torch.randn_like(mean)
    out = torch.addcmul(mean, std, noise)
    ctx.layer = layer
    ctx.has_mean_b, ctx.has_var_b = mean_b is not None, var_b is not None
    ctx.var_grad_scale = var_grad_scale
    # d out / d var = noise / (2 std): the only activation-sized tensor kept for the variance path
    scaled = noise.div_(std)
    if var_grad_scale != 1.0:
        scaled.mul_(var_grad_scale)
    return out, (x, xsq, mean_w, var_w, scaled)


def _lrt_backward(ctx, grad_out, need_x, need_mean_w, need_var_w):
    """Gradients w.r.t. x, mean_w, var_w, mean_b, var_b (the last two times ``2 * ctx.var_grad_scale``)."""
    x, xsq, mean_w, var_w, scaled_noise_over_std = ctx.saved_tensors[:5]
    grad_var = grad_out * scaled_noise_over_std
    g_mean = ctx.layer._op_backward(grad_out, x, mean_w, need_x, need_mean_w, ctx.has_mean_b)
    g_var = ctx.layer._op_backward(grad_var, xsq, var_w, need_x, need_var_w, ctx.has_var_b)
    grad_x = g_mean[0].addcmul_(x, g_var[0], value=1.0 / ctx.var_grad_scale) if need_x else None
    return grad_x, g_mean[1], g_var[1], g_mean[2], g_var[2]


class _LocalReparam(torch.autograd.Function):
    """Fused LRT sample from mean and variance weights, with a closed-form backward (no graph inside)."""

    @staticmethod
    def forward(ctx, x, mean_w, var_w, mean_b, var_b, layer, eps0):
        out, saved = _lrt_forward(ctx, layer, x, mean_w, var_w, mean_b, var_b, eps0, var_grad_scale=0.5)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        n = ctx.needs_input_grad
        return (*_lrt_backward(ctx, grad_out, n[0], n[1], n[2]), None, None)


class _SoftplusLocalReparam(torch.autograd.Function):
    """Fused LRT sample for Bayes by Backprop, from ``(mu, rho)`` with ``sigma = softplus(rho)``.

    Backward: ``d var / d rho = 2 sigma sigmoid(rho)``. The factor 2 is folded into the activations
    (``var_grad_scale=1``) and ``softplus_backward`` multiplies by ``sigmoid(rho)``, so the weight-sized
    work is one softplus and one square forward, one product and one ``softplus_backward`` backward.
    """

    @staticmethod
    def forward(ctx, x, mu, rho, bias_mu, bias_rho, layer, eps0):
        sigma_w = F.softplus(rho)
        sigma_b = None if bias_rho is None else F.softplus(bias_rho)
        var_b = None if sigma_b is None else sigma_b * sigma_b
        out, saved = _lrt_forward(ctx, layer, x, mu, sigma_w * sigma_w, bias_mu, var_b, eps0, var_grad_scale=1.0)
        ctx.save_for_backward(*saved, rho, bias_rho, sigma_w, sigma_b)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        n = ctx.needs_input_grad
        grad_x, grad_mu, grad_var_w2, grad_bias_mu, grad_var_b2 = _lrt_backward(ctx, grad_out, n[0], n[1], n[2])
        rho, bias_rho, sigma_w, sigma_b = ctx.saved_tensors[5:9]
        grad_rho = grad_bias_rho = None
        if grad_var_w2 is not None:  # (2 dL/dvar) * sigma * sigmoid(rho)
            grad_rho = torch.ops.aten.softplus_backward(grad_var_w2.mul_(sigma_w), rho, 1.0, 20.0)
        if grad_var_b2 is not None:
            grad_bias_rho = torch.ops.aten.softplus_backward(grad_var_b2.mul_(sigma_b), bias_rho, 1.0, 20.0)
        return grad_x, grad_mu, grad_rho, grad_bias_mu, grad_bias_rho, None, None


def lrt_sample(layer, x, mean_w, var_w, mean_b=None, var_b=None, eps0=1e-8):
    """Local reparametrization sample of ``layer``'s op from mean and variance weights."""
    return _LocalReparam.apply(x, mean_w, var_w, mean_b, var_b, layer, eps0)


def lrt_sample_softplus(layer, x, mu, rho, bias_mu=None, bias_rho=None, eps0=1e-8):
    """Local reparametrization sample with ``sigma = softplus(rho)`` (Bayes by Backprop)."""
    return _SoftplusLocalReparam.apply(x, mu, rho, bias_mu, bias_rho, layer, eps0)


def _linear_backward(grad, x, weight, need_x, need_w, has_b):
    grad2 = grad.reshape(-1, grad.shape[-1])
    grad_x = grad.matmul(weight) if need_x else None
    grad_w = grad2.t().mm(x.reshape(-1, x.shape[-1])) if need_w else None
    grad_b = grad2.sum(0) if has_b else None
    return grad_x, grad_w, grad_b


def _conv_backward(self, grad, x, weight, need_x, need_w, has_b):
    grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[0]] if has_b else None, list(self.stride), list(self.padding),
        list(self.dilation), False, [0, 0], self.groups, [need_x, need_w, has_b])
    return grad_x, grad_w, grad_b


LinearOp._op_backward = staticmethod(_linear_backward)
Conv2dOp._op_backward = _conv_backward
