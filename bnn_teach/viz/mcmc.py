"""MCMC figures (lecture 6): traces, autocorrelation, effective sample size, 2-D samples over a density,
sample histograms against an exact posterior, step-size schedules, variable selection, ensemble growth."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["autocorrelation", "effective_sample_size", "plot_traces", "plot_autocorrelation", "plot_samples_2d",
           "plot_marginals", "plot_step_sizes", "plot_variable_selection", "plot_ensemble_size"]


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


def plot_traces(samples: dict, axes=None, title: str | None = None, xlabel: str = "sample"):
    """One trace per named chain: ``{"theta1": tensor (S,), ...}``; ESS in each panel's title, ``title`` above
    them all, ``xlabel`` under the last panel."""
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 1.8 * len(names) + (0.4 if title else 0)), squeeze=False,
                             sharex=True)
    for ax, name in zip(axes[:, 0], names):
        chain = _np1(samples[name])
        ax.plot(chain, lw=0.7, label=name)
        ax.set_ylabel(name)
        ax.set_title(f"{name} · ESS {effective_sample_size(chain):.0f} of {len(chain)}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_autocorrelation(samples: dict, max_lag: int = 100, ax=None, title: str | None = None,
                         xlabel: str = "lag (samples)"):
    """Autocorrelation against lag for each named chain."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3))
    for name, chain in samples.items():
        ax.plot(autocorrelation(chain, max_lag), label=name)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("autocorrelation")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
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


def plot_marginals(samples: dict, mean: float, std: float, bins: int = 60, ax=None, title: str | None = None,
                   xlabel: str = "θ"):
    """Histograms of 1-D samples, ``{"label": tensor (S,), ...}``, over the exact Gaussian posterior
    ``N(mean, std²)``; each label gets its samples' variance as a multiple of ``std²``."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.2))
    chains = {label: _np1(chain) for label, chain in samples.items()}
    lo = min([mean - 4.5 * std] + [float(c.min()) for c in chains.values()])
    hi = max([mean + 4.5 * std] + [float(c.max()) for c in chains.values()])
    edges = np.linspace(lo, hi, bins + 1)
    for label, chain in chains.items():
        ratio = chain.var(ddof=1) / std**2
        ax.hist(chain, bins=edges, density=True, histtype="step", lw=1.5,
                label=f"{label}: variance {ratio:.2f} × exact")
    x = np.linspace(lo, hi, 400)
    ax.plot(x, np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi)), color="k", lw=1.5, ls="--",
            label="exact posterior")
    ax.set_ylim(0, 1.35 * ax.get_ylim()[1])  # room for the legend above the curves
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title or "samples against the exact posterior", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def plot_step_sizes(lrs, sampling=None, ax=None, title: str | None = None):
    """A step-size schedule, one ``lr`` per sampler step; ``sampling`` (booleans, one per step) marks the
    steps whose states are kept as samples."""
    import matplotlib.pyplot as plt

    lrs = np.asarray(lrs, dtype=float)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 2.8))
    steps = np.arange(len(lrs))
    ax.plot(steps, lrs, color="tab:blue", lw=1.2, label="step size")
    if sampling is not None:
        keep = np.asarray(sampling, dtype=bool)
        if keep.shape != lrs.shape:
            raise ValueError(f"sampling must have one value per step ({len(lrs)}), got shape {keep.shape}")
        ax.fill_between(steps, 0, lrs.max() * 1.05, where=keep, color="tab:orange", alpha=0.25, lw=0,
                        label="sampling phase (states kept)")
    ax.set_ylim(0, lrs.max() * 1.3)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:.1e}" if value else "0"))  # no offset
    ax.set_xlabel("sampler step")
    ax.set_ylabel("step size lr")
    ax.set_title(title or "step-size schedule", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def plot_variable_selection(estimates: dict, true_beta, threshold: float = 0.1, inclusion=None,
                            title: str | None = None):
    """Posterior means of many regression coefficients, one panel per method (``{"SGLD": tensor (p,), ...}``),
    with the true non-zero coefficients marked and the band ``|beta| <= threshold`` shaded. Each panel's
    title counts the false positives: true zeros whose estimate lies outside the band. ``inclusion``
    (a tensor (p,) of probabilities, e.g. SGLD-SA's) adds a last panel of inclusion probabilities."""
    import matplotlib.pyplot as plt

    truth = _np_any(true_beta)
    nonzero = np.flatnonzero(truth != 0)
    rows = len(estimates) + (inclusion is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(7, 1.9 * rows + 0.4), sharex=True, squeeze=False)
    index = np.arange(len(truth))
    for ax, (label, est) in zip(axes[:, 0], estimates.items()):
        est = _np_any(est)
        if est.shape != truth.shape:
            raise ValueError(f"{label}: {est.shape[0] if est.ndim else 0} estimates for {len(truth)} coefficients")
        false_pos = int((np.abs(est) > threshold)[truth == 0].sum())
        ax.axhspan(-threshold, threshold, color="0.85", label=f"|β| ≤ {threshold}")
        ax.plot(index, est, ".", ms=3, color="tab:blue", label="posterior mean")
        ax.plot(nonzero, truth[nonzero], "*", ms=10, color="tab:red", label="true non-zero β")
        ax.set_ylabel("β_j")
        ax.set_title(f"{label}: {false_pos} false positives among the {int((truth == 0).sum())} zeros", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", ncol=3)
    if inclusion is not None:
        ax = axes[-1, 0]
        rho = _np_any(inclusion)
        ax.plot(index, rho, ".", ms=3, color="tab:green", label="inclusion probability ρ_j")
        ax.plot(nonzero, rho[nonzero], "*", ms=10, color="tab:red", label="true non-zero β")
        ax.axhline(0.5, color="k", lw=0.6, ls=":", label="ρ = 0.5")
        ax.set_ylim(-0.05, 1.3)
        ax.set_ylabel("ρ_j")
        ax.set_title("SGLD-SA: estimated probability that β_j is in the slab", fontsize=9)
        ax.legend(fontsize=7, loc="upper right", ncol=3)
    axes[-1, 0].set_xlabel("coefficient index j")
    fig.suptitle(title or "variable selection: posterior means of the coefficients", fontsize=10)
    fig.tight_layout()
    return fig


def plot_ensemble_size(sizes, curves: dict, references: dict | None = None, ylabel: str = "test NLL (nats)",
                       ax=None, title: str | None = None):
    """A metric of an ensemble of the first ``k`` samples against ``k``: ``curves = {"SGLD ensemble": [...]}``
    (one value per entry of ``sizes``), with single-network ``references = {"SGD": value}`` as flat lines."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3))
    sizes = np.asarray(sizes)
    for label, values in curves.items():
        values = np.asarray(values, dtype=float)
        if values.shape != sizes.shape:
            raise ValueError(f"{label}: {len(values)} values for {len(sizes)} ensemble sizes")
        ax.plot(sizes, values, marker="o", ms=3, label=label)
    for (label, value), style in zip((references or {}).items(), ["--", ":", "-."] * 3):
        ax.axhline(float(value), color="k", ls=style, lw=1, label=label)
    ax.set_xlabel("number of samples in the ensemble")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel} against the ensemble's size", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _np_any(x):
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)
