"""MCMC diagnostics (lecture 6): traces, autocorrelation, effective sample size, 2-D samples over a density."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["autocorrelation", "effective_sample_size", "plot_traces", "plot_autocorrelation", "plot_samples_2d"]


def _np1(x):
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    if x.ndim != 1 or len(x) < 4:
        raise ValueError(f"a chain must be 1-D with at least 4 samples, got shape {x.shape}")
    return x.astype(np.float64)


def autocorrelation(chain, max_lag: int | None = None) -> np.ndarray:
    """Normalised autocorrelation of a 1-D chain at lags 0..max_lag (by FFT)."""
    x = _np1(chain)
    n = len(x)
    max_lag = n - 1 if max_lag is None else min(int(max_lag), n - 1)
    x = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, size)
    acov = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1] / n
    if acov[0] == 0:
        raise ValueError("the chain is constant: autocorrelation is undefined")
    return acov / acov[0]


def effective_sample_size(chain) -> float:
    r"""ESS :math:`= n / (1 + 2\sum_{t\ge1} \rho_t)`, summing autocorrelations in pairs until a pair's sum
    turns negative (Geyer's initial positive sequence)."""
    x = _np1(chain)
    rho = autocorrelation(x)
    total = 0.0
    for t in range(1, len(rho) - 1, 2):
        pair = rho[t] + rho[t + 1]
        if pair < 0:
            break
        total += pair
    return float(len(x) / (1.0 + 2.0 * total))


def plot_traces(samples: dict, axes=None):
    """One trace per named chain: ``{"theta1": tensor (S,), ...}``; ESS in each title."""
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 1.8 * len(names)), squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], names):
        chain = _np1(samples[name])
        ax.plot(chain, lw=0.7)
        ax.set_ylabel(name)
        ax.set_title(f"{name} · ESS {effective_sample_size(chain):.0f} of {len(chain)}", fontsize=9)
    axes[-1, 0].set_xlabel("sample")
    fig.tight_layout()
    return fig


def plot_autocorrelation(samples: dict, max_lag: int = 100, ax=None):
    """Autocorrelation against lag for each named chain."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3))
    for name, chain in samples.items():
        ax.plot(autocorrelation(chain, max_lag), label=name)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("lag")
    ax.set_ylabel("autocorrelation")
    ax.legend(fontsize=8)
    return fig


def plot_samples_2d(samples, log_density=None, extent=None, grid: int = 120, ax=None, title=None):
    """2-D samples (S, 2) as points over the contours of an (unnormalised) ``log_density(points (M, 2)) -> (M,)``.

    The contours are drawn at 10 %, 30 %, 50 %, 70 % and 90 % of the density's peak in ``extent``.
    """
    import matplotlib.pyplot as plt

    s = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"samples must have shape (S, 2), got {s.shape}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.5, 4))
    if log_density is not None:
        if extent is None:
            lo, hi = s.min(0), s.max(0)
            pad = 0.2 * (hi - lo)
            extent = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
        xs, ys = np.linspace(extent[0], extent[1], grid), np.linspace(extent[2], extent[3], grid)
        gx, gy = np.meshgrid(xs, ys)
        pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float64)
        logp = log_density(pts).detach().cpu().numpy().reshape(grid, grid)
        contours = ax.contour(gx, gy, np.exp(logp - logp.max()), levels=[0.1, 0.3, 0.5, 0.7, 0.9], cmap="viridis")
        ax.plot([], [], color=contours.get_cmap()(0.5), label="density: 10, 30, ..., 90 % of its peak")
    ax.scatter(s[:, 0], s[:, 1], s=3, alpha=0.3, color="tab:red", label=f"{len(s)} samples")
    ax.set_xlabel("θ1")
    ax.set_ylabel("θ2")
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    return fig
