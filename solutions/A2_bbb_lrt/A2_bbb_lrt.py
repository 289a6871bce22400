# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # A2 · Bayes by Backprop with the local reparametrization trick, on MNIST
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/assignments/A2_bbb_lrt/A2_bbb_lrt.ipynb)
#
# You build the pieces of lecture L03 and put them together: the local reparametrization trick (LRT)
# for linear and convolutional layers, the ELBO with the course's scaling, a Bayesian MLP trained on
# MNIST, Monte Carlo prediction, and the three numbers every Bayesian classifier is judged by:
# accuracy, negative log-likelihood and expected calibration error.
#
# **How this is graded (25 points).** Each task says what to build, why, and how it is checked.
# Replace every `raise NotImplementedError()` with your code. The cells that start with a docstring
# are tests for you: they check shapes, sanity and typical mistakes as you work. The points are decided
# by the grader: right after each test cell it calls your functions again on inputs of its own and checks
# the numbers outside your notebook, so a test cell that passes is a good sign, not yet the grade. While
# a test runs, and throughout grading, the library function you are rebuilding (e.g. `bt.metrics.ece`)
# is not there, so your code must compute the answer itself. Tiers: **basic** (tasks 1, 3),
# **intermediate** (2, 4), **advanced** (5, 6). Before handing in, run `bnn-teach grade check
# A2_bbb_lrt.ipynb` (or *Restart and run all*) so that every cell runs top to bottom; a test cell that
# prints a warning (to stderr) counts as failed, so fix what warns. On Colab: run it there, then
# *File → Download → .ipynb* and hand in that file.

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
# graded cells use the same small sizes everywhere, so that grading is quick and reproducible
X_train, y_train = bt.data.load_mnist("train", subset=3_000)
X_test, y_test = bt.data.load_mnist("test", subset=1_000)
print(f"{len(X_train)} training and {len(X_test)} test images of shape {tuple(X_train.shape[1:])}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "task1", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1 (basic, 4 points): the LRT for a linear layer
#
# With independent Gaussian weights $W_{ji} \sim \mathcal N(\mu_{ji}, \sigma_{ji}^2)$ and biases
# $b_j \sim \mathcal N(\mu^b_j, (\sigma^b_j)^2)$, the pre-activation of unit $j$ for an input $x$ is
# Gaussian. Derive its mean and variance, then write `lrt_linear(x, weight_mu, weight_sigma, bias_mu,
# bias_sigma, eps)` that returns one sample of the pre-activations of a batch, using the given standard
# normal noise `eps` of shape `(batch, out_features)`. Arguments are standard deviations. Checked
# against the formula for given `eps`, and its gradients.

# %% nbgrader={"grade": false, "grade_id": "lrt_linear", "locked": false, "schema_version": 3, "solution": true}
def lrt_linear(x, weight_mu, weight_sigma, bias_mu, bias_sigma, eps):
    """x (B, in), weight_* (out, in), bias_* (out,), eps (B, out) -> (B, out): mean + sqrt(variance) * eps."""
    ### BEGIN SOLUTION
    mean = x @ weight_mu.T + bias_mu
    var = x**2 @ (weight_sigma**2).T + bias_sigma**2
    return mean + torch.sqrt(var) * eps
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_lrt_linear", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""lrt_linear: shape, and the value for given noise against mean + sqrt(variance) * eps."""
g = torch.Generator().manual_seed(1)
x = torch.randn(6, 4, generator=g, dtype=torch.float64)
w_mu, w_sigma = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.rand(3, 4, generator=g, dtype=torch.float64)
b_mu, b_sigma = torch.randn(3, generator=g, dtype=torch.float64), torch.rand(3, generator=g, dtype=torch.float64)
eps = torch.randn(6, 3, generator=g, dtype=torch.float64)
with hidden("bnn_teach.nn.BayesLinear"):
    out = lrt_linear(x, w_mu, w_sigma, b_mu, b_sigma, eps)
    twins = lrt_linear(x[:1].expand(6, 4), w_mu, w_sigma, b_mu, b_sigma, eps)  # one input, six noise rows
assert out.shape == (6, 3), f"expected (batch, out_features) = (6, 3), got {tuple(out.shape)}"
assert not torch.allclose(twins[0], twins[1]), \
    "rows with the same input got the same output: the noise is shared by the whole batch; use eps as given, " \
    "one value per example and output unit"
assert torch.allclose(lrt_linear(x, w_mu, w_sigma, b_mu, b_sigma, torch.zeros_like(eps)), x @ w_mu.T + b_mu), \
    "with eps = 0 the output should be the mean x mu^T + mu_b"
variance = x**2 @ (w_sigma**2).T + b_sigma**2
assert not torch.allclose(out, x @ w_mu.T + b_mu + variance * eps), \
    "the noise is scaled by the standard deviation: take the square root of the variance"
assert torch.isfinite(out).all(), "NaN in the output: a variance cannot be negative; Var(x w) = x^2 Var(w)"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task2", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2 (intermediate, 4 points): the LRT for a convolution
#
# A convolution is a linear map too: each output is a sum of inputs times weights over a patch. Write
# `lrt_conv2d(x, weight_mu, weight_sigma, bias_mu, bias_sigma, eps, stride=1, padding=0)` with
# `F.conv2d`; `eps` has the shape of the output. Checked against the formula for given noise.

# %% nbgrader={"grade": false, "grade_id": "lrt_conv2d", "locked": false, "schema_version": 3, "solution": true}
def lrt_conv2d(x, weight_mu, weight_sigma, bias_mu, bias_sigma, eps, stride=1, padding=0):
    """x (B, C, H, W), weight_* (out, C, k, k), bias_* (out,), eps of the output's shape -> one sample."""
    ### BEGIN SOLUTION
    mean = F.conv2d(x, weight_mu, bias_mu, stride=stride, padding=padding)
    var = F.conv2d(x**2, weight_sigma**2, bias_sigma**2, stride=stride, padding=padding)
    return mean + torch.sqrt(var) * eps
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_lrt_conv2d", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""lrt_conv2d: the value for given noise against conv(x, mu) + sqrt(conv(x^2, sigma^2)) * eps, with stride and padding."""
g = torch.Generator().manual_seed(2)
x = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64)
w_mu, w_sigma = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64), torch.rand(4, 3, 3, 3, generator=g, dtype=torch.float64)
b_mu, b_sigma = torch.randn(4, generator=g, dtype=torch.float64), torch.rand(4, generator=g, dtype=torch.float64)
eps = torch.randn(2, 4, 4, 4, generator=g, dtype=torch.float64)
with hidden("bnn_teach.nn.BayesConv2d"):
    out = lrt_conv2d(x, w_mu, w_sigma, b_mu, b_sigma, eps, stride=2, padding=1)
assert out.shape == (2, 4, 4, 4), f"expected (2, 4, 4, 4) with stride 2 and padding 1, got {tuple(out.shape)}"
mean = F.conv2d(x, w_mu, b_mu, stride=2, padding=1)
assert not torch.allclose(out, mean + F.conv2d(x**2, w_sigma, b_sigma, stride=2, padding=1).sqrt() * eps), \
    "the variance convolves the squared inputs with the *variances* sigma^2"

# %% [markdown] nbgrader={"grade": false, "grade_id": "given_layer", "locked": true, "schema_version": 3, "solution": false}
# ## Given: a Bayesian linear layer on your LRT
#
# `LRTLinear` keeps $\mu$ and $\rho$ with $\sigma = \operatorname{softplus}(\rho)$, samples with your
# `lrt_linear` in training mode, uses the mean weights in `eval()` mode unless `sample=True`, and
# has the closed-form KL to a $\mathcal N(0, 1)$ prior (you wrote that formula in A1; here it comes from
# the library). Read it; you do not need to change it.

# %%
class LRTLinear(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight_mu = nn.Parameter(torch.randn(out_features, in_features) / math.sqrt(in_features))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), -5.0))
        self.bias_mu = nn.Parameter(torch.zeros(out_features))
        self.bias_rho = nn.Parameter(torch.full((out_features,), -5.0))
        self.sample = False  # sample in eval() mode too (Monte Carlo prediction)

    def forward(self, x):
        if not (self.training or self.sample):
            return x @ self.weight_mu.T + self.bias_mu
        eps = torch.randn(x.shape[0], self.weight_mu.shape[0], device=x.device)
        return lrt_linear(x, self.weight_mu, F.softplus(self.weight_rho), self.bias_mu, F.softplus(self.bias_rho), eps)

    def kl(self):
        pairs = [(self.weight_mu, self.weight_rho), (self.bias_mu, self.bias_rho)]
        return sum(bt.kl.normal_normal(mu, F.softplus(rho), 0.0, 1.0).sum() for mu, rho in pairs)


def make_mlp():
    return nn.Sequential(nn.Flatten(), LRTLinear(784, 200), nn.ReLU(), LRTLinear(200, 10))


# %% [markdown] nbgrader={"grade": false, "grade_id": "task3", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3 (basic, 3 points): the ELBO with the right scaling
#
# Write `negative_elbo(logits, y, kl, num_data)`: the loss the course minimises, the mean
# cross-entropy of the batch plus the network's KL divided by the number of training points
# (lecture L02, section 3). Checked on numbers.

# %% nbgrader={"grade": false, "grade_id": "negative_elbo", "locked": false, "schema_version": 3, "solution": true}
def negative_elbo(logits, y, kl, num_data):
    """-ELBO / N for a batch: mean cross-entropy + kl / num_data."""
    ### BEGIN SOLUTION
    return F.cross_entropy(logits, y) + kl / num_data
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_negative_elbo", "locked": true, "points": 3, "schema_version": 3, "solution": false}
"""negative_elbo: mean cross-entropy of the batch + kl / num_data."""
g = torch.Generator().manual_seed(3)
logits, y = torch.randn(50, 10, generator=g), torch.randint(0, 10, (50,), generator=g)
kl = torch.tensor(1234.0)
with hidden("bnn_teach.objectives.elbo_loss"):
    value = float(negative_elbo(logits, y, kl, 60_000))
cross_entropy = float(F.cross_entropy(logits, y))
assert not math.isclose(value, cross_entropy + 1234.0, rel_tol=1e-5), "divide the KL by num_data"
assert not math.isclose(value, 50 * cross_entropy + 1234.0 / 60_000, rel_tol=1e-5), \
    "take the mean cross-entropy of the batch, not the sum"
assert math.isclose(value, cross_entropy + 1234.0 / 60_000, rel_tol=1e-5), "expected mean cross-entropy + kl / num_data"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task4", "locked": true, "schema_version": 3, "solution": false}
# ## Task 4 (intermediate, 4 points): training and Monte Carlo prediction
#
# Write `train(model, X, y, num_epochs, batch_size=100, lr=1e-3)`: Adam on shuffled mini-batches of
# `negative_elbo`, where the KL is the sum of `kl()` over the model's `LRTLinear` layers and
# `num_data = len(X)`. Then `mc_predict(model, X, num_samples)`: the class probabilities of
# `num_samples` stochastic forward passes in `eval()` mode with sampling switched on (`layer.sample = True`,
# and back to `False` afterwards), shape `(num_samples, N, 10)`. The posterior predictive is the
# average of those *probabilities*. Checked: the network trained for 3 epochs on 3,000 images
# reaches 85 % test accuracy with your prediction, the losses `train` returns (the mean `negative_elbo` of each
# epoch) carry the KL with the course's scaling, and `mc_predict` averages the right thing.

# %% nbgrader={"grade": false, "grade_id": "train_and_predict", "locked": false, "schema_version": 3, "solution": true}
def train(model, X, y, num_epochs, batch_size=100, lr=1e-3):
    """Minimise negative_elbo with Adam; returns the list of per-epoch mean losses."""
    ### BEGIN SOLUTION
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(num_epochs):
        order, total = torch.randperm(len(X)), 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            kl = sum(m.kl() for m in model.modules() if isinstance(m, LRTLinear))
            loss = negative_elbo(model(X[idx]), y[idx], kl, len(X))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(X))
    return losses
    ### END SOLUTION


def mc_predict(model, X, num_samples):
    """(num_samples, N, classes) softmax probabilities of stochastic forward passes in eval() mode."""
    ### BEGIN SOLUTION
    layers = [m for m in model.modules() if isinstance(m, LRTLinear)]
    model.eval()
    for layer in layers:
        layer.sample = True
    try:
        with torch.no_grad():
            return torch.stack([F.softmax(model(X), dim=-1) for _ in range(num_samples)])
    finally:
        for layer in layers:
            layer.sample = False
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_mc_predict", "locked": true, "points": 1, "schema_version": 3, "solution": false}
"""mc_predict: shape (num_samples, N, 10), rows that sum to 1, different samples, and sampling switched off afterwards."""
bt.utils.set_seed(4)
net = make_mlp()
with hidden("bnn_teach.predict.mc_predict"):
    probs = mc_predict(net, X_test[:20], num_samples=5)
assert probs.shape == (5, 20, 10), f"expected (num_samples, N, classes) = (5, 20, 10), got {tuple(probs.shape)}"
assert torch.allclose(probs.sum(-1), torch.ones(5, 20)), "each row should be a probability vector: apply softmax"
assert not torch.allclose(probs[0], probs[1]), "the samples are equal: switch sampling on (layer.sample = True)"
assert not any(m.sample for m in net.modules() if isinstance(m, LRTLinear)), "switch sampling off again afterwards"

# %% nbgrader={"grade": true, "grade_id": "test_train_accuracy", "locked": true, "points": 3, "schema_version": 3, "solution": false}
"""train + mc_predict: 3 epochs on 3,000 images reach 85 % test accuracy (the grader also checks the KL / N)."""
bt.utils.set_seed(5)
net = make_mlp()
with hidden("bnn_teach.train.fit", "bnn_teach.objectives.elbo_loss", "bnn_teach.predict.mc_predict"):
    losses = train(net, X_train, y_train, num_epochs=3)
    probs = mc_predict(net, X_test, num_samples=10)
assert len(losses) == 3 and losses[-1] < losses[0], f"the loss should fall over the 3 epochs: {losses}"
accuracy = float((probs.mean(0).argmax(-1) == y_test).float().mean())
assert accuracy > 0.85, f"test accuracy {100 * accuracy:.1f} %: check the loss (mean cross-entropy + KL / N) and the " \
    "optimiser loop"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task5", "locked": true, "schema_version": 3, "solution": false}
# ## Task 5 (advanced, 4 points): accuracy and NLL of the posterior predictive
#
# From Monte Carlo probabilities `probs` of shape `(S, N, C)` and labels `y`, write `accuracy(probs, y)`
# and `nll(probs, y)` of the **posterior predictive** $\bar p = \frac1S \sum_s p_s$: the fraction of
# inputs whose most probable class under $\bar p$ is the label, and $-\frac1N \sum_i \log \bar p(y_i)$ in
# nats. Both return Python floats. Checked against the library's metrics (hidden while they run).

# %% nbgrader={"grade": false, "grade_id": "accuracy_nll", "locked": false, "schema_version": 3, "solution": true}
def accuracy(probs, y):
    """Accuracy of the predictive mean of probs (S, N, C)."""
    ### BEGIN SOLUTION
    return float((probs.mean(0).argmax(-1) == y).double().mean())
    ### END SOLUTION


def nll(probs, y):
    """-mean log of the predictive mean's probability of the label, probs (S, N, C)."""
    ### BEGIN SOLUTION
    p_bar = probs.mean(0)
    return float(-torch.log(p_bar[torch.arange(len(y)), y]).mean())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_accuracy_nll", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""accuracy and nll of the posterior predictive: a textbook case, and random predictions."""
g = torch.Generator().manual_seed(6)
probs = torch.softmax(3 * torch.randn(8, 300, 10, generator=g, dtype=torch.float64), dim=-1)
y = torch.randint(0, 10, (300,), generator=g)
per_sample_nll = float(-torch.log(probs[:, torch.arange(300), y]).mean())
# (S=3, N=4, C=2): the mean probabilities pick the classes 0, 0, 1, 1 (a vote of the samples would pick 1, 0, 1, 0)
textbook = torch.tensor([[[0.4, 0.6], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3]],
                         [[0.4, 0.6], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]],
                         [[0.95, 0.05], [0.1, 0.9], [0.6, 0.4], [0.05, 0.95]]], dtype=torch.float64)
with hidden("bnn_teach.metrics.accuracy", "bnn_teach.metrics.nll"):
    got_accuracy, got_nll = accuracy(probs, y), nll(probs, y)
    textbook_accuracy = accuracy(textbook, torch.tensor([0, 0, 0, 1]))
assert isinstance(got_accuracy, float) and isinstance(got_nll, float), "return Python floats (float(...))"
assert not math.isclose(got_nll, per_sample_nll, rel_tol=1e-6), \
    "that averages the log-likelihood of each sample; the NLL is of the averaged probabilities"
assert math.isclose(textbook_accuracy, 0.75, rel_tol=1e-9), \
    f"accuracy differs: argmax of the mean probabilities (3 of 4 right in this case), got {textbook_accuracy}"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task6", "locked": true, "schema_version": 3, "solution": false}
# ## Task 6 (advanced, 6 points): expected calibration error
#
# A classifier is calibrated when, among the inputs it predicts with confidence 0.8, 80 % are right.
# Split the confidences $\max_c \bar p_c$ of the predictive mean into `num_bins` equal-width bins of
# $[0, 1]$; in each non-empty bin $b$ compare the accuracy and the mean confidence, and weight the gap by
# the bin's share of the inputs:
#
# $$\mathrm{ECE} = \sum_b \frac{n_b}{N}\,\big|\mathrm{acc}_b - \mathrm{conf}_b\big| .$$
#
# Write `ece(probs, y, num_bins=15)` for probs of shape `(S, N, C)`, a Python float. Checked against the
# library (hidden while it runs), then used on your trained network.

# %% nbgrader={"grade": false, "grade_id": "ece", "locked": false, "schema_version": 3, "solution": true}
def ece(probs, y, num_bins=15):
    """Expected calibration error of the predictive mean of probs (S, N, C) over equal-width bins."""
    ### BEGIN SOLUTION
    p_bar = probs.mean(0)
    confidence, prediction = p_bar.max(-1)
    correct = (prediction == y).double()
    bins = torch.clamp((confidence * num_bins).long(), max=num_bins - 1)
    total = 0.0
    for b in range(num_bins):
        inside = bins == b
        if inside.any():
            total += float(inside.double().mean()) * abs(float(correct[inside].mean() - confidence[inside].mean()))
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ece", "locked": true, "points": 6, "schema_version": 3, "solution": false}
"""ece: 0.15 on a textbook case, and the library's value on random predictions."""
textbook = torch.tensor([[[0.9, 0.1]] * 4], dtype=torch.float64)  # (S=1, N=4, C=2): confidence 0.9, 3 of 4 right
with hidden("bnn_teach.metrics.ece", "bnn_teach.metrics.reliability_bins"):
    value = ece(textbook, torch.tensor([0, 0, 0, 1]))
assert isinstance(value, float), "return a Python float"
assert math.isclose(value, 0.15, abs_tol=1e-9), f"expected |0.75 - 0.9| = 0.15 for this case, got {value}"

# %% [markdown] nbgrader={"grade": false, "grade_id": "written_lrt_question", "locked": true, "schema_version": 3, "solution": false}
# ## Written answer (2 points, graded by hand): the local reparametrization trick
#
# With one weight matrix sampled per minibatch, the gradient's variance does not fall like $1/M$ in the batch
# size $M$. Why not, and why does the local reparametrization trick make it fall?
#
# Answer in the cell below in two to four sentences, in your own words. It is read by your instructor,
# not by the autograder: name the mechanism, not only the result.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_lrt", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# **Model answer.** With one shared weight sample the $M$ per-example terms of the minibatch estimate are
# correlated: they all see the same noise, so the covariance terms of the variance do not shrink as $M$ grows.
# The local reparametrization trick samples each example's pre-activations from their exact Gaussian, $\mathcal
# N(x\mu^\top, x^2(\sigma^2)^\top)$: the marginal of each term is unchanged (the estimator stays unbiased), but
# the noise is independent across examples, so the covariances vanish and the variance falls like $1/M$. It also
# draws fewer random numbers (batch × outputs instead of inputs × outputs).
#
# **Rubric (2 points).**
# - 1 point: a shared weight sample makes the examples' terms correlated (covariance terms that do not shrink
#   with $M$).
# - 1 point: LRT samples pre-activations independently per example with the same marginal, so the estimator
#   stays unbiased and the covariances vanish.

# %% [markdown] nbgrader={"grade": false, "grade_id": "extension", "locked": true, "schema_version": 3, "solution": false}
# ## Extension (optional, not graded)
#
# Train the same network with weight sampling instead of the LRT (one weight matrix per batch) and compare
# the test accuracy after 3 epochs, and the gradient variance of `weight_rho` measured with
# `bt.diagnostics.gradient_variance`. Then draw the reliability diagram of your network with
# `bt.viz.plot_reliability(probs, y_test)`: is it over- or under-confident?
