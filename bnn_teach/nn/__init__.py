"""Bayesian modules: ``import bnn_teach as bt; bt.nn.BayesLinear(...)``.

See :mod:`bnn_teach.nn.bbb` (Bayes by Backprop), :mod:`bnn_teach.nn.sparse` (SparseVD, ARD,
group SparseVD) and :mod:`bnn_teach.nn.base` (modes, ``sampling``, ``kl_divergence``, MC dropout).
"""
from bnn_teach.nn.base import BayesianModule, MCDropout, bayesian_modules, kl_divergence, sampling
from bnn_teach.nn.bbb import BayesConv2d, BayesLinear
from bnn_teach.nn.convert import FLAVOURS, bayesianize
from bnn_teach.nn.sparse import LOG_ALPHA_RANGE, Conv2dARD, Conv2dSVDO, LinearARD, LinearGroupSVDO, LinearSVDO

__all__ = [
    "BayesianModule", "MCDropout", "bayesian_modules", "kl_divergence", "sampling",
    "BayesLinear", "BayesConv2d", "LinearSVDO", "Conv2dSVDO", "LinearARD", "Conv2dARD",
    "LinearGroupSVDO", "LOG_ALPHA_RANGE", "bayesianize", "FLAVOURS",
]
