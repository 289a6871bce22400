"""Stochastic-gradient MCMC: SGLD, preconditioned SGLD, SGHMC, SGLD-SA, cyclical step sizes, sample collection.

Lecture 6 (SG-MCMC) derives them. Every sampler takes the **same per-data-point loss as the ELBO**,
``loss = nll_mean_over_batch + neg_log_prior / num_data``, and multiplies its gradient by ``num_data``
itself, so it steps on the full-data negative log posterior

.. math::

    U(\\theta) = -\\log p(\\theta) - \\sum_{i=1}^{N} \\log p(y_i \\mid x_i, \\theta),
    \\qquad \\widehat{\\nabla U} = N \\,\\nabla_\\theta\\, \\texttt{loss}.

``temperature`` T scales the injected noise (T = 1: the posterior; T = 0: plain optimisation).
"""
from __future__ import annotations

import copy
import math
import numbers

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from bnn_teach._checks import check_positive, model_device

__all__ = ["SGLD", "SGHMC", "HMC", "SGLDSA", "CyclicalLR", "SampleCollector", "SampleEnsemble"]


def _evaluate_closure(closure):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _check_finite_grads(name: str, param_groups) -> None:
    """Refuse a step on NaN/inf gradients (one check per step), so a chain is never silently corrupted."""
    grads = [p.grad for group in param_groups for p in group["params"] if p.grad is not None]
    if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
        raise FloatingPointError(f"{name}: a gradient holds NaN or inf; the parameters were left unchanged. "
                                 "Check the loss and its inputs for NaN, or lower lr")


def _check_common(lr, num_data, temperature):
    check_positive("lr", lr)
    check_positive("num_data", num_data, integer=True)
    check_positive("temperature", temperature, allow_zero=True)


class SGLD(Optimizer):
    r"""Stochastic gradient Langevin dynamics (Welling & Teh 2011), optionally preconditioned (Li et al. 2016).

    .. math::

        \theta \leftarrow \theta - \mathrm{lr}\,\widehat{\nabla U}(\theta) + \mathcal N(0,\ 2\,\mathrm{lr}\,T),
        \qquad \widehat{\nabla U} = N\,\nabla\,\texttt{loss}

    With ``preconditioned=True`` (pSGLD, RMSprop-style):
    :math:`V \leftarrow \alpha V + (1-\alpha)\,\bar g^2`, :math:`G = 1 / (\epsilon + \sqrt V)` with
    :math:`\bar g = \nabla\texttt{loss}`, and
    :math:`\theta \leftarrow \theta - \mathrm{lr}\,G \odot \widehat{\nabla U} + \mathcal N(0,\ 2\,\mathrm{lr}\,T\,G)`
    (the small correction term :math:`\Gamma` is dropped, as in the paper's experiments).

    Parameters
    ----------
    params : iterable of parameters
    lr : step size (> 0)
    num_data : N, the number of training points (> 0)
    temperature : T ≥ 0; T = 0 is SGD with learning rate ``lr * num_data``

    A step on a NaN or infinite gradient raises ``FloatingPointError`` and leaves the parameters unchanged.

    Sampling a known posterior: with ``loss = theta^2 / (2 N)`` per data point, U = theta^2 / 2, so the
    samples follow N(0, 1):

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> theta = torch.zeros(1, requires_grad=True)
    >>> opt = SGLD([theta], lr=0.05, num_data=10)
    >>> samples = []
    >>> for step in range(5000):
    ...     opt.zero_grad()
    ...     (0.5 * theta.pow(2).sum() / 10).backward()
    ...     opt.step()
    ...     samples.append(theta.item())
    >>> std = torch.tensor(samples[500:]).std().item()
    >>> 0.85 < std < 1.15
    True
    """

    def __init__(self, params, lr, num_data, temperature=1.0, preconditioned=False, alpha=0.99, eps=1e-5):
        _check_common(lr, num_data, temperature)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
        check_positive("eps", eps)
        defaults = dict(lr=lr, num_data=num_data, temperature=temperature,
                        preconditioned=bool(preconditioned), alpha=alpha, eps=eps)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate_closure(closure)
        _check_finite_grads(type(self).__name__, self.param_groups)
        for group in self.param_groups:
            lr, n, temp = group["lr"], group["num_data"], group["temperature"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad_u = p.grad * n
                if group["preconditioned"]:
                    state = self.state[p]
                    if "square_avg" not in state:
                        state["square_avg"] = torch.zeros_like(p)
                    v = state["square_avg"]
                    v.mul_(group["alpha"]).addcmul_(p.grad, p.grad, value=1 - group["alpha"])
                    precond = 1.0 / (group["eps"] + v.sqrt())
                    p.addcmul_(precond, grad_u, value=-lr)
                    if temp > 0:
                        p.add_(torch.randn_like(p) * torch.sqrt(2.0 * lr * temp * precond))
                else:
                    p.add_(grad_u, alpha=-lr)
                    if temp > 0:
                        p.add_(torch.randn_like(p), alpha=math.sqrt(2.0 * lr * temp))
        return loss


class SGHMC(Optimizer):
    r"""Stochastic gradient Hamiltonian Monte Carlo (Chen, Fox & Guestrin 2014), SGD-with-momentum form.

    .. math::

        v \leftarrow (1 - \alpha)\,v - \mathrm{lr}\,\widehat{\nabla U}(\theta)
                 + \mathcal N\big(0,\ 2(\alpha - \hat\beta)\,\mathrm{lr}\,T\big), \qquad
        \theta \leftarrow \theta + v

    ``friction`` is :math:`\alpha` (one minus the momentum), ``beta_hat`` the estimated gradient
    noise (0 by default). With ``temperature=0`` it is SGD with momentum ``1 - friction`` and
    learning rate ``lr * num_data``. A step on a NaN or infinite gradient raises ``FloatingPointError``.

    The same N(0, 1) posterior as in :class:`SGLD` (``loss = theta^2 / (2 N)``):

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> theta = torch.zeros(1, requires_grad=True)
    >>> opt = SGHMC([theta], lr=0.005, num_data=10, friction=0.1)
    >>> samples = []
    >>> for step in range(5000):
    ...     opt.zero_grad()
    ...     (0.5 * theta.pow(2).sum() / 10).backward()
    ...     opt.step()
    ...     samples.append(theta.item())
    >>> std = torch.tensor(samples[500:]).std().item()
    >>> 0.8 < std < 1.2
    True
    """

    def __init__(self, params, lr, num_data, friction=0.1, temperature=1.0, beta_hat=0.0):
        _check_common(lr, num_data, temperature)
        if isinstance(friction, bool) or not isinstance(friction, numbers.Real) or not 0.0 < friction <= 1.0:
            raise ValueError(f"friction must be in (0, 1], got {friction!r}")
        if not 0.0 <= beta_hat <= friction:
            raise ValueError(f"beta_hat must be in [0, friction], got {beta_hat!r}")
        super().__init__(params, dict(lr=lr, num_data=num_data, friction=friction, temperature=temperature,
                                      beta_hat=beta_hat))

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate_closure(closure)
        _check_finite_grads(type(self).__name__, self.param_groups)
        for group in self.param_groups:
            lr, n, temp = group["lr"], group["num_data"], group["temperature"]
            alpha, beta_hat = group["friction"], group["beta_hat"]
            noise_std = math.sqrt(2.0 * (alpha - beta_hat) * lr * temp)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                v = state["momentum"]
                v.mul_(1.0 - alpha).add_(p.grad, alpha=-lr * n)
                if noise_std > 0:
                    v.add_(torch.randn_like(p), alpha=noise_std)
                p.add_(v)
        return loss


class HMC:
    r"""Hamiltonian Monte Carlo with a Metropolis correction (Neal 2011): the reference sampler, full batch.

    One :meth:`step` draws a momentum :math:`r \sim \mathcal N(0, I)`, runs ``num_leapfrog`` leapfrog steps
    of size :math:`\epsilon` = ``step_size`` on :math:`H(\theta, r) = U(\theta)/T + \tfrac12 \lVert r\rVert^2`,

    .. math::

        r \leftarrow r - \tfrac{\epsilon}{2}\nabla U/T,\quad
        \theta \leftarrow \theta + \epsilon\, r,\quad
        r \leftarrow r - \tfrac{\epsilon}{2}\nabla U/T,

    and accepts the end point with probability :math:`\min(1, e^{H_0 - H_1})`, else keeps
    :math:`\theta`. The correction makes the chain exact for any :math:`\epsilon` (only the acceptance
    rate falls as :math:`\epsilon` grows); without it (``metropolis=False``) the chain samples a nearby,
    wrong distribution. ``closure()`` returns the same per-data-point loss as the other samplers
    (``nll_mean + neg_log_prior / num_data`` on the **full** data), so :math:`U = N \cdot` loss.

    The N(0, 1) posterior of :class:`SGLD` (``loss = theta^2 / (2 N)``):

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> theta = torch.zeros(1, requires_grad=True)
    >>> hmc = HMC([theta], step_size=0.5, num_leapfrog=5, num_data=10)
    >>> samples = [(hmc.step(lambda: 0.5 * theta.pow(2).sum() / 10), theta.item())[1] for _ in range(3000)]
    >>> std = torch.tensor(samples[200:]).std().item()
    >>> 0.9 < std < 1.1 and hmc.acceptance_rate > 0.8
    True
    """

    def __init__(self, params, step_size: float, num_leapfrog: int, num_data: int, temperature: float = 1.0,
                 metropolis: bool = True, generator: torch.Generator | None = None):
        check_positive("step_size", step_size)
        check_positive("num_leapfrog", num_leapfrog, integer=True)
        check_positive("num_data", num_data, integer=True)
        check_positive("temperature", temperature)
        self.params = [p for p in params]
        if not self.params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in self.params):
            raise ValueError("HMC needs a non-empty list of tensors that require grad")
        self.step_size, self.num_leapfrog, self.num_data = float(step_size), int(num_leapfrog), int(num_data)
        self.temperature, self.metropolis, self.generator = float(temperature), bool(metropolis), generator
        self.accepted = self.proposed = 0

    @property
    def acceptance_rate(self) -> float:
        """The fraction of proposals accepted so far."""
        return self.accepted / max(1, self.proposed)

    def _potential(self, closure):
        """U / T and its gradient at the current parameters."""
        with torch.enable_grad():
            loss = closure()
            grads = torch.autograd.grad(loss, self.params)
        scale = self.num_data / self.temperature
        if not math.isfinite(float(loss)) or not all(bool(torch.isfinite(g).all()) for g in grads):
            return math.inf, None
        return float(loss) * scale, [g * scale for g in grads]

    @torch.no_grad()
    def step(self, closure) -> bool:
        """One HMC transition; returns whether the proposal was accepted (the parameters then moved)."""
        start = [p.detach().clone() for p in self.params]
        u0, grads = self._potential(closure)
        if grads is None:
            raise FloatingPointError("HMC: the loss or its gradient is NaN or inf at the current parameters")
        momenta = [torch.randn(p.shape, generator=self.generator, dtype=p.dtype).to(p.device) for p in self.params]
        k0 = sum(float((r * r).sum()) for r in momenta) / 2
        eps = self.step_size
        u1 = u0
        for r, g in zip(momenta, grads):
            r.sub_(g, alpha=eps / 2)
        for leap in range(self.num_leapfrog):
            for p, r in zip(self.params, momenta):
                p.add_(r, alpha=eps)
            u1, grads = self._potential(closure)
            if grads is None:  # diverged: reject
                break
            for r, g in zip(momenta, grads):
                r.sub_(g, alpha=eps if leap < self.num_leapfrog - 1 else eps / 2)
        k1 = sum(float((r * r).sum()) for r in momenta) / 2 if grads is not None else math.inf
        self.proposed += 1
        log_ratio = (u0 + k0) - (u1 + k1)
        accept = grads is not None and (not self.metropolis or math.log(
            max(torch.rand((), generator=self.generator).item(), 1e-300)) < min(0.0, log_ratio))
        if accept:
            self.accepted += 1
        else:
            for p, value in zip(self.params, start):
                p.copy_(value)
        return accept


class CyclicalLR(LambdaLR):
    r"""Cyclical step size of cSG-MCMC (Zhang et al. 2020): within each of ``num_cycles`` cycles of
    :math:`L = \lceil K / M \rceil` steps,

    .. math::

        \mathrm{lr}_k = \frac{\mathrm{lr}_0}{2}\left[\cos\left(\frac{\pi\,(k \bmod L)}{L}\right) + 1\right].

    Step it once per optimiser step. ``is_sampling(k)`` is True in the last ``1 - exploration``
    fraction of each cycle, where samples are collected (the first part explores).

    ``exploration_temperature``: ``None`` keeps the sampler's temperature throughout; ``0.0`` makes the
    exploration stage plain SGD with no injected noise, as in Zhang et al.'s Algorithm 1 (the sampler's own
    temperature returns for the sampling stage). It needs a sampler with a ``temperature`` (SGLD, SGHMC).
    """

    def __init__(self, optimizer, total_steps: int, num_cycles: int, exploration: float = 0.8,
                 exploration_temperature: float | None = None):
        check_positive("total_steps", total_steps, integer=True)
        check_positive("num_cycles", num_cycles, integer=True)
        if not 0.0 <= exploration < 1.0:
            raise ValueError(f"exploration must be in [0, 1), got {exploration!r}")
        if exploration_temperature is not None:
            if any("temperature" not in group for group in optimizer.param_groups):
                raise ValueError("exploration_temperature needs a sampler with a temperature (SGLD, SGHMC), "
                                 f"got {type(optimizer).__name__}")
            if isinstance(exploration_temperature, bool) or not exploration_temperature >= 0:
                raise ValueError(f"exploration_temperature must be >= 0 or None, got {exploration_temperature!r}")
        self.cycle_length = math.ceil(total_steps / num_cycles)
        self.exploration = exploration
        self.exploration_temperature = exploration_temperature
        self._sampling_temperatures = [group.get("temperature") for group in optimizer.param_groups]
        super().__init__(
            optimizer, lambda k: 0.5 * (math.cos(math.pi * (k % self.cycle_length) / self.cycle_length) + 1.0)
        )

    def step(self, *args, **kwargs):
        super().step(*args, **kwargs)
        if self.exploration_temperature is not None:
            sampling = self.is_sampling()
            for group, temperature in zip(self.optimizer.param_groups, self._sampling_temperatures):
                group["temperature"] = temperature if sampling else self.exploration_temperature

    def is_sampling(self, step: int | None = None) -> bool:
        k = self.last_epoch if step is None else step
        return (k % self.cycle_length) / self.cycle_length >= self.exploration


class SampleEnsemble(nn.Module):
    """A posterior sample as an ensemble: one network, many parameter snapshots.

    ``forward(X)`` returns the stacked outputs ``(num_members, batch, ...)``; ``members()`` yields the
    network loaded with each snapshot in turn. :func:`bnn_teach.predict.mc_predict` accepts it.
    """

    def __init__(self, model: nn.Module, samples: list):
        super().__init__()
        if not samples:
            raise ValueError("an ensemble needs at least one sample (did burn-in end before training did?)")
        self.model = copy.deepcopy(model)
        self.samples = list(samples)

    @classmethod
    def from_models(cls, models) -> SampleEnsemble:
        """A deep ensemble (lecture 1): networks of one architecture trained independently, e.g. from
        different seeds, predicting as one (``mc_predict`` averages their softmax outputs)."""
        models = list(models)
        if not models:
            raise ValueError("an ensemble needs at least one model")
        return cls(models[0], [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models])

    def __len__(self):
        return len(self.samples)

    def members(self):
        device = model_device(self.model)
        for state in self.samples:
            self.model.load_state_dict({k: v.to(device) for k, v in state.items()})
            yield self.model

    def forward(self, X):
        return torch.stack([member(X) for member in self.members()])


class SampleCollector:
    """Keep parameter snapshots from an SG-MCMC run: burn-in, thinning, bounded memory (on the CPU).

    Call :meth:`step` once after every optimiser step. After ``burn_in`` steps it keeps every
    ``thin``-th state; when ``max_samples`` are held it drops every other one and doubles ``thin``,
    so memory stays bounded and the samples stay evenly spread over the run.

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(2, 2)
    >>> opt = SGLD(model.parameters(), lr=1e-4, num_data=100)
    >>> collector = SampleCollector(model, burn_in=100, thin=10, max_samples=50)
    >>> X, y = torch.randn(100, 2), torch.randint(0, 2, (100,))
    >>> for step in range(300):
    ...     opt.zero_grad()
    ...     torch.nn.functional.cross_entropy(model(X), y).backward()
    ...     opt.step()
    ...     kept = collector.step()
    >>> len(collector.samples)               # (300 - 100) / 10 snapshots after burn-in
    20
    >>> ensemble = collector.ensemble()       # bnn_teach.predict.mc_predict(ensemble, X) uses each once
    >>> ensemble(X).shape
    torch.Size([20, 100, 2])
    """

    def __init__(self, model: nn.Module, burn_in: int = 0, thin: int = 1, max_samples: int = 100):
        check_positive("burn_in", burn_in, allow_zero=True, integer=True)
        check_positive("thin", thin, integer=True)
        check_positive("max_samples", max_samples, integer=True)
        if max_samples < 2:
            raise ValueError(f"max_samples must be at least 2, got {max_samples}")
        self.model, self.burn_in, self.thin, self.max_samples = model, int(burn_in), int(thin), int(max_samples)
        self.num_steps = 0
        self.samples: list[dict] = []
        self.sample_steps: list[int] = []

    def step(self) -> bool:
        """Count one sampler step; returns True when this state was kept."""
        self.num_steps += 1
        after = self.num_steps - self.burn_in
        if after <= 0 or after % self.thin:
            return False
        self.samples.append({k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()})
        self.sample_steps.append(self.num_steps)
        if len(self.samples) > self.max_samples:
            keep = [i for i, s in enumerate(self.sample_steps) if (s - self.burn_in) % (2 * self.thin) == 0]
            self.samples = [self.samples[i] for i in keep]
            self.sample_steps = [self.sample_steps[i] for i in keep]
            self.thin *= 2
        return True

    def stacked(self, name: str) -> torch.Tensor:
        """One parameter over the kept samples, shape ``(num_samples, *param.shape)`` (for traces)."""
        if not self.samples:
            raise ValueError("no samples collected yet")
        return torch.stack([s[name] for s in self.samples])

    def ensemble(self) -> SampleEnsemble:
        return SampleEnsemble(self.model, self.samples)


class SGLDSA(SGLD):
    r"""SGLD with stochastic approximation of an adaptive spike-and-slab prior (Deng et al. 2019).

    Spike-and-slab Gaussian-Laplace (SSGL) prior on the parameters of the "sparse" groups:

    .. math::

        \beta_j \mid \sigma^2, \gamma_j \sim (1-\gamma_j)\,\mathcal L(0, \sigma v_0)
            + \gamma_j\,\mathcal N(0, \sigma^2 v_1),
        \quad \gamma_j \sim \mathrm{Bernoulli}(\delta),\ \delta \sim \mathrm{Beta}(a, b),
            \ \sigma^2 \sim IG(\nu/2, \nu\lambda/2).

    Each :meth:`step` is an SGLD step on the loss plus the SSGL penalty of the current latent
    estimates (its gradient :math:`\mathrm{sign}(\beta)\kappa_0/\sigma + \beta\kappa_1/\sigma^2`, divided by N
    like every prior term), then the SA updates with weight :math:`\omega_k` (Eqs. 5-8):

    - :math:`\tilde\rho_j = a_j / (a_j + b_j)`, :math:`a_j = \mathcal N(\beta_j; 0, \sigma^2 v_1)\,\delta`,
      :math:`b_j = \mathcal L(\beta_j; 0, \sigma v_0)(1-\delta)`;
    - :math:`\tilde\kappa_{j0} = (1-\rho_j)/v_0`, :math:`\tilde\kappa_{j1} = \rho_j / v_1`;
    - :math:`\tilde\sigma = (R_b + \sqrt{R_b^2 + 4R_aR_c})/(2R_a)` with :math:`R_a = N + p + \nu`,
      :math:`R_b = \sum_j \kappa_{j0}|\beta_j|`, :math:`R_c = I + J + \nu\lambda`,
      :math:`I = \frac{N}{n}\sum_{i\in B}(y_i - \hat y_i)^2`, :math:`J = \sum_j \kappa_{j1}\beta_j^2`
      (classification: :math:`C_a = p + \nu + 2`, :math:`C_c = J + \nu\lambda`);
    - :math:`\tilde\delta = (\sum_j \rho_j + a - 1)/(a + b + p - 2)`;
    - each latent :math:`x \leftarrow (1-\omega_k)\,x + \omega_k\,\tilde x`.

    The loss passed to ``backward`` must not contain the SSGL prior (the sampler adds it); for
    regression it is :math:`\frac{1}{2\sigma^2}\,\mathrm{mean}_B (y - \hat y)^2`, using ``self.sigma``, and
    ``step(sse=..., batch_size=...)`` receives the batch's sum of squared residuals for :math:`I`.

    Parameters
    ----------
    params : the sparse parameters (the SSGL prior applies to all of them)
    lr, num_data, temperature : as :class:`SGLD`
    v0, v1 : spike (Laplace) and slab (Gaussian) scales
    a, b, nu, lam : hyper-parameters of the Beta and inverse-gamma priors
    sa_weight : callable ``k -> omega_k`` (default ``(k + 1000) ** -0.7``: slow enough for beta to move first)
    regression : use the regression update of sigma (else classification)
    prune : optional ``(S, D, U)``: after step k, set the ``s_k = S (1 - D^{k/U})`` fraction of the
        parameters with the smallest magnitude (over all groups together) to zero (Algorithm 1's
        pruning schedule; the sparse rate rises towards the target S)
    """

    def __init__(self, params, lr, num_data, temperature=1.0, v0=0.01, v1=10.0, a=1.0, b=None, nu=1.0, lam=1.0,
                 sigma_init=1.0, delta_init=0.5, sa_weight=None, regression=True, prune=None):
        super().__init__(params, lr, num_data, temperature)
        if prune is not None:
            target, decay, interval = prune
            if not (0.0 < target < 1.0 and 0.0 < decay < 1.0 and interval > 0):
                raise ValueError(f"prune must be (S in (0, 1), D in (0, 1), U > 0), got {prune!r}")
        self.prune = prune
        for name, value in (("v0", v0), ("v1", v1), ("a", a), ("nu", nu), ("lam", lam), ("sigma_init", sigma_init)):
            check_positive(name, value)
        if not 0.0 < delta_init < 1.0:
            raise ValueError(f"delta_init must be in (0, 1), got {delta_init!r}")
        params_list = [p for g in self.param_groups for p in g["params"]]
        self.p = sum(p.numel() for p in params_list)
        self.v0, self.v1, self.a, self.nu, self.lam = float(v0), float(v1), float(a), float(nu), float(lam)
        self.b = float(self.p if b is None else check_positive("b", b))
        self.sigma, self.delta = float(sigma_init), float(delta_init)
        self.sa_weight = sa_weight or (lambda k: (k + 1000.0) ** -0.7)
        self.regression = bool(regression)
        self.k = 0
        for p in params_list:
            self.state[p]["rho"] = torch.full_like(p, self.delta)
            self.state[p]["kappa0"] = (1 - self.state[p]["rho"]) / self.v0
            self.state[p]["kappa1"] = self.state[p]["rho"] / self.v1

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure=None, sse=None, batch_size=None):
        """One SGLD step with the SSGL prior, then the SA updates. ``sse``: batch residual sum of squares."""
        if self.regression and (sse is None or batch_size is None):
            raise ValueError("regression=True: pass step(sse=sum of squared residuals of the batch, batch_size=n)")
        n_data = self.param_groups[0]["num_data"]
        for p in self._params():
            if p.grad is None:
                continue
            st = self.state[p]
            prior_grad = torch.sign(p) * st["kappa0"] / self.sigma + p * st["kappa1"] / self.sigma**2
            p.grad.add_(prior_grad, alpha=1.0 / n_data)
        loss = super().step(closure)
        self.k += 1
        omega = float(self.sa_weight(self.k))
        if not 0.0 < omega <= 1.0:
            raise ValueError(f"sa_weight({self.k}) = {omega} is not in (0, 1]")
        sigma, delta = self.sigma, self.delta
        r_b = j = rho_sum = 0.0
        for p in self._params():
            st = self.state[p]
            log_slab = -0.5 * p**2 / (sigma**2 * self.v1) - 0.5 * math.log(2 * math.pi * sigma**2 * self.v1)
            log_spike = -p.abs() / (sigma * self.v0) - math.log(2 * sigma * self.v0)
            rho_tilde = torch.sigmoid(log_slab + math.log(delta) - log_spike - math.log1p(-delta))
            st["rho"].mul_(1 - omega).add_(rho_tilde, alpha=omega)
            st["kappa0"].mul_(1 - omega).add_((1 - st["rho"]) / self.v0, alpha=omega)
            st["kappa1"].mul_(1 - omega).add_(st["rho"] / self.v1, alpha=omega)
            r_b += float((st["kappa0"] * p.abs()).sum())
            j += float((st["kappa1"] * p**2).sum())
            rho_sum += float(st["rho"].sum())
        if self.regression:
            r_a = n_data + self.p + self.nu
            r_c = n_data / batch_size * float(sse) + j + self.nu * self.lam
        else:
            r_a = self.p + self.nu + 2
            r_c = j + self.nu * self.lam
        sigma_tilde = (r_b + math.sqrt(r_b**2 + 4 * r_a * r_c)) / (2 * r_a)
        delta_tilde = (rho_sum + self.a - 1) / (self.a + self.b + self.p - 2)
        self.sigma = (1 - omega) * sigma + omega * sigma_tilde
        self.delta = min(max((1 - omega) * delta + omega * delta_tilde, 1e-6), 1 - 1e-6)
        if self.prune is not None:
            self._prune_smallest(self.sparse_rate())
        return loss

    def sparse_rate(self, k: int | None = None) -> float:
        """The pruning schedule's sparse rate after step ``k`` (default: the current step): S (1 - D^{k/U})."""
        if self.prune is None:
            return 0.0
        target, decay, interval = self.prune
        return target * (1.0 - decay ** ((self.k if k is None else k) / interval))

    def _prune_smallest(self, rate: float):
        params = self._params()
        magnitudes = torch.cat([p.detach().abs().flatten() for p in params])
        count = int(rate * magnitudes.numel())
        if count == 0:
            return
        threshold = torch.kthvalue(magnitudes.cpu(), count).values.item()
        for p in params:
            p.masked_fill_(p.abs() <= threshold, 0.0)

    def inclusion_probabilities(self) -> list[torch.Tensor]:
        """rho: the estimated probability that each parameter belongs to the slab (is 'in the model')."""
        return [self.state[p]["rho"].clone() for p in self._params()]
