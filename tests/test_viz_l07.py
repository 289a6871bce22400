"""Lecture 7's figures (bnn_teach.viz.uncertainty): what they draw matches their inputs."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import bnn_teach as bt  # noqa: E402
from bnn_teach import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def samples(num_samples, batch, scale, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(scale * torch.randn(num_samples, batch, 10, generator=g), -1)


def test_ood_inputs_shows_the_images_their_predictions_and_the_confidence_histogram():
    g = torch.Generator().manual_seed(0)
    images = {"digits": torch.rand(20, 1, 28, 28, generator=g), "noise": torch.rand(30, 1, 28, 28, generator=g)}
    probs = {"digits": samples(1, 20, 10.0, 1)[0], "noise": samples(4, 30, 1.0, 2)}
    fig = viz.plot_ood_inputs(images, probs, k=3, title="t")
    assert fig._suptitle.get_text() == "t"
    assert len(fig.axes) == 2 * 3 + 1
    noise_mean = probs["noise"].mean(0)
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), images["noise"][0, 0].numpy())
    first = f"{int(noise_mean[0].argmax())} ({100 * float(noise_mean[0].max()):.0f} %)"
    assert fig.axes[3].get_title() == first, "a Monte Carlo predictive is averaged before its top class is taken"
    assert fig.axes[0].get_ylabel() == "digits" and fig.axes[3].get_ylabel() == "noise"
    hist = fig.axes[-1]
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["digits", "noise"]
    assert hist.get_xlabel() and hist.get_ylabel() == "share of the inputs (%)"
    # each outline is the histogram of the top-class probability, as a share of that kind's inputs (%)
    for patch, kind in zip(hist.patches, images):
        top = probs[kind].mean(0) if probs[kind].dim() == 3 else probs[kind]
        counts, _ = np.histogram(top.max(-1).values.numpy(), bins=np.linspace(0.1, 1.0, 19))
        assert counts.sum() == len(images[kind]), "a top-class probability of 10 classes is at least 0.1"
        drawn = set(np.round(patch.get_path().vertices[:, 1], 6)) - {0.0}
        assert drawn == set(np.round(100.0 * counts / len(images[kind]), 6)) - {0.0}
    with pytest.raises(ValueError, match="same kinds"):
        viz.plot_ood_inputs(images, {"digits": probs["digits"]})


def test_reliability_grid_has_one_diagram_per_model_with_its_ece():
    y = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(3))
    probs = {"sharp": samples(1, 200, 8.0, 4)[0], "soft": samples(5, 200, 1.0, 5)}
    fig = viz.plot_reliability_grid(probs, y, num_bins=10)
    assert len(fig.axes) == 2
    for ax, (name, p) in zip(fig.axes, probs.items()):
        assert ax.get_title() == f"{name}\nECE = {100 * bt.metrics.ece(p, y, 10):.2f} %"
        heights = [patch.get_height() for patch in ax.patches]
        np.testing.assert_allclose(heights, np.nan_to_num(bt.metrics.reliability_bins(p, y, 10)["accuracy"].numpy()))
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    with pytest.raises(ValueError, match="empty"):
        viz.plot_reliability_grid({}, y)


def test_auroc_bars_draw_each_score_of_each_model_and_the_chance_line():
    aurocs = {"a": {"x": 0.5, "y": 0.9}, "b": {"x": 0.7, "y": 1.0}, "c": {"x": 0.6, "y": 0.8}}
    ax = viz.plot_auroc_bars(aurocs).axes[0]
    bars = list(ax.patches)
    assert len(bars) == 6
    np.testing.assert_allclose([b.get_height() for b in bars], [0.5, 0.7, 0.6, 0.9, 1.0, 0.8])
    centres = [b.get_x() + b.get_width() / 2 for b in bars]
    assert centres[0] < centres[3] < centres[1], "the two scores of one model sit side by side"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["chance (0.5)", "x", "y"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_title() and ax.get_xlabel() == "model" and ax.get_ylabel()
    with pytest.raises(ValueError, match="empty"):
        viz.plot_auroc_bars({})


def test_uncertainty_hists_give_each_model_its_auroc():
    confident = samples(1, 100, 8.0, 6)      # one sample (a deterministic network): no epistemic part
    disagreeing = samples(5, 80, 8.0, 7)
    probs_in = {"deterministic": confident, "bayes": samples(5, 100, 2.0, 8)}
    probs_out = {"deterministic": confident[:, :80], "bayes": disagreeing}
    fig = viz.plot_uncertainty_hists(probs_in, probs_out, kind="epistemic", labels=("digits", "noise"))
    assert len(fig.axes) == 2
    for ax, name in zip(fig.axes, probs_in):
        u_in = bt.uncertainty.decompose(probs_in[name]).epistemic
        u_out = bt.uncertainty.decompose(probs_out[name]).epistemic
        auc = bt.metrics.auroc(torch.cat([u_in, u_out]), torch.cat([torch.zeros(len(u_in)), torch.ones(len(u_out))]))
        assert ax.get_title() == f"{name}\nAUROC {auc:.3f}"
        assert ax.get_xlabel() == "epistemic (nats)"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["digits", "noise"]
    assert fig.axes[0].get_title().endswith("AUROC 0.500"), "zero epistemic everywhere: chance"
    with pytest.raises(ValueError, match="same models"):
        viz.plot_uncertainty_hists(probs_in, {"bayes": disagreeing})
