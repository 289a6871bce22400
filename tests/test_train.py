"""bnn_teach.train: fit reduces the loss, logs the ELBO terms per data point, resumes, calls back."""
import pytest
import torch
from torch import nn

import bnn_teach as bt
from bnn_teach.train import History, evaluate, fit


def moons(n=400):
    return bt.data.two_moons(n, noise=0.1, seed=0)


def test_fit_reduces_loss_on_a_plain_model():
    X, y = moons()
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    before = evaluate(model, (X, y))
    history = fit(model, (X, y), 30, torch.optim.Adam(model.parameters(), 1e-2), batch_size=50,
                  test_data=(X, y), progress=False)
    assert len(history) == 30
    assert history["nll"][-1] < 0.5 * history["nll"][0]
    assert all(k == 0.0 for k in history["kl"]), "a plain network has KL 0"
    assert history[-1]["elbo"] == pytest.approx(-history[-1]["nll"])
    assert history["test_acc"][-1] > 0.95 and history["test_acc"][-1] > before["accuracy"]
    assert {"epoch", "nll", "kl", "elbo", "loss", "train_acc", "test_nll", "test_acc", "seconds", "lr"} <= set(
        history.keys()
    )


def test_fit_uses_the_elbo_convention():
    """loss = nll + kl_weight * KL_sum / num_data, recorded per data point."""
    X, y = moons(200)
    model = nn.Sequential(bt.nn.BayesLinear(2, 16), nn.ReLU(), bt.nn.BayesLinear(16, 2))
    # lr=0 keeps the parameters fixed, so the recorded KL is exactly KL_sum / num_data
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    history = fit(model, (X, y), 2, opt, batch_size=200, num_data=1000,
                  kl_weight=bt.objectives.linear_warmup(2), progress=False)
    kl_sum = float(bt.nn.kl_divergence(model).detach())
    assert history[0]["kl"] == pytest.approx(kl_sum / 1000, rel=1e-5)
    assert history["kl_weight"] == [0.0, 0.5]
    for record in history:
        assert record["loss"] == pytest.approx(record["nll"] + record["kl_weight"] * record["kl"], rel=1e-5)
        assert record["elbo"] == pytest.approx(-(record["nll"] + record["kl"]), rel=1e-6)


def test_callbacks_resume_and_json(tmp_path):
    X, y = moons(100)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    seen = []
    history = fit(model, (X, y), 2, opt, progress=False, callbacks=[lambda e, m, h: seen.append((e, len(h)))])
    assert seen == [(1, 1), (2, 2)]
    history = fit(model, (X, y), 2, opt, progress=False, history=history)
    assert history["epoch"] == [1, 2, 3, 4]
    history.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json")["nll"] == history["nll"]
    with pytest.raises(KeyError, match="nope"):
        history["nope"]


def test_fit_rejects_bad_arguments():
    X, y = moons(20)
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, (X, y), 1, opt, batch_size=0, progress=False)
    with pytest.raises(TypeError, match="train_data"):
        fit(model, X, 1, opt, progress=False)
    with pytest.raises(ValueError, match="rows"):
        fit(model, (X, y[:5]), 1, opt, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        fit(model, (X, y), 1, "adam", progress=False)
    X_bad = X.clone()
    X_bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="train_data: X holds 1 NaN/inf"):
        fit(model, (X_bad, y), 1, opt, progress=False)
    with pytest.raises(FloatingPointError, match="smaller lr"):  # finite data, a step size that diverges
        fit(model, (X * 1e30, y), 2, opt, batch_size=5, progress=False)


def test_history_records_the_learning_rate_each_epoch_used():
    X, y = moons(50)
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = fit(model, (X, y), 3, opt, scheduler=scheduler, progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_train_epoch_is_one_pass_of_elbo_steps():
    X, y = moons(60)
    torch.manual_seed(0)
    model = nn.Sequential(bt.nn.BayesLinear(2, 2))
    steps = []
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    opt.register_step_post_hook(lambda *_: steps.append(1))
    record = bt.train.train_epoch(model, (X, y), opt, batch_size=25, num_data=600, kl_weight=0.5)
    assert len(steps) == 3, "ceil(60 / 25) optimiser steps"
    kl = float(bt.nn.kl_divergence(model).detach())
    assert record["kl"] == pytest.approx(kl / 600, rel=1e-5)
    assert record["loss"] == pytest.approx(record["nll"] + 0.5 * record["kl"], rel=1e-5)


def test_evaluate_monte_carlo_predictive_matches_manual_average():
    X, y = moons(64)
    model = nn.Sequential(bt.nn.BayesLinear(2, 16, init_rho=-1.0), nn.ReLU(), bt.nn.BayesLinear(16, 2, init_rho=-1.0))
    torch.manual_seed(5)
    result = evaluate(model, (X, y), num_samples=20, batch_size=64)
    torch.manual_seed(5)
    with torch.no_grad(), bt.nn.sampling(model.eval()):
        probs = torch.stack([model(X).softmax(-1) for _ in range(20)]).mean(0)
    assert result["nll"] == pytest.approx(float(-probs[torch.arange(64), y].log().mean()), rel=1e-4)
    assert result["accuracy"] == pytest.approx(float((probs.argmax(-1) == y).float().mean()))
    assert not model.training


def test_fit_regression_with_custom_nll():
    X, y = bt.data.regression_1d(100)
    model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
    history = fit(model, (X, y), 40, torch.optim.Adam(model.parameters(), 1e-2), batch_size=20,
                  nll_fn=nn.functional.mse_loss, test_data=(X, y), progress=False)
    assert history["nll"][-1] < 0.5 * history["nll"][0]
    assert "train_acc" not in history.keys() and "test_acc" not in history.keys()


def test_gaussian_nll_is_the_normal_log_density_without_its_constant():
    """gaussian_nll(out, y) = mean of -log N(y | m, exp(log s)) - log(2 pi) / 2, against torch.distributions."""
    import math

    g = torch.Generator().manual_seed(0)
    out = torch.randn(50, 2, generator=g, dtype=torch.float64)
    y = torch.randn(50, 1, generator=g, dtype=torch.float64)
    reference = -torch.distributions.Normal(out[:, 0], out[:, 1].mul(0.5).exp()).log_prob(y[:, 0]).mean()
    got = bt.objectives.gaussian_nll(out, y)
    assert float(got) == pytest.approx(float(reference) - 0.5 * math.log(2 * math.pi), abs=1e-12)
    swapped = bt.objectives.gaussian_nll(out.flip(1), y)  # log variance read as the mean: a typical slip
    assert abs(float(swapped) - float(got)) > 0.1
    with pytest.raises(ValueError, match="mean and the log noise variance"):
        bt.objectives.gaussian_nll(out[:, :1], y)
    with pytest.raises(ValueError, match="49 targets for 50"):
        bt.objectives.gaussian_nll(out, y[:49])
