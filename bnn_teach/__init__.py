"""bnn_teach: Bayesian deep learning, taught.

``import bnn_teach as bt``, then ``bt.nn``, ``bt.kl``, ``bt.priors``, ``bt.objectives``, ``bt.data``,
``bt.train``, ``bt.sparsity``, ``bt.models``, ``bt.sgmcmc``, ``bt.predict``, ``bt.uncertainty``,
``bt.metrics``, ``bt.reproduce`` (the papers' experiments and the recorded runs the lectures load),
``bt.diagnostics`` (gradient estimators and their variance), ``bt.distributed`` (the posterior server and
its baselines on ``torch.distributed``), ``bt.selfcheck`` (the lectures'
check-yourself cells), ``bt.viz``, ``bt.utils``. Each module's docstring names the lecture
that explains it.
"""
from bnn_teach import (  # noqa: F401
    data,
    diagnostics,
    distributed,
    kl,
    metrics,
    models,
    nn,
    objectives,
    predict,
    priors,
    reproduce,
    selfcheck,
    sgmcmc,
    sparsity,
    train,
    uncertainty,
    utils,
    vi,
    viz,
)

__version__ = "0.1.0"
