"""Uncertainty pictures (lecture 7): regression bands, reliability diagrams, in- vs out-of-distribution
(histograms, AUROC bars, example inputs with the network's confidence)."""
from __future__ import annotations

import numpy as np
import torch

from bnn_teach import metrics as _metrics
from bnn_teach.uncertainty import decompose
from bnn_teach.viz._bars import grouped_bars

__all__ = [
    "plot_regression_bands", "plot_reliability", "plot_uncertainty_hist", "plot_certainty_grid", "plot_gaussian_fits",
    "uncertainty_grid", "plot_uncertainty_map", "plot_ood_inputs", "plot_reliability_grid", "plot_auroc_bars",
    "plot_uncertainty_hists",
]


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def plot_regression_bands(x_grid, prediction: dict, X_train=None, y_train=None, ax=None, num_std: float = 2.0,
                          ylim=None, title: str | None = None):
    """Predictive mean with two bands of ``num_std`` standard deviations: the epistemic part alone
    (inner) and the total, epistemic + aleatoric (outer), and the training data.

    ``ylim`` defaults to the training targets' range widened by that range on each side, so a band
    that grows without bound far from the data (a predicted noise variance extrapolated) runs off the
    picture instead of flattening everything else.

    ``prediction`` is :func:`bnn_teach.predict.predictive_regression`'s dict (``mean``, ``aleatoric``, ``epistemic``);
    ``title`` names the axes.
    """
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.5))
    x = _np(x_grid).reshape(-1)
    mean = _np(prediction["mean"])
    epi = np.sqrt(_np(prediction["epistemic"]))
    total = np.sqrt(_np(prediction["epistemic"]) + _np(prediction["aleatoric"]))
    ax.fill_between(x, mean - num_std * total, mean + num_std * total, color="tab:orange", alpha=0.3,
                    label=f"±{num_std:g} sd total (aleatoric + epistemic)")
    ax.fill_between(x, mean - num_std * epi, mean + num_std * epi, color="tab:blue", alpha=0.4,
                    label=f"±{num_std:g} sd epistemic")
    ax.plot(x, mean, color="k", lw=1.5, label="predictive mean")
    if X_train is not None:
        targets = _np(y_train).reshape(-1)
        ax.scatter(_np(X_train).reshape(-1), targets, s=6, color="k", alpha=0.6, label="training data")
        if ylim is None:
            span = float(targets.max() - targets.min()) or 1.0
            ylim = (float(targets.min()) - span, float(targets.max()) + span)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if title:
        ax.set_title(title)
    return fig


def plot_reliability(probs, y, num_bins: int = 15, ax=None, title: str | None = None):
    """Reliability diagram: accuracy per confidence bin against the diagonal; ECE in the title
    (after ``title``, e.g. the model's name, when given)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4, 4))
    bins = _metrics.reliability_bins(probs, y, num_bins)
    centres = _np((bins["edges"][:-1] + bins["edges"][1:]) / 2)
    acc = np.nan_to_num(_np(bins["accuracy"]))
    ax.bar(centres, acc, width=1.0 / num_bins, edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ece_text = f"ECE = {100 * _metrics.ece(probs, y, num_bins):.2f} %"
    ax.set_title(f"{title}: {ece_text}" if title else ece_text)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_uncertainty_hist(probs_in, probs_out, kind: str = "epistemic", bins: int = 40, ax=None):
    """Histograms of an uncertainty (``total``, ``aleatoric`` or ``epistemic``) for in- and out-of-distribution
    inputs, with the AUROC of telling them apart by it in the title."""
    import matplotlib.pyplot as plt

    if kind not in ("total", "aleatoric", "epistemic"):
        raise ValueError(f"kind must be 'total', 'aleatoric' or 'epistemic', got {kind!r}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3))
    u_in = getattr(decompose(probs_in), kind)
    u_out = getattr(decompose(probs_out), kind)
    ax.hist(_np(u_in), bins=bins, alpha=0.6, density=True, label="in distribution")
    ax.hist(_np(u_out), bins=bins, alpha=0.6, density=True, label="out of distribution")
    scores = torch.cat([u_in, u_out]).cpu()
    labels = torch.cat([torch.zeros(len(u_in)), torch.ones(len(u_out))])
    ax.set_title(f"{kind} uncertainty · AUROC {_metrics.auroc(scores, labels):.3f}")
    ax.set_xlabel(f"{kind} uncertainty of the predictive distribution (nats)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return fig


def plot_certainty_grid(X, probs, k: int = 5):
    """The ``k`` most and ``k`` least certain images (by total predictive entropy), each above a bar chart
    of its predictive distribution. Top rows: most certain; bottom rows: least certain."""
    import matplotlib.pyplot as plt

    u = decompose(probs)
    mean = probs.mean(0) if probs.dim() == 3 else probs
    order = torch.argsort(u.total.cpu())
    picks = [("most certain", order[:k]), ("least certain", order[-k:].flip(0))]
    fig, axes = plt.subplots(4, k, figsize=(1.8 * k, 6.4), squeeze=False)
    for block, (label, idx) in enumerate(picks):
        for j, i in enumerate(idx.tolist()):
            img_ax, bar_ax = axes[2 * block, j], axes[2 * block + 1, j]
            img_ax.imshow(_np(X[i]).reshape(28, 28), cmap="gray")
            img_ax.set_axis_off()
            img_ax.set_title(f"{label}\nH = {float(u.total[i]):.2f}", fontsize=7)
            bar_ax.bar(range(mean.shape[-1]), _np(mean[i]))
            bar_ax.set_ylim(0, 1)
            bar_ax.set_xticks(range(mean.shape[-1]))
            bar_ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def plot_gaussian_fits(target, fits: dict, extent=(-5.0, 5.0), ax=None):
    """A 1-D target density and Gaussian approximations of it: ``fits = {"KL(q || p)": (m, s), ...}``
    (e.g. from :func:`bnn_teach.vi.fit_gaussian`). Each Gaussian is drawn with its mean marked."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.2))
    x = torch.linspace(float(extent[0]), float(extent[1]), 400, dtype=torch.float64)
    target_density = target.log_prob(x).exp()
    ax.fill_between(_np(x), _np(target_density), color="0.8", label="target p")
    top = float(target_density.max())
    for (label, (mean, std)), color in zip(fits.items(), ["tab:blue", "tab:orange", "tab:green", "tab:red"]):
        density = torch.distributions.Normal(float(mean), float(std)).log_prob(x).exp()
        ax.plot(_np(x), _np(density), color=color, lw=2, label=f"{label}: mean {mean:.2f}, sd {std:.2f}")
        ax.axvline(float(mean), color=color, ls=":", lw=1)
        top = max(top, float(density.max()))
    ax.set_ylim(0, 1.45 * top)  # room for the legend above the curves
    ax.set_xlabel("w")
    ax.set_ylabel("density")
    ax.set_title("Gaussian fits to a two-mode target")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def uncertainty_grid(model, X, kind: str = "epistemic", num_samples: int = 50, grid: int = 80, margin: float = 1.0):
    """``(xs, ys, values)``: an uncertainty of ``model``'s predictive distribution (``total``, ``aleatoric``
    or ``epistemic``, nats) on a ``grid`` × ``grid`` lattice over the 2-D inputs ``X`` widened by ``margin``;
    ``values[i, j]`` is at ``(xs[j], ys[i])``."""
    from bnn_teach.predict import mc_predict

    if kind not in ("total", "aleatoric", "epistemic"):
        raise ValueError(f"kind must be 'total', 'aleatoric' or 'epistemic', got {kind!r}")
    X = torch.as_tensor(X)
    if X.dim() != 2 or X.shape[1] != 2:
        raise ValueError(f"X must hold 2-D inputs, shape (N, 2), got {tuple(X.shape)}")
    lo, hi = X.min(0).values - margin, X.max(0).values + margin
    xs = torch.linspace(float(lo[0]), float(hi[0]), grid)
    ys = torch.linspace(float(lo[1]), float(hi[1]), grid)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(X.dtype)
    values = getattr(decompose(mc_predict(model, points, num_samples=num_samples)), kind)
    return xs, ys, values.reshape(grid, grid).cpu()


def plot_uncertainty_map(model, X, y, kind: str = "epistemic", num_samples: int = 50, grid: int = 80, ax=None):
    """A 2-D classifier's uncertainty (:func:`uncertainty_grid`) as a colour map, with the training data
    on top, one marker colour per class. The image's array is ``values``; the colour bar is in nats."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 4))
    xs, ys, values = uncertainty_grid(model, X, kind, num_samples, grid)
    image = ax.imshow(_np(values), origin="lower", extent=(float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1])),
                      aspect="auto", cmap="magma")
    fig.colorbar(image, ax=ax, label=f"{kind} uncertainty (nats)")
    X, y = _np(X), _np(y)
    for label, color in zip(np.unique(y), ["tab:cyan", "tab:green", "tab:blue", "tab:olive"]):
        ax.scatter(X[y == label, 0], X[y == label, 1], s=5, color=color, label=f"class {label}")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(f"{kind.capitalize()} uncertainty over the input plane")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def _confidence(probs) -> torch.Tensor:
    """The predictive's top-class probability per input, from ``(batch, classes)`` or ``(S, batch, classes)``."""
    probs = probs.mean(0) if probs.dim() == 3 else probs
    return probs.max(-1).values.detach().cpu()


def plot_ood_inputs(images: dict, probs: dict, k: int = 6, title: str | None = None):
    """Inputs of several kinds (e.g. test digits, rotated digits, noise) and how confident a classifier is on
    them: one row of ``k`` images per kind, each titled with the predicted class and its probability, and on
    the right the histogram of the top-class probability over all inputs of each kind.

    ``images``: ``{kind: X}`` with ``X`` of shape (N, 1, 28, 28) or (N, 28, 28); ``probs``: ``{kind: probs}``,
    the same kinds, ``(N, classes)`` or Monte Carlo samples ``(S, N, classes)`` (averaged first).
    The histogram's axes are ``fig.axes[-1]``; the image of row ``r``, column ``j`` is ``fig.axes[r * k + j]``.
    """
    import matplotlib.pyplot as plt

    if not images or set(images) != set(probs):
        raise ValueError(f"images and probs must name the same kinds of input, got {list(images)} and {list(probs)}")
    kinds = list(images)
    fig = plt.figure(figsize=(1.25 * k + 4.6, 1.45 * len(kinds) + 0.9))
    outer = fig.add_gridspec(1, 2, width_ratios=[k, 3.2], wspace=0.25, left=0.05, right=0.98, bottom=0.12)
    grid = outer[0].subgridspec(len(kinds), k, wspace=0.12, hspace=0.45)
    for row, kind in enumerate(kinds):
        mean = probs[kind].mean(0) if probs[kind].dim() == 3 else probs[kind]
        confidence, predicted = mean.max(-1)
        for j in range(k):
            ax = fig.add_subplot(grid[row, j])
            ax.imshow(_np(images[kind][j]).reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{int(predicted[j])} ({100 * float(confidence[j]):.0f} %)", fontsize=8)
            if j == 0:
                ax.set_ylabel(kind, fontsize=8)
    hist = fig.add_subplot(outer[1])
    edges = np.linspace(0.1, 1.0, 19)
    for kind in kinds:
        hist.hist(_np(_confidence(probs[kind])), bins=edges, histtype="step", lw=2,
                  weights=np.full(len(images[kind]), 100.0 / len(images[kind])), label=kind)
    hist.set_xlabel("probability of the predicted class")
    hist.set_ylabel("share of the inputs (%)")
    hist.set_title("How sure is the network?", fontsize=9)
    hist.legend(fontsize=8, loc="upper left")
    fig.suptitle(title or "Predicted class (its probability) on inputs of each kind")
    return fig


def plot_reliability_grid(probs: dict, y, num_bins: int = 15, title: str | None = None):
    """One reliability diagram (:func:`plot_reliability`) per model, side by side, each titled with the
    model's name and its ECE. ``probs``: ``{model: probs}`` on the same inputs with labels ``y``."""
    import matplotlib.pyplot as plt

    if not probs:
        raise ValueError("probs is empty: give {model: probabilities}")
    fig, axes = plt.subplots(1, len(probs), figsize=(2.9 * len(probs), 3.3), squeeze=False)
    for ax, (name, p) in zip(axes.flat, probs.items()):
        plot_reliability(p, y, num_bins, ax=ax)
        ax.set_title(f"{name}\n{ax.get_title()}", fontsize=9)
        ax.set_xlabel("confidence (top-class probability)", fontsize=8)
        ax.set_ylabel("accuracy in the bin", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(title or "Reliability diagrams: accuracy against confidence")
    fig.tight_layout()
    return fig


def plot_auroc_bars(aurocs: dict, title: str | None = None, ax=None):
    """Grouped bars of the AUROC of telling in- from out-of-distribution inputs, one group per model and one
    bar colour per score (e.g. ``"noise: entropy"``, ``"noise: mutual information"``), with the chance level
    (0.5) as a dashed line and each bar's value written on it.

    ``aurocs``: ``{model: {score: auroc}}``; the scores are those of the first model, in its order.
    """
    import matplotlib.pyplot as plt

    if not aurocs:
        raise ValueError("aurocs is empty: give {model: {score: auroc}}")
    models = list(aurocs)
    scores = list(aurocs[models[0]])
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(6.0, 1.5 * len(models) + 2), 3.8))
    x, containers = grouped_bars(ax, models, {score: [aurocs[m][score] for m in models] for score in scores})
    for bars in containers:
        ax.bar_label(bars, labels=[f"{bar.get_height():.2f}" for bar in bars], fontsize=6, rotation=90, padding=2)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance (0.5)")
    ax.set_xticks(x, models, fontsize=8)
    ax.set_ylim(0.0, 1.4)
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.set_xlabel("model")
    ax.set_ylabel("AUROC, in vs out of distribution")
    ax.set_title(title or "Telling out-of-distribution inputs apart by an uncertainty score")
    ax.legend(fontsize=7, loc="upper center", ncol=3)  # above the bars: the axis runs on to 1.4
    return fig


def plot_uncertainty_hists(probs_in: dict, probs_out: dict, kind: str = "epistemic", bins: int = 30,
                           title: str | None = None, labels=("in distribution", "out of distribution")):
    """:func:`plot_uncertainty_hist` for several models side by side: ``probs_in`` and ``probs_out`` are
    ``{model: probs}`` with the same models; each panel is titled with the model's name and the AUROC,
    and its legend names the two kinds of input ``labels`` (e.g. ``("test digits", "noise")``)."""
    import matplotlib.pyplot as plt

    if not probs_in or set(probs_in) != set(probs_out):
        raise ValueError(f"probs_in and probs_out must name the same models, got {list(probs_in)} and "
                         f"{list(probs_out)}")
    fig, axes = plt.subplots(1, len(probs_in), figsize=(3.1 * len(probs_in), 3.0), squeeze=False)
    for ax, name in zip(axes.flat, probs_in):
        plot_uncertainty_hist(probs_in[name], probs_out[name], kind=kind, bins=bins, ax=ax)
        ax.set_title(f"{name}\n{ax.get_title().replace(f'{kind} uncertainty · ', '')}", fontsize=9)
        ax.set_xlabel(f"{kind} (nats)", fontsize=8)
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles, list(labels), fontsize=6)
    fig.suptitle(title or f"{kind.capitalize()} uncertainty, in vs out of distribution")
    fig.tight_layout()
    return fig
