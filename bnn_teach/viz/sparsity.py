"""Sparsification pictures (lecture 4): weights as they are pruned, over training.

:class:`SparsityRecorder` is a ``fit`` callback that keeps, per epoch, each prunable layer's score
(``log_alpha`` for SparseVD/ARD, ``log(|mu|/sigma)`` for BBB, ``log|w|`` otherwise) as float16 and
its mask bit-packed, on the CPU, plus the compression ratio and the accuracy. A LeNet-300-100 epoch
costs ~0.56 MB, and when ``max_frames`` epochs are held every other one is dropped, so memory is
bounded by ``max_frames`` frames whatever the length of the run.
"""
from __future__ import annotations

import base64
import math
import zlib

import numpy as np
import torch

from bnn_teach import sparsity as _sp

__all__ = [
    "SparsityRecorder", "layer_score", "plot_weights", "plot_input_tiles", "plot_conv_filters", "frame_title",
    "plot_frame", "sparsification_slider", "save_animation", "plot_mu_sigma", "plot_log_alpha_hist",
    "plot_sparsity_bars", "plot_pruning_curve", "plot_input_pixels",
]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def layer_score(layer) -> tuple[str, torch.Tensor]:
    """(name, score) of a prunable layer: SparseVD/ARD ``log_alpha``; BBB ``log(|mu|/sigma)``; else ``log|w|``."""
    if hasattr(layer, "log_alpha"):
        return "log_alpha", layer.log_alpha.detach()
    if hasattr(layer, "pruning_score"):
        return "log_snr", torch.log(layer.pruning_score().detach() + 1e-12)
    return "log_abs_w", torch.log(layer.weight.detach().abs() + 1e-12)


def frame_title(epoch: int, compression: float, accuracy: float | None) -> str:
    acc = "–" if accuracy is None else f"{100 * accuracy:.2f} %"
    return f"Epoch {epoch} · compression {compression:.1f}× · accuracy {acc}"


class SparsityRecorder:
    """``fit`` callback: ``fit(..., callbacks=[recorder])``. Frames in ``recorder.frames``.

    Each frame: ``{"epoch", "compression", "accuracy", "layers": {name: {"score": float16 array or None,
    "mask_bits": packed bool array, "shape"}}}``. ``layers`` keeps only the named layers, ``max_units``
    only the first output units (rows) of each, and ``scores=False`` the masks alone: a recorded run
    shipped with the package (:meth:`to_dict`) keeps LeNet-300-100's first 100 input tiles in ~10 kB
    an epoch instead of ~0.56 MB for every score.
    """

    def __init__(self, max_frames: int = 200, layers=None, max_units: int | None = None, scores: bool = True):
        if not isinstance(max_frames, int) or max_frames < 2:
            raise ValueError(f"max_frames must be an int >= 2, got {max_frames!r}")
        if max_units is not None and (not isinstance(max_units, int) or max_units < 1):
            raise ValueError(f"max_units must be a positive int or None, got {max_units!r}")
        self.max_frames = max_frames
        self.layers = None if layers is None else tuple(layers)
        self.max_units = max_units
        self.scores = bool(scores)
        self.frames: list[dict] = []
        self.every = 1

    def __call__(self, epoch, model, history):
        if (epoch - 1) % self.every == 0:
            self.record(epoch, model, history)

    def record(self, epoch, model, history):
        """Record ``epoch`` now, whatever the spacing (e.g. the last epoch of a run)."""
        if self.frames and self.frames[-1]["epoch"] == epoch:
            return
        record = history[-1] if len(history) else {}
        layers = {}
        found = dict(_sp.prunable_layers(model))
        wanted = self.layers if self.layers is not None else tuple(found)
        missing = [name for name in wanted if name not in found]
        if missing:
            raise KeyError(f"no prunable layer {', '.join(map(repr, missing))} in the model; "
                           f"its prunable layers: {', '.join(found)}")
        for name in wanted:
            layer = found[name]
            mask = _sp.weight_mask(layer).cpu().numpy()[: self.max_units]
            score = layer_score(layer)[1].cpu().numpy()[: self.max_units].astype(np.float16) if self.scores else None
            layers[name] = {"score": score, "mask_bits": np.packbits(mask.ravel()), "shape": tuple(mask.shape)}
        self.frames.append({"epoch": epoch, "compression": _sp.compression_ratio(model),
                            "accuracy": record.get("test_acc", record.get("train_acc")), "layers": layers})
        if len(self.frames) > self.max_frames:
            self.frames = self.frames[::2]
            self.every *= 2

    def _layer(self, frame: int, layer: str) -> dict:
        if not self.frames:
            raise ValueError("nothing recorded yet: pass the recorder to fit(callbacks=[recorder])")
        layers = self.frames[frame]["layers"]
        if layer not in layers:
            raise KeyError(f"no layer {layer!r} was recorded; recorded layers: {', '.join(layers)}")
        return layers[layer]

    def mask(self, frame: int, layer: str) -> np.ndarray:
        """The boolean mask (True = kept) of ``layer`` in frame ``frame``."""
        info = self._layer(frame, layer)
        n = int(np.prod(info["shape"]))
        return np.unpackbits(info["mask_bits"], count=n).astype(bool).reshape(info["shape"])

    def score(self, frame: int, layer: str) -> np.ndarray:
        """The pruning score of ``layer`` in frame ``frame`` (log α for SparseVD, SNR for BBB)."""
        score = self._layer(frame, layer)["score"]
        if score is None:
            raise ValueError("this recorder kept the masks only (scores=False); use mask()")
        return score.astype(np.float32)

    def layer_names(self) -> list[str]:
        return list(self.frames[0]["layers"]) if self.frames else []

    def nbytes(self) -> int:
        """Bytes held by the recorded arrays."""
        return sum((v["score"].nbytes if v["score"] is not None else 0) + v["mask_bits"].nbytes
                   for f in self.frames for v in f["layers"].values())

    def to_dict(self) -> dict:
        """The frames as JSON-able data (arrays zlib-compressed, base64); :meth:`from_dict` reads it back."""
        def pack(array):
            return None if array is None else base64.b64encode(zlib.compress(array.tobytes(), 9)).decode("ascii")

        frames = [{**f, "layers": {name: {"shape": list(v["shape"]), "mask_bits": pack(v["mask_bits"]),
                                          "score": pack(v["score"])} for name, v in f["layers"].items()}}
                  for f in self.frames]
        return {"max_frames": self.max_frames, "layers": None if self.layers is None else list(self.layers),
                "max_units": self.max_units, "scores": self.scores, "every": self.every, "frames": frames}

    @classmethod
    def from_dict(cls, state: dict) -> SparsityRecorder:
        """The recorder :meth:`to_dict` described."""
        def unpack(text, dtype):
            return None if text is None else np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype).copy()

        recorder = cls(state["max_frames"], state["layers"], state["max_units"], state["scores"])
        recorder.every = state["every"]
        recorder.frames = [{**f, "layers": {name: {"shape": tuple(v["shape"]),
                                                   "mask_bits": unpack(v["mask_bits"], np.uint8),
                                                   "score": (None if v["score"] is None else
                                                             unpack(v["score"], np.float16).reshape(v["shape"]))}
                                            for name, v in f["layers"].items()}}
                           for f in state["frames"]]
        return recorder


def _masked(weight, mask):
    w = np.asarray(weight, dtype=np.float32).copy()
    w[~np.asarray(mask, dtype=bool)] = np.nan
    return w


def _imshow(ax, array, cmap="RdBu_r"):
    import matplotlib

    cm = matplotlib.colormaps[cmap].with_extremes(bad="white")
    finite = array[np.isfinite(array)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    return ax.imshow(array, cmap=cm, vmin=-vmax, vmax=vmax, interpolation="nearest")


def plot_weights(weight, mask, ax=None, title=None, patch: int | None = 100):
    """A weight matrix (out, in) with pruned weights empty (white); for a large matrix its top-left
    ``patch`` × ``patch`` corner. Returns the figure; ``ax.images[0]`` holds the plotted array."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4, 4))
    w = _masked(weight, mask)
    if w.ndim != 2:
        raise ValueError(
            f"plot_weights takes a (out, in) matrix, got shape {w.shape}; use plot_conv_filters for kernels"
        )
    if patch is not None:
        w = w[:patch, :patch]
    _imshow(ax, w)
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    return fig


def plot_input_tiles(weight, mask, num_units: int = 100, title=None, image_shape=(28, 28)):
    """LeNet-300-100's first layer as one 28×28 tile per hidden unit (the first ``num_units`` units)."""
    plt = _plt()
    w = _masked(weight, mask)[:num_units]
    cols = int(math.ceil(math.sqrt(len(w))))
    rows = int(math.ceil(len(w) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, rows * 0.6 + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(w):
            _imshow(ax, w[i].reshape(image_shape))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():  # a thin frame: a fully pruned unit is an empty square
                spine.set_color("0.8")
        else:
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def plot_conv_filters(weight, mask, title=None, max_filters: int = 64):
    """Convolution kernels (out, in, k, k) as a grid: row = output channel, column = input channel
    (at most ``max_filters`` of each); pruned taps empty."""
    plt = _plt()
    w = _masked(weight, mask)
    if w.ndim != 4:
        raise ValueError(f"plot_conv_filters takes (out, in, k, k) kernels, got shape {w.shape}")
    w = w[:max_filters, :max_filters]
    rows, cols = w.shape[0], w.shape[1]
    fig, axes = plt.subplots(rows, cols, figsize=(max(2, cols * 0.5), max(2, rows * 0.5)), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            axes[r, c].set_axis_off()
            _imshow(axes[r, c], w[r, c])
    if title:
        fig.suptitle(title)
    return fig


def _grid(blocks: np.ndarray, cols: int | None = None) -> tuple[np.ndarray, int, int]:
    """Blocks (n, h, w) laid out row by row on a grid of ``cols`` columns (about square by default),
    padded with NaN; returns (image, rows, cols)."""
    n, h, w = blocks.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    padded = np.full((rows * cols, h, w), np.nan, dtype=np.float32)
    padded[:n] = blocks
    image = padded.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    return image, rows, cols


def _kept_legend(ax, kept_label: str, removed_label: str):
    """A legend beside a black-and-white mask picture: black swatch for kept, white for removed."""
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor="black", label=kept_label),
                       Patch(facecolor="white", edgecolor="0.5", label=removed_label)],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _draw_grid_lines(ax, rows, cols, h, w):
    for r in range(1, rows):
        ax.axhline(r * h - 0.5, color="0.75", lw=0.4)
    for c in range(1, cols):
        ax.axvline(c * w - 0.5, color="0.75", lw=0.4)


def plot_frame(recorder: SparsityRecorder, frame: int, layer: str, patch: int | None = 100, ax=None,
               view: str | None = None, num_units: int = 100, image_shape=(28, 28)):
    """One recorded epoch of one layer, titled "Epoch k · compression N× · accuracy a %".

    ``view``: ``"matrix"`` (a fully connected layer's top-left ``patch`` × ``patch`` weights; the default
    for 2-D weights), ``"tiles"`` (its first ``num_units`` units as ``image_shape`` input tiles, e.g.
    LeNet-300-100's first layer) or ``"filters"`` (a convolution's kernels, row = output channel,
    column = input channel; the default for 4-D). Kept weights show their score (log α for SparseVD)
    where the recorder kept scores, else black; pruned ones are white. Draws into ``ax`` (a new figure
    when None) and returns the figure.
    """
    info = recorder.frames[frame]
    mask = recorder.mask(frame, layer)
    has_scores = info["layers"][layer]["score"] is not None
    values = recorder.score(frame, layer) if has_scores else np.ones(mask.shape, dtype=np.float32)
    view = view or ("filters" if mask.ndim == 4 else "matrix")
    if view not in ("matrix", "tiles", "filters"):
        raise ValueError(f"view must be 'matrix', 'tiles' or 'filters', got {view!r}")
    if (view == "filters") != (mask.ndim == 4):
        raise ValueError(f"view {view!r} does not fit layer {layer!r} of shape {mask.shape}: "
                         "'filters' is for convolutions, 'matrix' and 'tiles' for fully connected layers")
    if ax is None:
        ax = _plt().subplots(figsize=(4.4, 4.4))[1]
    shown = _masked(values, mask)
    if view == "matrix":
        shown = shown.reshape(shown.shape[0], -1)
        if patch is not None:
            shown = shown[:patch, :patch]
        rows = cols = None
        xlabel, ylabel = "input (column of the weight matrix)", "output unit (row)"
    elif view == "tiles":
        if shown.shape[1] != int(np.prod(image_shape)):
            raise ValueError(f"view 'tiles' needs {int(np.prod(image_shape))} inputs per unit for image_shape "
                             f"{tuple(image_shape)}; layer {layer!r} has {shown.shape[1]}")
        shown, rows, cols = _grid(shown[:num_units].reshape(-1, *image_shape))
        h, w = image_shape
        xlabel, ylabel = f"hidden units, each its {h} × {w} input weights", ""
    else:
        out_ch, in_ch, h, w = shown.shape
        if in_ch == 1:
            shown, rows, cols = _grid(shown[:, 0])
            xlabel, ylabel = f"{out_ch} filters ({h} × {w} taps each)", ""
        else:
            shown, rows, cols = _grid(shown.reshape(out_ch * in_ch, h, w), cols=in_ch)
            xlabel, ylabel = f"input channel ({in_ch})", f"output channel ({out_ch})"
    if has_scores:
        _imshow(ax, shown)
    else:
        import matplotlib

        cmap = matplotlib.colormaps["Greys"].with_extremes(bad="white")
        ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        _kept_legend(ax, "kept", "pruned")
    if rows is not None:
        _draw_grid_lines(ax, rows, cols, h, w)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(frame_title(info["epoch"], info["compression"], info["accuracy"]))
    return ax.figure


def sparsification_slider(recorder: SparsityRecorder, layer: str | None = None, patch: int | None = 100,
                          view: str | None = None, num_units: int = 100):
    """A slider over the recorded epochs above the picture of ``layer`` at that epoch.

    ``view`` and ``num_units`` as in :func:`plot_frame`. The picture is a PNG in an ``ipywidgets.Image``
    that each move of the slider redraws, so it works in any frontend without an interactive matplotlib
    backend. Returns the ``VBox``; ``box.figure``,
    ``box.slider`` and ``box.image`` are its parts. Without ipywidgets: the figure of the last epoch.
    """
    from bnn_teach.viz._png import figure_png, new_figure

    layer = layer or recorder.layer_names()[0]
    last = len(recorder.frames) - 1
    recorder.mask(last, layer)  # a clear error for an unknown layer or an empty recorder
    try:
        import ipywidgets as widgets
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        return plot_frame(recorder, last, layer, patch, view=view, num_units=num_units)
    fig = new_figure(figsize=(5.6, 4.4))
    fig.subplots_adjust(left=0.1, right=0.78)
    ax = fig.add_subplot()

    def draw(frame):
        ax.clear()
        plot_frame(recorder, frame, layer, patch, ax=ax, view=view, num_units=num_units)
        ax.title.set_fontsize(9)
        return figure_png(fig)

    image = widgets.Image(value=draw(last), format="png")
    slider = widgets.IntSlider(value=last, min=0, max=last, description="frame", continuous_update=False)
    slider.observe(lambda change: setattr(image, "value", draw(change["new"])), names="value")
    box = widgets.VBox([slider, image])
    box.figure, box.slider, box.image = fig, slider, image
    return box


def save_animation(recorder: SparsityRecorder, path, layer: str | None = None, patch: int | None = 100, fps: int = 4,
                   view: str | None = None, num_units: int = 100):
    """Save the recorded epochs of ``layer`` as an animation: ``.gif`` (Pillow) or ``.html`` (JavaScript).
    One frame per recorded epoch; ``view`` and ``num_units`` as in :func:`plot_frame`. Returns the path."""
    from matplotlib import animation

    plt = _plt()
    path = str(path)
    if not path.endswith((".gif", ".html")):
        raise ValueError(f"save_animation writes .gif or .html, got {path!r}")
    if not recorder.frames:
        raise ValueError("nothing recorded yet")
    layer = layer or recorder.layer_names()[0]
    recorder.mask(0, layer)  # a clear error for an unknown layer, before any drawing
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    fig.subplots_adjust(left=0.1, right=0.78)

    def draw(i):
        ax.clear()
        plot_frame(recorder, i, layer, patch, ax=ax, view=view, num_units=num_units)
        ax.title.set_fontsize(9)
        return ax.images

    anim = animation.FuncAnimation(fig, draw, frames=len(recorder.frames), blit=False)
    if path.endswith(".gif"):
        anim.save(path, writer=animation.PillowWriter(fps=fps))
    else:
        with open(path, "w") as f:
            f.write(anim.to_jshtml(fps=fps))
    plt.close(fig)
    return path


def plot_mu_sigma(layer, ax=None, max_points: int = 20000, seed: int = 0, title: str | None = None):
    r"""Scatter of :math:`\log|\theta|` against :math:`\log\sigma` with the pruning line
    :math:`\log\sigma = \log|\theta| + \mathrm{threshold}/2` (points above it are pruned). The default
    title gives the share of the layer's weights above the line."""
    plt = _plt()
    if not hasattr(layer, "log_alpha"):
        raise TypeError(f"plot_mu_sigma needs a SparseVD/ARD layer, got {type(layer).__name__}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.5, 4))
    log_mu = torch.log(layer.weight.detach().abs() + 1e-12).flatten().cpu().numpy()
    log_sigma = (0.5 * layer.log_sigma2.detach()).flatten().cpu().numpy()
    pruned = ~_sp.weight_mask(layer).flatten().cpu().numpy()
    share = 100.0 * pruned.mean()
    if len(log_mu) > max_points:
        keep = np.random.default_rng(seed).choice(len(log_mu), max_points, replace=False)
        log_mu, log_sigma, pruned = log_mu[keep], log_sigma[keep], pruned[keep]
    ax.scatter(log_mu[~pruned], log_sigma[~pruned], s=2, alpha=0.5, label="kept")
    ax.scatter(log_mu[pruned], log_sigma[pruned], s=2, alpha=0.5, label="pruned")
    xs = np.linspace(log_mu.min(), log_mu.max(), 2)
    ax.plot(xs, xs + layer.threshold / 2, "k--", label=f"log α = {layer.threshold:g}")
    ax.set_xlabel("log |θ|")
    ax.set_ylabel("log σ")
    ax.set_title(title or f"Each weight's mean and sd: {share:.1f} % above the line are pruned", fontsize=9)
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_log_alpha_hist(model, bins: int = 60):
    """One histogram of ``log_alpha`` per SparseVD/ARD layer, with the threshold marked."""
    plt = _plt()
    layers = [(n, m) for n, m in _sp.prunable_layers(model) if hasattr(m, "log_alpha")]
    if not layers:
        raise ValueError("the model has no SparseVD/ARD layers")
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.8), squeeze=False)
    for ax, (name, layer) in zip(axes.flat, layers):
        ax.hist(layer.log_alpha.detach().flatten().cpu().numpy(), bins=bins, label="weights")
        ax.axvline(layer.threshold, color="k", ls="--", label=f"threshold log α = {layer.threshold:g}")
        ax.set_title(f"layer {name}")
        ax.set_xlabel("log α")
        ax.set_ylabel("number of weights")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_sparsity_bars(tables: dict, ax=None, title: str = "Weights removed per layer"):
    """Grouped bars of per-layer sparsity (%) for several methods: ``{"SparseVD": sparsity_table(m), ...}``."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.2))
    methods = list(tables)
    layers = [row["layer"] for row in tables[methods[0]]]
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        values = [row["sparsity"] for row in tables[method]]
        ax.bar(np.arange(len(layers)) + i * width, values, width, label=method)
    ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, [f"layer {n}" for n in layers])
    ax.set_ylabel("sparsity (% of the layer's weights)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_pruning_curve(curves: dict, ax=None):
    """Test error against the percentage of weights removed, one line per method:
    ``{"BBB, by |mu|/sigma": sparsity.pruning_curve(model, data, "snr"), ...}``."""
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.2))
    for label, curve in curves.items():
        ax.plot([row["removed %"] for row in curve], [row["error %"] for row in curve], marker="o", label=label)
    ax.set_xlabel("weights removed (%)")
    ax.set_ylabel("test error (%)")
    ax.set_title("What pruning costs in accuracy")
    ax.legend(fontsize=8)
    return fig


def plot_input_pixels(kept, image_shape=(28, 28), title: str = "Input pixels the first layer still reads", ax=None):
    """Which inputs a pruned first layer still reads: ``kept`` (one bool per input, e.g.
    ``weight_mask(model.fc1).any(0)``) as an image, kept pixels black; the count in the legend."""
    import matplotlib

    plt = _plt()
    kept = np.asarray(kept, dtype=bool).ravel()
    if kept.size != int(np.prod(image_shape)):
        raise ValueError(f"{kept.size} inputs do not make an image of shape {tuple(image_shape)}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.6, 3.6))
    ax.imshow(kept.reshape(image_shape), cmap=matplotlib.colormaps["Greys"], vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")
    ax.set_title(title, fontsize=10)
    _kept_legend(ax, f"read ({int(kept.sum())})", f"removed ({int((~kept).sum())})")
    fig.tight_layout()
    return fig
