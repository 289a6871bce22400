"""How a reproduction runs: its settings, its resumable training, its checks and the files it writes.

:func:`run` checks the arguments, resolves the experiment's :class:`Recipe`, refuses a run folder that
holds other settings (:class:`SettingsMismatch`), runs the experiment and writes ``results.json``,
``history.json``, ``frames.json`` and ``figure.png``. :func:`train_resumable` is ``fit`` with a
checkpoint after every epoch. The experiments themselves live in :mod:`bnn_teach.reproduce.experiments`,
which imports this module.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from bnn_teach import distributed, sparsity
from bnn_teach._checks import RunInterrupted, UsageError, folder_problem
from bnn_teach.nn import Conv2dSVDO, LinearSVDO
from bnn_teach.train import History, fit
from bnn_teach.utils import fast_mode

__all__ = ["Context", "Recipe", "UsageError", "SettingsMismatch", "RunInterrupted", "run", "train_resumable",
           "resolve_device", "data_identity"]


class SettingsMismatch(UsageError):
    """The run folder holds a run with other settings or other data; nothing in it was changed."""


SMOKE_NOTE = ("SMOKE RUN (BNN_TEACH_FAST=1: a few images, 1 epoch by default): it checks that the code runs "
              "and is NOT a result; unset BNN_TEACH_FAST for the experiment")


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


@dataclass(frozen=True)
class Recipe:
    """An experiment's defaults and the options it uses (any other option given is refused)."""

    epochs: int | Callable[[torch.device], int] | None   # None: the experiment counts ``steps`` instead
    options: tuple = ()                                   # of "lr", "lr_floor", "train_size", "workers"
    lr: float | None = None
    steps: Callable[[Context], int] | None = None         # where ``epochs`` is None: the steps it takes


OPTION_FLAGS = {"lr": "--lr", "lr_floor": "--lr-floor", "train_size": "--train-size", "workers": "--workers"}


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


def _table(name: str, paper: dict, ours: dict, smoke_run: bool = False) -> str:
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


def _check_arguments(recipes: dict, name, epochs, out, seed, lr, lr_floor, train_size, workers=None):
    if name not in recipes:
        raise UsageError(f"unknown experiment {name!r}; choose from {', '.join(recipes)}")
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
        if value is not None and option not in recipes[name].options:
            users = [n for n, r in recipes.items() if option in r.options]
            raise UsageError(f"{name} does not use {OPTION_FLAGS[option]} (only {', '.join(users)} do); "
                             f"leave it out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (a new one, or an earlier run of {name})")
    problem = folder_problem(out)
    if problem:   # found now, not after minutes of training
        raise UsageError(f"--out {out}: {problem}; give a folder you can write to")


def _resolve(ctx: Context, name: str, recipe: Recipe) -> dict:
    """Fill in the recipe's defaults and return the run's settings (what ``settings.json`` records)."""
    settings = {"experiment": name, "fast": ctx.fast, "seed": ctx.seed}
    if recipe.epochs is None:
        settings["steps"] = recipe.steps(ctx)
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
    # the experiments import this module (Context, train_resumable), so their registry is looked up here
    from bnn_teach.reproduce.experiments import EXPERIMENTS, PAPER, RECIPES

    out = Path(out) if out is not None else Path("runs") / str(name)
    _check_arguments(RECIPES, name, epochs, out, seed, lr, lr_floor, train_size, workers)
    ctx = Context(out=out, device=resolve_device(device), epochs=epochs, restart=restart, progress=progress,
                  fast=fast_mode(), seed=seed, lr=lr, lr_floor=float(lr_floor or 0.0), train_size=train_size,
                  workers=workers)
    ctx.settings = _resolve(ctx, name, RECIPES[name])
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
    print(_table(name, PAPER[name], ours, smoke_run=ctx.fast))
    print(f"  results, history and figure in {out}/")
    return result
