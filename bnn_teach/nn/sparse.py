"""Sparse Variational Dropout (Molchanov et al. 2017), ARD, and group (neuron-level) SparseVD.

Posterior :math:`q(w) = \\mathcal N(\\theta, \\sigma^2)` per weight, parametrised by the mean
``weight`` (:math:`\\theta`) and ``log_sigma2`` (the additive reparametrization);
:math:`\\log\\alpha = \\log\\sigma^2 - \\log(\\theta^2 + 10^{-8})`, clamped to ``LOG_ALPHA_RANGE = (-8, 8)``
(the paper's code). Lecture 4 derives them; ``forward`` and ``kl`` below are the lecture's formulas.

- ``train()``: local reparametrization,
  :math:`B = A\\theta + b + \\sqrt{A^2 (\\alpha\\theta^2) + 10^{-8}} \\odot \\varepsilon`
  (the bias is deterministic and stays out of the variance). With ``train_clip=True`` (the paper's
  code) the mean term already uses the pruned :math:`\\theta`, so the network learns to work without them.
- ``eval()``: the posterior mean with pruned weights (:math:`\\log\\alpha \\ge` ``threshold``, default 3) set to 0.
- ``sampling()`` in eval: LRT sampling of the pruned posterior.
- ``fused=True`` (default): the same :math:`\\log\\alpha`, LRT sample and KL sum with hand-written backward
  passes (:mod:`bnn_teach.nn._fused`); ``fused=False``: plain autograd (second derivatives, ``torch.func``).

KL: :func:`bnn_teach.kl.sparsevd` (log-uniform prior) for ``*SVDO``, :func:`bnn_teach.kl.ard` for ``*ARD``.
"""
from __future__ import annotations

import torch
from torch import nn

from bnn_teach import kl as _kl
from bnn_teach.nn import _fused
from bnn_teach.nn._shapes import Conv2dShape, LinearShape, check_bool, check_finite, init_mean_
from bnn_teach.nn.base import LRT_EPS, BayesianModule

__all__ = ["LinearSVDO", "Conv2dSVDO", "LinearARD", "Conv2dARD", "LinearGroupSVDO", "LOG_ALPHA_RANGE"]

LOG_ALPHA_RANGE = (-8.0, 8.0)
_THETA_EPS = 1e-8  # log(theta² + 1e-8): finite log alpha where theta = 0


def _log_alpha(layer, theta, log_sigma2):
    """:math:`\\mathrm{clamp}(\\log\\sigma^2 - \\log(\\theta^2 + 10^{-8}))` to ``LOG_ALPHA_RANGE``."""
    if _fused.use_fused(layer):
        return _fused.LogAlpha.apply(theta, log_sigma2, *LOG_ALPHA_RANGE, _THETA_EPS)
    return torch.clamp(log_sigma2 - torch.log(theta * theta + _THETA_EPS), *LOG_ALPHA_RANGE)


def _keep(log_alpha, threshold):
    """Float mask, 1 where ``log_alpha < threshold`` (kept), else 0; no gradient. Arithmetic, not a boolean
    comparison: on a CPU the bool-to-float conversion of a 300x784 mask costs more than the layer's GEMM."""
    with torch.no_grad():
        return torch.sub(threshold, log_alpha).sign_().clamp_(min=0.0)


class _SparseVD(BayesianModule):
    """Parameters ``weight`` (theta), ``log_sigma2`` and a deterministic ``bias``; the LRT sample and the KL."""

    kl_fn = staticmethod(_kl.sparsevd)

    def _setup_posterior(self, bias, threshold, init_log_sigma2, train_clip, fused):
        self.threshold = check_finite("threshold", threshold)
        self.train_clip = check_bool("train_clip", train_clip)
        self.fused = check_bool("fused", fused)
        self.weight = nn.Parameter(torch.empty(self.weight_shape))
        self.log_sigma2 = nn.Parameter(torch.full(self.weight_shape, check_finite("init_log_sigma2", init_log_sigma2)))
        if check_bool("bias", bias):
            self.bias = nn.Parameter(torch.empty(self.weight_shape[0]))
        else:
            self.register_parameter("bias", None)
        init_mean_(self.weight.data, None if self.bias is None else self.bias.data, self.fan_in)

    @property
    def log_alpha(self) -> torch.Tensor:
        """:math:`\\log\\alpha = \\log\\sigma^2 - \\log\\theta^2`, clamped to ``LOG_ALPHA_RANGE``;
        shape of ``weight``."""
        return _log_alpha(self, self.weight, self.log_sigma2)

    def _step_log_alpha(self, for_kl=False):
        """``log_alpha``; on the fused path computed once a step (the forward pass's is reused by ``kl()``)."""
        if not _fused.use_fused(self):
            return self.log_alpha
        return _fused.shared_with_kl(self, "log_alpha", [self.weight, self.log_sigma2], lambda: self.log_alpha,
                                     for_kl)

    def _input(self, x):
        """Hook for group noise on the input (identity here)."""
        return x

    def forward(self, x):
        self._check_input(x)
        x = self._input(x)
        log_alpha = self._step_log_alpha()
        keep = _keep(log_alpha, self.threshold)
        if not self.sampling_active:  # eval(): the pruned posterior mean
            return self._op(x, self.weight * keep, self.bias)
        pruned = not self.training  # sampling() in eval samples the pruned posterior
        mean_weight = self.weight * keep if (pruned or self.train_clip) else self.weight
        theta = mean_weight if pruned else self.weight
        var_weight = torch.exp(log_alpha) * theta * theta  # sigma² = alpha theta²
        if _fused.use_fused(self):
            return _fused.LocalReparam.apply(x, mean_weight, self.bias, var_weight, None, self, LRT_EPS, False)
        # LRT: b ~ N(x theta^T + b, x² (alpha theta²)^T), one independent sample per output
        mean = self._op(x, mean_weight, self.bias)
        var = self._op(x * x, var_weight)
        return mean + torch.sqrt(var + LRT_EPS) * torch.randn_like(mean)

    def kl(self) -> torch.Tensor:
        """The elementwise KL (:attr:`kl_fn`, of ``log_alpha``) summed over the weights: ≥ 0, → 0 as every alpha → ∞."""
        return self._kl_sum(self._step_log_alpha(for_kl=True))

    def _kl_sum(self, log_alpha):
        fusable = self.kl_fn in (_kl.sparsevd, _kl.ard)
        if fusable and _fused.use_fused(self):
            return _fused.LogUniformKLSum.apply(log_alpha, self.kl_fn is _kl.sparsevd, _kl.K1, _kl.K2, _kl.K3)
        return self.kl_fn(log_alpha).sum()

    # the layer protocol (bnn_teach.sparsity, bnn_teach.viz)
    def mean_weight(self) -> torch.Tensor:
        """The posterior mean of the weights, ``weight`` (theta), before pruning."""
        return self.weight

    def mean_bias(self):
        """The (deterministic) bias, ``None`` without one."""
        return self.bias

    @torch.no_grad()
    def set_mean_(self, weight, bias=None):
        """Copy ``weight`` (and ``bias``) into the posterior mean, e.g. from a trained ``nn.Linear``."""
        self.weight.copy_(weight)
        if bias is not None:
            self.bias.copy_(bias)

    def pruning_score(self) -> torch.Tensor:
        """``-log_alpha`` of each weight: high means keep (kept where ``> -threshold``)."""
        return -self.log_alpha

    def pruning_mask(self) -> torch.Tensor:
        """Boolean mask of the weights kept in eval mode: ``log_alpha < threshold``."""
        return self.log_alpha < self.threshold

    def extra_repr(self):
        clip = ", train_clip=True" if self.train_clip else ""
        fused = "" if self.fused else ", fused=False"
        return f"{self._op_repr()}, bias={self.bias is not None}, threshold={self.threshold}{clip}{fused}"


class LinearSVDO(LinearShape, _SparseVD):
    """SparseVD linear layer. Input ``(..., in_features)`` → ``(..., out_features)``.

    ``init_log_sigma2=-10`` as in the paper's code; ``threshold=3.0`` prunes weights with alpha > ~20;
    ``train_clip=True`` zeroes the pruned weights' means in training too (the paper's code does);
    ``fused``: see the module docstring.

    >>> import torch, bnn_teach as bt
    >>> layer = bt.nn.LinearSVDO(4, 3)
    >>> layer.log_alpha.shape                       # one dropout rate per weight
    torch.Size([3, 4])
    >>> with torch.no_grad():
    ...     layer.log_sigma2[0] = 10.0              # alpha huge: the first output's weights are noise
    >>> layer.pruning_mask().sum(dim=1).tolist()    # kept in eval mode: log_alpha < 3
    [0, 4, 4]
    >>> bool(layer.kl() >= 0)
    True
    """

    def __init__(self, in_features, out_features, bias=True, threshold=3.0, init_log_sigma2=-10.0,
                 train_clip=False, fused=True):
        super().__init__()
        self._setup_shape(in_features, out_features)
        self._setup_posterior(bias, threshold, init_log_sigma2, train_clip, fused)


class Conv2dSVDO(Conv2dShape, _SparseVD):
    """SparseVD 2-D convolution. Input ``(N, in_channels, H, W)`` → ``(N, out_channels, H', W')``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, threshold=3.0, init_log_sigma2=-10.0, train_clip=False, fused=True):
        super().__init__()
        self._setup_shape(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self._setup_posterior(bias, threshold, init_log_sigma2, train_clip, fused)


class LinearARD(LinearSVDO):
    """ARD linear layer: the SparseVD posterior with the optimal per-weight Gaussian prior,
    KL = ``0.5 * log(1 + 1/alpha)`` (:func:`bnn_teach.kl.ard`)."""

    kl_fn = staticmethod(_kl.ard)


class Conv2dARD(Conv2dSVDO):
    """ARD 2-D convolution (see :class:`LinearARD`)."""

    kl_fn = staticmethod(_kl.ard)


class LinearGroupSVDO(LinearSVDO):
    """Structured SparseVD: multiplicative Gaussian noise per input neuron on top of SparseVD weights.

    :math:`y = W (x \\odot z) + b` with :math:`q(z_i) = \\mathcal N(\\theta^z_i, \\alpha^z_i\\theta^{z\\,2}_i)` and a
    log-uniform prior on :math:`z` too; when :math:`\\log\\alpha^z_i \\ge` ``threshold`` the whole input
    neuron ``i`` is removed (its column of ``W`` counts as pruned).

    Parameters ``z_mu`` and ``z_log_sigma2``, shape ``(in_features,)``; ``z_log_alpha`` property.
    """

    def __init__(self, in_features, out_features, bias=True, threshold=3.0, init_log_sigma2=-10.0,
                 train_clip=False, fused=True):
        super().__init__(in_features, out_features, bias, threshold, init_log_sigma2, train_clip, fused)
        self.z_mu = nn.Parameter(torch.ones(self.in_features))
        self.z_log_sigma2 = nn.Parameter(torch.full((self.in_features,), float(init_log_sigma2)))

    @property
    def z_log_alpha(self) -> torch.Tensor:
        """:math:`\\log\\alpha^z` of each input neuron, shape ``(in_features,)``."""
        return _log_alpha(self, self.z_mu, self.z_log_sigma2)

    def neuron_mask(self) -> torch.Tensor:
        """Boolean mask of the input neurons kept, shape ``(in_features,)``."""
        return self.z_log_alpha < self.threshold

    def _step_z_log_alpha(self, for_kl=False):
        if not _fused.use_fused(self):
            return self.z_log_alpha
        return _fused.shared_with_kl(self, "z_log_alpha", [self.z_mu, self.z_log_sigma2], lambda: self.z_log_alpha,
                                     for_kl)

    def _input(self, x):
        """:math:`x \\odot z`: the mean (pruned) in eval, :math:`z \\sim q(z)` per example when sampling."""
        z_log_alpha = self._step_z_log_alpha()
        z_mu = self.z_mu
        if not self.training or not self.sampling_active:
            z_mu = z_mu * (z_log_alpha.detach() < self.threshold).to(z_mu.dtype)
        if not self.sampling_active:
            return x * z_mu
        z_sigma = torch.exp(0.5 * z_log_alpha) * z_mu.abs()
        return x * (z_mu + z_sigma * torch.randn_like(x))

    def kl(self):
        return self._kl_sum(self._step_log_alpha(for_kl=True)) + self._kl_sum(self._step_z_log_alpha(for_kl=True))

    def mean_weight(self) -> torch.Tensor:
        """The effective mean weight ``W * z_mu`` (the input noise folded in), before pruning."""
        return self.weight * self.z_mu.unsqueeze(0)

    @torch.no_grad()
    def set_mean_(self, weight, bias=None):
        """Copy ``weight`` (and ``bias``) into ``weight`` (and ``bias``), with ``z_mu = 1``."""
        super().set_mean_(weight, bias)
        self.z_mu.fill_(1.0)

    def pruning_score(self) -> torch.Tensor:
        """``-max(log_alpha, z_log_alpha)``: a weight goes with its own noise or with its input neuron's."""
        return -torch.maximum(self.log_alpha, self.z_log_alpha.unsqueeze(0))

    def pruning_mask(self):
        return super().pruning_mask() & self.neuron_mask().unsqueeze(0)
