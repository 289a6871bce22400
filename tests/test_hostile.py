"""Hostile input to the public functions: NaN/inf, wrong dtypes, empty tensors, negative sizes, wrong devices.

Each case must raise a clear error (the type and a fragment of the message that names the culprit)
or give the documented result; none may return a silent wrong number.
"""
import math

import pytest
import torch
from torch import nn

import bnn_teach as bt

NAN = float("nan")
INF = float("inf")


def probs(n=4, c=3):
    return torch.full((n, c), 1.0 / c)


def labels(n=4):
    return torch.arange(n) % 3


def with_nan(t, index=0):
    t = t.clone()
    t.view(-1)[index] = NAN
    return t


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(bt.nn.BayesLinear(2, 3))


CASES = {
    # kl and priors
    "normal_normal nan sigma": (lambda: bt.kl.normal_normal(torch.zeros(3), torch.tensor([1.0, NAN, 1.0]), 0.0, 1.0),
                                ValueError, "sigma_q"),
    "normal_normal negative sigma": (lambda: bt.kl.normal_normal(torch.zeros(2), torch.tensor([1.0, -1.0]), 0.0, 1.0),
                                     ValueError, "sigma_q"),
    "normal_normal zero prior sigma": (lambda: bt.kl.normal_normal(torch.zeros(2), torch.ones(2), 0.0, 0.0),
                                       ValueError, "sigma_p"),
    "GaussianPrior(0)": (lambda: bt.priors.GaussianPrior(0.0), ValueError, "sigma"),
    "GaussianPrior(inf)": (lambda: bt.priors.GaussianPrior(INF), ValueError, "sigma"),
    "ScaleMixturePrior pi > 1": (lambda: bt.priors.ScaleMixturePrior(1.5, 1.0, 0.1), ValueError, "pi"),
    "ScaleMixturePrior sigma1 < sigma2": (lambda: bt.priors.ScaleMixturePrior(0.5, 0.001, 1.0), ValueError, "sigma1"),
    # layers
    "BayesLinear 0 inputs": (lambda: bt.nn.BayesLinear(0, 3), ValueError, "in_features"),
    "BayesLinear nan init_rho": (lambda: bt.nn.BayesLinear(2, 3, init_rho=NAN), ValueError, "init_rho"),
    "BayesConv2d padding -1": (lambda: bt.nn.BayesConv2d(1, 2, 3, padding=-1), ValueError, "padding"),
    "LinearSVDO inf init_log_sigma2": (lambda: bt.nn.LinearSVDO(2, 3, init_log_sigma2=INF), ValueError,
                                       "init_log_sigma2"),
    "BayesLinear float64 batch": (lambda: tiny_model()(torch.zeros(4, 2, dtype=torch.float64)), TypeError,
                                  "float64"),
    "BayesLinear uint8 batch": (lambda: tiny_model()(torch.zeros(4, 2, dtype=torch.uint8)), TypeError, "255"),
    "BayesLinear wrong width": (lambda: tiny_model()(torch.zeros(4, 5)), ValueError, "in_features=2"),
    "MCDropout p = 1": (lambda: bt.nn.MCDropout(1.0), ValueError, "p"),
    # objectives and training
    "elbo_loss num_data 0": (lambda: bt.objectives.elbo_loss(torch.tensor(1.0), torch.tensor(1.0), 0), ValueError,
                             "num_data"),
    "elbo_loss negative kl_weight": (lambda: bt.objectives.elbo_loss(torch.tensor(1.0), torch.tensor(1.0), 10, -1.0),
                                     ValueError, "kl_weight"),
    "elbo_loss per-example nll": (lambda: bt.objectives.elbo_loss(torch.ones(5), torch.tensor(1.0), 10), ValueError,
                                  "scalar"),
    "fit nan images": (lambda: bt.train.fit(tiny_model(), (with_nan(torch.zeros(8, 2)), labels(8)), 1,
                                            torch.optim.SGD(tiny_model().parameters(), lr=0.1), progress=False),
                       ValueError, "NaN/inf"),
    "fit empty data": (lambda: bt.train.fit(tiny_model(), (torch.zeros(0, 2), labels(0)), 1,
                                            torch.optim.SGD(tiny_model().parameters(), lr=0.1), progress=False),
                       ValueError, "empty"),
    "fit negative epochs": (lambda: bt.train.fit(tiny_model(), (torch.zeros(8, 2), labels(8)), -1,
                                                 torch.optim.SGD(tiny_model().parameters(), lr=0.1), progress=False),
                            ValueError, "num_epochs"),
    "evaluate batch_size 0": (lambda: bt.train.evaluate(tiny_model(), (torch.zeros(8, 2), labels(8)), batch_size=0),
                              ValueError, "batch_size"),
    # prediction and uncertainty
    "mc_predict 0 samples": (lambda: bt.predict.mc_predict(tiny_model(), torch.zeros(4, 2), num_samples=0),
                             ValueError, "num_samples"),
    "mc_predict empty X": (lambda: bt.predict.mc_predict(tiny_model(), torch.zeros(0, 2), num_samples=2),
                           ValueError, "empty"),
    "mc_predict int X": (lambda: bt.predict.mc_predict(tiny_model(), torch.zeros(4, 2, dtype=torch.int64)),
                         TypeError, "float"),
    "mc_predict meta X": (lambda: bt.predict.mc_predict(tiny_model(), torch.zeros(4, 2, device="meta")),
                          ValueError, "meta"),
    "decompose logits": (lambda: bt.uncertainty.decompose(torch.randn(2, 4, 3)), ValueError, "softmax"),
    "decompose nan": (lambda: bt.uncertainty.decompose(with_nan(probs()).unsqueeze(0)), ValueError, "finite"),
    "decompose int": (lambda: bt.uncertainty.decompose(torch.ones(2, 4, 3, dtype=torch.int64)), TypeError,
                      "floating-point"),
    # metrics
    "accuracy nan probs": (lambda: bt.metrics.accuracy(with_nan(probs()), labels()), ValueError, "finite"),
    "nll label out of range": (lambda: bt.metrics.nll(probs(), torch.tensor([0, 1, 2, 3])), ValueError,
                               "labels in [0, 2]"),
    "ece 0 bins": (lambda: bt.metrics.ece(probs(), labels(), num_bins=0), ValueError, "num_bins"),
    "auroc nan score": (lambda: bt.metrics.auroc(torch.tensor([0.1, NAN, 0.3]), torch.tensor([0, 1, 1])),
                        ValueError, "NaN"),
    "auroc one class": (lambda: bt.metrics.auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])), ValueError,
                        "both"),
    # samplers
    "SGLD negative lr": (lambda: bt.sgmcmc.SGLD([nn.Parameter(torch.zeros(2))], lr=-1e-3, num_data=10), ValueError,
                         "lr"),
    "SGLD num_data 0": (lambda: bt.sgmcmc.SGLD([nn.Parameter(torch.zeros(2))], lr=1e-3, num_data=0), ValueError,
                        "num_data"),
    "SGHMC nan lr": (lambda: bt.sgmcmc.SGHMC([nn.Parameter(torch.zeros(2))], lr=NAN, num_data=10), ValueError, "lr"),
    # data and sparsity
    "load_mnist negative subset": (lambda: bt.data.load_mnist("train", subset=-5), ValueError, "subset"),
    "load_mnist unknown split": (lambda: bt.data.load_mnist("validation"), ValueError, "split"),
    "two_moons 0 points": (lambda: bt.data.two_moons(0), ValueError, "num_data"),
    "prune fraction 1": (lambda: bt.sparsity.prune(nn.Sequential(nn.Linear(2, 2)), "magnitude", fraction=1.0),
                         ValueError, "fraction"),
    "prune unknown method": (lambda: bt.sparsity.prune(nn.Sequential(nn.Linear(2, 2)), "random"), ValueError,
                             "method"),
    "compression of a model without layers": (lambda: bt.sparsity.compression_ratio(nn.Sequential(nn.ReLU())),
                                              ValueError, "no linear"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_refused_clearly(case):
    call, error, fragment = CASES[case]
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert fragment.lower() in message.lower(), f"{case}: the message does not name {fragment!r}: {message}"
    assert "\n" not in message.strip() or len(message) < 400, f"{case}: the message is a dump: {message[:200]}"


def test_documented_results_on_edge_cases():
    """What is not an error has a documented value, checked here."""
    empty = bt.uncertainty.decompose(torch.zeros(3, 0, 4))
    assert empty.total.shape == (0,) and empty.epistemic.shape == (0,)
    one_hot = torch.eye(3)
    assert bt.metrics.nll(one_hot, torch.arange(3)) == 0.0
    assert bt.metrics.accuracy(one_hot, torch.arange(3)) == 1.0
    assert bt.kl.sparsevd(torch.tensor([100.0])).item() == pytest.approx(0.0, abs=1e-6), "KL -> 0 as alpha -> inf"
    assert math.isfinite(bt.kl.sparsevd(torch.tensor([-100.0])).item())
