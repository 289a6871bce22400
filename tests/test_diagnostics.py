"""bnn_teach.diagnostics: both gradient estimators are unbiased (closed forms), their variances are the
known ones, and the local reparametrization trick lowers a layer's gradient variance (Kingma et al. 2015)."""
import math

import pytest
import torch
from torch import nn

import bnn_teach as bt
from bnn_teach.diagnostics import gradient_samples, gradient_variance

MU, SIGMA = 1.5, 0.7


@pytest.mark.parametrize("estimator", ["score", "reparam"])
def test_estimators_are_unbiased_for_a_quadratic(estimator):
    """d/dmu E[w^2] = d/dmu (mu^2 + sigma^2) = 2 mu."""
    g = torch.Generator().manual_seed(0)
    samples = gradient_samples(lambda w: w**2, MU, SIGMA, 200_000, estimator, generator=g)
    stderr = float(samples.std()) / math.sqrt(len(samples))
    assert abs(float(samples.mean()) - 2 * MU) < 4 * stderr, (float(samples.mean()), 2 * MU, stderr)


def test_estimator_variances_match_their_closed_forms():
    """f(w) = w: reparam gives exactly 1 (variance 0); score gives w (w - mu) / sigma^2, whose variance is
    E[(mu + s e)^2 e^2] / s^2 - 1 = (mu^2 + 3 s^2) / s^2 - 1 with e ~ N(0, 1)."""
    g = torch.Generator().manual_seed(1)
    reparam = gradient_samples(lambda w: w, MU, SIGMA, 10_000, "reparam", generator=g)
    assert torch.all(reparam == 1.0)
    score = gradient_samples(lambda w: w, MU, SIGMA, 400_000, "score", generator=g)
    exact = (MU**2 + 3 * SIGMA**2) / SIGMA**2 - 1
    assert float(score.var()) == pytest.approx(exact, rel=0.02), (float(score.var()), exact)


def test_bad_estimator_and_sizes():
    with pytest.raises(ValueError, match="estimator"):
        gradient_samples(lambda w: w, 0.0, 1.0, 10, "reinforce")
    with pytest.raises(ValueError, match="num_samples"):
        gradient_samples(lambda w: w, 0.0, 1.0, 0, "score")


def test_gradient_variance_of_a_plain_layer_is_the_minibatch_variance():
    """For a deterministic linear model the measured variance equals the variance of per-batch gradients
    computed by hand."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    batches = [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(50)]

    def loss_fn(out, y):
        return ((out - y) ** 2).mean()

    measured = gradient_variance(model, loss_fn, batches, params={"weight": model.weight})
    grads = torch.stack([torch.autograd.grad(loss_fn(model(X), y), model.weight)[0] for X, y in batches])
    assert measured["weight"] == pytest.approx(float(grads.double().var(0).mean()), rel=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        gradient_variance(model, loss_fn, batches[:1])


def test_local_reparametrization_lowers_the_gradient_variance():
    """Kingma, Salimans & Welling 2015: with the same posterior and the same mini-batches, the LRT's
    per-example noise gives the weight means' gradient a smaller variance than one weight sample per batch."""
    X, y = bt.data.two_moons(2000, noise=0.2, seed=0)
    batches = [(X[i:i + 50], y[i:i + 50]) for i in range(0, 2000, 50)]
    variances = {}
    for local_reparam in (True, False):
        torch.manual_seed(0)
        layer = bt.nn.BayesLinear(2, 64, init_rho=-1.0, local_reparam=local_reparam)
        model = nn.Sequential(layer, nn.ReLU(), nn.Linear(64, 2))
        torch.manual_seed(1)
        variances[local_reparam] = gradient_variance(model, nn.functional.cross_entropy, batches,
                                                     params={"mu": layer.weight_mu})["mu"]
    assert variances[True] < 0.5 * variances[False], variances
