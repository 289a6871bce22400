"""SG-MCMC samplers against closed-form posteriors, their optimiser limits, and the sample collector."""
import math

import pytest
import torch
from torch import nn

import bnn_teach as bt
from bnn_teach.reproduce import sample_linear_regression
from bnn_teach.sgmcmc import HMC, SGHMC, SGLD, SGLDSA, CyclicalLR, SampleCollector, SampleEnsemble

NUM_CHAINS = 2000


@pytest.fixture(scope="module")
def regression():
    """Bayesian linear regression with known noise: the exact posterior N(mean, cov)."""
    g = torch.Generator().manual_seed(0)
    N, noise_sd, prior_sd = 200, 1.0, 1.0
    X = torch.randn(N, 2, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5], [0.0, 0.8]], dtype=torch.float64
    )
    w_true = torch.tensor([0.7, -0.4], dtype=torch.float64)
    y = X @ w_true + noise_sd * torch.randn(N, generator=g, dtype=torch.float64)
    precision = X.T @ X / noise_sd**2 + torch.eye(2, dtype=torch.float64) / prior_sd**2
    cov = torch.linalg.inv(precision)
    mean = cov @ X.T @ y / noise_sd**2
    return X, y, noise_sd, prior_sd, mean, cov


def per_datapoint_loss(w, X, y, noise_sd, prior_sd, N):
    """The ELBO-convention loss, summed over independent chains: nll mean + neg log prior / N."""
    resid = y.unsqueeze(0) - w @ X.T  # (chains, batch)
    nll = (resid**2).mean(1) / (2 * noise_sd**2)
    neg_log_prior = (w**2).sum(1) / (2 * prior_sd**2)
    return (nll + neg_log_prior / N).sum()


def run_chains(make_opt, regression, steps=3000, burn_in=1000, batch=50, seed=1):
    X, y, noise_sd, prior_sd, _, _ = regression
    N = len(y)
    torch.manual_seed(seed)
    w = torch.zeros(NUM_CHAINS, 2, dtype=torch.float64, requires_grad=True)
    opt = make_opt([w], N)
    kept = []
    for step in range(steps):
        idx = torch.randint(0, N, (batch,))
        opt.zero_grad()
        per_datapoint_loss(w, X[idx], y[idx], noise_sd, prior_sd, N).backward()
        opt.step()
        if step >= burn_in and step % 20 == 0:
            kept.append(w.detach().clone())
    return torch.cat(kept)


@pytest.mark.parametrize("sampler", ["sgld", "psgld", "sghmc"])
def test_samples_match_the_exact_gaussian_posterior(regression, sampler):
    *_, mean, cov = regression
    makers = {
        "sgld": lambda p, n: SGLD(p, lr=1e-4, num_data=n),
        "psgld": lambda p, n: SGLD(p, lr=1e-5, num_data=n, preconditioned=True),
        "sghmc": lambda p, n: SGHMC(p, lr=2e-5, num_data=n, friction=0.1),
    }
    samples = run_chains(makers[sampler], regression)
    post_sd = torch.sqrt(torch.diag(cov))
    mean_err = (samples.mean(0) - mean).abs() / post_sd
    var_ratio = samples.var(0) / torch.diag(cov)
    assert torch.all(mean_err < 0.1), f"{sampler}: mean error {mean_err.tolist()} posterior sds"
    assert torch.all((var_ratio - 1).abs() < 0.15), f"{sampler}: variance ratio {var_ratio.tolist()}"
    corr = torch.corrcoef(samples.T)[0, 1]
    exact_corr = cov[0, 1] / (post_sd[0] * post_sd[1])
    assert abs(float(corr - exact_corr)) < 0.1, f"{sampler}: correlation {float(corr):.3f} vs {float(exact_corr):.3f}"


def test_hmc_samples_the_exact_posterior_of_correlated_linear_regression(regression):
    """Full-batch HMC with the Metropolis correction: mean, variances and the correlation of the closed form."""
    X, y, noise_sd, prior_sd, mean, cov = regression
    N = len(y)
    w = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    hmc = HMC([w], step_size=0.03, num_leapfrog=10, num_data=N, generator=torch.Generator().manual_seed(5))
    samples = []
    for step in range(4000):
        hmc.step(lambda: per_datapoint_loss(w, X, y, noise_sd, prior_sd, N))
        if step >= 200:
            samples.append(w.detach()[0].clone())
    samples = torch.stack(samples)
    post_sd = torch.sqrt(torch.diag(cov))
    mean_err = (samples.mean(0) - mean).abs() / post_sd
    var_ratio = samples.var(0) / torch.diag(cov)
    assert 0.6 < hmc.acceptance_rate <= 1.0, hmc.acceptance_rate
    assert torch.all(mean_err < 0.1), f"mean error {mean_err.tolist()} posterior sds"
    assert torch.all((var_ratio - 1).abs() < 0.1), f"variance ratio {var_ratio.tolist()}"
    exact_corr = cov[0, 1] / (post_sd[0] * post_sd[1])
    assert abs(float(torch.corrcoef(samples.T)[0, 1] - exact_corr)) < 0.05


def test_hmc_is_exact_only_with_its_metropolis_correction():
    """On N(0, 1) with a large leapfrog step (1.5: stable, but far from exact) the corrected chain keeps the
    variance; the same chain without the correction samples a distribution about twice as wide."""
    stds = {}
    for metropolis in (True, False):
        theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        hmc = HMC([theta], step_size=1.5, num_leapfrog=3, num_data=1, metropolis=metropolis,
                  generator=torch.Generator().manual_seed(2))
        draws = []
        for _ in range(6000):
            hmc.step(lambda theta=theta: 0.5 * theta.pow(2).sum())
            draws.append(theta.item())
        stds[metropolis] = torch.tensor(draws[500:]).std().item()
    assert abs(stds[True] - 1) < 0.06, stds
    assert stds[False] > 1.3, stds


def test_hmc_refuses_bad_arguments_and_a_non_finite_start():
    theta = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="step_size"):
        HMC([theta], step_size=0.0, num_leapfrog=3, num_data=1)
    with pytest.raises(ValueError, match="require grad"):
        HMC([torch.zeros(2)], step_size=0.1, num_leapfrog=3, num_data=1)
    hmc = HMC([theta], step_size=0.1, num_leapfrog=3, num_data=1)
    with pytest.raises(FloatingPointError):
        hmc.step(lambda: (theta * float("nan")).sum())


def test_wrong_noise_scale_is_detected(regression):
    """A sampler that forgets the factor 2 in the noise variance fails the same check."""
    *_, cov = regression

    class HalfNoiseSGLD(SGLD):
        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.add_(p.grad * group["num_data"], alpha=-group["lr"])
                    p.add_(torch.randn_like(p), alpha=math.sqrt(group["lr"]))

    samples = run_chains(lambda p, n: HalfNoiseSGLD(p, lr=1e-4, num_data=n), regression)
    var_ratio = samples.var(0) / torch.diag(cov)
    assert torch.all(var_ratio < 0.7), "half the noise variance halves the posterior variance"


def _train_pair(ours, reference, steps=30):
    torch.manual_seed(0)
    X, y = torch.randn(64, 3), torch.randn(64)
    results = []
    for make in (ours, reference):
        w = torch.nn.Parameter(torch.ones(3))
        opt = make([w])
        torch.manual_seed(1)
        for _ in range(steps):
            idx = torch.randint(0, 64, (16,))
            opt.zero_grad()
            ((X[idx] @ w - y[idx]) ** 2).mean().backward()
            opt.step()
        results.append(w.detach())
    return results


def test_temperature_zero_reduces_to_the_optimisers():
    a, b = _train_pair(lambda p: SGLD(p, lr=1e-3, num_data=64, temperature=0.0),
                       lambda p: torch.optim.SGD(p, lr=1e-3 * 64))
    torch.testing.assert_close(a, b)
    a, b = _train_pair(lambda p: SGHMC(p, lr=1e-3, num_data=64, friction=0.2, temperature=0.0),
                       lambda p: torch.optim.SGD(p, lr=1e-3 * 64, momentum=0.8))
    torch.testing.assert_close(a, b)
    a, b = _train_pair(lambda p: SGLD(p, lr=1e-3, num_data=64, temperature=1.0),
                       lambda p: torch.optim.SGD(p, lr=1e-3 * 64))
    assert not torch.allclose(a, b), "temperature 1 injects noise"


def test_welling_teh_mixture_visits_both_modes():
    """Welling & Teh 2011, section 5.1: the posterior has modes near (0, 1) and (1, -1)."""
    g = torch.Generator().manual_seed(2)
    centres = torch.where(torch.rand(100, generator=g) < 0.5, torch.zeros(100), torch.ones(100))
    x = centres + math.sqrt(2) * torch.randn(100, generator=g)
    N, chains = 100, 200
    torch.manual_seed(0)
    theta = torch.zeros(chains, 2, requires_grad=True)
    opt = SGLD([theta], lr=1e-3, num_data=N)
    visits = torch.zeros(chains, 2, dtype=torch.bool)
    for step in range(4000):
        xb = x[torch.randint(0, N, (10,))]
        t1, t2 = theta[:, :1], theta[:, 1:]
        comp1 = -(xb - t1) ** 2 / 4
        comp2 = -(xb - t1 - t2) ** 2 / 4
        nll = -(torch.logaddexp(comp1, comp2) - math.log(2)).mean(1)
        neg_log_prior = t1.squeeze(1) ** 2 / 20 + t2.squeeze(1) ** 2 / 2
        opt.zero_grad()
        (nll + neg_log_prior / N).sum().backward()
        opt.step()
        if step > 500:
            th = theta.detach()
            visits[:, 0] |= ((th - torch.tensor([0.0, 1.0])).norm(dim=1) < 0.5)
            visits[:, 1] |= ((th - torch.tensor([1.0, -1.0])).norm(dim=1) < 0.5)
    both = float(visits.all(1).float().mean())
    assert both > 0.5, f"only {both:.0%} of the chains visited both modes"


def test_sgld_sa_recovers_the_sparse_coefficients():
    """Deng et al. 2019 large-p-small-n (seed 1): beta1..3 recovered, the 997 zeros shrunk; plain SGLD fails."""
    X, y, beta, X_test, y_test = bt.data.large_p_small_n(seed=1, num_test=500)
    results = {}
    for kind in ("sgld-sa", "sgld"):
        estimate, opt, _ = sample_linear_regression(kind, X, y, num_steps=10000)
        results[kind] = (estimate, float(((y_test - X_test @ estimate) ** 2).mean()), opt)
    estimate, test_mse, opt = results["sgld-sa"]
    assert torch.all((estimate[:3] - beta[:3]).abs() < 0.5), f"beta1..3 {estimate[:3].tolist()} vs {beta[:3].tolist()}"
    assert float(estimate[3:].abs().max()) < 0.05, "the zeros are shrunk"
    assert abs(opt.sigma - math.sqrt(3)) < 0.4, f"sigma {opt.sigma:.2f} vs the noise sd 1.73"
    inclusion = opt.inclusion_probabilities()[0]
    assert torch.all(inclusion[:2] > 0.5) and float(inclusion[3:].max()) < 0.5
    sgld_mse = results["sgld"][1]
    assert test_mse < 4.0 and test_mse < sgld_mse / 5, f"test MSE {test_mse:.2f} vs SGLD {sgld_mse:.2f}"


def test_cyclical_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = SGLD([p], lr=0.1, num_data=10)
    sched = CyclicalLR(opt, total_steps=100, num_cycles=4, exploration=0.8)
    lrs, sampling = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        sampling.append(sched.is_sampling())
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[25] == pytest.approx(0.1)
    assert lrs[12] < 0.06 and lrs[24] < 0.01
    assert sampling[:20] == [False] * 20 and sampling[20:25] == [True] * 5


def test_cyclical_exploration_without_noise_is_sgd_and_sampling_keeps_the_temperature():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = SGLD([p], lr=0.01, num_data=10, temperature=0.5)
    sched = CyclicalLR(opt, total_steps=40, num_cycles=2, exploration=0.5, exploration_temperature=0.0)
    for _ in range(40):
        sampling, lr, before = sched.is_sampling(), opt.param_groups[0]["lr"], p.detach().clone()
        assert opt.param_groups[0]["temperature"] == (0.5 if sampling else 0.0)
        p.grad = torch.ones(3)
        opt.step()
        noise = p.detach() - (before - lr * 10 * torch.ones(3))
        if sampling:   # N(0, 2 lr T) per coordinate: not zero
            assert noise.abs().min() > 0
        else:          # SGD: lr * num_data * grad, exactly
            torch.testing.assert_close(noise, torch.zeros(3), atol=1e-6, rtol=0)
        sched.step()
    assert CyclicalLR(SGLD([p], lr=0.01, num_data=10), 40, 2).exploration_temperature is None
    with pytest.raises(ValueError, match="needs a sampler with a temperature"):
        CyclicalLR(torch.optim.SGD([p], lr=0.1), 40, 2, exploration_temperature=0.0)
    with pytest.raises(ValueError, match="exploration_temperature must be"):
        CyclicalLR(SGLD([p], lr=0.01, num_data=10), 40, 2, exploration_temperature=-1.0)


def test_sample_collector_burn_in_thinning_and_bounded_memory():
    model = nn.Linear(2, 1)
    collector = SampleCollector(model, burn_in=10, thin=2, max_samples=8)
    kept = []
    for step in range(1, 101):
        with torch.no_grad():
            model.weight.fill_(step)
        if collector.step():
            kept.append(step)
    assert kept[0] == 12 and len(collector.samples) <= 8
    steps = collector.sample_steps
    assert len(set(b - a for a, b in zip(steps, steps[1:]))) == 1, "evenly spaced after thinning"
    assert collector.stacked("weight")[:, 0, 0].tolist() == [float(s) for s in steps]
    assert collector.samples[0]["weight"].device.type == "cpu"
    ensemble = collector.ensemble()
    out = ensemble(torch.ones(3, 2))
    assert out.shape == (len(steps), 3, 1)
    with pytest.raises(ValueError, match="at least one"):
        SampleCollector(model, burn_in=1000).ensemble()


@pytest.mark.parametrize("kwargs, name", [({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"), ({"num_data": 0}, "num_data"),
                                          ({"temperature": -1.0}, "temperature")])
def test_bad_sampler_arguments(kwargs, name):
    args = {"lr": 0.1, "num_data": 10, **kwargs}
    p = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match=name):
        SGLD(p, **args)
    with pytest.raises(ValueError, match=name):
        SGHMC(p, **args)
    with pytest.raises(ValueError, match="friction"):
        SGHMC(p, lr=0.1, num_data=10, friction=1.5)
    with pytest.raises(ValueError, match="sse"):
        opt = SGLDSA(p, lr=0.1, num_data=10)
        p[0].grad = torch.zeros(1)
        opt.step()


def test_sgld_sa_pruning_schedule_reaches_the_sparse_rate():
    X, y, beta, X_test, y_test = bt.data.large_p_small_n(seed=1, num_test=200)
    torch.manual_seed(0)
    b = torch.zeros(1000, requires_grad=True)
    opt = SGLDSA([b], lr=5e-4, num_data=100, temperature=0.1, prune=(0.99, 0.5, 200))
    for _ in range(2000):
        idx = torch.randperm(100)[:50]
        resid = y[idx] - X[idx] @ b
        opt.zero_grad()
        ((resid**2).mean() / (2 * opt.sigma**2)).backward()
        opt.step(sse=float((resid.detach() ** 2).sum()), batch_size=50)
    rate = opt.sparse_rate()
    assert rate == pytest.approx(0.99 * (1 - 0.5**10))
    zeros = float((b.detach() == 0).float().mean())
    assert abs(zeros - rate) < 0.002, f"{zeros:.4f} of the coefficients are zero, the schedule says {rate:.4f}"
    assert torch.all(b.detach()[:2] != 0), "the large coefficients survive pruning"
    with pytest.raises(ValueError, match="prune"):
        SGLDSA([b], lr=1e-3, num_data=100, prune=(1.5, 0.5, 10))


def test_deep_ensemble_from_models_predicts_their_average():
    torch.manual_seed(0)
    models = [torch.nn.Linear(3, 4) for _ in range(3)]
    ensemble = SampleEnsemble.from_models(models)
    X = torch.randn(5, 3)
    probs = bt.predict.mc_predict(ensemble, X)
    assert probs.shape == (3, 5, 4)
    for member_probs, model in zip(probs, models):
        torch.testing.assert_close(member_probs, torch.softmax(model(X), -1).detach())
    with torch.no_grad():
        models[0].weight.zero_()
    torch.testing.assert_close(bt.predict.mc_predict(ensemble, X), probs, msg="the ensemble holds copies")
    with pytest.raises(ValueError, match="at least one model"):
        SampleEnsemble.from_models([])
