"""bnn_teach.kl and bnn_teach.priors against independent references."""
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import bnn_teach as bt

SHAPES = [(), (4,), (2, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_normal_normal_matches_torch_distributions(shape):
    g = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    sigma_q, sigma_p = torch.rand(shape, generator=g) + 0.1, torch.rand(shape, generator=g) + 0.1
    ours = bt.kl.normal_normal(mu_q, sigma_q, mu_p, sigma_p)
    ref = kl_divergence(Normal(mu_q, sigma_q), Normal(mu_p, sigma_p))
    assert ours.shape == torch.Size(shape), "no hidden reduction"
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_normal_normal_against_monte_carlo():
    g = torch.Generator().manual_seed(1)
    q, p = Normal(torch.tensor(0.3), torch.tensor(0.5)), Normal(torch.tensor(-0.2), torch.tensor(1.3))
    w = q.loc + q.scale * torch.randn(400_000, generator=g)
    mc = float((q.log_prob(w) - p.log_prob(w)).mean())
    exact = float(bt.kl.normal_normal(q.loc, q.scale, p.loc, p.scale))
    assert abs(mc - exact) < 0.005, f"closed form {exact:.5f} vs Monte Carlo {mc:.5f}"


def test_normal_normal_gradcheck():
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(3, generator=g, dtype=torch.float64), torch.rand(3, generator=g, dtype=torch.float64) + 0.2,
            torch.randn(3, generator=g, dtype=torch.float64), torch.rand(3, generator=g, dtype=torch.float64) + 0.2)
    args = tuple(a.requires_grad_() for a in args)
    assert torch.autograd.gradcheck(bt.kl.normal_normal, args)


def test_normal_normal_zero_when_equal_and_accepts_numbers():
    mu, sigma = torch.randn(5), torch.rand(5) + 0.5
    torch.testing.assert_close(bt.kl.normal_normal(mu, sigma, mu, sigma), torch.zeros(5), atol=1e-6, rtol=0)
    expected = math.log(2.0) + (1 + 1) / 8 - 0.5
    assert float(bt.kl.normal_normal(torch.tensor(1.0), torch.tensor(1.0), 0.0, 2.0)) == pytest.approx(
        expected, rel=1e-6
    )


@pytest.mark.parametrize("bad", ["sigma_q", "sigma_p"])
def test_normal_normal_rejects_non_positive_sigma(bad):
    args = {"mu_q": torch.zeros(2), "sigma_q": torch.ones(2), "mu_p": 0.0, "sigma_p": 1.0}
    args[bad] = torch.tensor([1.0, 0.0]) if bad == "sigma_q" else -1.0
    with pytest.raises(ValueError, match=bad):
        bt.kl.normal_normal(**args)


def test_sparsevd_approximation_error_below_0_01_nats():
    """Molchanov et al.'s approximation against a seeded Monte Carlo estimate of the exact KL."""
    log_alpha = torch.linspace(-8, 8, 33, dtype=torch.float64)
    exact = bt.kl.sparsevd_exact_mc(log_alpha, num_samples=2_000_000, generator=torch.Generator().manual_seed(0))
    approx = bt.kl.sparsevd(log_alpha)
    err = (approx - exact).abs()
    worst = int(err.argmax())
    assert float(err.max()) < 0.01, (
        f"at log_alpha={float(log_alpha[worst]):.2f}: approx {float(approx[worst]):.5f} "
        f"vs MC {float(exact[worst]):.5f}")


def test_sparsevd_is_non_negative_decreasing_and_vanishes():
    log_alpha = torch.linspace(-20, 20, 401)
    kl = bt.kl.sparsevd(log_alpha)
    assert torch.all(kl >= 0)
    assert torch.all(kl[1:] <= kl[:-1]), "more noise never costs more"
    assert float(bt.kl.sparsevd(torch.tensor(30.0))) < 1e-6
    # ~ -0.5 log alpha + k1 for small alpha (the -log|theta| regime)
    assert float(bt.kl.sparsevd(torch.tensor(-20.0))) == pytest.approx(10.0 + bt.kl.K1, abs=1e-4)


def test_ard_equals_kl_to_the_optimal_gaussian_prior():
    """0.5 log(1 + 1/alpha) is KL(N(mu, s^2) || N(0, mu^2 + s^2)), checked with torch.distributions."""
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(50, generator=g, dtype=torch.float64)
    sigma = torch.rand(50, generator=g, dtype=torch.float64) + 0.01
    log_alpha = torch.log(sigma**2) - torch.log(mu**2)
    ref = kl_divergence(Normal(mu, sigma), Normal(torch.zeros_like(mu), torch.sqrt(mu**2 + sigma**2)))
    torch.testing.assert_close(bt.kl.ard(log_alpha), ref)


def test_loguniform_kl_is_registered():
    q = Normal(torch.tensor([0.5, -2.0]), torch.tensor([0.1, 3.0]))
    kl = kl_divergence(q, bt.priors.LogUniform())
    torch.testing.assert_close(kl, bt.kl.sparsevd(torch.log(q.scale**2 / q.loc**2)))


def test_monte_carlo_kl_converges_to_closed_form():
    torch.manual_seed(0)
    q = Normal(torch.tensor([0.1, 1.0]), torch.tensor([0.3, 0.7]))
    prior = bt.priors.GaussianPrior(0.8)
    mc = bt.kl.monte_carlo(q, prior.log_prob, num_samples=200_000)
    torch.testing.assert_close(mc, bt.kl.normal_normal(q.loc, q.scale, 0.0, 0.8), atol=0.01, rtol=0)


def test_scale_mixture_log_prob_matches_torch_mixture():
    prior = bt.priors.ScaleMixturePrior(pi=0.25, sigma1=math.exp(-1), sigma2=math.exp(-7))
    w = torch.cat([torch.linspace(-3, 3, 101), torch.tensor([0.0, 1e-4, -1e-3])])
    ref = prior.distribution(w).log_prob(w)
    torch.testing.assert_close(prior.log_prob(w), ref, rtol=1e-5, atol=1e-5)
    log_density_at_0 = -math.log(2.0) - 0.5 * math.log(2 * math.pi)
    assert bt.priors.GaussianPrior(2.0).log_prob(torch.tensor(0.0)).item() == pytest.approx(log_density_at_0)


def test_scale_mixture_layer_kl_matches_large_sample_monte_carlo():
    torch.manual_seed(0)
    prior = bt.priors.ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))
    layer = bt.nn.BayesLinear(4, 3, prior=prior, init_rho=-3.0)
    with torch.no_grad():
        estimates = torch.stack([layer.kl() for _ in range(4000)])
        # independent reference: many weight samples scored with torch.distributions objects
        mu = torch.cat([layer.weight_mu.flatten(), layer.bias_mu])
        sigma = torch.cat([layer.weight_sigma.flatten(), layer.bias_sigma])
        q = Normal(mu, sigma)
        w = q.sample((100_000,))
        ref = float((q.log_prob(w) - prior.distribution(w).log_prob(w)).mean(0).sum())
    se = float(estimates.std() / math.sqrt(len(estimates)))
    assert abs(float(estimates.mean()) - ref) < 4 * se + 0.02, f"layer {float(estimates.mean()):.4f} vs MC {ref:.4f}"


@pytest.mark.parametrize("kwargs, name", [({"sigma": 0.0}, "sigma"), ({"sigma": -1.0}, "sigma")])
def test_gaussian_prior_rejects_bad_sigma(kwargs, name):
    with pytest.raises(ValueError, match=name):
        bt.priors.GaussianPrior(**kwargs)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"pi": 1.5}, ValueError, "pi"), ({"pi": 0.0}, ValueError, "pi"),
    ({"sigma1": -1.0}, ValueError, "sigma1"), ({"sigma2": 0.0}, ValueError, "sigma2"),
    ({"sigma2": "small"}, TypeError, "sigma2"),
])
def test_scale_mixture_prior_rejects_bad_parameters(kwargs, error, name):
    with pytest.raises(error, match=name):
        bt.priors.ScaleMixturePrior(**kwargs)


def test_elbo_loss_scaling_and_schedules():
    nll, kl = torch.tensor(0.7), torch.tensor(600.0)
    assert float(bt.objectives.elbo_loss(nll, kl, num_data=60000)) == pytest.approx(0.7 + 0.01)
    assert float(bt.objectives.elbo_loss(nll, kl, 60000, kl_weight=0.5)) == pytest.approx(0.7 + 0.005)
    with pytest.raises(ValueError, match="num_data"):
        bt.objectives.elbo_loss(nll, kl, 0)
    with pytest.raises(ValueError, match="nll"):
        bt.objectives.elbo_loss(torch.ones(3), kl, 10)
    warm = bt.objectives.linear_warmup(50)
    assert [warm(e) for e in (0, 1, 25, 50, 80)] == pytest.approx([0.0, 0.02, 0.5, 1.0, 1.0])
    paper = bt.objectives.linear_warmup(15, delay=5)  # the paper code's rw_linear: 0 before 5, (e - 5) / 15, 1 from 20
    assert [paper(e) for e in (0, 4, 5, 8, 19, 20, 100)] == pytest.approx([0, 0, 0, 0.2, 14 / 15, 1, 1])
    with pytest.raises(ValueError, match="delay"):
        bt.objectives.linear_warmup(15, delay=-1)
    assert bt.objectives.constant(0.3)(7) == 0.3
