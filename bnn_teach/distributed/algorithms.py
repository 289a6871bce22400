"""The posterior server (expectation propagation with damping) and two baselines, on ``torch.distributed``.

Lecture 8. The training data are split over m workers; rank 0 is the server, ranks 1..m the workers.
Everything is a mean-field Gaussian over the D weights and biases of a Bayes-by-Backprop model, in
natural parameters (:class:`~bnn_teach.distributed.DiagGaussian`).

**Posterior server** (Xu et al. 2014; Hasenclever et al. 2017, the course's poster). The global
posterior is :math:`q(\\theta) \\propto p(\\theta) \\prod_{i=1}^m t_i(\\theta)`; worker i owns the site
:math:`t_i`, the part of q that stands for its shard. Each round:

1. the server broadcasts q;
2. worker i forms the cavity :math:`q_{-i} = q / t_i` and approximates the tilted distribution
   :math:`q_{-i}(\\theta)\\, p(D_i \\mid \\theta)` by a Gaussian :math:`q_i'`: by ``local_steps`` steps of
   Bayes by Backprop with the cavity as the prior (``method="vi"``), or by the mean and variance of
   SGLD samples (``method="sgld"``, Xu et al.'s sampling via moment sharing);
3. it moves its site a fraction :math:`\\beta` (``damping``) of the way to the proposal
   :math:`q_i' / q_{-i}`: :math:`t_i \\leftarrow t_i + \\Delta_i`, :math:`\\Delta_i = \\beta\\,(q_i'/q_{-i} - t_i)`
   in natural parameters, and sends :math:`\\Delta_i` (compressed, if asked);
4. the server adds every :math:`\\Delta_i` to q.

With :math:`\\beta = 1/m` the new q is the average of the workers' :math:`q_i'` in natural parameters,
always a proper Gaussian; :math:`\\beta < 1` also averages the noise of stochastic moment estimates
over rounds. With one worker and ``method="vi"`` it is Bayes by Backprop.

**Baselines** on the same split: :func:`consensus_monte_carlo` (Scott et al. 2016: independent SGLD
chains on the subposteriors :math:`p(\\theta)^{1/m} p(D_i \\mid \\theta)`, one message at the end,
draws combined by precision-weighted averaging) and :func:`federated_averaging` (McMahan et al.
2017 applied to the variational parameters: every worker runs Bayes by Backprop on its shard as if
it were all the data, the server averages mu and rho).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from bnn_teach import kl as _kl
from bnn_teach._checks import check_positive
from bnn_teach.distributed import compress as _compress
from bnn_teach.distributed.gaussian import (
    DiagGaussian,
    _pairs,
    inverse_softplus,
    load_posterior_,
    posterior_of,
    prior_of,
)
from bnn_teach.distributed.launch import launch
from bnn_teach.nn._shapes import check_int
from bnn_teach.sgmcmc import SGLD

__all__ = ["DistributedRun", "posterior_server", "federated_averaging", "consensus_monte_carlo", "split",
           "format_table"]

TABLE_COLUMNS = ("accuracy %", "nll", "ece", "MB up", "MB down", "seconds")

# A cavity or a posterior is kept proper: its precision at least this fraction of the prior's.
MIN_PRECISION_FRACTION = 1e-2


@dataclass
class DistributedRun:
    """What a distributed run returns.

    ``posterior``: the global mean-field Gaussian over the D parameters; ``samples``: ``(S, D)`` combined draws
    (consensus Monte Carlo only); ``history``: one dict per round (``round``, ``seconds``, ``bytes_up`` and
    ``bytes_down`` so far, ``test_acc`` of the posterior mean when test data were given, ``clamped``: coordinates
    whose precision had to be raised to stay proper); ``trace``: the posterior after each round when asked.
    ``bytes_up`` counts what the workers sent, ``bytes_down`` what the server sent, as the tensors' bytes.
    """

    method: str
    num_workers: int
    posterior: DiagGaussian
    history: list
    bytes_up: int
    bytes_down: int
    seconds: float
    settings: dict
    samples: torch.Tensor | None = None
    trace: list = field(default_factory=list)

    def model(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` (the one the run was given) holding the run's posterior."""
        return load_posterior_(copy.deepcopy(model), self.posterior)

    @property
    def label(self) -> str:
        """``"posterior server, 4 workers, top-10%"``: the run's name in tables and legends."""
        return _label(self.method, self.num_workers, self.settings.get("compression", "none"))

    def evaluate(self, model: nn.Module, test_data, num_samples: int = 20) -> dict:
        """Test accuracy, NLL and ECE of the posterior predictive (``num_samples`` draws), the megabytes sent each
        way and the wall time: one row of a comparison table."""
        from bnn_teach import metrics

        X, y = test_data
        probs = self.predict(model, X, num_samples=num_samples).mean(0)
        return {"label": self.label, "method": self.method, "workers": self.num_workers,
                "compression": self.settings.get("compression", "none"),
                "accuracy %": round(100 * metrics.accuracy(probs, y), 2), "nll": round(metrics.nll(probs, y), 4),
                "ece": round(metrics.ece(probs, y), 4), "MB up": round(self.bytes_up / 1e6, 3),
                "MB down": round(self.bytes_down / 1e6, 3), "seconds": self.seconds}

    @torch.no_grad()
    def round_metrics(self, model: nn.Module, test_data, num_samples: int = 10) -> list:
        """Test accuracy and NLL of the posterior predictive after every round, from the run's ``trace``
        (``trace=True``): one dict per round, ``{"round", "accuracy %", "nll"}``."""
        from bnn_teach import metrics
        from bnn_teach.predict import mc_predict

        if not self.trace:
            raise ValueError("the run kept no trace: pass trace=True to the run to evaluate every round")
        X, y = test_data
        net = copy.deepcopy(model)
        rows = []
        for r, q in enumerate(self.trace, start=1):
            probs = mc_predict(load_posterior_(net, q), X, num_samples=num_samples).mean(0)
            rows.append({"round": r, "accuracy %": round(100 * metrics.accuracy(probs, y), 2),
                         "nll": round(metrics.nll(probs, y), 4)})
        return rows

    @torch.no_grad()
    def predict(self, model: nn.Module, X: torch.Tensor, num_samples: int = 20) -> torch.Tensor:
        """``(S, B, C)`` predictive probabilities: S draws from the posterior (or the S consensus draws)."""
        from bnn_teach.predict import mc_predict

        if self.samples is None:
            return mc_predict(self.model(model), X, num_samples=num_samples)
        net = copy.deepcopy(model).eval()
        probs = []
        for theta in self.samples:
            load_posterior_(net, DiagGaussian(theta, torch.ones_like(theta)), mean_only=True)
            probs.append(torch.softmax(net(X), dim=-1))
        return torch.stack(probs)


def format_table(rows: list, columns=TABLE_COLUMNS) -> str:
    """Rows of :meth:`DistributedRun.evaluate` as a text table: one line per run, its label first."""
    width = max(len(row["label"]) for row in rows)
    lines = [" " * width + "".join(f"{c:>12}" for c in columns)]
    lines += [f"{row['label']:<{width}}" + "".join(f"{row[c]:>12}" for c in columns) for row in rows]
    return "\n".join(lines)


def _label(algorithm: str, num_workers: int, compression: str = "none") -> str:
    names = {"ep": "posterior server", "fedavg": "federated averaging", "consensus": "consensus MC"}
    label = f"{names[algorithm]}, {num_workers} worker{'s' * (num_workers > 1)}"
    return label if compression == "none" else f"{label}, {compression}"


@dataclass
class _Spec:
    """Everything the processes need (copied into each of them)."""

    algorithm: str
    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    shards: list
    rounds: int
    local_steps: int
    batch_size: int
    lr: float
    method: str = "vi"
    damping: object = 1.0   # a number in (0, 1], or a function of the round (1, 2, ...) giving one
    sgld_lr: float = 1e-4
    burn_in: int = 0
    thin: int = 1
    num_samples: int = 0
    compression: object = None
    noise_var: float | None = None
    test: tuple | None = None
    trace: bool = False
    seed: int = 0


def split(num_data: int, num_workers: int, how: str = "random", y: torch.Tensor | None = None, seed: int = 0) -> list:
    """Indices of each worker's shard, exactly ``num_workers`` of them, whose sizes differ by at most one:
    ``"random"`` (a seeded permutation) or ``"by_label"`` (sorted by label first: each worker sees few
    classes, the hard case for averaging). Needs at least one data point per worker."""
    if num_data < num_workers:
        raise ValueError(f"{num_workers} workers need at least {num_workers} data points, got {num_data}")
    if how == "random":
        order = torch.randperm(num_data, generator=torch.Generator().manual_seed(seed))
    elif how == "by_label":
        if y is None:
            raise ValueError("split 'by_label' needs the labels y")
        order = torch.sort(y, stable=True).indices
    else:
        raise ValueError(f"unknown split {how!r}; use 'random' or 'by_label'")
    return [chunk.clone() for chunk in order.tensor_split(num_workers)]   # chunk() may return fewer parts


# ------------------------------------------------------------------------------------------- worker side

def _nll(output: torch.Tensor, y: torch.Tensor, noise_var) -> torch.Tensor:
    """Mean negative log-likelihood per data point: categorical on logits, or Gaussian with ``noise_var``."""
    if noise_var is None:
        return F.cross_entropy(output, y)
    output = output.reshape(y.shape)
    return (0.5 * (y - output) ** 2 / noise_var).mean() + 0.5 * math.log(2 * math.pi * noise_var)


class _Worker:
    def __init__(self, spec: _Spec, rank: int, num_workers: int, start: DiagGaussian):
        self.spec = spec
        self.model = copy.deepcopy(spec.model)
        index = spec.shards[rank - 1]
        self.X, self.y = spec.X[index], spec.y[index]
        self.n = len(index)
        self.prior = prior_of(self.model)
        self.floor = self.prior.precision * MIN_PRECISION_FRACTION
        self.site = (start - self.prior) * (1.0 / num_workers)   # q starts as the model's initial posterior
        self.generator = torch.Generator().manual_seed(spec.seed * 1000 + rank)
        self.order, self.cursor = torch.empty(0, dtype=torch.long), 0
        self.adam = None
        self.round = 0
        self.compressor = _compress.make(spec.compression)

    def batch(self):
        if self.cursor >= len(self.order):
            self.order, self.cursor = torch.randperm(self.n, generator=self.generator), 0
        index = self.order[self.cursor:self.cursor + self.spec.batch_size]
        self.cursor += self.spec.batch_size
        return self.X[index], self.y[index]

    def _split(self, vector: torch.Tensor):
        out, offset = [], 0
        for mu, _ in _pairs(self.model):
            out.append(vector[offset:offset + mu.numel()].view_as(mu))
            offset += mu.numel()
        return out

    def fit_vi(self, prior: DiagGaussian, start: DiagGaussian, scale: int) -> DiagGaussian:
        """``local_steps`` of Bayes by Backprop from ``start`` with ``prior`` as the prior and the KL divided by
        ``scale`` (the number of data points the shard stands for); returns the fit, its mu and rho averaged over
        the second half of the steps (iterate averaging: the fit sent is not one noisy Adam step)."""
        model = load_posterior_(self.model, start).train()
        if self.adam is None:
            self.adam = torch.optim.Adam(model.parameters(), lr=self.spec.lr)
        prior_mean, prior_sd = self._split(prior.mean), self._split(prior.sd)
        params = [p for pair in _pairs(model) for p in pair]
        average, counted = [torch.zeros_like(p) for p in params], 0
        for step in range(self.spec.local_steps):
            x, y = self.batch()
            kl = sum(_kl.normal_normal(mu, F.softplus(rho), m, s, validate=False).sum()
                     for (mu, rho), m, s in zip(_pairs(model), prior_mean, prior_sd))
            loss = _nll(model(x), y, self.spec.noise_var) + kl / scale
            self.adam.zero_grad()
            loss.backward()
            self.adam.step()
            if 2 * step >= self.spec.local_steps - 1:
                counted += 1
                with torch.no_grad():
                    for a, p in zip(average, params):
                        a.add_(p)
        with torch.no_grad():
            for a, p in zip(average, params):
                p.copy_(a / counted)
        return posterior_of(model)

    def sgld(self, prior: DiagGaussian, power: float, steps: int, keep):
        """SGLD on log p(D_i | theta) + power * log prior(theta), the model's means being theta (persistent chain);
        ``keep(step, theta)`` sees each state."""
        model = self.model.eval()
        mus = [mu for mu, _ in _pairs(model)]
        sampler = SGLD(mus, lr=self.spec.sgld_lr, num_data=self.n)
        prior_mean, prior_precision = self._split(prior.mean), self._split(prior.precision)
        for step in range(steps):
            x, y = self.batch()
            log_prior = sum((0.5 * p * (mu - m) ** 2).sum() for mu, m, p in zip(mus, prior_mean, prior_precision))
            loss = _nll(model(x), y, self.spec.noise_var) + power * log_prior / self.n
            sampler.zero_grad()
            loss.backward()
            sampler.step()
            keep(step, torch.cat([mu.detach().reshape(-1) for mu in mus]))

    def moments_sgld(self, cavity: DiagGaussian) -> DiagGaussian:
        """Gaussian with the mean and variance of SGLD samples from the tilted distribution (after burn-in)."""
        stats = {"n": 0, "mean": None, "m2": None}

        def keep(step, theta):   # Welford's running mean and variance
            if step < self.spec.burn_in:
                return
            stats["n"] += 1
            if stats["mean"] is None:
                stats["mean"], stats["m2"] = theta.clone(), torch.zeros_like(theta)
                return
            delta = theta - stats["mean"]
            stats["mean"] += delta / stats["n"]
            stats["m2"] += delta * (theta - stats["mean"])

        self.sgld(cavity, 1.0, self.spec.local_steps, keep)
        var = (stats["m2"] / max(1, stats["n"] - 1)).clamp_min(1e-12)
        return DiagGaussian.from_moments(stats["mean"], var)

    def ep_message(self, q: DiagGaussian) -> list:
        """One EP step: cavity, tilted fit, damped site change; returns the encoded change (what is sent)."""
        self.round += 1
        cavity = q - self.site
        cavity.precision = torch.maximum(cavity.precision, self.floor)
        tilted = self.fit_vi(cavity, q, self.n) if self.spec.method == "vi" else self.moments_sgld(cavity)
        beta = self.spec.damping(self.round) if callable(self.spec.damping) else self.spec.damping
        change = ((tilted - cavity) - self.site) * beta
        # what a compressed message leaves out is not kept aside: the next change is measured from the site
        # as it was received, so it contains the missing part again
        parts = self.compressor.encode(change.pack(), priority=_movement(q, change))
        self.site = self.site + DiagGaussian.unpack(self.compressor.decode(parts, 2 * len(q)))
        return parts

    def fedavg_message(self, q: DiagGaussian, num_data: int) -> list:
        fitted = self.fit_vi(self.prior, q, num_data)
        return [torch.cat([fitted.mean, inverse_softplus(fitted.sd)])]


# ------------------------------------------------------------------------------------------- the processes

def _movement(q: DiagGaussian, change: DiagGaussian) -> torch.Tensor:
    """``(D,)``: how far adding ``change`` would move q, per coordinate: |Δmean| / sd + |Δprecision| / precision
    (to first order, Δmean = (Δshift - mean Δprecision) / precision)."""
    return (change.shift - q.mean * change.precision).abs() * q.sd + (change.precision / q.precision).abs()


def _gather(parts: list, rank: int, world_size: int):
    """Gather each part from every rank at rank 0; returns per worker (ranks 1..m) its list of parts, on rank 0."""
    gathered = []
    for part in parts:
        bucket = [torch.empty_like(part) for _ in range(world_size)] if rank == 0 else None
        dist.gather(part.contiguous(), bucket, dst=0)
        gathered.append(bucket)
    if rank != 0:
        return None
    return [[bucket[r] for bucket in gathered] for r in range(1, world_size)]


@torch.no_grad()
def _test_accuracy(model: nn.Module, q: DiagGaussian, test) -> float:
    net = load_posterior_(model, q, mean_only=True).eval()
    X, y = test
    return (net(X).argmax(-1) == y).float().mean().item()


def run_process(rank: int, world_size: int, report, spec: _Spec, start: DiagGaussian):
    """The body of every process of a run: rank 0 the server, ranks 1..m the workers (the group exists already).
    Returns rank 0's result (``None`` elsewhere)."""
    torch.manual_seed(spec.seed * 1000 + rank)
    num_workers = world_size - 1
    worker = _Worker(spec, rank, num_workers, start) if rank > 0 else None
    if spec.algorithm == "consensus":
        return _consensus(rank, world_size, report, spec, start, worker)
    compressor = _compress.make(spec.compression if spec.algorithm == "ep" else None)
    size = len(start)
    template = compressor.encode(torch.zeros(2 * size))
    prior = prior_of(spec.model)
    floor = prior.precision * MIN_PRECISION_FRACTION
    q = start.clone()
    history, trace, up, down = [], [], 0, 0
    began = time.perf_counter()
    eval_model = copy.deepcopy(spec.model) if rank == 0 else None
    num_data = sum(len(s) for s in spec.shards)
    for r in range(1, spec.rounds + 1):
        packed = q.pack().contiguous()
        dist.broadcast(packed, src=0)
        q = DiagGaussian.unpack(packed)
        if rank > 0:
            parts = worker.ep_message(q) if spec.algorithm == "ep" else worker.fedavg_message(q, num_data)
        else:
            parts = [torch.zeros_like(t) for t in template]
        messages = _gather(parts, rank, world_size)
        if rank != 0:
            continue
        up += sum(_compress.message_bytes(m) for m in messages)
        down += num_workers * packed.numel() * packed.element_size()
        if spec.algorithm == "ep":
            total = sum(compressor.decode(m, 2 * size) for m in messages)
            q = q + DiagGaussian.unpack(total)
        else:   # federated averaging of mu and rho
            mean, rho = (sum(m[0] for m in messages) / num_workers).chunk(2)
            q = DiagGaussian.from_moments(mean, F.softplus(rho) ** 2)
        clamped = int((q.precision < floor).sum())
        if clamped:
            mean = q.mean.where(q.precision >= floor, prior.mean)
            q.precision = torch.maximum(q.precision, floor)
            q.shift = mean * q.precision
        row = {"round": r, "seconds": round(time.perf_counter() - began, 3), "bytes_up": up, "bytes_down": down,
               "clamped": clamped}
        if spec.test is not None:
            row["test_acc"] = _test_accuracy(eval_model, q, spec.test)
        history.append(row)
        if spec.trace:
            trace.append(q.clone())
        report(row)
    if rank == 0:
        return {"posterior": q, "history": history, "trace": trace, "bytes_up": up, "bytes_down": down}


def _consensus(rank, world_size, report, spec, start, worker):
    num_workers = world_size - 1
    size = len(start)
    began = time.perf_counter()
    if rank > 0:
        draws = []
        load_posterior_(worker.model, start, mean_only=True)
        steps = spec.burn_in + spec.num_samples * spec.thin

        def keep(step, theta):
            if step >= spec.burn_in and (step - spec.burn_in) % spec.thin == spec.thin - 1:
                draws.append(theta.clone())

        worker.sgld(worker.prior, 1.0 / num_workers, steps, keep)
        parts = [torch.stack(draws)]
    else:
        parts = [torch.zeros(spec.num_samples, size)]
    messages = _gather(parts, rank, world_size)
    if rank != 0:
        return None
    draws = torch.stack([m[0] for m in messages])            # (m, S, D)
    weights = 1.0 / draws.var(dim=1, keepdim=True).clamp_min(1e-12)   # W_i: each subposterior's precision
    samples = (weights * draws).sum(0) / weights.sum(0)      # (S, D)
    posterior = DiagGaussian.from_moments(samples.mean(0), samples.var(0).clamp_min(1e-12))
    up = sum(_compress.message_bytes(m) for m in messages)
    row = {"round": 1, "seconds": round(time.perf_counter() - began, 3), "bytes_up": up, "bytes_down": 0,
           "clamped": 0}
    if spec.test is not None:
        row["test_acc"] = _test_accuracy(copy.deepcopy(spec.model), posterior, spec.test)
    report(row)
    return {"posterior": posterior, "samples": samples, "history": [row], "trace": [], "bytes_up": up,
            "bytes_down": 0}


# ------------------------------------------------------------------------------------------- public entry points

def _check_data(train_data, test_data, num_workers, noise_var=None):
    """``(X, y, test)`` on the CPU, or a ValueError/TypeError naming the argument: everything that would
    otherwise fail inside the processes, after they started."""
    pairs = {"train_data": train_data} if test_data is None else {"train_data": train_data, "test_data": test_data}
    checked = {}
    for name, data in pairs.items():
        try:
            X, y = data
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a pair (X, y) of tensors") from None
        if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor) or len(X) != len(y):
            raise TypeError(f"{name} must be a pair (X, y) of tensors with as many rows")
        if name == "train_data" and len(X) < num_workers:
            raise ValueError(f"{num_workers} workers need at least {num_workers} data points, got {len(X)}")
        for part, values in (("X", X), ("y", y)):
            if values.is_floating_point() and not bool(torch.isfinite(values).all()):
                bad = int((~torch.isfinite(values)).sum())
                raise ValueError(f"{name}: {part} holds {bad} NaN or infinite value(s); clean the data first")
        if noise_var is None and (y.is_floating_point() or y.dim() != 1):
            raise ValueError(f"{name}: y must be class labels, integers of shape (N,), got {y.dtype} of shape "
                             f"{tuple(y.shape)}; for real-valued targets pass noise_var= (the Gaussian "
                             "likelihood's variance)")
        if noise_var is not None and not (y.dim() == 1 or (y.dim() == 2 and y.shape[1] == 1)):
            raise ValueError(f"{name}: real-valued targets y must have shape (N,) or (N, 1), got {tuple(y.shape)}")
        checked[name] = (X.cpu(), y.cpu())
    X, y = checked["train_data"]
    test = checked.get("test_data")
    if test is not None and test[0].shape[1:] != X.shape[1:]:
        raise ValueError(f"test_data: X has inputs of shape {tuple(test[0].shape[1:])}, the training inputs "
                         f"{tuple(X.shape[1:])}")
    return X, y, test


def prepare(algorithm: str, model: nn.Module, train_data, num_workers: int, *, split_how: str = "random",
            seed: int = 0, test_data=None, **settings) -> tuple:
    """Check the arguments and build what every process needs: ``(spec, start)`` for :func:`run_process`
    (the same on every rank: the split is seeded). Nothing is started."""
    check_int("num_workers", num_workers)
    for name in ("rounds", "local_steps", "batch_size"):
        check_int(name, settings[name])
    if settings.get("noise_var") is not None:
        check_positive("noise_var", settings["noise_var"])
    model = copy.deepcopy(model).cpu()
    prior_of(model)   # a model without Bayes-by-Backprop layers or with a non-Gaussian prior fails here
    X, y, test = _check_data(train_data, test_data, num_workers, settings.get("noise_var"))
    with torch.no_grad():   # data that do not fit the model fail here, not in every worker
        _nll(model.eval()(X[:2]), y[:2], settings.get("noise_var"))
    start = posterior_of(model)
    spec = _Spec(algorithm=algorithm, model=model, X=X, y=y, shards=split(len(X), num_workers, split_how, y, seed),
                 test=test, seed=seed, **settings)
    return spec, start


def finish(spec: _Spec, out: dict, num_workers: int, seconds: float, split_how: str) -> DistributedRun:
    """Rank 0's result of :func:`run_process` as a :class:`DistributedRun`."""
    settings = {k: getattr(spec, k) for k in ("rounds", "local_steps", "batch_size", "lr", "method", "damping",
                                              "sgld_lr", "burn_in", "thin", "num_samples", "noise_var")}
    settings = {k: (getattr(v, "__name__", repr(v)) if callable(v) else v) for k, v in settings.items()}
    settings.update(compression=_compress.make(spec.compression).name, split=split_how, seed=spec.seed)
    return DistributedRun(method=spec.algorithm, num_workers=num_workers, posterior=out["posterior"],
                          history=out["history"], bytes_up=out["bytes_up"], bytes_down=out["bytes_down"],
                          seconds=round(seconds, 2), settings=settings, samples=out.get("samples"),
                          trace=out["trace"])


def default_timeouts(spec: _Spec, num_workers: int, step_seconds: float | None = None) -> tuple[float, float]:
    """``(timeout, comm_timeout)`` in seconds scaled to the work, from the time of a training step measured
    here: a round is ``local_steps`` steps (``burn_in + num_samples * thin`` for consensus) on each worker,
    the workers sharing the cores; both allow 20 times the estimate (a busy or slow machine) plus a margin.
    ``comm_timeout`` (gloo's) covers one round, so a hung process is found within about one round.
    ``step_seconds``: the time of one step, instead of measuring it (the median of three)."""
    import os

    if step_seconds is None:
        model = copy.deepcopy(spec.model).train()
        x, y = spec.X[:spec.batch_size], spec.y[:spec.batch_size]
        seconds = []
        for _ in range(3):
            began = time.perf_counter()
            model.zero_grad()
            _nll(model(x), y, spec.noise_var).backward()
            seconds.append(time.perf_counter() - began)
        step_seconds = sorted(seconds)[1]
    step = float(step_seconds)
    steps = spec.burn_in + spec.num_samples * spec.thin if spec.algorithm == "consensus" else spec.local_steps
    sharing = max(1.0, (num_workers + 1) / (os.cpu_count() or 1))
    round_seconds = steps * step * sharing
    if spec.test is not None:   # the server evaluates the test set after each round
        round_seconds += step * len(spec.test[0]) / max(1, spec.batch_size)
    rounds = spec.rounds if spec.algorithm != "consensus" else 1
    return 120.0 + 20.0 * rounds * round_seconds, 60.0 + 20.0 * round_seconds


def _import_before_fork():
    """The first optimizer step imports most of torch's compiler stack (about a second). Taken once here, before
    the processes fork, every worker inherits it instead of importing it again."""
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([param])
    param.sum().backward()
    optimizer.step()


def _run(algorithm: str, model: nn.Module, train_data, num_workers: int, *, progress: bool, timeout: float,
         split_how: str, seed: int, test_data, **settings) -> DistributedRun:
    spec, start = prepare(algorithm, model, train_data, num_workers, split_how=split_how, seed=seed,
                          test_data=test_data, **settings)
    rounds = spec.rounds if algorithm != "consensus" else 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        label = _label(algorithm, num_workers, _compress.make(spec.compression).name)
        bar = tqdm(total=rounds, desc=label, unit="round")

    def on_progress(rank, row):
        if bar is not None:
            bar.update(1)
            if "test_acc" in row:
                bar.set_postfix(test_acc=f"{row['test_acc']:.3f}")

    _import_before_fork()
    scaled, comm_timeout = default_timeouts(spec, num_workers)
    if timeout is None:
        timeout = scaled
    elif not timeout > 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    began = time.perf_counter()
    try:
        out = launch(run_process, num_workers + 1, args=(spec, start), timeout=timeout, on_progress=on_progress,
                     comm_timeout=comm_timeout)
    finally:
        if bar is not None:
            bar.close()
    return finish(spec, out, num_workers, time.perf_counter() - began, split_how)


def posterior_server(model: nn.Module, train_data, num_workers: int, *, rounds: int = 10, local_steps: int = 100,
                     batch_size: int = 100, method: str = "vi", damping: float | None = None, lr: float = 1e-3,
                     sgld_lr: float = 1e-4, burn_in: int | None = None, compression=None, noise_var=None,
                     split: str = "random", test_data=None, trace: bool = False, seed: int = 0,
                     timeout: float | None = None, progress: bool = True) -> DistributedRun:
    """Expectation propagation over ``num_workers`` worker processes and a server (module docstring).

    ``model``: a Bayes-by-Backprop model with Gaussian priors (its current posterior is where q starts;
    it is not changed). ``train_data``: ``(X, y)``, class labels, or real targets with ``noise_var`` (the
    Gaussian likelihood's variance). ``method``: ``"vi"`` (``local_steps`` Adam steps at ``lr``) or ``"sgld"``
    (``local_steps`` SGLD steps at ``sgld_lr``, the first ``burn_in`` (default half) discarded).
    ``damping`` β in (0, 1], default ``1 / num_workers``, or a function of the round (1, 2, ...) returning it,
    e.g. a decreasing schedule that averages noisy moments over more and more rounds (a module-level function
    where processes are spawned rather than forked). ``compression``: ``None``, ``"topk:FRACTION"``,
    ``"BITSbit"`` or a :class:`~bnn_teach.distributed.compress.Compressor`. ``trace=True`` keeps q after each round.
    ``timeout``: seconds for the whole run; default scaled to the work (:func:`default_timeouts`, from a training
    step timed before any process starts), as is the time a process waits for a silent peer.
    """
    if method not in ("vi", "sgld"):
        raise ValueError(f"method must be 'vi' or 'sgld', got {method!r}")
    rounds, local_steps = check_int("rounds", rounds), check_int("local_steps", local_steps)   # used below
    damping = 1.0 / check_int("num_workers", num_workers) if damping is None else damping
    for r in range(1, rounds + 1) if callable(damping) else [None]:
        beta = damping(r) if r is not None else damping
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 < beta <= 1.0:
            where = f" at round {r}" if r is not None else ""
            raise ValueError(f"damping must be in (0, 1]{where}, got {beta!r}")
    burn_in = local_steps // 2 if burn_in is None else check_int("burn_in", burn_in, 0)
    if method == "sgld" and burn_in >= local_steps - 1:
        raise ValueError(f"burn_in ({burn_in}) must leave at least two of the {local_steps} local steps as samples")
    _compress.make(compression)
    return _run("ep", model, train_data, num_workers, progress=progress, timeout=timeout, split_how=split,
                seed=seed, test_data=test_data, rounds=rounds, local_steps=local_steps, batch_size=batch_size,
                method=method, damping=damping if callable(damping) else float(damping), lr=lr, sgld_lr=sgld_lr,
                burn_in=burn_in,
                compression=compression, noise_var=noise_var, trace=trace)


def federated_averaging(model: nn.Module, train_data, num_workers: int, *, rounds: int = 10, local_steps: int = 100,
                        batch_size: int = 100, lr: float = 1e-3, noise_var=None, split: str = "random",
                        test_data=None, trace: bool = False, seed: int = 0, timeout: float | None = None,
                        progress: bool = True) -> DistributedRun:
    """Federated averaging of variational posteriors: each round every worker starts from the global (mu, sigma),
    runs ``local_steps`` of Bayes by Backprop on its shard with the prior and the KL divided by the full N (its shard
    standing in for all the data), and the server averages the workers' mu and rho."""
    return _run("fedavg", model, train_data, num_workers, progress=progress, timeout=timeout, split_how=split,
                seed=seed, test_data=test_data, rounds=rounds, local_steps=local_steps, batch_size=batch_size,
                lr=lr, noise_var=noise_var, trace=trace)


def consensus_monte_carlo(model: nn.Module, train_data, num_workers: int, *, num_samples: int = 100,
                          burn_in: int = 500, thin: int = 10, batch_size: int = 100, sgld_lr: float = 1e-4,
                          noise_var=None, split: str = "random", test_data=None, seed: int = 0,
                          timeout: float | None = None, progress: bool = True) -> DistributedRun:
    """Consensus Monte Carlo: each worker runs SGLD on its subposterior p(theta)^(1/m) p(D_i | theta) from the model's
    mean (``burn_in`` steps, then ``num_samples`` draws ``thin`` steps apart) and sends its draws once; the server
    combines draw s of every worker as sum_i W_i theta_is / sum_i W_i, W_i the inverse of worker i's sample
    variances (exact when the subposteriors are Gaussian). Returns the combined draws as ``samples``."""
    check_int("num_samples", num_samples, 2)
    check_int("burn_in", burn_in, 0)
    check_int("thin", thin)
    return _run("consensus", model, train_data, num_workers, progress=progress, timeout=timeout, split_how=split,
                seed=seed, test_data=test_data, rounds=1, local_steps=1, batch_size=batch_size, lr=0.0,
                sgld_lr=sgld_lr, burn_in=burn_in, thin=thin, num_samples=num_samples, noise_var=noise_var)
