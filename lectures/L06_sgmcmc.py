# %% [markdown]
# # L06 · Stochastic-gradient MCMC: SGLD, SGHMC and SGLD-SA
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L06_sgmcmc.ipynb)
#
# **The question.** Lectures 2–5 replaced the posterior by a Gaussian $q$ and fitted it. Can we instead
# draw *samples* from the posterior itself, at the price of SGD: one mini-batch gradient per step, plus
# noise? How much noise turns an optimiser into a sampler, and how do we know the chain has explored
# the posterior rather than sat in one mode? The picture: the two-mode posterior of Welling & Teh (2011),
# sampled by stochastic gradient Langevin dynamics (SGLD) with mini-batches of 10 points, over the
# contours of the exact posterior.

# %%
# Setup: on Colab (detected, not assumed) install the course's library from its repository, then
# `bnn-teach check --download` shows the device (Colab's GPU when the runtime has one) and fetches
# MNIST; on your own machine `make lab` has installed everything and this cell does nothing.
import os
import sys

if "google.colab" in sys.modules:
    import subprocess

    source = os.environ.get("BNN_TEACH_INSTALL", "git+https://github.com/bnn-teach/bnn_teach@main")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"bnn_teach[course] @ {source}"], check=True)
    subprocess.run([sys.executable, "-m", "bnn_teach.cli", "check", "--download"], check=False)

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import bnn_teach as bt

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer steps, chains and images, the same code
MIXTURE_STEPS = 2_500 if FAST else 6_000  # SGLD steps of each chain on the two-mode posterior
NUM_CHAINS = 100 if FAST else 200  # chains run side by side for the moment checks
CHECK_STEPS = 1_500 if FAST else 3_000  # steps of each of those chains
ESS_CHAINS, ESS_STEPS = (20, 3_000) if FAST else (40, 6_000)  # for the effective sample sizes
SA_STEPS = 2_000 if FAST else 10_000  # sampler steps on the large-p-small-n regression
TRAIN_SIZE = 2_000 if FAST else 10_000  # MNIST training images
TEST_SIZE = 2_000 if FAST else 10_000
NUM_EPOCHS = 20 if FAST else 40  # for the SGD network and each SGLD chain on MNIST
NAIVE_STEPS = 4_000 if FAST else 8_000  # steps of the naive-SGHMC demonstration (section 4)
HMC_CHAINS, HMC_ITERATIONS = (2, 600) if FAST else (4, 2_000)  # the reference posterior of section 8
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: SGLD on a posterior with two modes
#
# Welling & Teh's example: $\theta_1 \sim \mathcal N(0, 10)$, $\theta_2 \sim \mathcal N(0, 1)$, and 100 points
# $x_i \sim \tfrac12\,\mathcal N(\theta_1, 2) + \tfrac12\,\mathcal N(\theta_1 + \theta_2, 2)$ drawn with
# $\theta = (0, 1)$. Swapping the two components, $\theta = (1, -1)$ explains the data as well: the
# posterior has two modes joined by a ridge (for this draw of the data; for some draws the two merge into
# one long ridge). Its unnormalised log density is three lines, so we can draw its exact contours.
# `NUM_MIX` chains run side by side (one row of `theta` each); every step sees a mini-batch of 10 points.

# %%
generator = torch.Generator().manual_seed(20)
mix_data = (torch.where(torch.rand(100, generator=generator) < 0.5, 0.0, 1.0)
            + math.sqrt(2) * torch.randn(100, generator=generator))


def mixture_log_likelihood(theta, x):
    """log p(x_i | theta) up to a constant, for each row of theta (C, 2) and each x_i: shape (C, len(x))."""
    t1, t2 = theta[:, :1], theta[:, 1:]
    return torch.logaddexp(-(x - t1) ** 2 / 4, -(x - t1 - t2) ** 2 / 4)


def mixture_log_posterior(theta):
    """The exact unnormalised log posterior of each row of theta (C, 2)."""
    log_prior = -theta[:, 0] ** 2 / 20 - theta[:, 1] ** 2 / 2
    return mixture_log_likelihood(theta, mix_data.to(theta.dtype)).sum(1) + log_prior


NUM_MIX = 20
torch.manual_seed(SEED)
theta = torch.zeros(NUM_MIX, 2, requires_grad=True)
sgld = bt.sgmcmc.SGLD([theta], lr=5e-3, num_data=len(mix_data))
mix_chains = []
for step in range(MIXTURE_STEPS):
    batch = mix_data[torch.randint(0, len(mix_data), (NUM_MIX, 10))]  # each chain its own mini-batch
    nll = -mixture_log_likelihood(theta, batch).mean(1)  # (C,) mean over the mini-batch
    neg_log_prior = theta[:, 0] ** 2 / 20 + theta[:, 1] ** 2 / 2
    loss = nll + neg_log_prior / len(mix_data)  # the per-data-point loss of every lecture
    sgld.zero_grad()
    loss.sum().backward()  # the sum over chains: each row gets its own chain's gradient
    sgld.step()
    if step >= MIXTURE_STEPS // 5 and step % 10 == 0:  # burn-in, then every 10th state
        mix_chains.append(theta.detach().clone())
mix_chains = torch.stack(mix_chains)  # (samples, chains, 2)
mix_samples = mix_chains.reshape(-1, 2)
fig = bt.viz.plot_samples_2d(mix_samples, mixture_log_posterior, extent=(-1.5, 2.5, -3, 3),
                             title="SGLD on Welling & Teh's mixture: samples over the exact posterior")

# %% [markdown]
# Does the sample cover both explanations in the right proportions? The line $\theta_2 = 0$ separates the
# two modes; the exact posterior's share on each side comes from a fine grid.

# %%
grid = torch.stack(torch.meshgrid(torch.linspace(-4, 5, 451, dtype=torch.float64),
                                  torch.linspace(-5, 5, 501, dtype=torch.float64), indexing="ij"), -1).reshape(-1, 2)
log_density = mixture_log_posterior(grid)
weights = torch.softmax(log_density, 0)
exact_share = float(weights[grid[:, 1] > 0].sum())
for side, name in [(grid[:, 1] > 0, "theta2 > 0"), (grid[:, 1] <= 0, "theta2 <= 0")]:
    mode = grid[side][log_density[side].argmax()]
    print(f"exact posterior's highest point with {name}: ({mode[0]:.2f}, {mode[1]:.2f})")
sgld_share = float((mix_samples[:, 1] > 0).float().mean())
print(f"share with theta2 > 0 (the mode near (0, 1)): exact {exact_share:.3f}, SGLD {sgld_share:.3f} "
      f"({len(mix_samples):,} samples from {NUM_MIX} chains)")
assert abs(sgld_share - exact_share) < 0.08, f"SGLD's share {sgld_share:.3f} vs the exact {exact_share:.3f}"
assert min(sgld_share, 1 - sgld_share) > 0.3, "SGLD did not visit both modes"

# %% [markdown]
# Both modes are visited, in about the exact proportion. Two choices made that easy. The chains all start
# at $\theta = (0, 0)$, on the line $\theta_2 = 0$ between the modes, near the saddle: no mode is favoured at
# the start, and each chain falls to one side during the burn-in (the first fifth of the steps, discarded).
# A chain started deep in one mode has to cross the ridge to reach the other, which takes far longer.
# And the step size is constant: Welling & Teh let it decrease ($\epsilon_t = a(b + t)^{-\gamma}$,
# $\gamma \in (0.5, 1]$) so that the discretisation error vanishes as the chain goes on; a constant step
# keeps a small bias, and the cloud is a little wider than the exact contours (measured in section 3). A single
# gradient-descent run would end in one of them; a Gaussian $q$ would cover one, or smear over both
# (lecture 2). How does adding noise to SGD achieve this?
#
# ## 2. From Langevin dynamics to SGLD
#
# Write the posterior as $p(\theta \mid \mathcal D) \propto e^{-U(\theta)}$ with the **potential**
#
# $$U(\theta) = -\log p(\theta) - \sum_{i=1}^N \log p(y_i \mid x_i, \theta).$$
#
# The **Langevin diffusion** at temperature $T$,
# $\mathrm d\theta = -\nabla U(\theta)\,\mathrm dt + \sqrt{2T}\,\mathrm dW_t$, moves a density $\rho$ by the
# Fokker–Planck equation $\partial_t \rho = \nabla\cdot\big(\rho\,\nabla U + T\,\nabla\rho\big)$. The bracket
# vanishes for $\rho \propto e^{-U/T}$, so that density is stationary: at $T = 1$ it is the posterior.
# One Euler step of length $\mathrm{lr}$:
#
# $$\theta \leftarrow \theta - \mathrm{lr}\,\nabla U(\theta) + \mathcal N(0,\ 2\,\mathrm{lr}\,T).$$
#
# **SGLD** (Welling & Teh 2011) replaces $\nabla U$ by its mini-batch estimate. With the course's
# per-data-point loss, $\mathtt{loss} = \frac1B\sum_{i \in \text{batch}} -\log p(y_i \mid x_i, \theta)
# + \frac{-\log p(\theta)}{N}$ (lecture 2's scaling), $\widehat{\nabla U} = N\,\nabla\,\mathtt{loss}$ is unbiased;
# `bt.sgmcmc.SGLD(params, lr, num_data=N, temperature=T)` does the multiplication by $N$ itself. As
# $\mathrm{lr} \to 0$ the injected noise (variance $2\,\mathrm{lr}$) dominates the gradient's mini-batch noise
# (variance $\propto \mathrm{lr}^2$), which is why no accept/reject step is needed.
#
# **Why $2\,\mathrm{lr}$.** Take one coordinate with $U = \theta^2/(2s^2)$, the posterior $\mathcal N(0, s^2)$.
# The step is $\theta' = (1 - \mathrm{lr}/s^2)\,\theta + \sqrt{2\,\mathrm{lr}\,T}\,\xi$, and a stationary variance
# $v$ satisfies $v = (1 - \mathrm{lr}/s^2)^2\,v + 2\,\mathrm{lr}\,T$:
#
# $$v = \frac{T\,s^2}{1 - \mathrm{lr}/(2s^2)} \;\xrightarrow{\ \mathrm{lr}\to 0\ }\; T\,s^2 .$$
#
# The drift shrinks the variance by $2\,\mathrm{lr}/s^2$ per step; the noise must put back exactly that. With
# noise variance $\mathrm{lr}$ instead, the chain settles at half the posterior's variance. First, check that
# one step of the library's SGLD is this update, with the same random numbers:

# %%
theta = torch.tensor([0.3, -1.2], requires_grad=True)
lr, num_data, temperature = 1e-3, 50, 0.7
sgld = bt.sgmcmc.SGLD([theta], lr=lr, num_data=num_data, temperature=temperature)
loss = torch.sin(theta).sum() + (theta**2).sum() / (2 * num_data)  # any per-data-point loss
loss.backward()
expected_step = theta.detach() - lr * num_data * theta.grad + math.sqrt(2 * lr * temperature) * \
    torch.randn(2, generator=torch.Generator().manual_seed(1))
torch.manual_seed(1)
sgld.step()
torch.testing.assert_close(theta.detach(), expected_step)
print("one SGLD step = theta - lr * N * grad(loss) + sqrt(2 lr T) * noise, to float precision")

# %% [markdown]
# Now the stationary variance. 20,000 one-dimensional chains with the exact gradient, $s = 1$ and a large
# step, $\mathrm{lr} = 0.2$, so that the $1/(1 - \mathrm{lr}/2s^2)$ factor is visible; a chain forgets its start
# within a few dozen steps, so after 200 steps each chain's state is one draw from the chain's stationary
# distribution. Temperature $\tfrac12$ gives exactly the noise variance $2 \cdot \mathrm{lr} \cdot \tfrac12 =
# \mathrm{lr}$ of the typical mistake.

# %%
def stationary_variance(lr, temperature, num_chains=20_000, num_steps=200):
    torch.manual_seed(SEED)
    theta = torch.zeros(num_chains, requires_grad=True)
    sampler = bt.sgmcmc.SGLD([theta], lr=lr, num_data=1, temperature=temperature)
    for _ in range(num_steps):
        sampler.zero_grad()
        (theta**2 / 2).sum().backward()  # U = theta^2 / 2 (s = 1), N = 1
        sampler.step()
    return float(theta.detach().var())


lr = 0.2
for name, temperature in [("noise 2 lr (SGLD)", 1.0), ("noise lr (the mistake)", 0.5)]:
    measured, predicted = stationary_variance(lr, temperature), temperature / (1 - lr / 2)
    standard_error = predicted * math.sqrt(2 / 20_000)  # of a variance estimated from 20,000 Gaussian draws
    print(f"{name:<24} variance {measured:.4f}, the formula T s^2 / (1 - lr / 2s^2) gives {predicted:.4f} "
          f"(Monte Carlo standard error {standard_error:.4f})")
    assert abs(measured - predicted) < 4 * standard_error, f"{measured:.4f} vs {predicted:.4f}"

# %% [markdown]
# The formula holds to within the Monte Carlo error (printed), and the mistaken noise halves the variance.
#
# ### Check yourself
#
# SGLD with $\mathrm{lr} = 10^{-4}$ at $T = 1$: what is the **standard deviation** of the noise added to each
# parameter at each step?

# %%
answer = None
lr_q, temperature_q = 1e-4, 1.0
bt.selfcheck.number(answer, expected=math.sqrt(2 * lr_q * temperature_q), rtol=0.01, mistakes={
    math.sqrt(lr_q): "that noise has variance lr: the chain would sample a posterior half as wide",
    2 * lr_q: "that is the variance; the question asks for the standard deviation",
    lr_q: "the noise's variance is 2 lr T, and its standard deviation the square root of that",
})

# %% [markdown]
# ## 3. SGLD against a posterior known in closed form
#
# The one-dimensional check used the exact gradient. Now a real SGLD run, with mini-batches: Bayesian
# linear regression with two weights, $y = Xw + \varepsilon$, $\varepsilon \sim \mathcal N(0, \sigma^2)$,
# prior $w \sim \mathcal N(0, I)$. Its posterior is Gaussian,
#
# $$\Sigma = \big(X^\top X / \sigma^2 + I\big)^{-1}, \qquad \mu = \Sigma X^\top y / \sigma^2 ,$$
#
# and the per-data-point loss is $\frac{1}{2\sigma^2}\,\mathrm{mean}_{\text{batch}}(y - Xw)^2 + \frac{\|w\|^2}{2N}$.
# `NUM_CHAINS` chains run side by side, each with its own mini-batches of 50 of the $N = 100$ points.

# %%
NOISE_VAR = 1.0


def regression_problem(scales=(1.0, 1.0), n=100, seed=SEED):
    """Data of y = X w + noise (the columns of X scaled by `scales`) and its exact posterior (float64)."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=generator) * torch.tensor(scales)
    y = X @ torch.tensor([1.0, -0.5]) + math.sqrt(NOISE_VAR) * torch.randn(n, generator=generator)
    precision = X.double().T @ X.double() / NOISE_VAR + torch.eye(2, dtype=torch.float64)
    cov = torch.linalg.inv(precision)
    return X, y, cov @ X.double().T @ y.double() / NOISE_VAR, cov


def sample_regression(make_sampler, X, y, num_chains, num_steps, burn_in, batch_size=50, seed=SEED):
    """Run num_chains chains of a sampler on the regression loss; returns (num_steps - burn_in, chains, 2)."""
    torch.manual_seed(seed)
    w = torch.zeros(num_chains, X.shape[1], requires_grad=True)
    sampler = make_sampler([w], len(X))
    kept = []
    for step in range(num_steps):
        idx = torch.randint(0, len(X), (num_chains, batch_size))  # each chain its own mini-batch
        resid = y[idx] - (X[idx] * w[:, None, :]).sum(-1)
        loss = (resid**2).mean(1) / (2 * NOISE_VAR) + (w**2).sum(1) / (2 * len(X))  # (chains,)
        sampler.zero_grad()
        loss.sum().backward()
        sampler.step()
        if step >= burn_in:
            kept.append(w.detach().clone())
    return torch.stack(kept)


X_reg, y_reg, post_mean, post_cov = regression_problem()
post_sd = post_cov.diag().sqrt()
print(f"exact posterior: mean {post_mean.numpy().round(4)}, sd {post_sd.numpy().round(4)}")


def compare_to_exact(samples):
    flat = samples.reshape(-1, 2).double()
    mean_error = ((flat.mean(0) - post_mean) / post_sd).abs().max().item()  # in posterior sds
    var_ratio = flat.var(0) / post_cov.diag()
    return mean_error, var_ratio


LR_CHECK = 2e-4
runs = {}
for temperature in (0.5, 1.0, 2.0):
    runs[temperature] = sample_regression(
        lambda params, n, t=temperature: bt.sgmcmc.SGLD(params, lr=LR_CHECK, num_data=n, temperature=t),
        X_reg, y_reg, NUM_CHAINS, CHECK_STEPS, burn_in=500)
mean_error, var_ratio = compare_to_exact(runs[1.0])
print(f"SGLD, T = 1: mean within {mean_error:.3f} posterior sd of the exact one; "
      f"variance / exact variance = {var_ratio.numpy().round(3)}")
assert mean_error < 0.1, f"the mean is {mean_error:.3f} sd off"
assert ((var_ratio - 1).abs() < 0.1).all(), f"variance ratios {var_ratio.numpy().round(3)}"

# %% [markdown]
# SGLD's mean and variance agree with the exact posterior. What remains of the variance's excess comes from
# two biases of order $\mathrm{lr}$: the discretisation factor derived above and the mini-batch noise in
# $\widehat{\nabla U}$; both shrink with the step size.
#
# **Temperature.** At $T$ the chain samples $\propto e^{-U/T}$; for a Gaussian posterior that multiplies the
# covariance by $T$. And $T = \tfrac12$ is the typical mistake, noise variance $\mathrm{lr}$ instead of
# $2\,\mathrm{lr}$. Measured, on the first weight:

# %%
labels = {0.5: "T = 1/2 (noise variance lr: the mistake)", 1.0: "T = 1 (SGLD)", 2.0: "T = 2"}
fig = bt.viz.plot_marginals({labels[t]: runs[t][:, :, 0].reshape(-1) for t in runs}, float(post_mean[0]),
                            float(post_sd[0]), xlabel="w1",
                            title="SGLD samples of w1 at three temperatures, against the exact posterior")
for temperature, samples in runs.items():
    mean_error, var_ratio = compare_to_exact(samples)
    print(f"T = {temperature}: variance / exact = {var_ratio.numpy().round(3)}, divided by T: "
          f"{(var_ratio / temperature).numpy().round(3)}")
    assert ((var_ratio / temperature - 1).abs() < 0.12).all(), f"T = {temperature}: {var_ratio.numpy().round(3)}"
mistake_ratio = compare_to_exact(runs[0.5])[1] / compare_to_exact(runs[1.0])[1]
print(f"the mistake's variance / SGLD's variance: {mistake_ratio.numpy().round(3)}")
assert ((mistake_ratio - 0.5).abs() < 0.05).all(), "noise variance lr should halve the posterior variance"

# %% [markdown]
# The variance scales with $T$, and the mistake gives half the posterior's variance: an overconfident
# "posterior" that no accuracy metric would reveal. $T < 1$ is a **cold** posterior, sharper than Bayes'
# rule gives; $T = 0$ removes the noise altogether.
#
# ### Check yourself
#
# What does `bt.sgmcmc.SGLD(params, lr, num_data=N, temperature=0)` do?

# %%
answer = None
bt.selfcheck.choice(answer, expected="SGD on the loss, with learning rate lr * N", options=[
    "it samples the prior", "SGD on the loss, with learning rate lr * N", "it samples the posterior",
], explanations={
    "it samples the prior": "the gradient of the likelihood is still there; only the noise is gone",
    "SGD on the loss, with learning rate lr * N": "no noise: theta -= lr * N * grad(loss), gradient descent to a mode",
    "it samples the posterior": "at T = 0 the stationary density e^{-U/T} collapses onto the modes",
})

# %% [markdown]
# ## 4. Preconditioned SGLD and SGHMC
#
# **pSGLD** (Li et al. 2016) rescales each coordinate RMSprop-style, $V \leftarrow \lambda V + (1-\lambda)\,\bar g^2$
# (the decay $\lambda$ is the library's `alpha=`, RMSprop's name for it; below, $\alpha$ is SGHMC's friction),
# $G = 1/(\epsilon + \sqrt V)$ with $\bar g = \nabla\,\mathtt{loss}$, and steps
# $\theta \leftarrow \theta - \mathrm{lr}\,G \odot \widehat{\nabla U} + \mathcal N(0,\ 2\,\mathrm{lr}\,T\,G)$: the noise
# scales with the step, so each coordinate is a Langevin step of its own size. (The exact rule adds a
# term $\Gamma(\theta) = \sum_j \partial G_{ij}/\partial\theta_j$ for a $G$ that depends on $\theta$; like the
# paper, the library drops it.) `bt.sgmcmc.SGLD(..., preconditioned=True)`.
#
# **SGHMC** (Chen, Fox & Guestrin 2014) adds a momentum $v$: Hamiltonian dynamics with friction,
#
# $$v \leftarrow (1-\alpha)\,v - \eta\,\widehat{\nabla U}(\theta)
#   + \mathcal N\big(0,\ 2(\alpha - \hat\beta)\,\eta\,T\big), \qquad \theta \leftarrow \theta + v ,$$
#
# SGD with momentum $1 - \alpha$ plus noise. The friction $\alpha$ removes the energy the noise brings in;
# $\hat\beta$ is an estimate of the mini-batch gradient noise, which adds $\eta^2\,\mathrm{Var}(\widehat{\nabla U})$
# to $v$'s variance every step. `bt.sgmcmc.SGHMC(params, lr=eta, num_data, friction=alpha)`, $\hat\beta = 0$.
# Both on the regression of section 3:

# %%
others = {
    "pSGLD": lambda params, n: bt.sgmcmc.SGLD(params, lr=5e-5, num_data=n, preconditioned=True),
    "SGHMC": lambda params, n: bt.sgmcmc.SGHMC(params, lr=2e-5, num_data=n, friction=0.1),
}
for name, make_sampler in others.items():
    mean_error, var_ratio = compare_to_exact(sample_regression(make_sampler, X_reg, y_reg, NUM_CHAINS, CHECK_STEPS,
                                                               burn_in=500))
    print(f"{name}: mean within {mean_error:.3f} posterior sd; variance / exact = {var_ratio.numpy().round(3)}")
    assert mean_error < 0.15 and ((var_ratio - 1).abs() < 0.2).all(), name

# %% [markdown]
# Both sample the right posterior, pSGLD with a larger variance error (printed): its preconditioner moves
# with the noisy gradients, and the dropped $\Gamma$ term is not exactly zero.
#
# **Why the friction?** Chen et al.'s point. The obvious way to make HMC scale is to keep its dynamics,
# $v \leftarrow v - \eta\,\widehat{\nabla U}(\theta)$, $\theta \leftarrow \theta + v$, and swap the full gradient
# for a mini-batch one ("naive SGHMC"). With the exact gradient these dynamics conserve the energy
# $U(\theta) + \lVert v\rVert^2 / 2\eta$ (up to the discretisation), so chains started in the posterior stay
# in it. A mini-batch gradient is the exact one plus noise, and each step's noise kicks $v$ by a random
# $\eta\,(\widehat{\nabla U} - \nabla U)$: the energy takes a random walk that only grows, and the chains
# drift outwards. The friction $\alpha$ removes energy at the rate the noise brings it in. The naive sampler
# is four lines (written here for the demonstration; do not use it). All chains start at exact posterior
# draws with momenta at their stationary spread $\mathcal N(0, \eta)$, so any drift is the sampler's doing:

# %%
class NaiveSGHMC(torch.optim.Optimizer):
    """Hamiltonian dynamics with a mini-batch gradient and no friction (Chen et al. 2014, section 3.1)."""

    def __init__(self, params, lr, num_data):
        super().__init__(params, dict(lr=lr, num_data=num_data))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                v = self.state[p].setdefault("momentum", torch.zeros_like(p))
                v.add_(p.grad, alpha=-group["lr"] * group["num_data"])
                p.add_(v)


def spread_over_time(make_sampler, batch_size, num_steps=NAIVE_STEPS, every=NAIVE_STEPS // 8, seed=SEED):
    """E[(w - mu)^2] / Sigma_ii over chains started at exact posterior draws, averaged over the two weights."""
    torch.manual_seed(seed)
    start = post_mean + torch.randn(NUM_CHAINS, 2, dtype=torch.float64) @ torch.linalg.cholesky(post_cov).T
    w = start.float().requires_grad_(True)
    sampler = make_sampler([w], len(X_reg))
    sampler.state[w]["momentum"] = math.sqrt(sampler.param_groups[0]["lr"]) * torch.randn(NUM_CHAINS, 2)
    spreads = []
    for step in range(1, num_steps + 1):
        idx = torch.randint(0, len(X_reg), (NUM_CHAINS, batch_size))
        if batch_size == len(X_reg):
            idx = torch.arange(len(X_reg)).expand(NUM_CHAINS, -1)  # the full data: the exact gradient
        resid = y_reg[idx] - (X_reg[idx] * w[:, None, :]).sum(-1)
        loss = (resid**2).mean(1) / (2 * NOISE_VAR) + (w**2).sum(1) / (2 * len(X_reg))
        sampler.zero_grad()
        loss.sum().backward()
        sampler.step()
        if step % every == 0:
            spreads.append((((w.detach().double() - post_mean) ** 2).mean(0) / post_cov.diag()).mean().item())
    return spreads


LR_NAIVE = 2e-5
spreads = {
    "naive SGHMC, mini-batches of 50": spread_over_time(lambda p, n: NaiveSGHMC(p, LR_NAIVE, n), 50),
    "naive SGHMC, exact gradient": spread_over_time(lambda p, n: NaiveSGHMC(p, LR_NAIVE, n), len(X_reg)),
    "SGHMC, friction α = 0.1, mini-batches of 50": spread_over_time(
        lambda p, n: bt.sgmcmc.SGHMC(p, lr=LR_NAIVE, num_data=n, friction=0.1), 50),
}
steps_axis = [NAIVE_STEPS // 8 * (k + 1) for k in range(8)]
fig = bt.viz.plot_sweep(steps_axis, spreads, "steps", "E[(w - μ)²] / exact variance (1 = the posterior's)",
                        "Started in the posterior: only the naive sampler with noisy gradients drifts out",
                        logy=True)
for label, values in spreads.items():
    print(f"{label:<44} spread after {steps_axis[0]:,} steps {values[0]:.2f}, "
          f"after {steps_axis[-1]:,} {values[-1]:.2f}")
naive, exact_dynamics, with_friction = spreads.values()
assert naive[-1] > 4 and naive[-1] > 2 * naive[1], "the naive chains should drift further and further out"
assert all(0.7 < v < 1.4 for v in exact_dynamics + with_friction), "exact dynamics and SGHMC stay in the posterior"

# %% [markdown]
# With the exact gradient the spread stays at 1: Hamiltonian dynamics keep the posterior. With mini-batch
# gradients and no friction it grows with every step (printed). SGHMC's friction, and its injected noise
# $2\alpha\eta T$ matched to it, hold the spread at 1. Chen et al. go one step further: the friction should
# also absorb the mini-batch noise itself, which is $\hat\beta$ (`beta_hat=`); with $\hat\beta = 0$ the
# sampler over-disperses by a term of order $\eta$, small at this step size.
#
# ## 5. Diagnostics: traces, autocorrelation, effective sample size
#
# Successive states of a chain are correlated, so $n$ samples carry less information than $n$ independent
# draws. With $\rho_t$ the autocorrelation at lag $t$, the **effective sample size** is
#
# $$\mathrm{ESS} = \frac{n}{1 + 2\sum_{t \ge 1}\rho_t}$$
#
# (`bt.viz.effective_sample_size` sums the $\rho_t$ in pairs until a pair turns negative). First the mixture
# of section 1. How many of the chains moved between the two modes (their $\theta_2$ printed in section 1),
# and the trace of the chain with the most even split:

# %%
above = (mix_chains[:, :, 1] > 0).double().mean(0)  # per chain: the share of its samples with theta2 > 0
crossed = int(((above > 0.1) & (above < 0.9)).sum())
shown = int((above - 0.5).abs().argmin())
print(f"{crossed} of {NUM_MIX} chains spend between 10 % and 90 % of their samples on each side of theta2 = 0; "
      f"chain {shown}: {100 * float(above[shown]):.0f} % above")
assert crossed >= NUM_MIX // 2, f"only {crossed} chains visited both modes"
fig = bt.viz.plot_traces({"theta1": mix_chains[:, shown, 0], "theta2": mix_chains[:, shown, 1]},
                         xlabel="sample (every 10th step)",
                         title=f"SGLD chain {shown} on the mixture: it crosses between the modes")

# %% [markdown]
# Mixing is slowest along the posterior's flattest direction. SGLD's step is capped by the steepest one
# (the update $1 - \mathrm{lr}\,\lambda$ must stay well inside $(-1, 1)$, and the bias grows with
# $\mathrm{lr}\,\lambda$), so along a direction of curvature $\lambda_{\min}$ it forgets its past only after about
# $2/(\mathrm{lr}\,\lambda_{\min})$ steps. Make the regression badly scaled: multiply the second feature by 0.2.

# %%
X_bad, y_bad, bad_mean, bad_cov = regression_problem(scales=(1.0, 0.2))
curvatures = torch.linalg.eigvalsh(torch.linalg.inv(bad_cov))
print(f"curvatures of U: {curvatures.numpy().round(1)}, ratio {float(curvatures[1] / curvatures[0]):.1f}; "
      f"exact sd {bad_cov.diag().sqrt().numpy().round(3)}")
samplers = {
    "SGLD": lambda params, n: bt.sgmcmc.SGLD(params, lr=8e-4, num_data=n),
    "pSGLD": lambda params, n: bt.sgmcmc.SGLD(params, lr=1e-4, num_data=n, preconditioned=True),
    "SGHMC": lambda params, n: bt.sgmcmc.SGHMC(params, lr=1.6e-5, num_data=n, friction=0.02),
}
ess_runs = {name: sample_regression(make, X_bad, y_bad, ESS_CHAINS, ESS_STEPS, burn_in=ESS_STEPS // 4)
            for name, make in samplers.items()}
ess = {}
for name, samples in ess_runs.items():
    flat = samples.reshape(-1, 2).double()
    ratio = (flat.var(0) / bad_cov.diag()).numpy().round(3)
    per_chain = [[bt.viz.effective_sample_size(samples[:, c, j]) for c in range(ESS_CHAINS)] for j in range(2)]
    ess[name] = [sum(values) / len(values) for values in per_chain]
    print(f"{name:<6} variance / exact {ratio}; ESS per chain of {len(samples)} steps: "
          f"steep w1 {ess[name][0]:.0f}, flat w2 {ess[name][1]:.0f}")

# %% [markdown]
# The step sizes were set so that the three samplers make about the same variance error on the steep
# coordinate (first column of the printed ratios); each chain used the same number of gradient evaluations.
# The flat coordinate's trace and autocorrelation, one chain of each:

# %%
flat_chains = {name: samples[:, 0, 1] for name, samples in ess_runs.items()}
fig = bt.viz.plot_traces(flat_chains, xlabel="step", title="the flat coordinate w2, one chain of each sampler")
fig = bt.viz.plot_autocorrelation(flat_chains, max_lag=600, xlabel="lag (steps)",
                                  title="autocorrelation of w2: the faster it falls, the larger the ESS")
print(f"ESS of w2, pSGLD / SGLD: {ess['pSGLD'][1] / ess['SGLD'][1]:.1f}; "
      f"SGHMC / SGLD: {ess['SGHMC'][1] / ess['SGLD'][1]:.1f}")
assert ess["pSGLD"][1] > 1.3 * ess["SGLD"][1], f"pSGLD ESS {ess['pSGLD'][1]:.0f} vs SGLD {ess['SGLD'][1]:.0f}"
assert ess["SGHMC"][1] < 1.2 * ess["SGLD"][1], f"SGHMC ESS {ess['SGHMC'][1]:.0f} vs SGLD {ess['SGLD'][1]:.0f}"

# %% [markdown]
# pSGLD divides each coordinate's step by the typical size of its gradient, so the flat coordinate, whose
# gradients are small, takes larger steps, and its ESS is higher (the printed ratio). SGHMC's momentum
# carries a chain along a flat direction only when the friction $\alpha$ is small; but then its effective
# step $\eta/\alpha$ is large, and so is the mini-batch noise it accumulates ($\eta^2\,\mathrm{Var}(\widehat{\nabla U})$
# per step against the $2\alpha\eta$ it injects), which keeps $\eta$ small. At equal accuracy on the steep
# coordinate it did no better than SGLD here (the printed ratio).
#
# ### Check yourself
#
# A chain of $n = 1000$ samples behaves like $x_{t+1} = 0.9\,x_t + \text{noise}$, so $\rho_t = 0.9^t$. What is
# its effective sample size? (Sum the geometric series.)

# %%
answer = None
n_q, rho_q = 1000, 0.9
bt.selfcheck.number(answer, expected=n_q * (1 - rho_q) / (1 + rho_q), rtol=0.02, mistakes={
    n_q * (1 - rho_q): "that is n / (1 + sum rho_t) with the sum counted once; it is counted twice (both lags)",
    n_q / (1 + 2 * rho_q): "only the lag-1 term; add all lags: sum_{t>=1} 0.9^t = 0.9 / 0.1",
    n_q: "the samples are correlated, so they are worth fewer independent draws",
})

# %% [markdown]
# The answer, checked against `bt.viz.effective_sample_size` on simulated chains:

# %%
generator = torch.Generator().manual_seed(SEED)
innovations = torch.randn(4_000, 50, generator=generator, dtype=torch.float64)  # 50 chains of 4,000
ar = torch.empty_like(innovations)
ar[0] = innovations[0] / math.sqrt(1 - rho_q**2)  # start in the stationary distribution
for t in range(1, len(ar)):
    ar[t] = rho_q * ar[t - 1] + innovations[t]
measured = sum(bt.viz.effective_sample_size(ar[:, c]) for c in range(ar.shape[1])) / ar.numel()
print(f"ESS / n, mean over {ar.shape[1]} chains: measured {measured:.4f}, (1 - rho) / (1 + rho) = "
      f"{(1 - rho_q) / (1 + rho_q):.4f}")
assert abs(measured / ((1 - rho_q) / (1 + rho_q)) - 1) < 0.1

# %% [markdown]
# ## 6. SGLD-SA: a spike-and-slab prior for variable selection
#
# Large-$p$-small-$n$ regression (Deng et al. 2019): $n = 100$ points, $p = 1000$ coefficients, only three of
# them non-zero, $\beta = (\beta_1, \beta_2, \beta_3, 0, \dots, 0)$ with $\beta_{1,2,3} \approx 3, 2, 1$ and correlated
# features. A Gaussian prior shrinks all coefficients alike; with $p \gg n$ the data leave most directions
# to it, and the samples spread over the 997 zeros.
#
# **SGLD-SA** puts a spike-and-slab prior on each coefficient, a latent $\gamma_j \in \{0, 1\}$ choosing between a
# narrow Laplace spike and a wide Gaussian slab,
#
# $$\beta_j \mid \sigma^2, \gamma_j \sim (1-\gamma_j)\,\mathcal L(0, \sigma v_0)
#   + \gamma_j\,\mathcal N(0, \sigma^2 v_1), \qquad \gamma_j \sim \mathrm{Bernoulli}(\delta),$$
#
# and alternates an SGLD step on $\beta$ under the current prior with a **stochastic approximation** step on
# the latent quantities: the inclusion probability
# $\rho_j = \frac{\mathcal N(\beta_j; 0, \sigma^2 v_1)\,\delta}{\mathcal N(\beta_j; 0, \sigma^2 v_1)\,\delta
#   + \mathcal L(\beta_j; 0, \sigma v_0)(1-\delta)}$, the noise scale $\sigma$ and the prior inclusion rate
# $\delta$, each moved a step $\omega_k \to 0$ towards its conditional optimum (an adaptive empirical Bayes).
# A coefficient with small $\rho_j$ feels the spike's strong pull to zero. `bt.sgmcmc.SGLDSA`; the
# experiment is `bt.reproduce.sample_linear_regression(method, X, y, num_steps)` for the three samplers
# (SGLD and SGHMC with a $\mathcal N(0, 1)$ prior).

# %%
X_sa, y_sa, beta_true, X_sa_test, y_sa_test = bt.data.large_p_small_n(seed=SEED, num_test=500)
estimates, selection = {}, {}
for method, label in [("sgld", "SGLD"), ("sghmc", "SGHMC"), ("sgld-sa", "SGLD-SA")]:
    beta_mean, optimiser, _ = bt.reproduce.sample_linear_regression(method, X_sa, y_sa, SA_STEPS)
    estimates[label] = beta_mean
    false_positives = int((beta_mean[3:].abs() > 0.1).sum())
    test_mse = float(((y_sa_test - X_sa_test @ beta_mean.to(X_sa_test.dtype)) ** 2).mean())
    selection[label] = false_positives
    print(f"{label:<8} beta1..3 = {beta_mean[:3].numpy().round(2)} (true {beta_true[:3].numpy().round(2)}); "
          f"false positives (|beta_j| > 0.1 among the zeros) {false_positives}; test MSE {test_mse:.2f}")
inclusion = optimiser.inclusion_probabilities()[0]  # the last optimiser is SGLD-SA's
fig = bt.viz.plot_variable_selection(estimates, beta_true, threshold=0.1, inclusion=inclusion,
                                     title=f"posterior means of 1000 coefficients after {SA_STEPS:,} steps")
print(f"SGLD-SA: inclusion probability of beta1..3 {inclusion[:3].numpy().round(3)}; "
      f"{int((inclusion > 0.5).sum())} coefficients with rho > 0.5; noise sd estimate {optimiser.sigma:.2f} "
      f"(true {math.sqrt(3):.2f})")
assert selection["SGLD-SA"] < min(selection["SGLD"], selection["SGHMC"]), selection

# %% [markdown]
# SGLD and SGHMC spread the signal over hundreds of coefficients; SGLD-SA keeps the large coefficients in
# the slab and pulls the zeros into the spike, with far fewer false positives (printed), and learns the
# noise scale along the way. Read its $\beta_3$ in the printout: a coefficient as small as the noise level
# can fall into the spike, a false negative, the price of a prior that favours sparsity.
#
# ## 7. Cyclical step sizes and an SGLD ensemble on MNIST
#
# A constant small step mixes slowly between modes of a network's posterior. **Cyclical SG-MCMC**
# (Zhang et al. 2020) repeats a cosine schedule: within each of $M$ cycles of $L$ steps,
#
# $$\mathrm{lr}_k = \frac{\mathrm{lr}_0}{2}\Big[\cos\Big(\frac{\pi\,(k \bmod L)}{L}\Big) + 1\Big];$$
#
# the large steps at the start of a cycle explore (move to a new region), and the samples are taken in the
# last part of each cycle, where the steps are small and the chain samples accurately. In Zhang et al.'s
# algorithm the exploration stage injects no noise: it is plain SGD, and the Langevin noise is switched on
# for the sampling stage only, where it makes the kept states samples. Here the noise stays on throughout
# (`exploration_temperature=None`, the default of `bt.sgmcmc.CyclicalLR`); `exploration_temperature=0.0`
# does as the paper does: try it below and compare the ensembles' NLL.
# `bt.sgmcmc.CyclicalLR(optimiser, total_steps, num_cycles, exploration=0.8)` is stepped once per step;
# `is_sampling()` says when to keep a state. `bt.sgmcmc.SampleCollector(model, burn_in, thin, max_samples)`
# keeps the states (on the CPU, at most `max_samples`), and `collector.ensemble()` is a
# `bt.sgmcmc.SampleEnsemble` that `bt.predict.mc_predict` averages over:
#
# $$p(y \mid x, \mathcal D) \approx \frac1S\sum_{s=1}^S p(y \mid x, \theta_s).$$
#
# The network is LeNet-300-100 with a $\mathcal N(0, \sigma_p^2)$ prior on every weight and bias, on `TRAIN_SIZE`
# images. Two chains with the same schedule, at $T = 1$ (the posterior) and at $T = 0.3$ (a mildly cold
# one, section 3's knob); the first cycle is burn-in.

# %%
X, y = bt.data.load_mnist("train", subset=TRAIN_SIZE)
X_test, y_test = bt.data.load_mnist("test", subset=TEST_SIZE)
X, y, X_test, y_test = X.to(DEVICE), y.to(DEVICE), X_test.to(DEVICE), y_test.to(DEVICE)
N, BATCH = len(X), 100
PRIOR_SIGMA, LR0, NUM_CYCLES = 0.2, 0.5, 4
total_steps = NUM_EPOCHS * (N // BATCH)


def neg_log_prior(model):
    return sum((w**2).sum() for w in model.parameters()) / (2 * PRIOR_SIGMA**2)


def run_chain(temperature):
    """Cyclical SGLD on MNIST; returns the sample collector and, per step, the step size and whether it samples."""
    bt.utils.set_seed(SEED)
    model = bt.models.lenet300().to(DEVICE)
    sgld = bt.sgmcmc.SGLD(model.parameters(), lr=LR0 / N, num_data=N, temperature=temperature)
    schedule = bt.sgmcmc.CyclicalLR(sgld, total_steps=total_steps, num_cycles=NUM_CYCLES, exploration=0.8)
    per_cycle = schedule.cycle_length - math.ceil(0.8 * schedule.cycle_length)  # sampling steps per cycle
    # collector.step() is called in the sampling phases only: burn_in skips the first cycle's, thin keeps 10 a cycle
    collector = bt.sgmcmc.SampleCollector(model, burn_in=per_cycle, thin=max(1, per_cycle // 10))
    lrs, sampling = [], []
    while len(lrs) < total_steps:
        order = torch.randperm(N, device=DEVICE)
        for start in range(0, N - BATCH + 1, BATCH):
            idx = order[start:start + BATCH]
            loss = F.cross_entropy(model(X[idx]), y[idx]) + neg_log_prior(model) / N
            sgld.zero_grad()
            loss.backward()
            sgld.step()
            lrs.append(sgld.param_groups[0]["lr"])
            if schedule.is_sampling():
                collector.step()
            sampling.append(schedule.is_sampling() and len(lrs) > schedule.cycle_length)  # kept after burn-in
            schedule.step()
    return collector, lrs, sampling


chains = {}
for temperature in (1.0, 0.3):
    chains[temperature], lrs, sampling = run_chain(temperature)
    print(f"T = {temperature}: {len(chains[temperature].samples)} samples from the last {NUM_CYCLES - 1} cycles "
          f"({total_steps:,} steps on {N:,} images)")
fig = bt.viz.plot_step_sizes(lrs, sampling, title=f"cyclical step sizes, {NUM_CYCLES} cycles: samples kept at the "
                                                  "end of each but the first (burn-in)")

# %% [markdown]
# The single network to beat: SGD on the same loss (the prior as weight decay $1/(\sigma_p^2 N)$), constant
# learning rate 0.1, the same number of steps. Then each chain's ensemble, and its last sample alone:

# %%
bt.utils.set_seed(SEED)
sgd_model = bt.models.lenet300().to(DEVICE)
bt.train.fit(sgd_model, (X, y), NUM_EPOCHS, torch.optim.SGD(sgd_model.parameters(), lr=0.1,
                                                           weight_decay=1 / (PRIOR_SIGMA**2 * N)))
results = {"SGD network": bt.predict.mc_predict(sgd_model, X_test, num_samples=1)}
ensemble_probs = {}
for temperature, collector in chains.items():
    probs = bt.predict.mc_predict(collector.ensemble(), X_test)  # (samples, test images, 10)
    ensemble_probs[temperature] = probs
    results[f"SGLD T = {temperature}: last sample"] = probs[-1:]
    results[f"SGLD T = {temperature}: ensemble of {len(probs)}"] = probs
metrics = {name: (bt.metrics.accuracy(p, y_test), bt.metrics.nll(p, y_test)) for name, p in results.items()}
for name, (accuracy, nll) in metrics.items():
    print(f"{name:<32} test accuracy {100 * accuracy:.2f} %   test NLL {nll:.4f}")

# %% [markdown]
# How the NLL falls as the ensemble grows (the last $k$ samples of each chain):

# %%
sizes = list(range(1, min(len(c.samples) for c in chains.values()) + 1))
curves = {f"SGLD ensemble, T = {temperature}": [bt.metrics.nll(probs[-k:], y_test) for k in sizes]
          for temperature, probs in ensemble_probs.items()}
sgd_nll = metrics["SGD network"][1]
fig = bt.viz.plot_ensemble_size(sizes, curves, {"SGD network": sgd_nll},
                                title=f"MNIST ({N:,} training images): test NLL against the ensemble's size")
per_cycle = len(chains[1.0].samples) // (NUM_CYCLES - 1)
for label, values in curves.items():
    print(f"{label}: test NLL of the last sample {values[0]:.4f}, of the last cycle's {per_cycle} samples "
          f"{values[per_cycle - 1]:.4f}, of all {len(values)} {values[-1]:.4f} (SGD network {sgd_nll:.4f})")
    assert values[-1] < values[0], f"{label}: the ensemble should beat its own last sample"
    assert values[-1] < values[per_cycle - 1], f"{label}: earlier cycles should add to the last one's samples"
cold_nll = curves["SGLD ensemble, T = 0.3"][-1]
assert cold_nll < sgd_nll, f"the ensemble at T = 0.3 {cold_nll:.4f} vs SGD {sgd_nll:.4f}"

# %% [markdown]
# Read the table and the curves:
#
# * Each chain's ensemble has a lower NLL than its own last sample: the samples disagree where the data
#   leave the answer open, and their average is less confident there.
# * The curves hardly move while the ensemble holds samples of the last cycle only, and fall when earlier
#   cycles join (printed): the small steps at the end of a cycle give nearby samples; the diversity comes
#   from the large steps that start each new cycle.
# * At $T = 1$ each sample is a noisier network (its last sample's row); averaging recovers much of the loss.
# * At $T = 0.3$ the samples are better networks and the ensemble beats the SGD network on test NLL
#   (compare the accuracies too). That networks with simple Gaussian priors often predict better from
#   a tempered posterior, $T < 1$, is the "cold posterior" effect (Wenzel et al. 2020): a sign that such a
#   prior, or the likelihood, is not quite right for images.

# %% [markdown]
# ## 8. A reference posterior: Hamiltonian Monte Carlo
#
# Every method of the course approximates the posterior of a network. **How close do they come?** To
# answer it we need the posterior itself, and the gold standard is HMC with a Metropolis correction
# (Neal 2011). It simulates the Hamiltonian $H(\theta, r) = U(\theta) + \tfrac12\lVert r\rVert^2$ with a
# fresh momentum $r \sim \mathcal N(0, I)$ by $L$ leapfrog steps of size $\epsilon$,
#
# $$r \leftarrow r - \tfrac{\epsilon}{2}\nabla U(\theta), \qquad \theta \leftarrow \theta + \epsilon\, r, \qquad
#   r \leftarrow r - \tfrac{\epsilon}{2}\nabla U(\theta),$$
#
# which preserve volume and are reversible, so accepting the end point with probability
# $\min(1, e^{H_0 - H_1})$ leaves $e^{-U}$ exactly invariant **for any** $\epsilon$: the leapfrog's
# energy error only lowers the acceptance rate. SGLD is the one-leapfrog-step, never-rejected,
# mini-batch limit of this: fast, but biased by its step. The price of exactness is the **full-data**
# gradient at every leapfrog step, affordable here for 120 points, not for MNIST.
#
# First the claim about the correction, measured on $\mathcal N(0, 1)$ with a large step
# $\epsilon = 1.5$ (the leapfrog is still stable below 2):

# %%
hmc_sd = {}
for metropolis in (True, False):
    theta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    sampler = bt.sgmcmc.HMC([theta], step_size=1.5, num_leapfrog=3, num_data=1, metropolis=metropolis,
                            generator=torch.Generator().manual_seed(SEED))
    draws = []
    for _ in range(4_000):
        sampler.step(lambda theta=theta: 0.5 * theta.pow(2).sum())
        draws.append(theta.item())
    hmc_sd[metropolis] = torch.tensor(draws[500:]).std().item()
    print(f"metropolis={metropolis!s:<5}: sd of the samples {hmc_sd[metropolis]:.3f} (exact: 1), "
          f"acceptance {sampler.acceptance_rate:.2f}")
assert abs(hmc_sd[True] - 1) < 0.07 and hmc_sd[False] > 1.3, hmc_sd

# %% [markdown]
# With the correction the standard deviation is right although some proposals are refused (the printed
# acceptance rate); without it every proposal is kept and the chain samples a distribution far wider than
# $\mathcal N(0, 1)$.
#
# Now the posterior of a 1–50–1 tanh network on lecture 0's 1-D regression (120 points with a gap),
# with a Gaussian likelihood of fixed noise sd 0.3 and the prior $\mathcal N(0, 1)$ on every weight.
# The same model and prior for every method:
#
# * **HMC**, the reference: `HMC_CHAINS` chains, each started at its own MAP fit;
# * **MFVI**, Bayes by Backprop with `bt.nn.BayesLinear` (lecture 3);
# * **MC dropout** with rate 0.1 and the weight decay $(1-p)/N$ that matches the prior (lecture 4);
# * a **deep ensemble** of five MAP networks from different seeds (lecture 1);
# * **SGLD** on mini-batches of 30 (this lecture).
#
# Each gives a predictive $\mathcal N(m(x), v(x))$ at every $x$ of a grid on $[-9, 9]$; the number is the
# predictive KL from the reference, $\mathrm{KL}\big(p_\text{HMC}(y\mid x)\,\|\,q(y\mid x)\big)$, averaged over
# the grid (0 for a perfect match).

# %%
# HMC and the four approximations: 8.5 min in full mode on 2 busy cores, 27 s in FAST
X_1d, y_1d = bt.data.regression_1d(120, seed=SEED)
N_1D, NOISE_SD, HIDDEN = len(X_1d), 0.3, 50
x_grid = torch.linspace(-9, 9, 181).unsqueeze(1)


def gaussian_nll(output, target):
    """The mean NLL of the batch under N(output, NOISE_SD^2), constant dropped."""
    return ((output - target) ** 2).mean() / (2 * NOISE_SD**2)


def tanh_net(layer=torch.nn.Linear, after_hidden=()):
    return torch.nn.Sequential(layer(1, HIDDEN), torch.nn.Tanh(), *after_hidden, layer(HIDDEN, 1))


def per_datapoint_loss(model, X, y):
    """The course's loss: the batch's mean NLL + the negative log prior N(0, 1) / N."""
    return gaussian_nll(model(X), y) + sum((p**2).sum() for p in model.parameters()) / (2 * N_1D)


def map_network(seed, steps=1_500):
    torch.manual_seed(seed)
    model = tanh_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        per_datapoint_loss(model, X_1d, y_1d).backward()
        optimizer.step()
    return model


def predictive(model, num_samples=100):
    return bt.predict.predictive_regression(model, x_grid, num_samples, noise_var=NOISE_SD**2)


def predictive_kl(p, q):
    """KL(p || q) between the Gaussian predictives at each grid point, averaged over the grid."""
    return float((0.5 * torch.log(q["var"] / p["var"]) + (p["var"] + (p["mean"] - q["mean"]) ** 2) / (2 * q["var"])
                  - 0.5).mean())


hmc_chains = []
for chain in range(HMC_CHAINS):
    model = map_network(100 + chain)
    sampler = bt.sgmcmc.HMC(list(model.parameters()), step_size=5e-3, num_leapfrog=50, num_data=N_1D,
                            generator=torch.Generator().manual_seed(chain))
    collector = bt.sgmcmc.SampleCollector(model, burn_in=HMC_ITERATIONS // 5, thin=4, max_samples=100)
    for _ in range(HMC_ITERATIONS):
        sampler.step(lambda model=model: per_datapoint_loss(model, X_1d, y_1d))
        collector.step()
    hmc_chains.append(collector.samples)
    print(f"HMC chain {chain}: acceptance {sampler.acceptance_rate:.2f}, {len(collector.samples)} samples kept")
halves = len(hmc_chains) // 2
reference = predictive(bt.sgmcmc.SampleEnsemble(model, [s for c in hmc_chains for s in c]))
chains_a = predictive(bt.sgmcmc.SampleEnsemble(model, [s for c in hmc_chains[:halves] for s in c]))
chains_b = predictive(bt.sgmcmc.SampleEnsemble(model, [s for c in hmc_chains[halves:] for s in c]))
self_kl = predictive_kl(chains_a, chains_b)
print(f"HMC against itself (half of the chains against the other half): predictive KL {self_kl:.3f}")

# %% [markdown]
# The HMC chains started at different MAP fits agree with each other (the printed KL): the reference is
# converged well enough to measure the others against. Now the four approximations:

# %%
torch.manual_seed(SEED)
mfvi = tanh_net(layer=lambda a, b: bt.nn.BayesLinear(a, b, prior=bt.priors.GaussianPrior(1.0)))
bt.train.fit(mfvi, (X_1d, y_1d), 600, torch.optim.Adam(mfvi.parameters(), lr=1e-2), batch_size=N_1D,
             nll_fn=gaussian_nll, progress=False)

torch.manual_seed(SEED)
DROPOUT = 0.1
dropout_net = tanh_net(after_hidden=(bt.nn.MCDropout(DROPOUT),))
bt.train.fit(dropout_net, (X_1d, y_1d), 1_500,
             torch.optim.Adam(dropout_net.parameters(), lr=1e-2, weight_decay=(1 - DROPOUT) / N_1D),
             batch_size=N_1D, nll_fn=gaussian_nll, progress=False)

ensemble = bt.sgmcmc.SampleEnsemble.from_models([map_network(seed) for seed in range(5)])

sgld_net = map_network(7, steps=500)
sgld = bt.sgmcmc.SGLD(sgld_net.parameters(), lr=1e-4, num_data=N_1D)
sgld_samples = bt.sgmcmc.SampleCollector(sgld_net, burn_in=500, thin=20, max_samples=100)
generator = torch.Generator().manual_seed(SEED)
for _ in range(4_000):
    batch = torch.randint(0, N_1D, (30,), generator=generator)
    sgld.zero_grad()
    per_datapoint_loss(sgld_net, X_1d[batch], y_1d[batch]).backward()
    sgld.step()
    sgld_samples.step()

approximations = {"MFVI (BBB)": predictive(mfvi), "MC dropout": predictive(dropout_net),
                  "deep ensemble": predictive(ensemble), "SGLD": predictive(sgld_samples.ensemble())}
distance = {name: predictive_kl(reference, prediction) for name, prediction in approximations.items()}
off_data = x_grid.reshape(-1).abs() > 6
for name, prediction in {"HMC": reference, **approximations}.items():
    near, far = (float(prediction["epistemic"].sqrt()[where].mean()) for where in (~off_data, off_data))
    print(f"{name:>14}: predictive KL from HMC {distance.get(name, 0.0):.3f}; epistemic sd "
          f"{near:.3f} near the data, {far:.3f} far from it")
closest = min(distance, key=distance.get)
print(f"closest to the reference: {closest}")
assert self_kl < min(distance.values()) / 3, (self_kl, distance)
hmc_epistemic = reference["epistemic"].sqrt()
assert hmc_epistemic[off_data].mean() > 2 * hmc_epistemic[~off_data].mean(), "HMC's band should widen off the data"

# %%
fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
for ax, (name, prediction) in zip(axes.flat, {"HMC (reference)": reference, **approximations}.items()):
    bt.viz.plot_regression_bands(x_grid, prediction, X_1d, y_1d, ax=ax)
    if prediction is not reference:
        band = 2 * hmc_epistemic
        ax.plot(x_grid.reshape(-1), reference["mean"] - band, "r--", lw=1, label="HMC ±2 sd epistemic")
        ax.plot(x_grid.reshape(-1), reference["mean"] + band, "r--", lw=1)
        ax.set_title(f"{name}: predictive KL {distance[name]:.2f}")
    else:
        ax.set_title(f"{name}: chains agree to KL {self_kl:.3f}")
    ax.set_xlabel("x (input)")
    ax.set_ylabel("y (target)")
axes.flat[0].legend(fontsize=7, loc="lower left")
axes.flat[1].legend(fontsize=7, loc="lower left")
axes.flat[-1].bar(list(distance), list(distance.values()), color="tab:gray", label="predictive KL from HMC")
axes.flat[-1].set_title("distance from the reference posterior")
axes.flat[-1].set_xlabel("method")
axes.flat[-1].set_ylabel("mean predictive KL (nats)")
axes.flat[-1].tick_params(axis="x", labelrotation=20)
axes.flat[-1].legend(fontsize=7)
fig.suptitle("The same network, prior and data: four approximations against the HMC posterior")
fig.tight_layout()

# %% [markdown]
# Read the panels against the red dashed HMC band. The printed epistemic standard deviations say where
# each method puts its uncertainty: compare each one's "near" and "far" numbers with HMC's. The method
# closest to the reference is printed above; the distances are the numbers in the bar chart, computed
# in this run (they move with the seeds, the sizes of FAST mode and the step sizes, so rerun with other
# seeds before you trust a ranking). What holds in every run: the HMC chains agree with each other far
# better than any approximation agrees with them, and the true posterior's band widens off the data.
#
# ## Summary
#
# * SGLD is SGD on the per-data-point loss plus Gaussian noise of variance $2\,\mathrm{lr}\,T$, the Euler step of
#   the Langevin diffusion whose stationary density is $\propto e^{-U/T}$; the samplers multiply the gradient by
#   $N$ themselves. Checked: the stationary variance $T s^2 / (1 - \mathrm{lr}/2s^2)$, and SGLD's mean and
#   variance on a Bayesian linear regression.
# * Noise of variance $\mathrm{lr}$ instead of $2\,\mathrm{lr}$ is $T = \tfrac12$: half the posterior's variance
#   (measured). The temperature scales the variance; $T = 0$ is SGD.
# * Diagnostics: traces, autocorrelation and the effective sample size. SGLD's step is capped by the steepest
#   direction, so flat directions mix slowly; pSGLD's per-coordinate steps raised the flat direction's ESS.
# * SGLD-SA's adaptive spike-and-slab prior selects variables where a Gaussian prior cannot: far fewer false
#   positives among 997 zero coefficients.
# * Cyclical step sizes explore, then sample; the collected samples form an ensemble whose test NLL beat
#   each chain's last sample and, at a mildly cold temperature, the SGD network.
# * HMC with a Metropolis correction is exact for any step size (measured: the right variance at
#   $\epsilon = 1.5$, a wrong one without the correction); on a small network it gives the reference
#   posterior against which MFVI, MC dropout, a deep ensemble and SGLD are measured by their predictive KL.
#
# ## References
#
# * M. Welling, Y. W. Teh. *Bayesian Learning via Stochastic Gradient Langevin Dynamics*. ICML 2011.
# * C. Li, C. Chen, D. Carlson, L. Carin. *Preconditioned Stochastic Gradient Langevin Dynamics for Deep
#   Neural Networks*. AAAI 2016.
# * T. Chen, E. Fox, C. Guestrin. *Stochastic Gradient Hamiltonian Monte Carlo*. ICML 2014.
# * R. Zhang, C. Li, J. Zhang, C. Chen, A. G. Wilson. *Cyclical Stochastic Gradient MCMC for Bayesian Deep
#   Learning*. ICLR 2020.
# * W. Deng, X. Zhang, F. Liang, G. Lin. *An Adaptive Empirical Bayesian Method for Sparse Deep Learning*.
#   NeurIPS 2019.
# * F. Wenzel et al. *How Good is the Bayes Posterior in Deep Neural Networks Really?* ICML 2020.
# * R. M. Neal. *MCMC Using Hamiltonian Dynamics*. Handbook of Markov Chain Monte Carlo, 2011.
#   [arXiv:1206.1901](https://arxiv.org/abs/1206.1901)
