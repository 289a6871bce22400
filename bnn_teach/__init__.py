"""bnn_teach: Bayesian deep learning, taught.

``import bnn_teach as bt``, then ``bt.nn``, ``bt.kl``, ``bt.priors``, ``bt.objectives``, ``bt.data``,
``bt.train``, ``bt.sparsity``, ``bt.models``, ``bt.sgmcmc``, ``bt.predict``, ``bt.uncertainty``,
``bt.metrics``, ``bt.reproduce`` (the papers' experiments and the recorded runs the lectures load),
``bt.diagnostics`` (gradient estimators and their variance), ``bt.distributed`` (the posterior server and
its baselines on ``torch.distributed``), ``bt.selfcheck`` (the lectures'
check-yourself cells), ``bt.viz``, ``bt.utils``. Each module's docstring names the lecture
that explains it.
"""
import importlib

#: the submodules, each imported when first used (``bt.kl``, ``from bnn_teach import kl``): ``import bnn_teach``
#: itself does not import torch, so the tools that need none of them (the grader's configuration, the CLI's
#: help) start in a fraction of a second
SUBMODULES = ("data", "diagnostics", "distributed", "kl", "metrics", "models", "nn", "objectives", "predict",
              "priors", "reproduce", "selfcheck", "sgmcmc", "sparsity", "train", "uncertainty", "utils", "vi", "viz")
__all__ = list(SUBMODULES)


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # also sets it as an attribute of the package
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBMODULES})


__version__ = "0.1.0"
