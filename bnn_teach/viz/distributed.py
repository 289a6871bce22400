"""Figures of lecture 8: subposteriors and their combinations, curves per round, accuracy against bytes sent."""
from __future__ import annotations

import math

import torch

__all__ = ["plot_subposteriors", "plot_rounds", "plot_communication", "distributed_figure"]


def plot_subposteriors(subposteriors, combined: dict, xlabel: str = "w", title: str | None = None, ax=None):
    """Each worker's Gaussian subposterior ``(mean, sd)`` (thin grey lines) and combinations of them,
    ``combined = {"exact posterior": (mean, sd), "average": (mean, sd), ...}`` (bold, each its colour)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 3.4))
    pairs = [(float(m), float(s)) for m, s in list(subposteriors) + list(combined.values())]
    lo = min(m - 4 * s for m, s in pairs)
    hi = max(m + 4 * s for m, s in pairs)
    x = torch.linspace(lo, hi, 500, dtype=torch.float64)

    def density(m, s):
        return (torch.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))).numpy()

    for i, (m, s) in enumerate(subposteriors):
        ax.plot(x.numpy(), density(float(m), float(s)), color="0.6", lw=1,
                label="one worker's subposterior" if i == 0 else None)
    styles = ["-", "--", ":", "-."]
    for (label, (m, s)), color, style in zip(combined.items(), ["black", "tab:red", "tab:blue", "tab:green"], styles):
        ax.plot(x.numpy(), density(float(m), float(s)), color=color, lw=2.2, ls=style,
                label=f"{label}: mean {float(m):.3f}, sd {float(s):.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title or "Combining the workers' posteriors")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.5)   # room for the legend
    return fig


def plot_rounds(curves: dict, ylabel: str, title: str, logy: bool = False, ax=None, reference: float | None = None,
                reference_label: str = "target"):
    """One line per run, ``curves = {label: [value after round 1, 2, ...]}``; ``reference`` draws a dashed line."""
    import matplotlib.pyplot as plt

    own = ax is None
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7.2, 3.6))
    for label, values in curves.items():
        rounds = range(1, len(values) + 1)
        ax.plot(list(rounds), list(values), marker="o" if len(values) <= 20 else None, markersize=3, label=label)
    if reference is not None:
        ax.axhline(reference, color="0.3", ls="--", lw=1, label=reference_label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("round (server update)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    if own:
        fig.tight_layout()
    return fig


def plot_communication(rows: list, ax=None, title: str = "Accuracy against what the workers sent"):
    """Test accuracy (%) against megabytes sent by the workers (log scale), one labelled point per row of
    :meth:`~bnn_teach.distributed.DistributedRun.evaluate`."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    own = ax is None
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(9.0, 3.6))
    markers = {"ep": "o", "fedavg": "s", "consensus": "^"}
    for i, row in enumerate(rows):
        ax.scatter(max(row["MB up"], 1e-3), row["accuracy %"], marker=markers.get(row["method"], "o"), s=40,
                   color=f"C{i % 10}", label=row["label"])
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("megabytes sent by the workers (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))   # beside the points, never over them
    if own:
        fig.tight_layout()
    return fig


def distributed_figure(ours: dict, smoke_run: bool = False):
    """The figure of ``bnn-teach reproduce distributed``: accuracy per round for each run, and against bytes sent."""
    import matplotlib.pyplot as plt

    from bnn_teach.viz.training import SMOKE_TITLE

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 4.2))
    curves = {label: [100 * a for a in values] for label, values in ours["curves"].items()}
    plot_rounds(curves, "test accuracy of the posterior mean (%)", "Accuracy after each round", ax=left)
    plot_communication(ours["rows"], ax=right)
    if smoke_run:
        fig.suptitle(SMOKE_TITLE, color="tab:red")
    fig.tight_layout()
    return fig
