"""The lecture-6 figures of bnn_teach.viz.mcmc: titles, labelled axes, legends, and the data they draw."""
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bnn_teach import viz


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_traces_and_autocorrelation_take_a_title():
    rng = np.random.default_rng(0)
    chains = {"SGLD": torch.tensor(rng.normal(size=300)), "SGHMC": torch.tensor(rng.normal(size=300))}
    fig = viz.plot_traces(chains, title="two chains", xlabel="step")
    assert fig._suptitle.get_text() == "two chains"
    assert [ax.get_legend().get_texts()[0].get_text() for ax in fig.axes] == ["SGLD", "SGHMC"]
    assert fig.axes[-1].get_xlabel() == "step"
    fig = viz.plot_autocorrelation(chains, max_lag=20, title="autocorrelation")
    ax = fig.axes[0]
    assert ax.get_title() == "autocorrelation" and ax.get_xlabel() == "lag (samples)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SGLD", "SGHMC"]
    assert viz.plot_traces(chains)._suptitle is None, "no title unless asked"


def test_marginals_report_each_variance_against_the_exact_one():
    rng = np.random.default_rng(1)
    samples = {"right": torch.tensor(rng.normal(1.0, 2.0, 20_000)),
               "half": torch.tensor(rng.normal(1.0, 2.0 / np.sqrt(2), 20_000))}
    fig = viz.plot_marginals(samples, mean=1.0, std=2.0, title="check")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    ratios = [float(re.search(r"variance ([0-9.]+) ×", text).group(1)) for text in labels[:2]]
    assert labels[0].startswith("right:") and ratios[0] == pytest.approx(1.0, abs=0.03)
    assert labels[1].startswith("half:") and ratios[1] == pytest.approx(0.5, abs=0.02)
    assert labels[-1] == "exact posterior" and ax.get_title() == "check"
    assert ax.get_xlabel() and ax.get_ylabel() == "density"
    exact = ax.lines[-1]
    x, y = exact.get_xdata(), exact.get_ydata()
    assert x[np.argmax(y)] == pytest.approx(1.0, abs=0.05)
    assert np.trapezoid(y, x) == pytest.approx(1.0, abs=1e-3)


def test_step_sizes_shade_the_sampling_phase():
    lrs = np.linspace(1.0, 0.0, 50)
    sampling = np.arange(50) >= 40
    fig = viz.plot_step_sizes(lrs, sampling, title="one cycle")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), lrs)
    assert ax.get_title() == "one cycle" and ax.get_xlabel() == "sampler step" and ax.get_ylabel() == "step size lr"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["step size", "sampling phase (states kept)"]
    with pytest.raises(ValueError, match="one value per step"):
        viz.plot_step_sizes(lrs, sampling[:10])


def test_variable_selection_counts_false_positives():
    truth = torch.zeros(100)
    truth[:3] = torch.tensor([3.0, 2.0, 1.0])
    good, bad = truth.clone(), truth.clone()
    bad[10:15] = 0.5
    inclusion = (truth != 0).float() * 0.9
    fig = viz.plot_variable_selection({"good": good, "bad": bad}, truth, threshold=0.1, inclusion=inclusion)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("good: 0 false positives among the 97 zeros")
    assert titles[1].startswith("bad: 5 false positives")
    assert "inclusion" in fig.axes[2].get_legend().get_texts()[0].get_text()
    assert fig.axes[-1].get_xlabel() == "coefficient index j" and fig._suptitle.get_text()
    stars = fig.axes[0].lines[1]
    np.testing.assert_allclose(stars.get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(stars.get_ydata(), [3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="estimates for 100 coefficients"):
        viz.plot_variable_selection({"short": torch.zeros(10)}, truth)


def test_ensemble_size_draws_curves_and_references():
    fig = viz.plot_ensemble_size([1, 2, 4], {"SGLD ensemble": [0.5, 0.4, 0.35]}, {"SGD": 0.45}, title="growth")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.5, 0.4, 0.35])
    assert ax.lines[1].get_ydata()[0] == pytest.approx(0.45)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SGLD ensemble", "SGD"]
    assert ax.get_title() == "growth" and ax.get_xlabel() == "number of samples in the ensemble"
    with pytest.raises(ValueError, match="3 ensemble sizes"):
        viz.plot_ensemble_size([1, 2, 4], {"short": [0.5]})
