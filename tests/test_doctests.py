"""The ``>>>`` examples in the docstrings a student reads first run and print what they say.

Add a module to ``DOCTEST_MODULES`` (e.g. ``"bnn_teach.nn.bbb"``) once its examples are written; each
module must hold at least one example, so an entry cannot pass by checking nothing.
"""
import doctest
import importlib

import pytest
import torch

DOCTEST_MODULES = [
    "bnn_teach.train",        # fit, evaluate
    "bnn_teach.predict",      # mc_predict
    "bnn_teach.uncertainty",  # decompose, entropy
    "bnn_teach.metrics",      # accuracy, nll, brier, ece, reliability_bins, auroc
    "bnn_teach.sgmcmc",       # SGLD, SGHMC, SampleCollector
    "bnn_teach.priors",       # ScaleMixturePrior
    "bnn_teach.nn.bbb",       # BayesLinear, BayesConv2d
    "bnn_teach.nn.sparse",    # LinearSVDO
    "bnn_teach.kl",           # normal_normal
    "bnn_teach.selfcheck",    # number
]
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    torch.manual_seed(0)
    result = doctest.testmod(module, optionflags=OPTIONS, verbose=False, report=True)
    assert result.attempted > 0, f"{module_name} has no >>> examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {module_name} failed (see above)"
