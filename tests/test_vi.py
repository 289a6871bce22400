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
    assert mean == pytest.approx(exact_mean) and std == pytest.approx(exact_var**0.5)
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
