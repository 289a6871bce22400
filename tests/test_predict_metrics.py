"""mc_predict, the entropy decomposition and the metrics against hand calculations and scikit-learn."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from torch import nn

import bnn_teach as bt
from bnn_teach import metrics
from bnn_teach.predict import mc_predict, predictive_regression
from bnn_teach.uncertainty import decompose

# ---------------------------------------------------------------- mc_predict

def test_mc_predict_shapes_and_sampling_for_each_model_kind():
    torch.manual_seed(0)
    X = torch.rand(7, 4)
    bayes = nn.Sequential(bt.nn.BayesLinear(4, 8, init_rho=-1.0), nn.ReLU(), bt.nn.BayesLinear(8, 3, init_rho=-1.0))
    dropout = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), bt.nn.MCDropout(0.5), nn.Linear(8, 3))
    dropout.train()(torch.randn(32, 4))
    for model in (bayes, dropout):
        model.train()
        stats = [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        probs = mc_predict(model, X, num_samples=5, batch_size=3)
        after = [m.running_mean for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        assert all(torch.equal(a, b) for a, b in zip(stats, after)), "BatchNorm ran in eval mode"
        assert probs.shape == (5, 7, 3)
        torch.testing.assert_close(probs.sum(-1), torch.ones(5, 7))
        assert not torch.allclose(probs[0], probs[1]), "samples differ"
        assert model.training, "the mode is restored"
    # a plain network gives identical samples
    plain = nn.Linear(4, 3)
    probs = mc_predict(plain, X, num_samples=3)
    assert torch.equal(probs[0], probs[2])


def test_mc_predict_uses_each_ensemble_member_once():
    model = nn.Linear(2, 2)
    states = []
    for value in (0.0, 1.0, 2.0):
        with torch.no_grad():
            model.weight.fill_(value)
            model.bias.zero_()
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    ensemble = bt.sgmcmc.SampleEnsemble(model, states)
    probs = mc_predict(ensemble, torch.tensor([[1.0, 0.0]]), num_samples=50)
    assert probs.shape == (3, 1, 2)
    torch.testing.assert_close(probs[:, 0, 0], torch.full((3,), 0.5))


def test_predictive_regression_split():
    class Fixed(nn.Module):
        """Mean = x + a noise that differs between calls; log variance = log 0.25."""

        def __init__(self):
            super().__init__()
            self.drop = bt.nn.MCDropout(0.5)

        def forward(self, x):
            mean = x + self.drop(torch.ones_like(x))
            return torch.cat([mean, torch.full_like(x, math.log(0.25))], dim=1)

    torch.manual_seed(0)
    out = predictive_regression(Fixed(), torch.zeros(5, 1), num_samples=4000)
    # the dropped 1 is 0 or 2 with probability 1/2: mean 1, variance 1
    torch.testing.assert_close(out["mean"], torch.ones(5), atol=0.08, rtol=0)
    torch.testing.assert_close(out["epistemic"], torch.ones(5), atol=0.08, rtol=0)
    torch.testing.assert_close(out["aleatoric"], torch.full((5,), 0.25))
    torch.testing.assert_close(out["var"], out["aleatoric"] + out["epistemic"])
    with pytest.raises(ValueError, match="noise_var"):
        predictive_regression(nn.Linear(1, 1), torch.zeros(2, 1))
    fixed_noise = predictive_regression(nn.Linear(1, 1), torch.zeros(2, 1), num_samples=3, noise_var=0.5)
    torch.testing.assert_close(fixed_noise["epistemic"], torch.zeros(2))
    torch.testing.assert_close(fixed_noise["aleatoric"], torch.full((2,), 0.5))


# ---------------------------------------------------------------- decompose

def test_decompose_identity_and_agreeing_samples():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(30, 50, 10) * 2, dim=-1)
    u = decompose(probs)
    torch.testing.assert_close(u.total, u.aleatoric + u.epistemic, atol=1e-6, rtol=0)
    assert torch.all(u.epistemic >= 0) and torch.all(u.aleatoric >= 0)
    same = probs[:1].expand(30, 50, 10)
    torch.testing.assert_close(decompose(same).epistemic, torch.zeros(50), atol=1e-6, rtol=0)


def test_decompose_hand_made_example():
    # two confident samples that disagree: total log 2, aleatoric 0, epistemic log 2
    disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    u = decompose(disagree)
    assert float(u.total) == pytest.approx(math.log(2)) and float(u.aleatoric) == pytest.approx(0.0, abs=1e-7)
    assert float(u.epistemic) == pytest.approx(math.log(2))
    # two identical uniform samples: all aleatoric
    uniform = torch.full((2, 1, 2), 0.5)
    u = decompose(uniform)
    assert float(u.aleatoric) == pytest.approx(math.log(2)) and float(u.epistemic) == pytest.approx(0.0, abs=1e-7)
    # a worked example: p1 = (0.9, 0.1), p2 = (0.5, 0.5) -> mean (0.7, 0.3)
    probs = torch.tensor([[[0.9, 0.1]], [[0.5, 0.5]]], dtype=torch.float64)

    def h(p):
        return -sum(x * math.log(x) for x in p)

    u = decompose(probs)
    assert float(u.total) == pytest.approx(h([0.7, 0.3]))
    assert float(u.aleatoric) == pytest.approx((h([0.9, 0.1]) + h([0.5, 0.5])) / 2)


def test_decompose_rejects_bad_input():
    with pytest.raises(ValueError, match="sum to 1"):
        decompose(torch.rand(3, 4, 5) * 3)  # unnormalised scores, not probabilities
    with pytest.raises(ValueError, match="non-negative"):
        decompose(torch.tensor([[[1.5, -0.5]]]))
    with pytest.raises(ValueError, match="num_samples, batch, classes"):
        decompose(torch.full((2, 2, 2, 2), 0.5))


# ---------------------------------------------------------------- metrics

@pytest.fixture
def predictions():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(500, 4, generator=g, dtype=torch.float64) * 2, dim=-1)
    y = torch.randint(0, 4, (500,), generator=g)
    return probs, y


def test_nll_brier_accuracy_match_sklearn(predictions):
    probs, y = predictions
    assert metrics.nll(probs, y) == pytest.approx(log_loss(y.numpy(), probs.numpy(), labels=[0, 1, 2, 3]))
    onehot = np.eye(4)[y.numpy()]
    # sklearn's binary Brier per class, summed over classes = the multi-class Brier score
    expected_brier = sum(brier_score_loss(onehot[:, c], probs[:, c].numpy()) for c in range(4))
    assert metrics.brier(probs, y) == pytest.approx(expected_brier)
    assert metrics.accuracy(probs, y) == pytest.approx(float((probs.argmax(1) == y).double().mean()))
    # Monte Carlo samples are averaged first
    samples = torch.stack([probs, probs])
    assert metrics.nll(samples, y) == pytest.approx(metrics.nll(probs, y))


def test_ece_of_a_calibrated_predictor_is_near_zero():
    g = torch.Generator().manual_seed(1)
    n = 200_000
    confidence = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    correct = torch.rand(n, generator=g, dtype=torch.float64) < confidence
    probs = torch.stack([confidence, 1 - confidence], dim=1)
    y = torch.where(correct, 0, 1)
    assert metrics.ece(probs, y) < 0.005


def test_ece_of_an_overconfident_predictor_matches_hand_calculation():
    # 100 inputs at confidence 0.95, of which 60 correct; 100 at 0.75, of which 75 correct
    conf = torch.cat([torch.full((100,), 0.95), torch.full((100,), 0.75)]).double()
    probs = torch.stack([conf, 1 - conf], dim=1)
    y = torch.zeros(200, dtype=torch.int64)
    y[60:100] = 1
    y[175:] = 1
    # ECE = 0.5 * |0.60 - 0.95| + 0.5 * |0.75 - 0.75| = 0.175
    assert metrics.ece(probs, y, num_bins=15) == pytest.approx(0.175)
    bins = metrics.reliability_bins(probs, y, num_bins=10)
    filled = bins["count"] > 0
    assert bins["count"][filled].tolist() == [100.0, 100.0]
    assert bins["accuracy"][filled].tolist() == pytest.approx([0.75, 0.60])
    assert bins["confidence"][filled].tolist() == pytest.approx([0.75, 0.95])


def test_auroc_matches_sklearn_with_ties():
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 20, (400,), generator=g).double()  # many ties
    labels = (torch.rand(400, generator=g) < 0.3).long()
    assert metrics.auroc(scores, labels) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()))
    cont = torch.randn(300, generator=g)
    lab = (torch.rand(300, generator=g) < 0.5).long()
    assert metrics.auroc(cont, lab) == pytest.approx(roc_auc_score(lab.numpy(), cont.numpy()))
    assert metrics.auroc(torch.tensor([0.1, 0.9]), torch.tensor([0, 1])) == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda p, y: metrics.nll(p * 2, y), "sum to 1"),
    (lambda p, y: metrics.brier(p, y[:-1]), "labels"),
    (lambda p, y: metrics.ece(p, y.double()), "integer labels"),
    (lambda p, y: metrics.ece(p, y, num_bins=0), "num_bins"),
    (lambda p, y: metrics.auroc(torch.rand(5), torch.ones(5)), "both"),
    (lambda p, y: metrics.auroc(torch.rand(5), torch.ones(4)), "same length"),
])
def test_metric_bad_input(predictions, call, match):
    probs, y = predictions
    with pytest.raises(ValueError, match=match):
        call(probs, y)
