"""Training curves and the summary figure of a reproduced experiment."""
from __future__ import annotations

from bnn_teach import sparsity as _sp

__all__ = ["plot_history", "experiment_figure", "plot_gradient_estimators", "plot_gradient_variance", "plot_sweep",
           "SMOKE_TITLE"]

SMOKE_TITLE = "SMOKE RUN (BNN_TEACH_FAST=1): checks that the code runs; not a result"
LABELS = {"nll": "NLL per data point (nats)", "kl": "KL per data point (nats)", "test_acc": "test accuracy",
          "train_acc": "train accuracy", "elbo": "ELBO per data point (nats)", "loss": "loss per data point (nats)",
          "lr": "learning rate", "kl_weight": "KL weight", "compression": "compression (×)",
          "test_nll": "test NLL (nats)", "seconds": "seconds per epoch"}


def _line(ax, x, y, **kwargs):
    """A line with markers when it has few points, so a one-epoch run still shows its value."""
    if len(x) <= 20:
        kwargs.setdefault("marker", "o")
        kwargs.setdefault("markersize", 4)
    return ax.plot(x, y, **kwargs)


def plot_history(history, keys=("nll", "kl", "test_acc"), ax=None, title: str | None = None):
    """Curves of ``history[key]`` against the epoch, one line per key present (each on its own axis);
    ``title`` above them all."""
    import matplotlib.pyplot as plt

    present = [k for k in keys if history is not None and len(history) and k in history.keys()]
    if ax is None:
        fig, axes = plt.subplots(1, max(1, len(present)), figsize=(3.2 * max(1, len(present)), 2.8), squeeze=False)
        axes = list(axes.flat)
    else:
        fig, axes = ax.figure, [ax] * max(1, len(present))
    for a, key in zip(axes, present):
        _line(a, history["epoch"], history[key], label=key)
        a.set_xlabel("epoch")
        a.set_ylabel(LABELS.get(key, key))
        a.set_title(key)
        a.legend(fontsize=8)
    if not present:
        axes[0].set_title("nothing recorded yet")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def experiment_figure(name: str, history=None, model=None, smoke_run: bool = False):
    """The summary figure of a reproduction, one panel per thing recorded:

    - the ELBO's terms ``nll`` and ``kl`` per data point (log scale when positive);
    - the test error (%) and, where recorded, the compression ratio (right axis, log scale) per epoch;
    - other traces (the sampler's ``sigma``, ``beta1..3``);
    - the final per-layer sparsity bars (when the model has SparseVD/ARD layers), labelled with the layers' names.

    Lines of 20 points or fewer carry markers, so a one-epoch run shows its values. ``smoke_run`` (a
    ``BNN_TEACH_FAST=1`` run) puts :data:`SMOKE_TITLE` over the figure.
    """
    import matplotlib.pyplot as plt

    keys = set(history.keys()) if history is not None and len(history) > 0 else set()
    loss_keys = [k for k in ("nll", "kl") if k in keys]
    trace_keys = [k for k in ("sigma", "beta1", "beta2", "beta3") if k in keys]
    sparse = model is not None and any(hasattr(layer, "log_alpha") for layer in model.modules())
    panels = [p for p, present in (("loss", loss_keys), ("error", "test_acc" in keys), ("traces", trace_keys),
                                   ("sparsity", sparse)) if present]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.4), squeeze=False)
    axes = dict(zip(panels, axes.flat)) if panels else {}
    epochs = history["epoch"] if keys else []
    if "loss" in axes:
        ax = axes["loss"]
        for key in loss_keys:
            _line(ax, epochs, history[key], label=key)
        if all(v > 0 for key in loss_keys for v in history[key]):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per data point")
        ax.set_title("ELBO terms per data point", fontsize=9)
        ax.legend(fontsize=8)
    if "error" in axes:
        ax = axes["error"]
        error = [100.0 * (1.0 - a) for a in history["test_acc"]]
        lines = _line(ax, epochs, error, color="C3", label="test error %")
        ax.set_ylabel("test error %", color="C3")
        ax.set_xlabel("epoch")
        ax.set_ylim(0, min(100.0, 3 * sorted(error)[len(error) // 2] + 0.5))
        title = f"final error {error[-1]:.2f} %"
        if "compression" in keys:
            right = ax.twinx()
            lines += _line(right, epochs, history["compression"], color="C0", label="compression ×")
            right.set_yscale("log")
            right.set_ylabel("compression ×", color="C0")
            title += f" · compression {history['compression'][-1]:.1f}×"
        ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper right")
        ax.set_title(title, fontsize=9)
    if "traces" in axes:
        ax = axes["traces"]
        for key in trace_keys:
            _line(ax, epochs, history[key], label=key)
        ax.set_xlabel("sampler step")
        ax.set_ylabel("value")
        ax.set_title("SGLD-SA: sigma and beta1..3 over the steps", fontsize=9)
        ax.legend(fontsize=8)
    if "sparsity" in axes:
        ax = axes["sparsity"]
        table = _sp.sparsity_table(model)
        ax.bar([r["layer"] for r in table], [r["sparsity"] for r in table], label="weights removed")
        ax.set_ylim(0, 100)
        ax.set_xlabel("layer")
        ax.set_ylabel("sparsity %")
        ax.set_title(f"compression {_sp.compression_ratio(model):.1f}×", fontsize=9)
        ax.legend(fontsize=8)
    if not panels:
        ax = fig.axes[0]
        ax.set_axis_off()
        ax.set_title("nothing recorded")
    from matplotlib.ticker import MaxNLocator

    for panel in ("loss", "error", "traces"):
        if panel in axes:   # epochs and steps are whole numbers
            axes[panel].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{name} · {SMOKE_TITLE}" if smoke_run else name, fontsize=10,
                 color="C3" if smoke_run else "black")
    fig.tight_layout()
    return fig


def plot_gradient_estimators(samples: dict, true_gradient: float | None = None, bins: int = 80, ax=None):
    """Histograms of one-sample gradient estimates, one per estimator (lecture 2).

    ``samples``: ``{label: 1-D tensor of estimates}`` (e.g. from :func:`bnn_teach.diagnostics.gradient_samples`);
    each legend entry gives the estimator's mean, median and variance; ``true_gradient`` draws the exact value.
    The bins span the central 98 % of all estimates so one long tail does not squash the rest; estimates
    outside are not drawn (not piled into the edge bins), the densities still count them, and each legend
    entry says what share of that estimator lies outside the plotted range.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if not samples:
        raise ValueError("samples is empty: give {label: estimates}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.5))
    values = {label: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=float).ravel()
              for label, v in samples.items()}
    everything = np.concatenate(list(values.values()))
    lo, hi = np.percentile(everything, [1, 99])
    edges = np.linspace(lo, hi, bins + 1)
    width = edges[1] - edges[0]
    for label, v in values.items():
        outside = np.mean((v < lo) | (v > hi))
        ax.hist(v, bins=edges, alpha=0.5, weights=np.full(len(v), 1.0 / (len(v) * width)),
                label=f"{label}: mean {v.mean():.3g}, median {np.median(v):.3g}, variance {v.var():.3g}"
                      f" ({100 * outside:.1f} % beyond the axis)")
    if true_gradient is not None:
        ax.axvline(true_gradient, color="k", ls="--", label=f"exact gradient {true_gradient:.3g}")
    ax.set_xlabel("one-sample estimate of the gradient")
    ax.set_ylabel("density (per unit of the estimate)")
    ax.set_title("Two unbiased gradient estimators, very different variances")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def plot_gradient_variance(variances: dict, ax=None):
    """Grouped bars on a log scale: the variance of each parameter's gradient, one bar colour per method
    (lecture 3: weight sampling vs the local reparametrization trick).

    ``variances``: ``{method: {parameter: variance}}``, e.g. from :func:`bnn_teach.diagnostics.gradient_variance`;
    the parameters are those of the first method, in its order.
    """
    import matplotlib.pyplot as plt

    from bnn_teach.viz._bars import grouped_bars

    if not variances:
        raise ValueError("variances is empty: give {method: {parameter: variance}}")
    methods = list(variances)
    params = list(variances[methods[0]])
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(5, 1.1 * len(params) + 2), 3.5))
    x, _ = grouped_bars(ax, params, {method: [variances[method][p] for p in params] for method in methods})
    ax.set_xticks(x, params, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("gradient variance (mean over elements)")
    ax.set_xlabel("parameter")
    ax.set_title("Variance of the stochastic gradient")
    ax.legend(fontsize=8)
    return fig


def plot_sweep(x, series: dict, xlabel: str, ylabel: str, title: str, logx: bool = False, logy: bool = False,
               ax=None, marker: str | None = "o"):
    """One line per named series over the same settings ``x`` (e.g. a band's width against the dropout
    rate or the number of data points), with markers (``marker=None`` for a dense grid), a legend and
    optional log axes. Returns the figure."""
    import matplotlib.pyplot as plt

    if not series:
        raise ValueError("series is empty: give {label: values}, one value per entry of x")
    x = [float(v) for v in x]
    for label, values in series.items():
        if len(values) != len(x):
            raise ValueError(f"series {label!r} has {len(values)} values for {len(x)} settings of x")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.8, 3.6))
    for label, values in series.items():
        ax.plot(x, [float(v) for v in values], marker=marker, label=label)
    from matplotlib import ticker

    if logx:
        ax.set_xscale("log")
        if len(x) <= 12:
            ax.set_xticks(x)  # the settings themselves, as plain numbers
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    for axis, log in ((ax.xaxis, logx), (ax.yaxis, logy)):
        if log:
            axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            axis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
