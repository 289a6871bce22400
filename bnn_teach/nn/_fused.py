"""Hand-written backward passes behind the layers' ``fused=True`` switch.

Each function here computes exactly a formula written out in plain autograd in a layer's own
``forward`` or ``kl`` (one branch away, ``fused=False``); ``tests/test_layers.py`` checks values and
gradients equal in float64, and ``benchmarks/layers.py`` measures what each saves. Their backward
passes are differentiable once: asked for a second derivative (``create_graph=True``) they raise an
error that says to use ``fused=False``, never a wrong number.
Under ``torch.func`` transforms the layers take the plain path (:func:`use_fused`).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def once_differentiable(backward):
    """Run ``backward`` without recording a graph; refuse when a graph is asked for (a second derivative)."""
    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "second derivatives (create_graph=True) do not go through the fused backward of a bnn_teach layer: "
                "build the layer with fused=False (or set layer.fused = False) to get them")
        with torch.no_grad():
            return backward(ctx, *grads)

    return wrapper


def shared_with_kl(layer, name: str, params, compute, for_kl: bool):
    """``compute()`` once a training step: a forward pass (grad enabled) keeps the result under ``name``,
    the next ``kl()`` (``for_kl=True``) takes it while ``params`` are unchanged (same tensors, versions,
    storage), else computes it anew. What is shared must be back-propagable twice (no freed saved tensors)."""
    cache = layer.__dict__.setdefault("_step_cache", {})
    entry = cache.pop(name, None)
    keys = [(p, p._version, p.data_ptr()) for p in params]
    if for_kl and entry is not None and len(entry[0]) == len(keys) and all(
            a is b and v == w and d == e for (a, v, d), (b, w, e) in zip(entry[0], keys)):
        return entry[1]
    value = compute()
    if not for_kl and torch.is_grad_enabled():
        cache[name] = (keys, value)
    return value


def use_fused(layer) -> bool:
    """The layer asked for the fused path and no ``torch.func`` transform (vmap, grad, ...) is active."""
    return layer.fused and not torch._C._are_functorch_transforms_active()


# ------------------------------------------------------------------ sigma = softplus(rho), once a step

class Softplus(torch.autograd.Function):
    r""":math:`\sigma = \mathrm{softplus}(\rho)`, whose backward (:math:`\mathrm{sigmoid}(\rho)`) may run
    more than once.

    ``rho`` is kept on ``ctx`` rather than saved, so a Bayes by Backprop layer can hand the same ``sigma``
    to its forward pass and to the ``kl()`` of the same step (even when the two are back-propagated
    separately): one softplus and one sigmoid a step instead of two of each.
    """

    @staticmethod
    def forward(ctx, rho):
        ctx.rho, ctx.version = rho, rho._version
        return F.softplus(rho)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        if ctx.rho._version != ctx.version:
            raise RuntimeError("rho was modified in place between the forward pass and backward(): "
                               "call backward() before optimizer.step()")
        return torch.sigmoid(ctx.rho).mul_(grad)


# ------------------------------------------------------------------ local reparametrization

def _op_backward(layer, grad, x, weight, need_x, need_w, need_b):
    """Gradients of ``layer._op(x, weight, bias)`` with respect to x, weight and bias."""
    if weight.dim() == 2:
        grad_x = grad.matmul(weight) if need_x else None
        grad_w = grad.reshape(-1, grad.shape[-1]).t().mm(x.reshape(-1, x.shape[-1])) if need_w else None
        grad_b = grad.reshape(-1, grad.shape[-1]).sum(0) if need_b else None
        return grad_x, grad_w, grad_b
    args = (layer.stride, layer.padding, layer.dilation, layer.groups)
    grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad, *args) if need_x else None
    grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad, *args) if need_w else None
    grad_b = grad.sum((0, 2, 3)) if need_b else None
    return grad_x, grad_w, grad_b


class LocalReparam(torch.autograd.Function):
    r"""LRT sample :math:`B = A \star \mu + \mu_b + \sqrt{A^2 \star v + v_b + \epsilon_0} \odot \varepsilon`.

    The variances come as :math:`v = \sigma^2` from standard deviations (``from_sigma=True``, Bayes by
    Backprop: the backward returns :math:`\partial L/\partial\sigma = 2\sigma\,\partial L/\partial v`) or as
    variances (SparseVD: :math:`v = \alpha\theta^2`). ``bias_scale`` may be ``None``.
    Only ``noise / std`` (activation-sized) is kept for the variance path.
    """

    @staticmethod
    def forward(ctx, x, mean_w, mean_b, scale_w, scale_b, layer, eps0, from_sigma):
        var_w = scale_w * scale_w if from_sigma else scale_w
        var_bias = torch.full((var_w.shape[0],), eps0, dtype=var_w.dtype, device=var_w.device)  # eps0 in the GEMM
        if scale_b is not None:
            var_bias = var_bias + (scale_b * scale_b if from_sigma else scale_b)
        x_sq = x * x
        mean = layer._op(x, mean_w, mean_b)
        std = layer._op(x_sq, var_w, var_bias).sqrt_()
        noise = torch.randn_like(mean)
        out = torch.addcmul(mean, std, noise)
        ctx.layer, ctx.from_sigma = layer, from_sigma
        ctx.has_mean_b, ctx.has_scale_b = mean_b is not None, scale_b is not None
        ctx.save_for_backward(x, x_sq, mean_w, var_w, noise.div_(std), scale_w, scale_b)  # d out/d var = noise/(2 std)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, x_sq, mean_w, var_w, noise_over_std, scale_w, scale_b = ctx.saved_tensors
        need_x, need_mean_w, need_mean_b, need_scale_w, need_scale_b = ctx.needs_input_grad[:5]
        grad_var2 = grad_out * noise_over_std  # 2 dL/dvar
        layer = ctx.layer
        g_mean = _op_backward(layer, grad_out, x, mean_w, need_x, need_mean_w, ctx.has_mean_b and need_mean_b)
        g_var = _op_backward(layer, grad_var2, x_sq, var_w, need_x, need_scale_w, ctx.has_scale_b and need_scale_b)
        grad_x = g_mean[0].addcmul_(x, g_var[0]) if need_x else None  # d/dx op(x², v) = 2x op^T(dL/dvar)
        if ctx.from_sigma:  # dL/dsigma = 2 sigma dL/dvar
            grad_w = None if g_var[1] is None else g_var[1].mul_(scale_w)
            grad_b = None if g_var[2] is None else g_var[2].mul_(scale_b)
        else:  # dL/dvar
            grad_w = None if g_var[1] is None else g_var[1].mul_(0.5)
            grad_b = None if g_var[2] is None else g_var[2].mul_(0.5)
        return grad_x, g_mean[1], g_mean[2], grad_w, grad_b, None, None, None


# ------------------------------------------------------------------ KL sums

class GaussianKLSum(torch.autograd.Function):
    r""":math:`\sum \mathrm{KL}(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(\mu_p, \sigma_p^2))`: the sum of
    :func:`bnn_teach.kl.normal_normal`, written as

    .. math:: n(\log\sigma_p - \tfrac12) - \sum\log\sigma + \frac{\sum\sigma^2 + \sum(\mu-\mu_p)^2}{2\sigma_p^2}

    with the squares summed as dot products. Backward: :math:`(\mu - \mu_p)/\sigma_p^2` and
    :math:`\sigma/\sigma_p^2 - 1/\sigma`.
    """

    @staticmethod
    def forward(ctx, mu, sigma, mu_p: float, sigma_p: float):
        sigma_flat = sigma.reshape(-1)
        diff = mu.reshape(-1) - mu_p if mu_p != 0.0 else mu.reshape(-1)
        total = (torch.dot(sigma_flat, sigma_flat) + torch.dot(diff, diff)) / (2.0 * sigma_p**2)
        total = total - torch.log(sigma_flat).sum() + sigma_flat.numel() * (math.log(sigma_p) - 0.5)
        ctx.save_for_backward(diff, sigma)
        ctx.sigma_p = sigma_p
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        diff, sigma = ctx.saved_tensors
        var_p = ctx.sigma_p**2
        scale = grad / var_p
        grad_mu = (diff * scale).reshape(sigma.shape) if ctx.needs_input_grad[0] else None
        grad_sigma = None
        if ctx.needs_input_grad[1]:  # (sigma - var_p / sigma) / var_p
            grad_sigma = sigma.reciprocal().mul_(-var_p).add_(sigma).mul_(scale)
        return grad_mu, grad_sigma, None, None


class LogAlpha(torch.autograd.Function):
    r""":math:`\log\alpha = \mathrm{clamp}(\log\sigma^2 - \log(\theta^2 + 10^{-8}))` to ``range``.

    Backward: :math:`m` for :math:`\log\sigma^2` and :math:`-2m\theta/(\theta^2 + 10^{-8})` for :math:`\theta`,
    :math:`m` = 1 inside the range, 0 where clamped (an arithmetic mask: faster than a boolean one on a CPU).
    Both factors are made in the forward pass and kept on ``ctx``, so the backward may run twice
    (a layer's forward pass and ``kl()`` share one ``log_alpha`` a step).
    """

    @staticmethod
    def forward(ctx, theta, log_sigma2, lo: float, hi: float, theta_eps: float):
        denom = torch.mul(theta, theta).add_(theta_eps)
        log_alpha = torch.sub(log_sigma2, torch.log(denom)).clamp_(lo, hi)
        inside = torch.sub(log_alpha, lo).mul_(torch.sub(hi, log_alpha)).sign_()  # 1 inside, 0 on the bounds
        ctx.inside, ctx.theta_factor = inside, torch.mul(inside, theta).div_(denom).mul_(-2.0)
        return log_alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return ctx.theta_factor * grad, ctx.inside * grad, None, None, None


class LogUniformKLSum(torch.autograd.Function):
    r"""The sum of :func:`bnn_teach.kl.sparsevd` (``with_k1=True``) or :func:`bnn_teach.kl.ard` over ``log_alpha``
    (within ``LOG_ALPHA_RANGE``, so :math:`e^{-\log\alpha}` cannot overflow), written as
    :math:`k_1\,\mathrm{sigmoid}(-k_2 - k_3\log\alpha) + \tfrac12\log(1 + e^{-\log\alpha})`
    (the same function: :math:`k_1 - k_1\sigma(x) = k_1\sigma(-x)`, no cancellation in the sum)."""

    @staticmethod
    def forward(ctx, log_alpha, with_k1: bool, k1: float, k2: float, k3: float):
        inv_alpha = torch.neg(log_alpha).exp_()
        total = torch.log1p(inv_alpha).sum().mul_(0.5)
        rest = None
        if with_k1:
            rest = torch.mul(log_alpha, -k3).sub_(k2).sigmoid_()
            total = total + k1 * rest.sum()
        ctx.save_for_backward(inv_alpha, rest)
        ctx.k1k3 = k1 * k3
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        inv_alpha, rest = ctx.saved_tensors
        # d/dx 0.5 log(1 + e^-x) = -0.5 e^-x / (1 + e^-x)
        d = torch.add(inv_alpha, 1.0).reciprocal_().mul_(inv_alpha).mul_(-0.5)
        if rest is not None:  # d/dx k1 sigmoid(-k2 - k3 x) = k1 k3 (r² - r)
            d.addcmul_(rest, rest, value=ctx.k1k3).sub_(rest, alpha=ctx.k1k3)
        return d.mul_(grad), None, None, None, None
