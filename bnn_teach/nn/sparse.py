"""Sparse Variational Dropout (Molchanov et al. 2017), ARD, and group (neuron-level) SparseVD.

Posterior :math:`q(w) = \\mathcal N(\\theta, \\sigma^2)` per weight, parametrised by the mean
``weight`` (:math:`\\theta`) and ``log_sigma2``; :math:`\\log\\alpha = \\log\\sigma^2 - \\log\\theta^2`,
clamped to ``LOG_ALPHA_RANGE = (-8, 8)`` (the paper's code). Lecture 4 derives them.

- ``train()``: local reparametrization, :math:`B = A\\theta + b + \\sqrt{A^2 (\\alpha\\theta^2) + 10^{-8}} \\odot \\varepsilon`
  (the bias is deterministic and stays out of the variance). With ``train_clip=True`` (the paper's
  code) the mean term already uses the pruned :math:`\\theta`, so the network learns to work without them.
- ``eval()``: the posterior mean with pruned weights (:math:`\\log\\alpha \\ge` ``threshold``, default 3) set to 0.
- ``sampling()`` in eval: LRT sampling of the pruned posterior.

KL: :func:`bnn_teach.kl.sparsevd` (log-uniform prior) for ``*SVDO``, :func:`bnn_teach.kl.ard` for ``*ARD``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bnn_teach import kl as _kl
from bnn_teach.nn._ops import Conv2dOp, LinearOp, check_threshold, init_mean_, lrt_sample
from bnn_teach.nn.base import BayesianModule

__all__ = ["LinearSVDO", "Conv2dSVDO", "LinearARD", "Conv2dARD", "LinearGroupSVDO", "LOG_ALPHA_RANGE"]

LOG_ALPHA_RANGE = (-8.0, 8.0)
LRT_EPS = 1e-8
_THETA_EPS = 1e-8


class _LogAlpha(torch.autograd.Function):
    r""":math:`\log\alpha = \mathrm{clamp}(\log\sigma^2 - \log(\theta^2 + 10^{-8}))` to ``LOG_ALPHA_RANGE``, with the
    closed-form backward :math:`\partial/\partial\log\sigma^2 = m`, :math:`\partial/\partial\theta = -2m\theta/(\theta^2 + 10^{-8})`
    (:math:`m` = 1 inside the range, 0 where clamped). Masks are arithmetic, not boolean: on a CPU this
    runs 2.5x faster than autograd through ``clamp``."""

    @staticmethod
    def forward(ctx, theta, log_sigma2):
        denom = torch.mul(theta, theta).add_(_THETA_EPS)
        log_alpha = torch.log(denom)
        torch.sub(log_sigma2, log_alpha, out=log_alpha)
        log_alpha.clamp_(*LOG_ALPHA_RANGE)
        ctx.save_for_backward(theta, denom, log_alpha)
        return log_alpha

    @staticmethod
    def backward(ctx, grad):
        theta, denom, log_alpha = ctx.saved_tensors
        lo, hi = LOG_ALPHA_RANGE
        inside = torch.sub(log_alpha, lo).mul_(torch.sub(hi, log_alpha)).sign_()  # 1 inside, 0 on the bounds
        grad_log_sigma2 = inside.mul_(grad)
        grad_theta = torch.mul(grad_log_sigma2, theta).div_(denom).mul_(-2.0)
        return grad_theta, grad_log_sigma2


def _log_alpha(theta, log_sigma2):
    return _LogAlpha.apply(theta, log_sigma2)


def _keep(log_alpha, threshold):
    """Float mask, 1 where ``log_alpha < threshold`` (kept), else 0; no gradient."""
    with torch.no_grad():
        return torch.sub(threshold, log_alpha).sign_().clamp_(min=0.0)


class _KLSum(torch.autograd.Function):
    r"""Sum over all elements of :func:`bnn_teach.kl.sparsevd` (``sparsevd=True``) or :func:`bnn_teach.kl.ard`,
    with a closed-form backward. Written as :math:`k_1\sigma(-k_2 - k_3\log\alpha) + \tfrac12\,\mathrm{softplus}(-\log\alpha)`
    (the same function; no cancellation between :math:`k_1` and :math:`k_1\sigma(\cdot)` in the sum)."""

    @staticmethod
    def forward(ctx, log_alpha, sparsevd):
        total = F.logsigmoid(log_alpha).sum().mul_(-0.5)  # 0.5 * softplus(-log_alpha)
        rest = None
        if sparsevd:
            rest = torch.mul(log_alpha, -_kl.K3).sub_(_kl.K2).sigmoid_()  # 1 - sigmoid(k2 + k3 log_alpha)
            total = total + _kl.K1 * rest.sum()
        ctx.save_for_backward(log_alpha, rest)
        return total

    @staticmethod
    def backward(ctx, grad):
        log_alpha, rest = ctx.saved_tensors
        d = torch.sigmoid(log_alpha).sub_(1.0).mul_(0.5)  # d/dx 0.5 softplus(-x) = -0.5 sigmoid(-x)
        if rest is not None:  # d/dx k1 sigmoid(-k2 - k3 x) = -k1 k3 r (1 - r)
            d.addcmul_(rest, rest - 1.0, value=_kl.K1 * _kl.K3)
        return d.mul_(grad), None


class _SparseVD(BayesianModule):
    kl_fn = staticmethod(_kl.sparsevd)

    def _setup_posterior(self, bias, threshold, init_log_sigma2, train_clip=False):
        self.threshold = check_threshold(threshold)
        if not isinstance(train_clip, bool):
            raise TypeError(f"train_clip must be a bool, got {train_clip!r}")
        self.train_clip = train_clip
        self.weight = nn.Parameter(torch.empty(self.weight_shape))
        self.log_sigma2 = nn.Parameter(torch.full(self.weight_shape, float(init_log_sigma2)))
        if bias:
            self.bias = nn.Parameter(torch.empty(self.weight_shape[0]))
        else:
            self.register_parameter("bias", None)
        init_mean_(self.weight.data, None if self.bias is None else self.bias.data, self.fan_in)

    @property
    def log_alpha(self) -> torch.Tensor:
        """:math:`\\log\\alpha = \\log\\sigma^2 - \\log\\theta^2`, clamped to ``LOG_ALPHA_RANGE``; shape of ``weight``."""
        return _log_alpha(self.weight, self.log_sigma2)

    def pruning_mask(self) -> torch.Tensor:
        """Boolean mask of the weights kept in eval mode: ``log_alpha < threshold``."""
        return self.log_alpha < self.threshold

    def _mean_and_var_weights(self, pruned):
        """Mean and variance weights of the LRT: pruned in eval; with ``train_clip`` the mean only."""
        log_alpha = self.log_alpha
        weight = self.weight
        if pruned or self.train_clip:
            mean = weight * _keep(log_alpha, self.threshold)
        else:
            mean = weight
        source = mean if pruned else weight
        return mean, torch.exp(log_alpha) * source * source

    def _input(self, x):
        """Hook for group noise on the input (identity here)."""
        return x

    def forward(self, x):
        self._check_input(x)
        x = self._input(x)
        if not self.sampling_active:
            return self._op(x, self.weight * _keep(self.log_alpha, self.threshold), self.bias)
        weight, var_weight = self._mean_and_var_weights(pruned=not self.training)
        return lrt_sample(self, x, weight, var_weight, self.bias, None, LRT_EPS)

    def kl(self):
        """Sum of the elementwise KL over the weights (≥ 0; → 0 as every alpha → ∞)."""
        if self.kl_fn in (_kl.sparsevd, _kl.ard):  # the fused sum of the same formula
            return _KLSum.apply(self.log_alpha, self.kl_fn is _kl.sparsevd)
        return self.kl_fn(self.log_alpha).sum()

    def extra_repr(self):
        clip = ", train_clip=True" if self.train_clip else ""
        return f"{self._op_repr()}, bias={self.bias is not None}, threshold={self.threshold}{clip}"


class LinearSVDO(LinearOp, _SparseVD):
    """SparseVD linear layer. Input ``(..., in_features)`` → ``(..., out_features)``.

    ``init_log_sigma2=-10`` as in the paper's code; ``threshold=3.0`` prunes weights with alpha > ~20;
    ``train_clip=True`` zeroes the pruned weights' means in training too (the paper's code does).
    """

    def __init__(self, in_features, out_features, bias=True, threshold=3.0, init_log_sigma2=-10.0,
                 train_clip=False):
        super().__init__()
        self._setup_op(in_features, out_features)
        self._setup_posterior(bias, threshold, init_log_sigma2, train_clip)


class Conv2dSVDO(Conv2dOp, _SparseVD):
    """SparseVD 2-D convolution. Input ``(N, in_channels, H, W)`` → ``(N, out_channels, H', W')``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, threshold=3.0, init_log_sigma2=-10.0, train_clip=False):
        super().__init__()
        self._setup_op(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self._setup_posterior(bias, threshold, init_log_sigma2, train_clip)


class LinearARD(LinearSVDO):
    """ARD linear layer: the SparseVD posterior with the optimal per-weight Gaussian prior,
    KL = ``0.5 * log(1 + 1/alpha)`` (:func:`bnn_teach.kl.ard`)."""

    kl_fn = staticmethod(_kl.ard)


class Conv2dARD(Conv2dSVDO):
    """ARD 2-D convolution (see :class:`LinearARD`)."""

    kl_fn = staticmethod(_kl.ard)


class LinearGroupSVDO(LinearSVDO):
    """Structured SparseVD: multiplicative Gaussian noise per input neuron on top of SparseVD weights.

    :math:`y = W (x \\odot z) + b` with :math:`q(z_i) = \\mathcal N(\\theta^z_i, \\sigma^{z\\,2}_i)` and a
    log-uniform prior on :math:`z` too; when :math:`\\log\\alpha^z_i \\ge` ``threshold`` the whole input
    neuron ``i`` is removed (its column of ``W`` counts as pruned).

    Parameters ``z_mu`` and ``z_log_sigma2``, shape ``(in_features,)``; ``z_log_alpha`` property.
    """

    def __init__(self, in_features, out_features, bias=True, threshold=3.0, init_log_sigma2=-10.0,
                 train_clip=False):
        super().__init__(in_features, out_features, bias, threshold, init_log_sigma2, train_clip)
        self.z_mu = nn.Parameter(torch.ones(self.in_features))
        self.z_log_sigma2 = nn.Parameter(torch.full((self.in_features,), float(init_log_sigma2)))

    @property
    def z_log_alpha(self) -> torch.Tensor:
        return _log_alpha(self.z_mu, self.z_log_sigma2)

    def neuron_mask(self) -> torch.Tensor:
        """Boolean mask of the input neurons kept, shape ``(in_features,)``."""
        return self.z_log_alpha < self.threshold

    def pruning_mask(self):
        return super().pruning_mask() & self.neuron_mask().unsqueeze(0)

    def _input(self, x):
        if not self.sampling_active:
            return x * (self.z_mu * self.neuron_mask().to(x.dtype))
        z_mu = self.z_mu
        if not self.training:
            z_mu = z_mu * self.neuron_mask().to(z_mu.dtype)
        z_sigma = torch.sqrt(torch.exp(self.z_log_alpha)) * z_mu.abs()
        z = z_mu + z_sigma * torch.randn(x.shape, dtype=x.dtype, device=x.device)
        return x * z

    def kl(self):
        return _KLSum.apply(self.log_alpha, True) + _KLSum.apply(self.z_log_alpha, True)
