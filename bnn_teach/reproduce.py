"""``bnn-teach reproduce EXPERIMENT``: the papers' tables, re-run and printed beside the papers' rows.

Each experiment writes ``results.json`` (ours and the paper's), ``history.json`` and ``figure.png``
under ``--out`` (default ``runs/EXPERIMENT``), saves a checkpoint after every epoch and resumes from
it after an interruption (``--restart`` starts over). ``BNN_TEACH_FAST=1`` shrinks the data and the
epochs: such a run is a smoke run (it checks that the code runs) and says so in its table, its
``results.json`` and its figure.

A run folder belongs to one set of settings (experiment, epochs, seed, learning rate, training
images, FAST, batch size; ``settings.json``) and one data set (image counts and a fingerprint of the
tensors, kept in every checkpoint). Asking a folder for a run with other settings or other data is
refused (:class:`SettingsMismatch`) before anything in it changes. Nothing is created before the
arguments are checked and the data are loaded.
Full runs are benchmarks (see ``benchmarks/README.md``), not tests.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bnn_teach import data, distributed, models, objectives, sparsity
from bnn_teach._checks import check_positive
from bnn_teach.nn import Conv2dSVDO, LinearSVDO, bayesianize
from bnn_teach.priors import GaussianPrior, ScaleMixturePrior
from bnn_teach.sgmcmc import SGHMC, SGLD, SGLDSA
from bnn_teach.train import History, evaluate, fit
from bnn_teach.utils import fast_mode, set_seed

__all__ = [
    "EXPERIMENTS",
    "PAPER",
    "run",
    "main",
    "sample_linear_regression",
    "UsageError",
    "SettingsMismatch",
    "RunInterrupted",
    "record",
    "load_recorded",
    "RecordedRunError",
]

# The papers' rows, as printed in the papers (numbers are test error in %, compression as |W| / |W != 0|).
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


class UsageError(ValueError):
    """An argument that cannot work (the CLI exits with status 2 and prints the message)."""


class SettingsMismatch(UsageError):
    """The run folder holds a run with other settings or other data; nothing in it was changed."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: ``epoch`` epochs of ``part`` are in the checkpoint (0: none yet)."""

    def __init__(self, part: str, epoch: int, restart: bool):
        self.part, self.epoch, self.restart = part, epoch, restart
        again = "run the same command without --restart to resume" if restart else "run the same command to resume"
        if epoch:
            message = f"stopped after epoch {epoch} ({part}); the checkpoint is saved; {again}"
        else:
            message = (f"stopped during the first epoch ({part}); nothing was saved yet; "
                       "run the same command to start again")
        super().__init__(message)


SMOKE_NOTE = ("SMOKE RUN (BNN_TEACH_FAST=1: a few images, 1 epoch by default): it checks that the code runs "
              "and is NOT a result; unset BNN_TEACH_FAST for the experiment")


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


@dataclass
class Context:
    out: Path
    device: torch.device
    epochs: int | None        # as asked (None: the recipe's default)
    restart: bool
    progress: bool
    fast: bool
    seed: int = 0
    lr: float | None = None   # resolved: the recipe's default where the experiment has an lr, else None
    lr_floor: float = 0.0
    train_size: int | None = None
    workers: int | None = None
    num_epochs: int | None = None   # resolved number of epochs (steps for sgld-sa come from it)
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    train_seconds: dict = field(default_factory=dict)   # part -> training seconds over the whole run
    frames: dict | None = None                           # SparsityRecorder.to_dict() of the run, if it records
    earlier_seconds: float = 0.0                         # of those, spent before this invocation
    _out_ready: bool = False

    def epochs_or(self, default: int, fast: int = 1) -> int:
        return self.epochs if self.epochs is not None else (fast if self.fast else default)

    def ensure_out(self) -> Path:
        """Create the run folder and write ``settings.json`` (first write only); ``--restart`` clears the
        files of an earlier run first."""
        if self._out_ready:
            return self.out
        self.out.mkdir(parents=True, exist_ok=True)
        if self.restart:
            for path in self.out.glob("*.ckpt"):
                path.unlink()
            for name in (*RUN_FILES, SETTINGS_FILE):
                (self.out / name).unlink(missing_ok=True)
        _write_atomic(self.out / SETTINGS_FILE, json.dumps(self.settings, indent=1))
        self._out_ready = True
        return self.out


SETTINGS_FILE = "settings.json"
RUN_FILES = ("results.json", "history.json", "figure.png", "frames.json")
BATCH_SIZE = 100


def _write_atomic(path: Path, text: str):
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_atomic(obj, path: Path):
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def data_identity(train_data, test_data=None) -> dict:
    """What a checkpoint remembers of its data: image counts and a fingerprint (SHA-256, 16 hex digits) of
    the shapes and of at most 65,536 evenly spaced values of each tensor (labels included)."""
    digest = hashlib.sha256()
    for tensor in (*train_data, *(test_data or ())):
        flat = tensor.detach().reshape(-1)
        sample = flat[::max(1, flat.numel() // 65536)].to("cpu", torch.float64)
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(sample.numpy().tobytes())
    return {"train images": len(train_data[0]), "test images": len(test_data[0]) if test_data is not None else 0,
            "fingerprint": digest.hexdigest()[:16]}


def _flat(settings: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key} "))
        else:
            out[prefix + key] = value
    return out


def _describe(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "not set" if value is None else str(value)


def _refuse_if_different(stored: dict | None, asked: dict, where: Path, what: str):
    """Raise :class:`SettingsMismatch` naming every difference between ``stored`` and ``asked`` (one line)."""
    folder = where.parent if what == "checkpoint" else where
    ways_out = f"add --restart to start this run over in {folder}, or pass another --out"
    if stored is None:
        raise SettingsMismatch(f"{where} records no settings (an older bnn_teach wrote it), so it cannot be resumed "
                               f"safely; {ways_out}")
    old, new = _flat(stored), _flat(asked)
    diffs = [f"{key} {_describe(old.get(key))} there, {_describe(new.get(key))} asked"
             for key in sorted(set(old) | set(new), key=lambda k: (list(new) + list(old)).index(k))
             if old.get(key) != new.get(key)]
    if diffs:
        raise SettingsMismatch(f"{where} holds a run with other settings ({'; '.join(diffs)}); {ways_out}")


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


def train_resumable(ctx: Context, name: str, model: nn.Module, optimizer, train_data, test_data, num_epochs: int,
                    kl_weight=1.0, scheduler=None, batch_size: int = BATCH_SIZE, recorder=None) -> History:
    """``fit`` with a checkpoint after every epoch in ``ctx.out/name.ckpt``; resumes where it stopped.

    A :class:`~bnn_teach.viz.SparsityRecorder` given as ``recorder`` records the epochs (and is kept in
    the checkpoint, so a resumed run has all its frames); its last frame is the last epoch.

    The checkpoint keeps the run's settings, this part's epochs and batch size, the data's identity
    (:func:`data_identity`) and the training seconds so far. A checkpoint with other settings or data
    raises :class:`SettingsMismatch` before anything is loaded or written; Ctrl-C raises
    :class:`RunInterrupted` naming the last saved epoch.
    """
    ckpt = ctx.out / f"{name}.ckpt"
    settings = {**ctx.settings, "part": name, "epochs of this part": num_epochs, "batch_size": batch_size,
                "data": data_identity(train_data, test_data)}
    history, elapsed_before = History(), 0.0
    if ckpt.exists() and not ctx.restart:
        state = torch.load(ckpt, map_location=ctx.device, weights_only=False)
        _refuse_if_different(state.get("settings"), settings, ckpt, "checkpoint")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        history = History(state["history"])
        if recorder is not None and state.get("recorder"):
            recorder.__dict__.update(type(recorder).from_dict(state["recorder"]).__dict__)
        torch.set_rng_state(state["rng"])
        elapsed_before = float(state.get("elapsed", 0.0))
        ctx.earlier_seconds += elapsed_before
        if len(history) < num_epochs:
            print(f"{name}: resuming after epoch {len(history)} of {num_epochs} from {ckpt}")
    started = time.perf_counter()
    saved = {"epoch": len(history)}

    def checkpoint(epoch, model, history):
        if not math.isfinite(history[-1]["loss"]):
            return  # fit raises next; keep the last good checkpoint
        ctx.ensure_out()
        _save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict() if scheduler is not None else None,
                      "history": history.records, "rng": torch.get_rng_state(), "settings": settings,
                      "recorder": recorder.to_dict() if recorder is not None else None,
                      "elapsed": elapsed_before + time.perf_counter() - started}, ckpt)
        saved["epoch"] = epoch

    def record_compression(epoch, model, history):
        history.records[-1]["compression"] = sparsity.compression_ratio(model)

    callbacks = [checkpoint]
    if recorder is not None:
        callbacks.insert(0, recorder)
    if any(isinstance(m, (LinearSVDO, Conv2dSVDO)) for m in model.modules()):  # ARD and group layers too
        callbacks.insert(0, record_compression)
    remaining = num_epochs - len(history)
    if remaining > 0:
        try:
            fit(model, train_data, remaining, optimizer, batch_size=batch_size, kl_weight=kl_weight,
                test_data=test_data, scheduler=scheduler, callbacks=callbacks, device=ctx.device,
                progress=ctx.progress, history=history)
        except KeyboardInterrupt:
            raise RunInterrupted(name, saved["epoch"], ctx.restart) from None
    ctx.train_seconds[name] = elapsed_before + (time.perf_counter() - started if remaining > 0 else 0.0)
    model.eval()
    if recorder is not None and len(history):
        recorder.record(len(history), model, history)
    return history


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


@dataclass(frozen=True)
class Recipe:
    """An experiment's defaults and the options it uses (any other option given is refused)."""

    epochs: int | Callable[[torch.device], int] | None   # None: sgld-sa counts sampler steps instead
    options: tuple = ()                                   # of "lr", "lr_floor", "train_size"
    lr: float | None = None


RECIPES = {
    "sparsevd-lenet300": Recipe(200, ("lr", "lr_floor", "train_size"), lr=1e-3),
    "sparsevd-lenet5": Recipe(lambda device: 200 if device.type == "cuda" else 20, ("lr", "lr_floor", "train_size"),
                              lr=1e-3),
    "bbb-mnist": Recipe(50, ("train_size",)),
    "random-labels": Recipe(100, ("train_size",)),
    "sgld-sa": Recipe(None),
    "compare-pruning": Recipe(100, ("train_size",)),
    "distributed": Recipe(20, ("train_size", "workers")),
}
OPTION_FLAGS = {"lr": "--lr", "lr_floor": "--lr-floor", "train_size": "--train-size", "workers": "--workers"}


def describe(name: str) -> str:
    """The first line of an experiment's docstring (``reproduce --help`` lists them)."""
    return EXPERIMENTS[name].__doc__.strip().splitlines()[0]


def _figure(name, history, model, path: Path, smoke_run: bool = False, ours: dict | None = None):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from bnn_teach import viz

    if name == "distributed":
        fig = viz.distributed_figure(ours, smoke_run=smoke_run)
    else:
        fig = viz.experiment_figure(name, history, model, smoke_run=smoke_run)
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _table(name: str, ours: dict, smoke_run: bool = False) -> str:
    paper = PAPER[name]
    lines = [f"{name}  ({paper['source']})"]
    if smoke_run:
        lines.append(f"  {SMOKE_NOTE}")
    lines.append(f"  {'':<24}{'paper':>30}{'ours (smoke run)' if smoke_run else 'ours':>30}")
    keys = [k for k in paper if k not in ("source",)] + [k for k in ours if k not in paper]
    for key in keys:
        p, o = paper.get(key, ""), ours.get(key, "")
        if isinstance(o, list) and o and isinstance(o[0], dict) and "label" in o[0]:   # a table of runs
            lines += ["  " + line for line in distributed.format_table(o).splitlines()]
            continue
        if key == "curves":
            lines.append(f"  {key}: in results.json")
            continue
        if isinstance(o, list) and o and isinstance(o[0], dict):
            lines.append(f"  {key}:")
            lines += ["    " + ", ".join(f"{k}={v}" for k, v in row.items()) for row in o]
            continue
        if isinstance(o, dict):
            o = ", ".join(f"{k}={v}" for k, v in o.items())
        if isinstance(o, list) and len(o) > 10:  # e.g. the 784 input pixels kept: too long for a table
            o = f"({len(o)} values, in results.json)"
        if len(str(p)) > 29 or len(str(o)) > 29:
            lines.append(f"  {key}:")
            lines += [f"    paper: {p}"] * bool(p != "") + [f"    ours:  {o}"] * bool(o != "")
            continue
        lines.append(f"  {key:<24}{str(p):>30}{str(o):>30}")
    return "\n".join(lines)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_device(device) -> torch.device:
    """``None`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; anything else, or CUDA on a
    machine without it, raises :class:`UsageError` with the fix."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device {device} is not a device; use cpu or cuda (or leave --device out)") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise UsageError(f"--device {device} is not supported here; use cpu or cuda (or leave --device out)")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine; use --device cpu "
                         "(or leave --device out)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return dev


def _check_arguments(name, epochs, out, seed, lr, lr_floor, train_size, workers=None):
    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    if epochs is not None and (not _is_int(epochs) or epochs <= 0):
        raise UsageError(f"--epochs must be a positive integer, got {epochs!r}")
    if not _is_int(seed) or seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
    lr_is_number = isinstance(lr, (int, float)) and not isinstance(lr, bool)
    if lr is not None and (not lr_is_number or not math.isfinite(lr) or lr <= 0):
        raise UsageError(f"--lr must be a positive number, got {lr!r}")
    if lr_floor is not None and (isinstance(lr_floor, bool) or not isinstance(lr_floor, (int, float))
                                 or not 0.0 <= lr_floor < 1.0):
        raise UsageError(f"--lr-floor must be in [0, 1) (a fraction of --lr), got {lr_floor!r}")
    if train_size is not None and (not _is_int(train_size) or train_size <= 0):
        raise UsageError(f"--train-size must be a positive integer, got {train_size!r}")
    if workers is not None and (not _is_int(workers) or not 1 <= workers <= 64):
        raise UsageError(f"--workers must be an integer from 1 to 64, got {workers!r}")
    given = {"lr": lr, "lr_floor": lr_floor, "train_size": train_size, "workers": workers}
    for option, value in given.items():
        if value is not None and option not in RECIPES[name].options:
            users = [n for n, r in RECIPES.items() if option in r.options]
            raise UsageError(f"{name} does not use {OPTION_FLAGS[option]} (only {', '.join(users)} do); "
                             f"leave it out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (a new one, or an earlier run of {name})")


def _resolve(ctx: Context, name: str) -> dict:
    """Fill in the recipe's defaults and return the run's settings (what ``settings.json`` records)."""
    recipe = RECIPES[name]
    settings = {"experiment": name, "fast": ctx.fast, "seed": ctx.seed}
    if recipe.epochs is None:
        settings["steps"] = _sgld_sa_steps(ctx)
    else:
        default = recipe.epochs(ctx.device) if callable(recipe.epochs) else recipe.epochs
        ctx.num_epochs = ctx.epochs_or(default)
        settings["epochs"] = ctx.num_epochs
        settings["batch_size"] = BATCH_SIZE
    if "lr" in recipe.options:
        ctx.lr = float(ctx.lr if ctx.lr is not None else recipe.lr)
        settings["lr"] = ctx.lr
    if "lr_floor" in recipe.options:
        settings["lr_floor"] = ctx.lr_floor
    if "train_size" in recipe.options:
        settings["train_size"] = ctx.train_size
    if "workers" in recipe.options:
        settings["workers"] = ctx.workers
    return settings


def run(name: str, epochs: int | None = None, device=None, out=None, restart: bool = False,
        progress: bool = True, seed: int = 0, lr: float | None = None, lr_floor: float | None = None,
        train_size: int | None = None, workers: int | None = None) -> dict:
    """Run one experiment; returns ``{"experiment", "paper", "ours", "notes", "settings", "data", ...}``
    (also written to results.json).

    Raises :class:`UsageError` for an argument that cannot work (an option the experiment does not use
    included) and :class:`SettingsMismatch` when ``out`` holds a run with other settings, both before
    anything is created or changed; Ctrl-C during training raises :class:`RunInterrupted`.
    """
    out = Path(out) if out is not None else Path("runs") / str(name)
    _check_arguments(name, epochs, out, seed, lr, lr_floor, train_size, workers)
    ctx = Context(out=out, device=resolve_device(device), epochs=epochs, restart=restart, progress=progress,
                  fast=fast_mode(), seed=seed, lr=lr, lr_floor=float(lr_floor or 0.0), train_size=train_size,
                  workers=workers)
    ctx.settings = _resolve(ctx, name)
    stored = out / SETTINGS_FILE
    if stored.exists() and not restart:
        _refuse_if_different(json.loads(stored.read_text()), ctx.settings, out, "folder")
    start = time.perf_counter()
    ours, history, model = EXPERIMENTS[name](ctx)
    result = {"experiment": name, "paper": PAPER[name], "ours": ours, "notes": ctx.notes,
              "settings": ctx.settings, "device": str(ctx.device), "threads": torch.get_num_threads(),
              "fast": ctx.fast}
    if ctx.fast:
        result["smoke run"] = SMOKE_NOTE
    # the whole run: this invocation plus the training time of earlier ones that it resumed
    result["wall seconds"] = round(time.perf_counter() - start + ctx.earlier_seconds, 1)
    if ctx.earlier_seconds:
        ctx.notes.append(f"resumed: {ctx.earlier_seconds:.1f} s of training came from earlier invocations")
    ctx.ensure_out()
    _write_atomic(out / "results.json", json.dumps(result, indent=1))
    if history is not None:
        history.to_json(out / "history.json")
    if ctx.frames is not None:
        _write_atomic(out / "frames.json", json.dumps(ctx.frames))
    _figure(name, history, model, out / "figure.png", smoke_run=ctx.fast, ours=ours)
    print(_table(name, ours, smoke_run=ctx.fast))
    print(f"  results, history and figure in {out}/")
    return result


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (a fraction of --lr), got {text}")
    return value


def add_parser(sub):
    width = max(map(len, EXPERIMENTS))
    listing = "\n".join(f"  {name:<{width}}  {describe(name)}" for name in EXPERIMENTS)
    p = sub.add_parser(
        "reproduce", help="re-run a paper's experiment and print it beside the paper's row",
        description="Re-run a paper's experiment and print our row beside the paper's. Writes results.json, "
                    "history.json and figure.png in --out and resumes an interrupted run from its checkpoint.",
        epilog=f"experiments:\n{listing}\n\nA folder holds one run: asking it for other settings is refused "
               "(use --restart or another --out).\nBNN_TEACH_FAST=1 makes a smoke run (a few images, 1 epoch).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "experiment",
        choices=list(EXPERIMENTS),
        metavar="EXPERIMENT",
        help="one of: " + ", ".join(EXPERIMENTS) + " (listed below)",
    )
    p.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (default: the paper's recipe)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--out", default=None, help="output folder (default: runs/EXPERIMENT)")
    p.add_argument("--restart", action="store_true", help="start over: delete the folder's checkpoints and results")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="SparseVD experiments: Adam's initial learning rate (default 1e-3)")
    p.add_argument("--train-size", type=_positive_int, default=None,
                   help="MNIST experiments: train on the first N training images "
                        "(e.g. 50000, holding out the last 10,000)")
    p.add_argument("--lr-floor", type=_fraction, default=None,
                   help="SparseVD experiments: decay the learning rate linearly to this fraction of --lr "
                        "(default 0, the paper's code)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="distributed: run the posterior server with 1 and N workers (default 1, 2, 4 and 8)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--record", action="store_true",
                   help="then copy the run's results and history into the package, where the lectures load "
                        "them (bnn_teach/recorded, checksummed)")
    return p


def main_from_args(args) -> int:
    out = args.out if args.out is not None else str(Path("runs") / args.experiment)
    run(args.experiment, epochs=args.epochs, device=args.device, out=out, restart=args.restart,
        progress=not args.no_progress, seed=args.seed, lr=args.lr, lr_floor=args.lr_floor,
        train_size=args.train_size, workers=args.workers)
    if args.record:
        print(f"  recorded for the lectures in {record(args.experiment, out)}/")
    return 0


# The full runs the lectures show (too long to train live), shipped in the package: one folder per
# experiment with its results.json and history.json (and frames.json where the run records its
# sparsification), and SHA256SUMS over all of them.
RECORDED = Path(__file__).resolve().parent / "recorded"
RECORDED_FILES = ("results.json",)
OPTIONAL_FILES = ("history.json", "frames.json")
WITHOUT_HISTORY = ("compare-pruning", "distributed")  # several runs each: no one training history to show
MANIFEST = "SHA256SUMS"


class RecordedRunError(RuntimeError):
    """A recorded run that is missing, or whose files do not match their checksums."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    return {name: digest for digest, name in (line.split("  ", 1) for line in path.read_text().splitlines() if line)}


def record(name: str, out, folder=None) -> Path:
    """Copy the full run in ``out`` (``results.json``, and ``history.json`` and ``frames.json`` where the run
    wrote them) into the package's recorded runs
    (``folder``, default ``bnn_teach/recorded``) as ``<folder>/<name>/`` and update ``SHA256SUMS``.
    ``bnn-teach reproduce NAME --record`` runs the experiment and then this. A smoke run is refused."""
    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)}")
    out, folder = Path(out), Path(folder) if folder is not None else RECORDED
    needed = RECORDED_FILES + (() if name in WITHOUT_HISTORY else ("history.json",))
    missing = [f for f in needed if not (out / f).exists()]
    if missing:
        raise UsageError(f"{out} holds no finished run of {name} (missing {', '.join(missing)})")
    results = json.loads((out / "results.json").read_text())
    if results.get("experiment") != name:
        raise UsageError(f"{out}/results.json is a run of {results.get('experiment')!r}, not {name!r}")
    if results.get("fast"):
        raise UsageError(f"{out} holds a smoke run (BNN_TEACH_FAST=1); the lectures show full runs only")
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    sums = _manifest(folder)
    for file in OPTIONAL_FILES:  # a file the new run lacks must not stay behind from an older one
        (target / file).unlink(missing_ok=True)
        sums.pop(f"{name}/{file}", None)
    for file in RECORDED_FILES + tuple(f for f in OPTIONAL_FILES if (out / f).exists()):
        text = (out / file).read_text()
        _write_atomic(target / file, text)
        sums[f"{name}/{file}"] = _sha256(target / file)
    _write_atomic(folder / MANIFEST, "".join(f"{digest}  {path}\n" for path, digest in sorted(sums.items())))
    return target


def load_recorded(name: str, folder=None) -> dict:
    """The recorded full run of experiment ``name``: ``{"results": dict, "history": History or None,
    "frames": SparsityRecorder or None}`` (``history`` and ``frames`` for the runs that write them).

    Its files are checked against ``SHA256SUMS``; a missing or changed file raises
    :class:`RecordedRunError` naming the file and the command that records it again."""
    folder = Path(folder) if folder is not None else RECORDED
    again = f"record it again with: bnn-teach reproduce {name} --record"
    sums = _manifest(folder)
    optional = tuple(f for f in OPTIONAL_FILES if f"{name}/{f}" in sums)
    for file in RECORDED_FILES + optional:
        path = folder / name / file
        if f"{name}/{file}" not in sums or not path.exists():
            raise RecordedRunError(f"no recorded run of {name!r}: {path} or its checksum is missing; {again}")
        if _sha256(path) != sums[f"{name}/{file}"]:
            raise RecordedRunError(f"{path} does not match its checksum in {folder / MANIFEST} "
                                   f"(edited or damaged); {again}")
    frames = None
    if "frames.json" in optional:
        from bnn_teach.viz import SparsityRecorder

        frames = SparsityRecorder.from_dict(json.loads((folder / name / "frames.json").read_text()))
    history = History.from_json(folder / name / "history.json") if "history.json" in optional else None
    return {"results": json.loads((folder / name / "results.json").read_text()), "history": history,
            "frames": frames}


def main(argv=None) -> int:
    """``bnn-teach reproduce ARGS`` (the same errors and exit statuses as the command)."""
    from bnn_teach.cli import main as cli_main

    return cli_main(["reproduce", *(argv or [])])
