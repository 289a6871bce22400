"""The seven experiments ``bnn-teach reproduce`` runs, the papers' rows they are printed beside, and their recipes.

Each experiment takes a :class:`~bnn_teach.reproduce.runs.Context` and returns ``(ours, history, model)``;
:func:`bnn_teach.reproduce.run` runs it. :func:`sample_linear_regression` is the sgld-sa experiment's
sampler (lecture 6 calls it).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from bnn_teach import data, distributed, models, objectives, sparsity
from bnn_teach._checks import check_positive
from bnn_teach.nn import bayesianize
from bnn_teach.priors import GaussianPrior, ScaleMixturePrior
from bnn_teach.reproduce.runs import Context, Recipe, UsageError, train_resumable
from bnn_teach.sgmcmc import SGHMC, SGLD, SGLDSA
from bnn_teach.train import History, evaluate
from bnn_teach.utils import set_seed

__all__ = ["EXPERIMENTS", "PAPER", "RECIPES", "describe", "sample_linear_regression"]

PAPER = {
    "sparsevd-lenet300": {"source": "Molchanov, Ashukha & Vetrov 2017, Table 1", "error %": 1.92, "compression": 68,
                          "sparsity % per layer": [98.9, 97.2, 62.0]},
    "sparsevd-lenet5": {"source": "Molchanov, Ashukha & Vetrov 2017, Table 1", "error %": 0.75, "compression": 280,
                        "sparsity % per layer": [67.0, 98.0, 99.8, 95.0]},
    "bbb-mnist": {"source": "Blundell et al. 2015, Table 1 (headline only; per-width rows not checked here)",
                  "error % (scale mixture)": 1.3},
    "random-labels": {"source": "Molchanov, Ashukha & Vetrov 2017, section 5.3",
                      "claim": "SparseVD removes all weights on random labels; a deterministic net memorises them"},
    "sgld-sa": {"source": "Deng et al. 2019, large-p-small-n simulation",
                "claim": "SGLD-SA recovers beta1..3 and shrinks the 997 zeros; SGLD/SGHMC do not"},
    "compare-pruning": {"source": "Molchanov et al. 2017 (SparseVD) vs magnitude and BBB signal-to-noise pruning",
                        "claim": "SparseVD compresses most at matched accuracy"},
    "distributed": {"source": "Webb et al. (poster); Xu et al. 2014; Hasenclever et al. 2017",
                    "claim": "the posterior server is competitive with non-distributed training on MNIST "
                             "(the poster gives no table)"},
}


def sample_linear_regression(method: str, X: torch.Tensor, y: torch.Tensor, num_steps: int, batch_size: int = 50,
                             lr: float = 5e-4, temperature: float = 0.1, noise_var: float = 3.0,
                             prior_sigma: float = 1.0, seed: int = 1):
    """Sample the coefficients of ``y = X beta + noise`` with ``"sgld"``, ``"sghmc"`` or ``"sgld-sa"``.

    SGLD and SGHMC use a ``N(0, prior_sigma^2)`` prior and the known ``noise_var``; SGLD-SA its
    spike-and-slab prior and learns sigma (Deng et al. 2019's large-p-small-n set-up). Returns
    ``(posterior mean over the second half of the steps, optimiser, trace)`` where ``trace`` holds
    ``(step, beta[:3], sigma)`` every 100 steps.
    """
    if method not in ("sgld", "sghmc", "sgld-sa"):
        raise ValueError(f"method must be 'sgld', 'sghmc' or 'sgld-sa', got {method!r}")
    check_positive("num_steps", num_steps, integer=True)
    n_data, p = X.shape
    torch.manual_seed(seed)
    beta = torch.zeros(p, requires_grad=True)
    if method == "sgld-sa":
        opt = SGLDSA([beta], lr=lr, num_data=n_data, temperature=temperature)
    elif method == "sgld":
        opt = SGLD([beta], lr=lr, num_data=n_data, temperature=temperature)
    else:  # SGHMC's effective step is lr / friction: a tenth of the SGLD step keeps it stable
        opt = SGHMC([beta], lr=lr / 10, num_data=n_data, friction=0.1, temperature=temperature)
    total, count, trace = torch.zeros(p), 0, []
    for step in range(num_steps):
        idx = torch.randperm(n_data)[:batch_size]
        resid = y[idx] - X[idx] @ beta
        if method == "sgld-sa":
            loss = (resid**2).mean() / (2 * opt.sigma**2)
        else:
            loss = (resid**2).mean() / (2 * noise_var) + (beta**2).sum() / (2 * prior_sigma**2 * n_data)
        opt.zero_grad()
        loss.backward()
        if method == "sgld-sa":
            opt.step(sse=float((resid.detach() ** 2).sum()), batch_size=len(idx))
        else:
            opt.step()
        if step >= num_steps // 2:
            total += beta.detach()
            count += 1
        if step % 100 == 0:
            trace.append((step, beta.detach()[:3].tolist(), getattr(opt, "sigma", math.sqrt(noise_var))))
    return total / count, opt, trace


def _mnist(ctx: Context, train_subset=None, test_subset=None):
    root_note = data.mnist_source()
    X, y = data.load_mnist("train", subset=train_subset if not ctx.fast else min(train_subset or 2000, 2000))
    if ctx.train_size is not None:  # the first N images, as in code that holds the last 10,000 out for validation
        if ctx.train_size > len(X):
            raise UsageError(f"--train-size {ctx.train_size} is more than the {len(X)} training images available "
                             f"here ({'FAST mode' if ctx.fast else root_note}); ask for at most {len(X)}")
        X, y = X[:ctx.train_size], y[:ctx.train_size]
    Xt, yt = data.load_mnist("test", subset=test_subset if not ctx.fast else min(test_subset or 1000, 1000))
    ctx.notes.append(f"MNIST from {root_note}: {len(X)} train / {len(Xt)} test images")
    return (X, y), (Xt, yt)


def _linear_decay(optimizer, num_epochs, floor: float = 0.0, hold: float = 0.0):
    """Learning rate held for the first ``hold`` fraction of ``num_epochs``, then decayed linearly to
    ``floor`` times its initial value at ``num_epochs``."""
    start = hold * num_epochs

    def factor(epoch):
        frac = max(0.0, epoch - start) / max(num_epochs - start, 1e-12)
        return max(floor, 1.0 - (1.0 - floor) * frac)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _summary(model, test_data) -> dict:
    table = sparsity.sparsity_table(model)
    acc = evaluate(model, test_data)["accuracy"]
    return {"error %": round(100 * (1 - acc), 2), "compression": round(sparsity.compression_ratio(model), 1),
            "sparsity % per layer": [round(r["sparsity"], 1) for r in table]}


def _center(train_data, test_data):
    """Subtract the mean training image from both sets (the paper code's MNIST reader does)."""
    mean_image = train_data[0].mean(0, keepdim=True)
    return (train_data[0] - mean_image, train_data[1]), (test_data[0] - mean_image, test_data[1])


def _paper_init_(model):
    """The paper code's initialisation: fully connected means ~ N(0, 0.01^2) (Lasagne's ``init.Normal()``),
    convolution means Glorot-uniform, biases 0; ``log_sigma2`` stays at -10."""
    for _, layer in sparsity.prunable_layers(model):
        if layer.weight.dim() == 2:
            nn.init.normal_(layer.weight, 0.0, 0.01)
        else:
            nn.init.xavier_uniform_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def _sparsevd(ctx: Context, builder, name: str, lr_hold: float):
    """SparseVD with the paper code's recipe (bayesgroup/variational-dropout-sparsifies-dnn): inputs minus the
    mean training image, :func:`_paper_init_`, batch 100, Adam, ``train_clip=True``, KL weight 0 for the first
    1/40 of training and then raised linearly over the next 3/40 (epochs 5-20 of 200), learning rate held for
    ``lr_hold`` of training and then decayed linearly to 0, threshold 3."""
    lr = ctx.lr
    train_data, test_data = _center(*_mnist(ctx))
    epochs = ctx.num_epochs
    set_seed(ctx.seed)
    model = builder("svdo", train_clip=True)
    with torch.no_grad():
        _paper_init_(model)
    model = model.to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = _linear_decay(optimizer, epochs, ctx.lr_floor, hold=lr_hold)
    kl_weight = objectives.linear_warmup(max(1, 3 * epochs // 40), delay=epochs // 40)
    recorder = _frames_recorder(model)
    history = train_resumable(ctx, name, model, optimizer, train_data, test_data, epochs,
                              kl_weight=kl_weight, scheduler=scheduler, recorder=recorder)
    ctx.frames = recorder.to_dict()
    ours = _summary(model, test_data)
    first = sparsity.prunable_layers(model)[0][1]
    if first.weight.dim() == 2:  # which input pixels any unit of the first layer still reads
        ours["input pixels kept"] = sparsity.weight_mask(first).any(0).int().tolist()
    ours.update(epochs=epochs, lr=lr, lr_hold=lr_hold, lr_floor=ctx.lr_floor, train_images=len(train_data[0]),
                seconds=round(ctx.train_seconds[name], 1),
                csr_bytes=sparsity.storage_bytes(model, "csr"), dense_bytes=sparsity.storage_bytes(model, "dense"))
    return ours, history, model


def _frames_recorder(model):
    """What a recorded run keeps of its sparsification (masks only, ~64 frames): LeNet-300-100's first 100
    input tiles, or LeNet-5's two convolutions' kernels."""
    from bnn_teach.viz import SparsityRecorder

    layers = [name for name, layer in sparsity.prunable_layers(model) if layer.weight.dim() == 4]
    if layers:
        return SparsityRecorder(max_frames=64, layers=layers, scores=False)
    return SparsityRecorder(max_frames=64, layers=[sparsity.prunable_layers(model)[0][0]], max_units=100,
                            scores=False)


def sparsevd_lenet300(ctx: Context):
    """SparseVD LeNet-300-100 on MNIST, the paper's recipe (200 epochs; Table 1: 68x at 1.92 % error).

    The learning rate is held for 100 epochs, then decays linearly (the paper code's ``lr_linear``)."""
    return _sparsevd(ctx, models.lenet300, "sparsevd-lenet300", lr_hold=0.5)


def sparsevd_lenet5(ctx: Context):
    """SparseVD LeNet-5-Caffe on MNIST (200 epochs on a GPU, 20 on a CPU; Table 1: 280x at 0.75 % error).

    Learning rate linearly to 0 (the paper code's ``lr_linear_to0``). The paper trains 200 epochs (a GPU
    run); on 2 CPU cores the default is a documented 20-epoch schedule (same recipe, compressed in time)."""
    return _sparsevd(ctx, models.lenet5, "sparsevd-lenet5", lr_hold=0.0)


def bbb_mnist(ctx: Context):
    """Bayes by Backprop MLP 784-400-400-10, Gaussian vs scale-mixture prior, and signal-to-noise pruning (50 epochs).

    The pruning curve is the test error against the fraction of weights removed by |mu|/sigma."""
    train_data, test_data = _mnist(ctx)
    epochs = ctx.num_epochs
    priors = {"gaussian": GaussianPrior(1.0),
              "scale mixture": ScaleMixturePrior(pi=0.5, sigma1=math.exp(-0), sigma2=math.exp(-6))}
    ours, histories, curve_model = {}, {}, None
    for label, prior in priors.items():
        set_seed(ctx.seed)
        model = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(784, 400)), ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(400, 400)), ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(400, 10)),
        ]))
        bayesianize(model, "bbb", prior=prior, init_rho=-5.0).to(ctx.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        tag = "bbb-" + label.replace(" ", "-")
        histories[label] = train_resumable(ctx, tag, model, optimizer, train_data, test_data, epochs)
        ours[f"error % ({label})"] = round(100 * (1 - evaluate(model, test_data)["accuracy"]), 2)
        curve_model = model
    ours["snr pruning (scale mixture)"] = sparsity.pruning_curve(curve_model, test_data, "snr")
    ours["epochs"] = epochs
    return ours, histories["scale mixture"], curve_model


def random_labels(ctx: Context):
    """SparseVD vs a deterministic LeNet-300-100 on 10,000 MNIST images with shuffled labels (100 epochs)."""
    (X, y), _ = _mnist(ctx, train_subset=10_000)
    y_random = data.random_labels(y, seed=ctx.seed)
    epochs = ctx.num_epochs
    results, history = {}, None
    for flavour in ("deterministic", "svdo"):
        set_seed(ctx.seed)
        model = models.lenet300(flavour).to(ctx.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        kl = objectives.linear_warmup(max(1, epochs // 10)) if flavour == "svdo" else 0.0
        h = train_resumable(ctx, f"random-labels-{flavour}", model, optimizer, (X, y_random), None, epochs,
                            kl_weight=kl)
        results[flavour] = {"train accuracy %": round(100 * evaluate(model, (X, y_random))["accuracy"], 1),
                            "compression": round(sparsity.compression_ratio(model), 1)}
        history = h if flavour == "svdo" else history
    results["epochs"] = epochs
    return results, history, None


def sgld_sa(ctx: Context):
    """SGLD, SGHMC and SGLD-SA on Deng et al.'s large-p-small-n regression (n=100, p=1000; 10,000 steps, 5 data seeds).

    Reports posterior means after burn-in, false positives among the 997 zeros (|beta_j| > 0.1) and the
    test MSE. ``--epochs N`` runs 100 N sampler steps (at least 200)."""
    steps = _sgld_sa_steps(ctx)
    seeds = range(5) if not ctx.fast else range(1)
    rows, history = [], History()
    for seed in seeds:
        X, y, beta, X_test, y_test = data.large_p_small_n(seed=seed, num_test=500)
        for kind in ("sgld", "sghmc", "sgld-sa"):
            est, opt, trace = sample_linear_regression(kind, X, y, steps, seed=ctx.seed + 1)
            if kind == "sgld-sa" and seed == seeds[0]:
                for step, b3, sigma in trace:
                    history.append({"epoch": step, "sigma": sigma, "beta1": b3[0], "beta2": b3[1], "beta3": b3[2]})
            rows.append({"seed": seed, "method": kind, "beta1..3": [round(v, 2) for v in est[:3].tolist()],
                         "true beta1..3": [round(v, 2) for v in beta[:3].tolist()],
                         "false positives": int((est[3:].abs() > 0.1).sum()),
                         "test mse": round(float(((y_test - X_test @ est) ** 2).mean()), 2)})
    return {"rows": rows, "steps": steps}, history, None


def _sgld_sa_steps(ctx: Context) -> int:
    if ctx.epochs is not None:
        return max(200, 100 * ctx.epochs)
    return 10_000 if not ctx.fast else 2_000


def _prune_to_error(model, method: str, test_data, max_error: float, steps: int = 20) -> dict:
    """The most compressed ``sparsity.prune(model, method, fraction=f)`` whose test error is at most
    ``max_error`` (%), found by bisection on ``f`` (error grows with ``f``)."""
    def error_at(fraction):
        return _summary(sparsity.prune(model, method, fraction=fraction), test_data)

    lo, hi = 0.0, 1.0 - 1e-4
    best = error_at(lo)
    if best["error %"] > max_error:
        return {**best, "fraction removed": 0.0}
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        row = error_at(mid)
        if row["error %"] <= max_error:
            lo, best = mid, row
        else:
            hi = mid
    return {**best, "fraction removed": round(lo, 4)}


def compare_pruning(ctx: Context):
    """LeNet-300-100 pruned four ways: SparseVD, ARD, magnitude (plain net) and BBB signal-to-noise (100 epochs).

    SparseVD and ARD prune by the log-alpha threshold; magnitude pruning of a plain network and
    signal-to-noise pruning of BBB are done without retraining. The latter two are pruned twice: to SparseVD's test
    error (matched accuracy: the most compression that keeps the error at or below SparseVD's) and to
    SparseVD's compression (matched compression)."""
    train_data, test_data = _mnist(ctx)
    epochs = ctx.num_epochs
    rows, trained = {}, {}
    for flavour in ("svdo", "ard", "deterministic", "bbb"):
        set_seed(ctx.seed)
        model = models.lenet300(flavour).to(ctx.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        scheduler = _linear_decay(optimizer, epochs)
        kl = objectives.linear_warmup(max(1, epochs // 10)) if flavour != "deterministic" else 0.0
        train_resumable(ctx, f"compare-{flavour}", model, optimizer, train_data, test_data, epochs, kl_weight=kl,
                        scheduler=scheduler)
        trained[flavour] = model
    for flavour in ("svdo", "ard"):
        rows[flavour] = _summary(trained[flavour], test_data)
    target_error = rows["svdo"]["error %"]
    fraction = 1.0 - 1.0 / rows["svdo"]["compression"]  # matched compression
    for label, flavour, method in (("magnitude", "deterministic", "magnitude"), ("bbb snr", "bbb", "snr")):
        rows[f"{label}, matched accuracy"] = _prune_to_error(trained[flavour], method, test_data, target_error)
        rows[f"{label}, matched compression"] = _summary(sparsity.prune(trained[flavour], method, fraction=fraction),
                                                         test_data)
    rows["epochs"] = epochs
    return rows, None, trained["svdo"]


def distributed_mnist(ctx: Context):
    """The posterior server on MNIST with 1, 2, 4 and 8 workers, with baselines and compression (20 rounds).

    A Bayes-by-Backprop MLP 784-100-10 (Gaussian prior, sd 1); every worker takes 100 Adam steps of
    batch 100 a round (``--epochs`` sets the rounds, ``--workers N`` runs 1 and N workers only). With one
    worker the posterior server is Bayes by Backprop. At the largest number of workers: federated
    averaging, consensus Monte Carlo (SGLD at step 0.2 / shard size, as many steps per worker) and the
    server with top-10 % and 8-bit messages. Runs are not checkpointed: an interrupted run starts over."""
    train_data, test_data = _mnist(ctx, test_subset=None)
    rounds = ctx.num_epochs
    local_steps = 5 if ctx.fast else 100
    counts = [1, 2, 4, 8] if ctx.workers is None else sorted({1, ctx.workers})
    if ctx.fast and ctx.workers is None:
        counts = [1, 2]

    def model():
        set_seed(ctx.seed)
        return models.mlp(100, "bbb", init_rho=-3.0)

    common = dict(test_data=test_data, seed=ctx.seed, progress=ctx.progress)
    rows, curves = [], {}

    def keep(run):
        rows.append(run.evaluate(model(), test_data))
        curves[run.label] = [h["test_acc"] for h in run.history]

    for m in counts:
        keep(distributed.posterior_server(model(), train_data, m, rounds=rounds, local_steps=local_steps, **common))
    m = counts[-1]
    if m > 1:
        keep(distributed.federated_averaging(model(), train_data, m, rounds=rounds, local_steps=local_steps,
                                             **common))
        steps = rounds * local_steps
        keep(distributed.consensus_monte_carlo(model(), train_data, m, num_samples=20, burn_in=steps // 2,
                                               thin=max(1, steps // 40), sgld_lr=0.2 * m / len(train_data[0]),
                                               **common))
        for compression in ("topk:0.1", "8bit"):
            keep(distributed.posterior_server(model(), train_data, m, rounds=rounds, local_steps=local_steps,
                                              compression=compression, **common))
    return {"rows": rows, "curves": curves, "rounds": rounds, "local steps": local_steps,
            "parameters": distributed.num_parameters(model()), "epochs": rounds}, None, None


EXPERIMENTS = {
    "sparsevd-lenet300": sparsevd_lenet300,
    "sparsevd-lenet5": sparsevd_lenet5,
    "bbb-mnist": bbb_mnist,
    "random-labels": random_labels,
    "sgld-sa": sgld_sa,
    "compare-pruning": compare_pruning,
    "distributed": distributed_mnist,
}


# each experiment's defaults and the options it takes (a Recipe: bnn_teach.reproduce.runs)
RECIPES = {
    "sparsevd-lenet300": Recipe(200, ("lr", "lr_floor", "train_size"), lr=1e-3),
    "sparsevd-lenet5": Recipe(lambda device: 200 if device.type == "cuda" else 20, ("lr", "lr_floor", "train_size"),
                              lr=1e-3),
    "bbb-mnist": Recipe(50, ("train_size",)),
    "random-labels": Recipe(100, ("train_size",)),
    "sgld-sa": Recipe(None, steps=_sgld_sa_steps),
    "compare-pruning": Recipe(100, ("train_size",)),
    "distributed": Recipe(20, ("train_size", "workers")),
}


def describe(name: str) -> str:
    """The first line of an experiment's docstring (``reproduce --help`` lists them)."""
    return EXPERIMENTS[name].__doc__.strip().splitlines()[0]
