# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # A6 · SGLD and SGHMC
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/assignments/A6_sgmcmc/A6_sgmcmc.ipynb)
#
# Variational inference fits a simple $q$; stochastic-gradient MCMC instead *samples* the posterior,
# with the same mini-batch gradients as SGD plus carefully sized noise (Welling & Teh 2011; Chen, Fox &
# Guestrin 2014). You write the two update rules, check a sampler against a posterior known in closed
# form, and turn its samples into a posterior-predictive ensemble on MNIST.
#
# **How this is graded (22 points).** Each task says what to build, why, and how it is checked.
# Replace every `raise NotImplementedError()` with your code. Cells that start with a docstring are
# tests for you: they check shapes, sanity and typical mistakes as you work. The points are decided by
# the grader: right after each test cell it calls your functions again on inputs of its own and checks
# the numbers outside your notebook, so a test cell that passes is a good sign, not yet the grade. While
# a test runs, and throughout grading, the library's samplers (`bt.sgmcmc.SGLD`, `bt.sgmcmc.SGHMC`, ...)
# are not there, so your code must compute the answer itself. Tiers: **basic** (task 1), **intermediate**
# (2, 3), **advanced** (4). Before handing in, run `bnn-teach grade check A6_sgmcmc.ipynb` (or *Restart
# and run all*); a test cell that prints a warning (to stderr) counts as failed. On Colab: run it there,
# then *File → Download → .ipynb* and hand in that file.

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

import torch
import torch.nn.functional as F
from torch import nn

import bnn_teach as bt
from bnn_teach.grading import hidden

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()
bt.utils.set_seed(SEED)
X_train, y_train = bt.data.load_mnist("train", subset=3_000)
X_test, y_test = bt.data.load_mnist("test", subset=1_000)
SAMPLERS = ("bnn_teach.sgmcmc.SGLD", "bnn_teach.sgmcmc.SGHMC", "bnn_teach.sgmcmc.SGLDSA")

# %% [markdown] nbgrader={"grade": false, "grade_id": "task1", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1 (basic, 4 points): the SGLD update
#
# With $U(\theta) = -\log p(\mathcal D \mid \theta) - \log p(\theta)$ the full-data negative log posterior
# and $\widehat{\nabla U}$ its mini-batch estimate, Langevin dynamics discretised with step `lr` is
#
# $$\theta \leftarrow \theta - \mathrm{lr}\,\widehat{\nabla U}(\theta) + \sqrt{2\,\mathrm{lr}\,T}\;\xi,
#   \qquad \xi \sim \mathcal N(0, I),$$
#
# at temperature $T$ ($T = 1$: the posterior). Write `sgld_step(theta, grad_U, lr, temperature, noise)`
# returning the new $\theta$, with `noise` the standard normal $\xi$ (given, so the step is testable).
# Checked against the rule for given noise.

# %% nbgrader={"grade": false, "grade_id": "sgld_step", "locked": false, "schema_version": 3, "solution": true}
def sgld_step(theta, grad_U, lr, temperature, noise):
    """theta - lr * grad_U + sqrt(2 * lr * temperature) * noise."""
    ### BEGIN SOLUTION
    return theta - lr * grad_U + math.sqrt(2 * lr * temperature) * noise
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sgld_step", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""sgld_step: the drift -lr * grad_U and noise of variance 2 * lr * temperature."""
theta, grad, noise = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 4.0]), torch.tensor([1.0, -1.0])
with hidden(*SAMPLERS):
    no_noise = sgld_step(theta, grad, 0.01, 1.0, torch.zeros(2))
    step = sgld_step(theta, grad, 0.01, 1.0, noise)
    cold = sgld_step(theta, grad, 0.01, 0.0, noise)
assert torch.allclose(no_noise, theta - 0.01 * grad), "without noise the step is theta - lr * grad_U (a descent step)"
assert torch.allclose(cold, theta - 0.01 * grad), "at temperature 0 SGLD is plain gradient descent"
assert not torch.allclose(step, theta - 0.01 * grad + math.sqrt(0.01) * noise), \
    "the noise variance is 2 * lr * T, not lr: the factor 2 makes the stationary distribution the posterior"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task2", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2 (intermediate, 4 points): the SGHMC update
#
# SGHMC adds a momentum $v$ with friction $\alpha$ (one minus the momentum of SGD), in the form of Chen et
# al. (2014, eq. 15) with no estimate of the gradient noise:
#
# $$v \leftarrow (1 - \alpha)\,v - \mathrm{lr}\,\widehat{\nabla U}(\theta) + \sqrt{2\,\alpha\,\mathrm{lr}\,T}\;\xi,
#   \qquad \theta \leftarrow \theta + v .$$
#
# Write `sghmc_step(theta, v, grad_U, lr, friction, temperature, noise)` returning `(theta, v)`. Checked
# against the rule for given noise.

# %% nbgrader={"grade": false, "grade_id": "sghmc_step", "locked": false, "schema_version": 3, "solution": true}
def sghmc_step(theta, v, grad_U, lr, friction, temperature, noise):
    """One SGHMC step: returns the new (theta, v)."""
    ### BEGIN SOLUTION
    v = (1 - friction) * v - lr * grad_U + math.sqrt(2 * friction * lr * temperature) * noise
    return theta + v, v
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sghmc_step", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""sghmc_step: friction on v, the gradient step, noise of variance 2 * friction * lr * T, then theta += v."""
theta, v = torch.tensor([1.0, -2.0]), torch.tensor([0.3, 0.1])
grad, noise = torch.tensor([0.5, 4.0]), torch.tensor([1.0, -1.0])
with hidden(*SAMPLERS):
    new_theta, new_v = sghmc_step(theta, v, grad, 0.01, 0.1, 0.0, noise)
assert torch.allclose(new_v, 0.9 * v - 0.01 * grad), "without noise: v = (1 - friction) v - lr grad_U"
assert torch.allclose(new_theta, theta + new_v), "theta moves by the NEW v"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task3", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3 (intermediate, 6 points): a sampler checked against the exact posterior
#
# Bayesian linear regression, $y = Xw + \varepsilon$, $\varepsilon \sim \mathcal N(0, \sigma^2)$,
# $w \sim \mathcal N(0, \sigma_p^2 I)$, has the Gaussian posterior of lecture L02
# (`bt.vi.linear_regression_posterior`). Write `run_sgld(X, y, noise_var, prior_sigma, num_steps, lr,
# batch_size, generator)`: start at $w = 0$ and take `num_steps` steps of your `sgld_step` with
# $\widehat{\nabla U}$ from a random mini-batch of `batch_size` rows (drawn with `generator`), scaled to
# the whole data set:
#
# $$\widehat{\nabla U}(w) = \frac{N}{B}\sum_{i\in\text{batch}} \frac{(x_i^\top w - y_i)\,x_i}{\sigma^2}
#   + \frac{w}{\sigma_p^2} .$$
#
# Return the samples, a tensor `(num_steps, p)`. Draw the noise with `torch.randn(..., generator=generator)`.
# Checked: after burn-in, the samples' mean and standard deviations match the exact posterior.

# %% nbgrader={"grade": false, "grade_id": "run_sgld", "locked": false, "schema_version": 3, "solution": true}
def run_sgld(X, y, noise_var, prior_sigma, num_steps, lr, batch_size, generator):
    """(num_steps, p) SGLD samples of w for Bayesian linear regression, starting at 0."""
    ### BEGIN SOLUTION
    n, p = X.shape
    w = torch.zeros(p, dtype=X.dtype)
    samples = []
    for _ in range(num_steps):
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        grad = (n / batch_size) * X[idx].T @ (X[idx] @ w - y[idx]) / noise_var + w / prior_sigma**2
        w = sgld_step(w, grad, lr, 1.0, torch.randn(p, generator=generator, dtype=X.dtype))
        samples.append(w)
    return torch.stack(samples)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_run_sgld", "locked": true, "points": 6, "schema_version": 3, "solution": false}
"""run_sgld: after burn-in, the samples' mean within 0.25 posterior sd and their sd 0.85 to 1.2 times the exact posterior's."""
g = torch.Generator().manual_seed(1)
X = torch.randn(500, 2, generator=g, dtype=torch.float64)
y = X @ torch.tensor([1.0, -0.5], dtype=torch.float64) + torch.randn(500, generator=g, dtype=torch.float64)
mean, covariance, _ = bt.vi.linear_regression_posterior(X, y, noise_var=1.0, prior_sigma=1.0)
exact_sd = covariance.diagonal().sqrt()
with hidden(*SAMPLERS):
    samples = run_sgld(X, y, 1.0, 1.0, num_steps=40_000, lr=3e-5, batch_size=50, generator=torch.Generator().manual_seed(2))
assert samples.shape == (40_000, 2), f"expected (num_steps, p) = (40000, 2), got {tuple(samples.shape)}"
kept = samples[4_000:]
error = ((kept.mean(0) - mean) / exact_sd).abs().max()
assert error < 0.25, f"the sample mean is {float(error):.2f} posterior sd from the exact mean: check the gradient " \
    "(its N / B scaling and the prior term)"
ratio = kept.std(0) / exact_sd
assert ((ratio > 0.85) & (ratio < 1.2)).all(), \
    f"the samples' sd is {ratio.tolist()} times the posterior's: check the noise (variance 2 lr) and the N / B scaling"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task4", "locked": true, "schema_version": 3, "solution": false}
# ## Task 4 (advanced, 8 points): a posterior-predictive ensemble on MNIST
#
# The cell below is given: `MySGLD` is a `torch.optim.Optimizer` that applies your `sgld_step` to every
# parameter, with the gradient of the course's per-data-point loss (mean NLL + prior / N) multiplied by
# `num_data` to give $\widehat{\nabla U}$. Write `collect_samples(model, X, y, num_epochs, lr, burn_in,
# thin)`: train with `MySGLD` (batch size 100, a $\mathcal N(0, 1)$ prior on every parameter) and keep a
# copy of the model's `state_dict()` every `thin` steps after `burn_in` steps; then `ensemble_predict(model,
# samples, X)`: the average of the softmax probabilities over the kept samples, shape `(N, classes)`.
# Checked: the ensemble's test accuracy and that its NLL is lower than that of its average member.

# %%
class MySGLD(torch.optim.Optimizer):
    """SGLD on the full-data negative log posterior: grad U = num_data * grad(per-data-point loss)."""

    def __init__(self, params, lr, num_data, temperature=1.0):
        super().__init__(params, dict(lr=lr, num_data=num_data, temperature=temperature))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.copy_(sgld_step(p, group["num_data"] * p.grad, group["lr"], group["temperature"],
                                      torch.randn_like(p)))


def make_classifier():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))


# %% nbgrader={"grade": false, "grade_id": "ensemble", "locked": false, "schema_version": 3, "solution": true}
def collect_samples(model, X, y, num_epochs, lr, burn_in, thin):
    """SGLD with MySGLD; returns the list of state_dict copies kept every `thin` steps after `burn_in`."""
    ### BEGIN SOLUTION
    optimizer = MySGLD(model.parameters(), lr=lr, num_data=len(X))
    samples, step = [], 0
    for _ in range(num_epochs):
        for idx in torch.randperm(len(X)).split(100):
            prior = sum(0.5 * (p**2).sum() for p in model.parameters())
            loss = F.cross_entropy(model(X[idx]), y[idx]) + prior / len(X)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step > burn_in and step % thin == 0:
                samples.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return samples
    ### END SOLUTION


def ensemble_predict(model, samples, X):
    """(N, classes): the softmax probabilities averaged over the state dicts in `samples`."""
    ### BEGIN SOLUTION
    probs = []
    with torch.no_grad():
        for state in samples:
            model.load_state_dict(state)
            probs.append(torch.softmax(model(X), dim=-1))
    return torch.stack(probs).mean(0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ensemble_shapes", "locked": true, "points": 2, "schema_version": 3, "solution": false}
"""collect_samples keeps (epochs * steps - burn_in) / thin copies; ensemble_predict averages the members' probabilities."""
bt.utils.set_seed(3)
net = make_classifier()
with hidden(*SAMPLERS):
    samples = collect_samples(net, X_train[:1000], y_train[:1000], num_epochs=2, lr=1e-5, burn_in=10, thin=5)
assert len(samples) == 2, f"2 epochs of 10 steps, kept every 5th after the 10th: 2 samples, got {len(samples)}"
assert not torch.equal(samples[0]["1.weight"], samples[1]["1.weight"]), "keep copies (clone), not the same tensors"
probs = ensemble_predict(net, samples, X_test[:30])
assert probs.shape == (30, 10), f"expected (N, classes) = (30, 10), got {tuple(probs.shape)}"
assert torch.allclose(probs.sum(-1), torch.ones(30)), "average the softmax probabilities"
sure = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}   # two members that output their bias
unsure = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
sure["3.bias"][0], unsure["3.bias"][1] = 10.0, 2.0
expected = (torch.softmax(sure["3.bias"], -1) + torch.softmax(unsure["3.bias"], -1)) / 2
assert torch.allclose(ensemble_predict(net, [sure, unsure], X_test[:3]), expected.expand(3, 10), atol=1e-6), \
    "the posterior predictive averages the members' probabilities (softmax each, then average), not their logits"

# %% nbgrader={"grade": true, "grade_id": "test_ensemble_quality", "locked": true, "points": 6, "schema_version": 3, "solution": false}
"""The SGLD ensemble on MNIST: test accuracy > 86 % and an NLL below that of its average member."""
bt.utils.set_seed(4)
net = make_classifier()
with hidden(*SAMPLERS, "bnn_teach.predict.mc_predict"):
    samples = collect_samples(net, X_train, y_train, num_epochs=10, lr=2e-4, burn_in=120, thin=10)
    probs = ensemble_predict(net, samples, X_test)
accuracy = float((probs.argmax(-1) == y_test).float().mean())
ensemble_nll = float(-torch.log(probs[torch.arange(len(y_test)), y_test]).mean())
member_nll = sum(float(-torch.log(ensemble_predict(net, [s], X_test)[torch.arange(len(y_test)), y_test]).mean())
                 for s in samples) / len(samples)
print(f"{len(samples)} samples: accuracy {100 * accuracy:.1f} %, NLL {ensemble_nll:.3f} (members on average {member_nll:.3f})")
assert accuracy > 0.86, f"accuracy {100 * accuracy:.1f} %: check the loss (mean NLL + prior / N) and the step"
assert ensemble_nll < member_nll, "averaging the members' probabilities should lower the NLL below a member's"

# %% [markdown] nbgrader={"grade": false, "grade_id": "written_sgld_question", "locked": true, "schema_version": 3, "solution": false}
# ## Written answer (2 points, graded by hand): SGLD's noise and step size
#
# What does SGLD's injected noise change compared with SGD, and why should its step size decrease for the
# samples to come from the posterior?
#
# Answer in the cell below in two to four sentences, in your own words. It is read by your instructor,
# not by the autograder: name the mechanism, not only the result.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_sgld", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# **Model answer.** Without the noise the update is SGD, which converges to a mode (a MAP point). Noise of
# variance $2\,\mathrm{lr}\,T$ per step makes the update a discretised Langevin diffusion, whose stationary
# distribution is the posterior (at $T = 1$), so the iterates wander over it instead of settling. A fixed step
# leaves a bias from the discretisation and from the minibatch gradient's noise; as the step size decreases, the
# injected noise (variance of order lr) dominates the gradient noise (of order lr²) and the bias vanishes,
# without a Metropolis–Hastings correction.
#
# **Rubric (2 points).**
# - 1 point: the noise turns SGD's optimisation into sampling: the Langevin dynamics has the posterior as its
#   stationary distribution (SGD collapses to a mode).
# - 1 point: a fixed step is biased (discretisation, minibatch noise); decreasing steps make the injected noise
#   dominate and the bias vanish.

# %% [markdown] nbgrader={"grade": false, "grade_id": "extension", "locked": true, "schema_version": 3, "solution": false}
# ## Extension (optional, not graded)
#
# Run your SGHMC on the linear regression of task 3 with friction 0.1 and compare its autocorrelation
# and effective sample size with SGLD's at the same step count (`bt.viz.plot_autocorrelation`,
# `bt.viz.effective_sample_size`). Then try a cyclical step size (lecture L06) on MNIST.
