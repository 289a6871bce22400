"""Render every figure of :mod:`bnn_teach.viz` to PNG files in a folder, to look them over.

    bnn-teach gallery OUT_DIR        (or: python -m bnn_teach.viz.gallery OUT_DIR)

Small, seeded inputs (the embedded MNIST subset, toy data): 204 s on the 2-core build machine on a
day it ran 2–3× slower than usual, most of it the SparseVD fit and the 40,000 SGLD steps;
``BNN_TEACH_FAST=1`` shrinks both.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

__all__ = ["render_all"]


def render_all(out_dir, epochs: int = 8, progress: bool = False) -> list[Path]:
    """Write one PNG per figure (and the sparsification GIF) into ``out_dir``, and ``summary.json``: the
    SparseVD network's test accuracy, compression and out-of-distribution AUROC. Returns the paths.
    With ``progress``: a bar for each long step, and each file's path as it is written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    import bnn_teach as bt
    from bnn_teach import viz

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name):
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
        if progress:
            print(path, flush=True)

    small = bt.utils.fast_mode()  # CI: fewer tiles and sampler steps, the same figures
    bt.utils.set_seed(0)
    # All 10,000 embedded images also in FAST mode: on 2,000 the KL of 266,200 weights outweighs the data and
    # SparseVD prunes the network into a broken one (test accuracy 0.79 -> 0.16 over 8 epochs).
    X, y = bt.data.load_mnist("train", subset=10_000)
    Xt, yt = bt.data.load_mnist("test", subset=1000)
    model = bt.models.lenet300("svdo")
    recorder = viz.SparsityRecorder()
    history = bt.train.fit(
        model,
        (X, y),
        epochs,
        torch.optim.Adam(model.parameters(), 1e-3),
        test_data=(Xt, yt),
        kl_weight=bt.objectives.linear_warmup(max(1, epochs // 2)),
        callbacks=[recorder],
        progress=progress,
    )
    first = model.fc1
    save(viz.plot_history(history), "history")
    save(viz.plot_frame(recorder, len(recorder.frames) - 1, "fc1"), "weights_patch")
    title = viz.frame_title(epochs, bt.sparsity.compression_ratio(model), history[-1]["test_acc"])
    save(viz.plot_input_tiles(first.weight.detach().numpy(), bt.sparsity.weight_mask(first).numpy(),
                              num_units=36 if small else 100, title=title), "input_tiles")
    conv = bt.models.lenet5("svdo")
    kernels, kept = conv.conv2.weight.detach().numpy()[:12, :8], bt.sparsity.weight_mask(conv.conv2).numpy()[:12, :8]
    save(viz.plot_conv_filters(kernels, kept, title="LeNet-5 conv2 filters (untrained)"), "conv_filters")
    save(viz.plot_mu_sigma(model.fc2), "mu_sigma")
    save(viz.plot_log_alpha_hist(model), "log_alpha_hist")
    tables = {"SparseVD": bt.sparsity.sparsity_table(model),
              "magnitude": bt.sparsity.sparsity_table(
                  bt.sparsity.prune(model, "magnitude", fraction=1 - 1 / bt.sparsity.compression_ratio(model)))}
    save(viz.plot_sparsity_bars(tables), "sparsity_bars")
    save(viz.plot_pruning_curve({"SparseVD model, by |mean weight|": bt.sparsity.pruning_curve(
        model, (Xt, yt), "magnitude", fractions=(0.0, 0.9, 0.97, 0.99))}), "pruning_curve")
    written.append(Path(viz.save_animation(recorder, out / "sparsification.gif", layer="fc2")))
    if progress:
        print(written[-1], flush=True)
    save(viz.experiment_figure("sparsevd-lenet300 (gallery)", history, model), "experiment")

    probs = bt.predict.mc_predict(model, Xt, num_samples=10)
    save(viz.plot_reliability(probs, yt), "reliability")
    noise = torch.rand(300, 1, 28, 28)
    noise_probs = bt.predict.mc_predict(model, noise, num_samples=10)
    save(viz.plot_uncertainty_hist(probs, noise_probs, "total"), "in_vs_out")
    entropy = torch.cat([bt.uncertainty.decompose(probs).total, bt.uncertainty.decompose(noise_probs).total])
    summary = {"test accuracy": bt.metrics.accuracy(probs, yt), "compression": bt.sparsity.compression_ratio(model),
               "auroc, test digits against uniform noise by predictive entropy": bt.metrics.auroc(
                   entropy, torch.cat([torch.zeros(len(Xt)), torch.ones(len(noise))]))}
    save(viz.plot_certainty_grid(Xt, probs, k=5), "certainty_grid")

    Xm, ym = bt.data.two_moons(200, noise=0.1, seed=0)
    moons = torch.nn.Sequential(bt.nn.BayesLinear(2, 32), torch.nn.ReLU(), bt.nn.BayesLinear(32, 2))
    bt.train.fit(moons, (Xm, ym), 150, torch.optim.Adam(moons.parameters(), 1e-2), batch_size=50, progress=False)
    save(viz.plot_uncertainty_map(moons, Xm, ym, "epistemic"), "moons_epistemic")

    target = bt.vi.mixture_target()
    fits = {"KL(q || p), from 0.5": bt.vi.fit_gaussian(target, "reverse", init_mean=0.5),
            "KL(q || p), from -0.5": bt.vi.fit_gaussian(target, "reverse", init_mean=-0.5),
            "KL(p || q)": bt.vi.fit_gaussian(target, "forward")}
    save(viz.plot_gaussian_fits(target, fits), "gaussian_fits")

    g = torch.Generator().manual_seed(0)
    estimates = {label: bt.diagnostics.gradient_samples(lambda w: w**2, 1.0, 1.0, 20_000, estimator, generator=g)
                 for label, estimator in [("score function", "score"), ("reparametrization", "reparam")]}
    save(viz.plot_gradient_estimators(estimates, true_gradient=2.0), "gradient_estimators")
    variances = {}
    for method, lrt in [("weight sampling", False), ("LRT", True)]:
        for layer in bt.nn.bayesian_modules(moons):
            layer.local_reparam = lrt
        batches = [(Xm[i:i + 50], ym[i:i + 50]) for i in range(0, 200, 50)] * 5
        variances[method] = bt.diagnostics.gradient_variance(
            moons, torch.nn.functional.cross_entropy, batches,
            {n: p for n, p in moons.named_parameters() if n.endswith(("weight_mu", "weight_rho"))})
    save(viz.plot_gradient_variance(variances), "gradient_variance")

    explorer = viz.RegressionExplorer(num_epochs=100 if small else 300)
    save(explorer.figure, "regression_explorer")

    # SGLD on Welling & Teh's mixture, over the exact (unnormalised) posterior
    g = torch.Generator().manual_seed(2)
    data = torch.where(torch.rand(100, generator=g) < 0.5, 0.0, 1.0) + math.sqrt(2) * torch.randn(100, generator=g)

    def log_post(theta):
        t1, t2 = theta[:, :1], theta[:, 1:]
        x = data.to(theta.dtype)
        ll = torch.logaddexp(-(x - t1) ** 2 / 4, -(x - t1 - t2) ** 2 / 4).sum(1)
        return ll - t1[:, 0] ** 2 / 20 - t2[:, 0] ** 2 / 2

    # one chain, mini-batches of 10, every 10th step kept after 2,000 steps of burn-in: it travels the
    # whole ridge between the mixture's two explanations many times (ESS in the trace titles); with a
    # finite step size its samples spread a little wider than the exact posterior's contours
    theta = torch.zeros(1, 2, requires_grad=True)
    opt = bt.sgmcmc.SGLD([theta], lr=5e-3, num_data=100)
    chain = []
    for step in tqdm(range(10_000 if small else 40_000), desc="SGLD chain", unit="step", disable=not progress):
        batch = data[torch.randint(0, 100, (10,))]
        t1, t2 = theta[:, :1], theta[:, 1:]
        nll = -torch.logaddexp(-(batch - t1) ** 2 / 4, -(batch - t1 - t2) ** 2 / 4).mean()
        opt.zero_grad()
        (nll + (t1**2 / 20 + t2**2 / 2).sum() / 100).backward()  # the ELBO's scaling: prior / N
        opt.step()
        if step >= 2000 and step % 10 == 0:
            chain.append(theta.detach()[0].clone())
    chain = torch.stack(chain)
    save(viz.plot_samples_2d(chain, log_post, extent=(-1.5, 2.5, -3, 3),
                             title="SGLD on Welling & Teh's mixture: posterior of (θ1, θ2)"), "sgld_mixture")
    save(viz.plot_traces({"theta1": chain[:, 0], "theta2": chain[:, 1]}), "traces")
    save(viz.plot_autocorrelation({"theta1": chain[:, 0], "theta2": chain[:, 1]}), "autocorrelation")
    summary_path = out / "summary.json"   # what the SparseVD figures show, to check they show a working network
    summary_path.write_text(json.dumps({k: round(float(v), 4) for k, v in summary.items()}, indent=1) + "\n")
    written.append(summary_path)
    return written


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: bnn-teach gallery OUT_DIR", file=sys.stderr)
        return 2
    render_all(argv[0], progress=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
