"""Distributed Bayesian learning on ``torch.distributed`` (gloo): the posterior server and its baselines (lecture 8).

- :func:`posterior_server`: expectation propagation with damping over m workers and a server
  (Xu et al. 2014; Hasenclever et al. 2017);
- :func:`consensus_monte_carlo`, :func:`federated_averaging`: the baselines on the same split;
- :class:`DiagGaussian`: mean-field Gaussians in natural parameters; :func:`posterior_of`,
  :func:`load_posterior_`: a Bayes-by-Backprop model's posterior as one vector;
- :mod:`~bnn_teach.distributed.compress`: top-k and quantised messages with their bytes;
- :func:`launch`: the process group behind them, which turns a dead worker into :class:`WorkerError`.
"""
from bnn_teach.distributed import compress
from bnn_teach.distributed.algorithms import (
    DistributedRun,
    consensus_monte_carlo,
    federated_averaging,
    format_table,
    posterior_server,
    split,
)
from bnn_teach.distributed.compress import Quantize, TopK
from bnn_teach.distributed.gaussian import (
    DiagGaussian,
    bayes_layers,
    load_posterior_,
    num_parameters,
    posterior_of,
    prior_of,
)
from bnn_teach.distributed.launch import WorkerError, launch, run_in_group

__all__ = [
    "DistributedRun", "posterior_server", "consensus_monte_carlo", "federated_averaging", "split", "format_table",
    "DiagGaussian", "posterior_of", "load_posterior_", "prior_of", "bayes_layers", "num_parameters",
    "compress", "TopK", "Quantize", "launch", "run_in_group", "WorkerError",
]
