"""bnn_teach.vi: the reverse KL picks one mode, the forward KL matches moments (checked against the
target's exact moments and against a numerical minimisation of the forward KL)."""
import pytest
import torch

import bnn_teach as bt
from bnn_teach.vi import fit_gaussian, mixture_target


def test_reverse_kl_is_mode_seeking():
    target = mixture_target(means=(-2.0, 2.0), stds=(0.6, 0.6))
    right = fit_gaussian(target, "reverse", init_mean=0.5)
    left = fit_gaussian(target, "reverse", init_mean=-0.5)
    assert right[0] == pytest.approx(2.0, abs=0.1) and right[1] == pytest.approx(0.6, abs=0.05)
    assert left[0] == pytest.approx(-2.0, abs=0.1), "the mode found depends on the start"


def test_forward_kl_matches_the_moments():
    target = mixture_target(means=(-2.0, 2.0), stds=(0.6, 0.6), weights=(0.3, 0.7))
    mean, std = fit_gaussian(target, "forward")
    exact_mean = 0.3 * -2.0 + 0.7 * 2.0
    exact_var = 0.3 * (0.36 + 4.0) + 0.7 * (0.36 + 4.0) - exact_mean**2
    assert mean == pytest.approx(exact_mean, abs=0.03) and std == pytest.approx(exact_var**0.5, abs=0.03), \
        "the forward fit, started at (0.5, 0.5), should find the target's moments"
    # the moment-matched Gaussian has a lower forward KL than any nearby one (numerical check on a grid)
    x = torch.linspace(-8, 8, 20001, dtype=torch.float64)
    p = target.log_prob(x).exp()

    def forward_kl(m, s):
        log_q = torch.distributions.Normal(m, s).log_prob(x)
        return float(torch.trapezoid(p * (target.log_prob(x) - log_q), x))

    best = forward_kl(mean, std)
    for dm, ds in [(0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1)]:
        assert best < forward_kl(mean + dm, std + ds)


def test_bad_arguments():
    target = mixture_target()
    with pytest.raises(ValueError, match="divergence"):
        fit_gaussian(target, "symmetric")
    with pytest.raises(ValueError, match="stds"):
        mixture_target(stds=(0.6, -1.0))
    with pytest.raises(ValueError, match="one length"):
        mixture_target(means=(0.0, 1.0, 2.0))


def test_figure_shows_the_target_and_each_fit():
    target = mixture_target()
    fits = {"KL(q || p)": fit_gaussian(target, "reverse", steps=200), "KL(p || q)": fit_gaussian(target, "forward")}
    fig = bt.viz.plot_gaussian_fits(target, fits)
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[0] == "target p" and labels[1].startswith("KL(q || p): mean") and len(labels) == 3
    assert ax.get_xlabel() == "w" and ax.get_ylabel() == "density" and ax.get_title()


def test_linear_regression_posterior_against_torch_distributions():
    """The closed form is the posterior: its log density equals prior + likelihood, up to a constant."""
    torch.manual_seed(0)
    X, y = torch.randn(30, 2, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    mean, cov, precision = bt.vi.linear_regression_posterior(X, y, noise_var=0.5, prior_sigma=2.0)
    torch.testing.assert_close(cov @ precision, torch.eye(2, dtype=torch.float64))
    posterior = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)

    def unnormalised(w):
        prior = torch.distributions.Normal(0.0, 2.0).log_prob(w).sum()
        likelihood = torch.distributions.Normal(X @ w, 0.5**0.5).log_prob(y).sum()
        return prior + likelihood

    ws = torch.randn(5, 2, dtype=torch.float64)
    differences = torch.stack([posterior.log_prob(w) - unnormalised(w) for w in ws])
    torch.testing.assert_close(differences, differences[0].expand(5))


def test_mean_field_vi_finds_the_exact_mean_and_the_narrower_mean_field_sd():
    """A BayesLinear trained by fit() on the ELBO lands on the closed-form mean-field optimum: the exact
    posterior mean and sd 1/sqrt(Lambda_ii), which for correlated inputs is far below the true sqrt(Sigma_ii)."""
    torch.manual_seed(0)
    N, p, noise_var, prior_sigma = 200, 3, 0.25, 1.0
    X = torch.randn(N, p)
    X[:, 1] = X[:, 0] + 0.3 * torch.randn(N)  # two correlated inputs
    y = X @ torch.tensor([1.0, -0.5, 0.3]) + noise_var**0.5 * torch.randn(N)
    mean, cov, precision = bt.vi.linear_regression_posterior(X, y, noise_var, prior_sigma)
    layer = bt.nn.BayesLinear(p, 1, bias=False, prior=bt.priors.GaussianPrior(prior_sigma), init_rho=-3.0)

    def gaussian_nll(out, target):  # per data point, up to a constant
        return ((out.reshape(-1) - target) ** 2).mean() / (2 * noise_var)

    optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 700, 0.3)
    bt.train.fit(torch.nn.Sequential(layer), (X, y), 2100, optimizer, batch_size=N, nll_fn=gaussian_nll,
                 scheduler=scheduler, progress=False)
    torch.testing.assert_close(layer.weight_mu.detach().double().reshape(-1), mean, atol=0.01, rtol=0)
    mean_field_sd = 1 / precision.diag().sqrt()
    torch.testing.assert_close(layer.weight_sigma.detach().double().reshape(-1), mean_field_sd, rtol=0.06, atol=0)
    assert mean_field_sd[0] < 0.5 * cov[0, 0].sqrt(), "mean field is overconfident about correlated weights"
