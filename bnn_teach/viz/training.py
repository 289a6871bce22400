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
    """The summary figure of a reproduction, one panel per thing recorded:

    - the ELBO's terms ``nll`` and ``kl`` per data point (log scale when positive);
    - the test error (%) and, where recorded, the compression ratio (right axis, log scale) per epoch;
    - other traces (the sampler's ``sigma``, ``beta1..3``);
    - the final per-layer sparsity bars (when there is a model).
    """
    import matplotlib.pyplot as plt

    keys = set(history.keys()) if history is not None and len(history) > 0 else set()
    loss_keys = [k for k in ("nll", "kl") if k in keys]
    trace_keys = [k for k in ("sigma", "beta1", "beta2", "beta3") if k in keys]
    panels = [p for p, present in (("loss", loss_keys), ("error", "test_acc" in keys), ("traces", trace_keys),
                                   ("sparsity", model is not None)) if present]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.2), squeeze=False)
    axes = dict(zip(panels, axes.flat)) if panels else {}
    epochs = history["epoch"] if keys else []
    if "loss" in axes:
        ax = axes["loss"]
        for key in loss_keys:
            ax.plot(epochs, history[key], label=key)
        if all(v > 0 for key in loss_keys for v in history[key]):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{name}: ELBO terms per data point", fontsize=9)
        ax.legend(fontsize=8)
    if "error" in axes:
        ax = axes["error"]
        error = [100.0 * (1.0 - a) for a in history["test_acc"]]
        ax.plot(epochs, error, color="C3")
        ax.set_ylabel("test error %", color="C3")
        ax.set_xlabel("epoch")
        ax.set_ylim(0, min(100.0, 3 * sorted(error)[len(error) // 2] + 0.5))
        title = f"final error {error[-1]:.2f} %"
        if "compression" in keys:
            right = ax.twinx()
            right.plot(epochs, history["compression"], color="C0")
            right.set_yscale("log")
            right.set_ylabel("compression ×", color="C0")
            title += f" · compression {history['compression'][-1]:.1f}×"
        ax.set_title(title, fontsize=9)
    if "traces" in axes:
        ax = axes["traces"]
        for key in trace_keys:
            ax.plot(epochs, history[key], label=key)
        ax.set_xlabel("step")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=8)
    if "sparsity" in axes:
        ax = axes["sparsity"]
        table = _sp.sparsity_table(model)
        ax.bar([f"layer {r['layer']}" for r in table], [r["sparsity"] for r in table])
        ax.set_ylim(0, 100)
        ax.set_ylabel("sparsity %")
        ax.set_title(f"compression {_sp.compression_ratio(model):.1f}×", fontsize=9)
    if not panels:
        ax = fig.axes[0]
        ax.set_axis_off()
        ax.set_title(name)
    fig.tight_layout()
    return fig
