"""Training curves and the summary figure of a reproduced experiment."""
from __future__ import annotations

from bnn_teach import sparsity as _sp

__all__ = ["plot_history", "experiment_figure"]


def plot_history(history, keys=("nll", "kl", "test_acc"), ax=None):
    """Curves of ``history[key]`` against the epoch, one line per key present (each on its own axis)."""
    import matplotlib.pyplot as plt

    present = [k for k in keys if history is not None and len(history) and k in history.keys()]
    if ax is None:
        fig, axes = plt.subplots(1, max(1, len(present)), figsize=(3.2 * max(1, len(present)), 2.8), squeeze=False)
        axes = list(axes.flat)
    else:
        fig, axes = ax.figure, [ax] * max(1, len(present))
    for a, key in zip(axes, present):
        a.plot(history["epoch"], history[key], label=key)
        a.set_xlabel("epoch")
        a.set_title(key)
    return fig


def experiment_figure(name: str, history=None, model=None):
    """Training curves (when there is a history) beside per-layer sparsity bars (when there is a model)."""
    import matplotlib.pyplot as plt

    panels = (history is not None and len(history) > 0) + (model is not None)
    fig, axes = plt.subplots(1, max(1, panels), figsize=(4.5 * max(1, panels), 3.2), squeeze=False)
    axes = list(axes.flat)
    i = 0
    if history is not None and len(history) > 0:
        for key in [k for k in ("nll", "kl", "test_acc", "sigma", "beta1", "beta2", "beta3") if k in history.keys()]:
            axes[i].plot(history["epoch"], history[key], label=key)
        axes[i].set_xlabel("epoch (steps for samplers)")
        axes[i].legend(fontsize=8)
        axes[i].set_title(name)
        i += 1
    if model is not None:
        table = _sp.sparsity_table(model)
        axes[i].bar([f"layer {r['layer']}" for r in table], [r["sparsity"] for r in table])
        axes[i].set_ylim(0, 100)
        axes[i].set_ylabel("sparsity %")
        axes[i].set_title(f"compression {_sp.compression_ratio(model):.1f}×")
    if panels == 0:
        axes[0].set_axis_off()
        axes[0].set_title(name)
    fig.tight_layout()
    return fig
