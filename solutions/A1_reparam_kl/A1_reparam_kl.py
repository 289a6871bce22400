# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # A1 · Reparametrization and KL
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/assignments/A1_reparam_kl/A1_reparam_kl.ipynb)
#
# You build the first rung of the course's ladder yourself: a Gaussian weight drawn by the
# reparametrization trick, its KL divergence to the prior in closed form and by Monte Carlo, a
# Bayesian linear layer, and a small Bayes-by-Backprop network trained on the ELBO (lectures L02–L03).
#
# **How this is graded (24 points).** Each task says what to build, why, and how it is checked.
# Replace every `raise NotImplementedError()` with your code. The cells that start with a docstring
# are tests for you: they check shapes, sanity and typical mistakes as you work. The points are decided
# by the grader: right after each test cell it calls your functions again on inputs of its own and checks
# the numbers outside your notebook, so a test cell that passes is a good sign, not yet the grade. While
# a test runs, and throughout grading, the library function you are rebuilding (e.g. `bt.kl.normal_normal`)
# is not there, so your code must compute the answer itself. Tiers: **basic** (tasks 1–2),
# **intermediate** (3–4), **advanced** (5). Before you hand in, run `bnn-teach grade check A1_reparam_kl.ipynb`
# (or *Kernel → Restart and run all*) so that every cell runs top to bottom; a test cell that prints
# a warning (to stderr) counts as failed, so fix what warns. On Colab: run it there,
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

# %% [markdown] nbgrader={"grade": false, "grade_id": "task1", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1 (basic, 3 points): a reparametrized Gaussian weight
#
# A weight has the posterior $q(w) = \mathcal N(\mu, \sigma^2)$ with $\sigma = \operatorname{softplus}(\rho)
# = \log(1 + e^\rho)$, so that $\rho$ can be any real number while $\sigma > 0$. The
# reparametrization trick draws $w = \mu + \sigma\,\varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$,
# so that $w$ is a differentiable function of $\mu$ and $\rho$.
#
# Write `sample_weights(mu, rho, eps)` returning $w$ (same shape as its inputs). It is checked on
# random tensors against the formula, and its gradient with respect to `rho` is checked too.

# %% nbgrader={"grade": false, "grade_id": "sample_weights", "locked": false, "schema_version": 3, "solution": true}
def sample_weights(mu, rho, eps):
    """w = mu + softplus(rho) * eps, elementwise; all three tensors of the same shape."""
    ### BEGIN SOLUTION
    return mu + F.softplus(rho) * eps
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sample_weights", "locked": true, "points": 3, "schema_version": 3, "solution": false}
"""sample_weights: the shape, the value mu + softplus(rho) * eps, and a gradient that reaches rho."""
g = torch.Generator().manual_seed(1)
mu, rho, eps = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
w = sample_weights(mu, rho, eps)
assert w.shape == (4, 3), f"w should have the shape of mu, (4, 3), got {tuple(w.shape)}"
assert not torch.allclose(w, mu + torch.exp(rho) * eps), "sigma is softplus(rho) = log(1 + e^rho), not e^rho"
assert not torch.allclose(w, mu + F.softplus(rho) ** 2 * eps), "softplus(rho) is a standard deviation, not a variance"
assert torch.allclose(w, mu + torch.log1p(torch.exp(rho)) * eps), "w should be mu + sigma * eps"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task2", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2 (basic, 5 points): the KL divergence between two Gaussians
#
# The ELBO's regulariser is $\mathrm{KL}(q\,\|\,p)$, the divergence of the posterior $q$ from the prior
# $p$. For one weight, $q = \mathcal N(\mu_q, \sigma_q^2)$ and $p = \mathcal N(\mu_p, \sigma_p^2)$, it has a
# closed form. Derive it from $\mathrm{KL}(q\|p) = \mathbb E_q[\log q(w) - \log p(w)]$ and write
# `kl_gaussian(mu_q, sigma_q, mu_p, sigma_p)`, elementwise (no sum: the layer sums). Arguments are
# standard deviations. Checked: zero when $q = p$, never negative, and the values on random tensors
# against an independent reference (the library's `bt.kl.normal_normal` and `torch.distributions` are
# hidden while it runs).

# %% nbgrader={"grade": false, "grade_id": "kl_gaussian", "locked": false, "schema_version": 3, "solution": true}
def kl_gaussian(mu_q, sigma_q, mu_p, sigma_p):
    """Elementwise KL( N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2) ); tensors of one shape (or broadcastable)."""
    ### BEGIN SOLUTION
    return torch.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_kl_gaussian_basic", "locked": true, "points": 1, "schema_version": 3, "solution": false}
"""kl_gaussian: elementwise shape, and zero when q equals p."""
mu, sigma = torch.randn(5, dtype=torch.float64), torch.rand(5, dtype=torch.float64) + 0.1
with hidden("bnn_teach.kl.normal_normal", "torch.distributions.kl_divergence", "torch.distributions.kl.kl_divergence"):
    kl = kl_gaussian(mu, sigma, mu, sigma)
assert kl.shape == (5,), f"the KL is elementwise: expected shape (5,), got {tuple(kl.shape)} (do not sum)"
assert torch.allclose(kl, torch.zeros(5, dtype=torch.float64), atol=1e-12), \
    "KL(q || q) must be 0: check the constant term"

# %% nbgrader={"grade": true, "grade_id": "test_kl_gaussian_values", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""kl_gaussian: non-negative, and equal to an independent reference on random tensors."""
g = torch.Generator().manual_seed(2)
mu_q, mu_p = torch.randn(200, generator=g, dtype=torch.float64), torch.randn(200, generator=g, dtype=torch.float64)
sigma_q = torch.rand(200, generator=g, dtype=torch.float64) * 2 + 0.05
sigma_p = torch.rand(200, generator=g, dtype=torch.float64) * 2 + 0.05
reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu_q, sigma_q),
                                              torch.distributions.Normal(mu_p, sigma_p))
reversed_direction = torch.distributions.kl_divergence(torch.distributions.Normal(mu_p, sigma_p),
                                                       torch.distributions.Normal(mu_q, sigma_q))
with hidden("bnn_teach.kl.normal_normal", "torch.distributions.kl_divergence", "torch.distributions.kl.kl_divergence"):
    kl = kl_gaussian(mu_q, sigma_q, mu_p, sigma_p)
assert kl.shape == (200,) and torch.isfinite(kl).all(), "one finite KL per element: shape (200,)"
log_ratio = torch.log(sigma_p / sigma_q)  # a log term off by a factor leaves a gap proportional to it
factor = float(((kl - reference) * log_ratio).sum() / (log_ratio**2).sum())
assert abs(factor) < 0.01 or not torch.allclose(kl - reference, factor * log_ratio, rtol=1e-4, atol=1e-6), \
    "the log term is off by a factor: log sigma = (1/2) log sigma^2, so a log of variances needs the factor 1/2 " \
    "and a log of standard deviations none"
assert (kl >= -1e-12).all(), "the KL is negative somewhere: check the sign of each term"
assert not torch.allclose(kl, reversed_direction), \
    "this is KL(p || q): the expectation must be under q (the posterior), KL(q || p)"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task3", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3 (intermediate, 4 points): the KL by Monte Carlo
#
# Most priors (the scale mixture of Blundell et al., the log-uniform prior of SparseVD) have no closed
# form. Then the KL is estimated from samples of $q$:
#
# $$\mathrm{KL}(q\|p) \approx \frac1S \sum_{s=1}^S \big[\log q(w_s) - \log p(w_s)\big], \qquad
#   w_s = \mu_q + \sigma_q \varepsilon_s .$$
#
# Write `kl_monte_carlo(mu_q, sigma_q, log_prior, num_samples, generator)`: elementwise, averaging over
# `num_samples` draws made with `torch.randn(..., generator=generator)`; `log_prior(w)` returns
# $\log p(w)$ elementwise. You may use `torch.distributions.Normal` for $\log q$. Checked: for a Gaussian
# prior it agrees with the closed form within Monte Carlo error; for a scale-mixture prior it agrees with
# a long reference run.

# %% nbgrader={"grade": false, "grade_id": "kl_monte_carlo", "locked": false, "schema_version": 3, "solution": true}
def kl_monte_carlo(mu_q, sigma_q, log_prior, num_samples, generator=None):
    """Elementwise Monte Carlo estimate of KL(N(mu_q, sigma_q^2) || p) from num_samples draws of q."""
    ### BEGIN SOLUTION
    eps = torch.randn((num_samples, *mu_q.shape), generator=generator, dtype=mu_q.dtype)
    w = mu_q + sigma_q * eps
    log_q = torch.distributions.Normal(mu_q, sigma_q).log_prob(w)
    return (log_q - log_prior(w)).mean(0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_kl_monte_carlo", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""kl_monte_carlo: close to the closed form for a Gaussian prior (within 5 standard errors)."""
mu_q = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
sigma_q = torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64)
prior = torch.distributions.Normal(0.0, 1.0)
exact = torch.distributions.kl_divergence(torch.distributions.Normal(mu_q, sigma_q), prior)
with hidden("bnn_teach.kl.monte_carlo"):
    estimate = kl_monte_carlo(mu_q, sigma_q, prior.log_prob, 20_000, torch.Generator().manual_seed(3))
assert estimate.shape == (3,), f"one estimate per weight: expected shape (3,), got {tuple(estimate.shape)}"
assert (estimate > -0.05).all(), "the estimate is negative: it should average log q(w) - log p(w), in that order"
assert torch.allclose(estimate, exact, atol=0.05), \
    "far from the closed form: draw w from q (mu_q + sigma_q * eps) and average log q(w) - log p(w) over the samples"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task4", "locked": true, "schema_version": 3, "solution": false}
# ## Task 4 (intermediate, 6 points): a Bayesian linear layer
#
# Write `MyBayesLinear(in_features, out_features, prior_sigma=1.0)`, an `nn.Module` with parameters
# `weight_mu`, `weight_rho` of shape `(out_features, in_features)` and `bias_mu`, `bias_rho` of shape
# `(out_features,)` (start the means small, e.g. $\mathcal N(0, 0.1^2)$, and $\rho = -5$). Its
# `forward(x)` draws **one** weight matrix and bias per call with your `sample_weights` (weight
# sampling) and returns $x W^\top + b$; its `kl()` returns the sum over all weights and biases of your
# `kl_gaussian` to the prior $\mathcal N(0, \text{prior\_sigma}^2)$, a scalar tensor. Checked: the shapes,
# the mean and variance of the outputs over many calls against the formula, and the KL (the library's
# `bt.nn.BayesLinear` is hidden).

# %% nbgrader={"grade": false, "grade_id": "bayes_linear", "locked": false, "schema_version": 3, "solution": true}
class MyBayesLinear(nn.Module):
    """Bayes-by-Backprop linear layer with weight sampling: w = mu + softplus(rho) * eps per forward pass."""

    def __init__(self, in_features, out_features, prior_sigma=1.0):
        super().__init__()
        self.prior_sigma = prior_sigma
        ### BEGIN SOLUTION
        self.weight_mu = nn.Parameter(0.1 * torch.randn(out_features, in_features))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), -5.0))
        self.bias_mu = nn.Parameter(0.1 * torch.randn(out_features))
        self.bias_rho = nn.Parameter(torch.full((out_features,), -5.0))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        weight = sample_weights(self.weight_mu, self.weight_rho, torch.randn_like(self.weight_mu))
        bias = sample_weights(self.bias_mu, self.bias_rho, torch.randn_like(self.bias_mu))
        return x @ weight.T + bias
        ### END SOLUTION

    def kl(self):
        ### BEGIN SOLUTION
        zero, prior_sigma = torch.tensor(0.0), torch.tensor(float(self.prior_sigma))
        return sum(kl_gaussian(mu, F.softplus(rho), zero, prior_sigma).sum()
                   for mu, rho in [(self.weight_mu, self.weight_rho), (self.bias_mu, self.bias_rho)])
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_bayes_linear_shapes", "locked": true, "points": 1, "schema_version": 3, "solution": false}
"""MyBayesLinear: parameter names and shapes, output shape, and fresh weights on every call."""
layer = MyBayesLinear(3, 2)
shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
assert shapes == {"weight_mu": (2, 3), "weight_rho": (2, 3), "bias_mu": (2,), "bias_rho": (2,)}, shapes
x = torch.randn(7, 3)
assert layer(x).shape == (7, 2), f"expected outputs of shape (7, 2), got {tuple(layer(x).shape)}"
assert not torch.equal(layer(x), layer(x)), "two calls gave the same output: draw new weights on every call"

# %% nbgrader={"grade": true, "grade_id": "test_bayes_linear_moments", "locked": true, "points": 3, "schema_version": 3, "solution": false}
"""MyBayesLinear: over many calls the outputs have mean x mu^T + mu_b and variance x^2 sigma^2^T + sigma_b^2."""
torch.manual_seed(6)
layer = MyBayesLinear(4, 3).double()
with torch.no_grad():
    layer.weight_rho.fill_(-1.0)
    layer.bias_rho.fill_(-2.0)
x = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
with hidden("bnn_teach.nn.BayesLinear"), torch.no_grad():
    outputs = torch.cat([layer(x) for _ in range(4000)])  # (4000, 3)
mean = x @ layer.weight_mu.detach().T + layer.bias_mu.detach()
var = x**2 @ F.softplus(layer.weight_rho.detach()).T ** 2 + F.softplus(layer.bias_rho.detach()) ** 2
assert torch.allclose(outputs.mean(0), mean[0], atol=float(5 * (var.max() / 4000) ** 0.5)), \
    "the outputs' mean is off: forward should compute x W^T + b with the sampled W and b"
ratio = outputs.var(0) / var[0]
assert ((ratio > 0.85) & (ratio < 1.15)).all(), \
    f"the outputs' variance is {ratio.tolist()} times the expected one: sample every weight and the bias with " \
    "sigma = softplus(rho), once per call"

# %% nbgrader={"grade": true, "grade_id": "test_bayes_linear_kl", "locked": true, "points": 2, "schema_version": 3, "solution": false}
"""MyBayesLinear.kl: a scalar, the sum of the Gaussian KL over the weights and the biases."""
layer = MyBayesLinear(5, 4, prior_sigma=0.5).double()
with torch.no_grad():
    layer.weight_rho.uniform_(-2, 0)
    layer.bias_rho.uniform_(-2, 0)
prior = torch.distributions.Normal(0.0, 0.5)
expected = sum(torch.distributions.kl_divergence(torch.distributions.Normal(mu, F.softplus(rho)), prior).sum()
               for mu, rho in [(layer.weight_mu, layer.weight_rho), (layer.bias_mu, layer.bias_rho)])
with hidden("bnn_teach.nn.BayesLinear", "bnn_teach.kl.normal_normal"):
    kl = layer.kl()
assert torch.is_tensor(kl) and kl.dim() == 0, "kl() should return a scalar tensor (the sum)"
weights_only = torch.distributions.kl_divergence(
    torch.distributions.Normal(layer.weight_mu, F.softplus(layer.weight_rho)), prior).sum()
assert not torch.allclose(kl, weights_only), "the biases are Bayesian too: add their KL"
assert torch.allclose(kl, expected, rtol=1e-6), "kl() differs from the sum of the Gaussian KL to N(0, prior_sigma^2)"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task5", "locked": true, "schema_version": 3, "solution": false}
# ## Task 5 (advanced, 6 points): the ELBO and a Bayes-by-Backprop network
#
# The course minimises the negative ELBO divided by the number of training points $N$:
#
# $$\mathcal L = \underbrace{\text{mean NLL of the batch}}_{\mathtt{nll}} + \frac{\mathrm{KL}(q\|p)}{N} .$$
#
# Write `elbo_loss(nll, kl, num_data)` and `train_bbb(model, X, y, num_epochs, batch_size, lr)`: Adam
# on mini-batches (reshuffled each epoch), one weight sample per step, with the Gaussian NLL of a known
# noise variance `NOISE_VAR` (mean over the batch, constant dropped: $\frac{(y - \hat y)^2}{2\,\text{NOISE\_VAR}}$)
# and the KL of every `MyBayesLinear` in the model (`model.modules()`). Checked: `elbo_loss` on numbers,
# then a three-layer network of your layers trained on the 1-D regression set, whose predictive mean
# must fit the data and whose spread must grow away from the data.

# %% nbgrader={"grade": false, "grade_id": "elbo_and_training", "locked": false, "schema_version": 3, "solution": true}
NOISE_VAR = 0.1


def elbo_loss(nll, kl, num_data):
    """The negative ELBO per data point: nll (mean over the batch) + kl (summed over weights) / num_data."""
    ### BEGIN SOLUTION
    return nll + kl / num_data
    ### END SOLUTION


def train_bbb(model, X, y, num_epochs, batch_size=32, lr=1e-2):
    """Minimise elbo_loss with Adam; X (N, 1), y (N, 1). Returns the list of per-epoch mean losses."""
    ### BEGIN SOLUTION
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(num_epochs):
        order, total = torch.randperm(len(X)), 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            nll = ((model(X[idx]) - y[idx]) ** 2).mean() / (2 * NOISE_VAR)
            kl = sum(m.kl() for m in model.modules() if isinstance(m, MyBayesLinear))
            loss = elbo_loss(nll, kl, len(X))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(X))
    return losses
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_elbo_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false}
"""elbo_loss: nll + kl / num_data."""
with hidden("bnn_teach.objectives.elbo_loss"):
    value = float(elbo_loss(torch.tensor(0.3), torch.tensor(600.0), 60_000))
assert not math.isclose(value, 600.3, rel_tol=1e-6), "the KL is summed over all weights: divide it by num_data"
assert not math.isclose(value, 0.3 + 600 / 32, rel_tol=1e-6), "divide by the number of training points, not the batch size"
assert math.isclose(value, 0.31, rel_tol=1e-6), f"expected 0.3 + 600 / 60000, got {value}"

# %% nbgrader={"grade": true, "grade_id": "test_bbb_regression", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""train_bbb: a network of MyBayesLinear layers fits the 1-D data, and its spread is wider off the data than on it."""
bt.utils.set_seed(7)
X, y = bt.data.regression_1d(200, seed=7)
net = nn.Sequential(MyBayesLinear(1, 32), nn.ReLU(), MyBayesLinear(32, 32), nn.ReLU(), MyBayesLinear(32, 1))
with hidden("bnn_teach.train.fit", "bnn_teach.nn.BayesLinear"):
    losses = train_bbb(net, X, y, num_epochs=150, batch_size=32, lr=1e-2)
assert len(losses) == 150, f"train_bbb should return one loss per epoch, got {len(losses)}"
assert losses[-1] < losses[0], "the loss did not go down: check the optimizer step and the loss"
with torch.no_grad():
    on_data = torch.stack([net(X) for _ in range(100)])               # (100, 200, 1)
    far = torch.stack([net(torch.full((50, 1), 7.0)) for _ in range(100)])
rmse = float(((on_data.mean(0) - y) ** 2).mean().sqrt())
assert rmse < 0.5, f"the predictive mean misses the data (RMSE {rmse:.2f}): with KL / num_data the data should " \
    "dominate the prior on 200 points; check the scaling of the KL"
ratio = float(far.std(0).mean() / on_data.std(0).mean())
assert ratio > 2, f"the spread off the data is only {ratio:.1f}x that on the data: is each forward drawing new weights?"

# %% [markdown] nbgrader={"grade": false, "grade_id": "written_reparam_question", "locked": true, "schema_version": 3, "solution": false}
# ## Written answer (2 points, graded by hand): the reparametrization trick
#
# Why can we backpropagate through $w = \mu + \operatorname{softplus}(\rho)\,\varepsilon$, $\varepsilon \sim
# \mathcal N(0, 1)$, but not through a value drawn by a sampler, `torch.normal(mu, sigma)`, to estimate the
# gradient of the expected log-likelihood in $(\mu, \rho)$?
#
# Answer in the cell below in two to four sentences, in your own words. It is read by your instructor,
# not by the autograder: name the mechanism, not only the result.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_reparam", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# **Model answer.** The noise $\varepsilon$ has a distribution that does not depend on $(\mu, \rho)$, so for a
# fixed $\varepsilon$ the weight is a differentiable function of the parameters ($\partial w/\partial\mu = 1$,
# $\partial w/\partial\rho = \operatorname{sigmoid}(\rho)\,\varepsilon$). The gradient of the expectation is then the
# expectation of a gradient, and averaging over draws of $\varepsilon$ estimates it without bias. A sampler's
# output carries no gradient with respect to the parameters of the distribution it was drawn from; one would
# need the score-function (REINFORCE) estimator, also unbiased but with a much larger variance.
#
# **Rubric (2 points).**
# - 1 point: the noise's distribution is fixed, so $w$ is a deterministic, differentiable function of $(\mu,
#   \rho)$ given $\varepsilon$ (the gradient moves inside the expectation).
# - 1 point: a sampled value has no gradient in the distribution's parameters; the alternative (score function /
#   REINFORCE) has a far higher variance. Half a point for "it is not differentiable" without saying why.

# %% [markdown] nbgrader={"grade": false, "grade_id": "extension", "locked": true, "schema_version": 3, "solution": false}
# ## Extension (optional, not graded): the local reparametrization trick
#
# Replace weight sampling in `MyBayesLinear` by the local reparametrization trick of lecture L03
# ($b = x\mu^\top + \sqrt{x^2 (\sigma^2)^\top}\,\varepsilon$) and measure, with
# `bt.diagnostics.gradient_variance`, how much it lowers the variance of the gradient of `weight_rho`.
