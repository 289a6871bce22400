# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # A4 · Sparse Variational Dropout
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/assignments/A4_sparsevd/A4_sparsevd.ipynb)
#
# Molchanov, Ashukha and Vetrov (2017) give every weight its own dropout rate $\alpha$ and learn it.
# With the log-uniform prior, weights whose $\alpha$ grows large carry only noise and can be removed:
# the network compresses itself, LeNet-300-100 by 68× at the same error. You build the layer
# (the parametrization by $\log\sigma^2$, $\log\alpha$ with its clipping, the approximate KL with its
# constant, the LRT forward pass and the pruned evaluation), then measure how much of a trained
# LeNet-300-100 is left.
#
# **How this is graded (22 points).** Each task says what to build, why, and how it is checked.
# Replace every `raise NotImplementedError()` with your code. Cells that start with a docstring are
# tests for you: they check shapes, sanity and typical mistakes as you work. The points are decided by
# the grader: right after each test cell it calls your functions again on inputs of its own and checks
# the numbers outside your notebook, so a test cell that passes is a good sign, not yet the grade. While
# a test runs, and throughout grading, the library function you are rebuilding (e.g. `bt.kl.sparsevd`)
# is not there, so your code must compute the answer itself. Tiers: **basic** (task 1), **intermediate**
# (2, 3), **advanced** (4, 5). Before handing in, run `bnn-teach grade check A4_sparsevd.ipynb` (or
# *Restart and run all*); a test cell that prints a warning (to stderr) counts as failed. On Colab: run
# it there, then *File → Download → .ipynb* and hand in that file.

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
K1, K2, K3 = 0.63576, 1.87320, 1.48695  # the constants of Molchanov et al.'s KL approximation

# %% [markdown] nbgrader={"grade": false, "grade_id": "task1", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1 (basic, 3 points): $\log\alpha$
#
# The posterior of a weight is $q(w) = \mathcal N(\theta, \alpha\theta^2)$. Instead of $\alpha$ the layer
# learns $\log\sigma^2$, with $\sigma^2 = \alpha\theta^2$ (the *additive reparametrization*: the noise no
# longer scales with $\theta$, which keeps the gradient of $\theta$ quiet). So
#
# $$\log\alpha = \log\sigma^2 - \log(\theta^2 + 10^{-8}),$$
#
# with $10^{-8}$ keeping it finite at $\theta = 0$, and clipped to $[-8, 8]$ as in the paper's code.
# Write `log_alpha(theta, log_sigma2)`. Checked on values, including the clipping.

# %% nbgrader={"grade": false, "grade_id": "log_alpha", "locked": false, "schema_version": 3, "solution": true}
def log_alpha(theta, log_sigma2):
    """log_sigma2 - log(theta^2 + 1e-8), clipped to [-8, 8]; elementwise."""
    ### BEGIN SOLUTION
    return torch.clamp(log_sigma2 - torch.log(theta**2 + 1e-8), -8.0, 8.0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_log_alpha", "locked": true, "points": 3, "schema_version": 3, "solution": false}
"""log_alpha: log sigma^2 - log theta^2 in the middle of the range, clipped at -8 and 8."""
theta = torch.tensor([0.5, -0.5, 1.0, 1e-6, 10.0], dtype=torch.float64)
log_sigma2 = torch.tensor([-2.0, -2.0, 0.0, -5.0, -30.0], dtype=torch.float64)
with hidden("bnn_teach.nn.LinearSVDO"):
    got = log_alpha(theta, log_sigma2)
assert got.shape == (5,), "elementwise: one log alpha per weight"
assert torch.allclose(got[:3], torch.tensor([-2 - math.log(0.25), -2 - math.log(0.25), 0.0], dtype=torch.float64),
                      atol=1e-6), "log alpha = log sigma^2 - log(theta^2): square theta (its sign must not matter)"
assert torch.allclose(got[3:], torch.tensor([8.0, -8.0], dtype=torch.float64)), "clip log alpha to [-8, 8]"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task2", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2 (intermediate, 5 points): the KL with its constant
#
# For the log-uniform prior the KL has no closed form; Molchanov et al. fit
#
# $$-\mathrm{KL} \approx k_1\,\sigma(k_2 + k_3\log\alpha) - \tfrac12\log(1 + \alpha^{-1}) + C, \qquad C = -k_1,$$
#
# with $\sigma$ the logistic sigmoid. The constant makes the KL zero for $\alpha \to \infty$ (a weight
# that is pure noise costs nothing) and non-negative everywhere; dropping it changes no gradient but
# makes the loss negative and meaningless to print. Write `kl_sparsevd(log_alpha)`, elementwise. Use
# a numerically stable form of $\log(1 + e^{-\log\alpha})$ (`F.softplus`). Checked on values, at the
# limits, and against the exact KL estimated by Monte Carlo.

# %% nbgrader={"grade": false, "grade_id": "kl_sparsevd", "locked": false, "schema_version": 3, "solution": true}
def kl_sparsevd(log_alpha):
    """Elementwise approximate KL(q || log-uniform) with the constant C = -k1, so that it is >= 0."""
    ### BEGIN SOLUTION
    return K1 - K1 * torch.sigmoid(K2 + K3 * log_alpha) + 0.5 * F.softplus(-log_alpha)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_kl_sparsevd", "locked": true, "points": 5, "schema_version": 3, "solution": false}
"""kl_sparsevd: non-negative, zero for a huge alpha, decreasing in alpha, close to the exact KL."""
grid = torch.linspace(-8, 8, 33, dtype=torch.float64)
with hidden("bnn_teach.kl.sparsevd", "bnn_teach.nn.LinearSVDO"):
    kl = kl_sparsevd(grid)
    at_infinity = kl_sparsevd(torch.tensor([30.0], dtype=torch.float64))
assert kl.shape == (33,), "elementwise: one KL per log alpha"
assert (kl >= -1e-6).all(), "the KL is negative: keep the constant C = -k1 (and check the signs)"
assert abs(float(at_infinity)) < 1e-6, "the KL should vanish as alpha grows: check the constant"
assert (kl[1:] <= kl[:-1] + 1e-12).all(), "a larger alpha (more noise) should never cost more KL"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task3", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3 (intermediate, 6 points): the SparseVD linear layer
#
# Write `MyLinearSVDO(in_features, out_features, threshold=3.0)` with parameters `weight` ($\theta$, shape
# `(out, in)`, start $\mathcal N(0, 0.01^2)$), `log_sigma2` (same shape, start at $-10$) and `bias` (zeros).
#
# * `forward(x)` in **training** mode: the local reparametrization trick with the weight variance
#   $\sigma^2 = e^{\log\sigma^2}$ (the bias is not random):
#   $b = x\theta^\top + \text{bias} + \sqrt{x^2 (\sigma^2)^\top + 10^{-8}}\odot\varepsilon$.
# * `forward(x)` in **eval** mode: the pruned mean, $x(\theta \odot m)^\top + \text{bias}$ with the mask
#   $m = [\log\alpha < \text{threshold}]$.
# * `kl()`: your `kl_sparsevd` of your `log_alpha`, summed, a scalar tensor.
#
# Checked: parameter names and shapes, the moments of the training-mode outputs, the pruned eval mode,
# and the KL (the library's `bt.nn.LinearSVDO` is hidden).

# %% nbgrader={"grade": false, "grade_id": "linear_svdo", "locked": false, "schema_version": 3, "solution": true}
class MyLinearSVDO(nn.Module):
    """SparseVD linear layer: theta, log sigma^2, LRT in training, pruned mean weights in eval."""

    def __init__(self, in_features, out_features, threshold=3.0):
        super().__init__()
        self.threshold = threshold
        ### BEGIN SOLUTION
        self.weight = nn.Parameter(0.01 * torch.randn(out_features, in_features))
        self.log_sigma2 = nn.Parameter(torch.full((out_features, in_features), -10.0))
        self.bias = nn.Parameter(torch.zeros(out_features))
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        if not self.training:
            mask = (log_alpha(self.weight, self.log_sigma2) < self.threshold).to(x.dtype)
            return x @ (self.weight * mask).T + self.bias
        mean = x @ self.weight.T + self.bias
        var = x**2 @ torch.exp(self.log_sigma2).T
        return mean + torch.sqrt(var + 1e-8) * torch.randn_like(mean)
        ### END SOLUTION

    def kl(self):
        ### BEGIN SOLUTION
        return kl_sparsevd(log_alpha(self.weight, self.log_sigma2)).sum()
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_svdo_shapes", "locked": true, "points": 1, "schema_version": 3, "solution": false}
"""MyLinearSVDO: parameters weight, log_sigma2, bias of the right shapes; outputs (batch, out)."""
layer = MyLinearSVDO(5, 3)
shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
assert shapes == {"weight": (3, 5), "log_sigma2": (3, 5), "bias": (3,)}, shapes
assert layer(torch.randn(4, 5)).shape == (4, 3)

# %% nbgrader={"grade": true, "grade_id": "test_svdo_train_moments", "locked": true, "points": 2, "schema_version": 3, "solution": false}
"""MyLinearSVDO in training mode: noise drawn per row, mean x theta^T + bias, variance x^2 sigma^2^T."""
torch.manual_seed(2)
layer = MyLinearSVDO(4, 3).double().train()
with torch.no_grad():
    layer.weight.normal_()
    layer.log_sigma2.uniform_(-3, 0)
x = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
with hidden("bnn_teach.nn.LinearSVDO"), torch.no_grad():
    outputs = layer(x.expand(20_000, 4))
assert outputs.shape == (20_000, 3), f"expected (batch, out_features) = (20000, 3), got {tuple(outputs.shape)}"
assert not torch.allclose(outputs[0], outputs[1]), \
    "rows with identical inputs got identical outputs: the noise is shared by the whole batch; the LRT draws " \
    "one eps per example and output unit (the shape of the output)"
mean = (x @ layer.weight.T + layer.bias).detach()[0]
var = (x**2 @ torch.exp(layer.log_sigma2).T).detach()[0]
assert torch.allclose(outputs.mean(0), mean, atol=float(5 * (var.max() / 20_000) ** 0.5)), \
    "the outputs' mean is off: in training mode it is x theta^T + bias, and the noise has mean zero"
ratio = outputs.var(0) / var
assert ((ratio > 0.95) & (ratio < 1.05)).all(), \
    f"the variance is {ratio.tolist()} times x^2 sigma^2: sigma^2 = exp(log_sigma2), and take the square root once"

# %% nbgrader={"grade": true, "grade_id": "test_svdo_eval_pruned", "locked": true, "points": 2, "schema_version": 3, "solution": false}
"""MyLinearSVDO in eval mode: deterministic, with the weights of log alpha >= threshold removed."""
layer = MyLinearSVDO(4, 2).double().eval()
with torch.no_grad():
    layer.weight.copy_(torch.tensor([[1.0, -1.0, 0.1, 2.0], [0.5, 0.01, -1.0, 1.0]]))
    layer.log_sigma2.copy_(torch.tensor([[0.0, -5.0, 0.0, -5.0], [-5.0, -5.0, -5.0, 10.0]]))
    layer.bias.copy_(torch.tensor([0.5, -0.5]))
x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
with hidden("bnn_teach.nn.LinearSVDO"), torch.no_grad():
    out = layer(x)
assert torch.equal(out, layer(x)), "eval mode must be deterministic"
# log alpha: [[0, -5 - log 1, 0 - log 0.01, -5 - log 4], [-5 - log .25, -5 - log 1e-4, -5, 10 -> clipped 8]]
kept = torch.tensor([[1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
expected = x @ (layer.weight.detach() * kept).T + layer.bias.detach()
assert not torch.allclose(out, x @ layer.weight.detach().T + layer.bias.detach()), \
    "eval mode should drop the weights whose log alpha is at least the threshold"
assert torch.allclose(out, expected), "the kept weights differ from log alpha < threshold"

# %% nbgrader={"grade": true, "grade_id": "test_svdo_kl", "locked": true, "points": 1, "schema_version": 3, "solution": false}
"""MyLinearSVDO.kl: the sum of the approximate KL over the weights, a scalar."""
layer = MyLinearSVDO(6, 4)
with torch.no_grad():
    layer.log_sigma2.uniform_(-8, 2)
with hidden("bnn_teach.nn.LinearSVDO", "bnn_teach.kl.sparsevd"):
    kl = layer.kl()
    expected = kl_sparsevd(log_alpha(layer.weight, layer.log_sigma2)).sum()
assert torch.is_tensor(kl) and kl.dim() == 0, "kl() returns a scalar tensor (the sum)"
assert torch.allclose(kl, expected, rtol=1e-4), "kl() differs from the sum of kl_sparsevd(log_alpha)"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task4", "locked": true, "schema_version": 3, "solution": false}
# ## Task 4 (advanced, 4 points): what is left of a network
#
# Write `sparsity_per_layer(model)`: for every `MyLinearSVDO` in the model (in order, named as in
# `model.named_modules()`), the fraction of its weights removed ($\log\alpha \ge$ threshold), as a dict
# `{name: fraction}`; and `compression_ratio(model)`: all weights of those layers over the weights kept
# (biases not counted). Checked on layers with known $\log\alpha$ (the library's `bt.sparsity` is hidden).

# %% nbgrader={"grade": false, "grade_id": "compression", "locked": false, "schema_version": 3, "solution": true}
def sparsity_per_layer(model):
    """{layer name: fraction of its weights with log alpha >= threshold}, for each MyLinearSVDO."""
    ### BEGIN SOLUTION
    return {name: float((log_alpha(m.weight, m.log_sigma2) >= m.threshold).double().mean())
            for name, m in model.named_modules() if isinstance(m, MyLinearSVDO)}
    ### END SOLUTION


def compression_ratio(model):
    """Total weights of the MyLinearSVDO layers / weights kept."""
    ### BEGIN SOLUTION
    layers = [m for m in model.modules() if isinstance(m, MyLinearSVDO)]
    total = sum(m.weight.numel() for m in layers)
    kept = sum(int((log_alpha(m.weight, m.log_sigma2) < m.threshold).sum()) for m in layers)
    return total / max(kept, 1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_compression", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""sparsity_per_layer and compression_ratio on a two-layer model with known log alpha."""
model = nn.Sequential(MyLinearSVDO(10, 4), nn.ReLU(), MyLinearSVDO(4, 2))
with torch.no_grad():
    for layer in (model[0], model[2]):
        layer.weight.fill_(1.0)
        layer.log_sigma2.fill_(-5.0)
    model[0].log_sigma2[:, :5] = 5.0   # half of the first layer removed (log alpha 5 >= 3)
    model[2].log_sigma2[0, 0] = 5.0    # one of the eight weights of the second layer
with hidden("bnn_teach.sparsity.compression_ratio", "bnn_teach.sparsity.sparsity_table"):
    per_layer, ratio = sparsity_per_layer(model), compression_ratio(model)
assert set(per_layer) == {"0", "2"}, f"one entry per MyLinearSVDO, named as in named_modules(): {set(per_layer)}"
assert math.isclose(per_layer["0"], 0.5) and math.isclose(per_layer["2"], 1 / 8), per_layer
assert not math.isclose(ratio, 27 / 48, rel_tol=1e-6), "that is kept / total: the compression ratio is total / kept"
assert math.isclose(ratio, 48 / 27, rel_tol=1e-6), f"48 weights, 27 kept: expected {48 / 27:.4f}, got {ratio}"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task5", "locked": true, "schema_version": 3, "solution": false}
# ## Task 5 (advanced, 4 points): LeNet-300-100 sparsifies itself
#
# The cell below is given: it builds LeNet-300-100 from your layers and trains it for 8 epochs on 3,000
# images, warming the KL weight up over 3 epochs. On so few images the full KL would remove *every*
# weight (there is not enough data to pay for any, lecture L05's random-labels lesson), so it trains
# with KL weight 0.1, as if it had 30,000 images. Checked: test accuracy of the pruned network above
# 85 % and compression above 5× (the recorded full run in lecture L05 reaches far more in 200 epochs).

# %% nbgrader={"grade": true, "grade_id": "test_lenet_sparsifies", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""Training LeNet-300-100 of MyLinearSVDO: pruned test accuracy > 85 % at more than 5x compression."""
bt.utils.set_seed(3)
lenet = nn.Sequential(nn.Flatten(), MyLinearSVDO(784, 300), nn.ReLU(), MyLinearSVDO(300, 100), nn.ReLU(),
                      MyLinearSVDO(100, 10))
optimizer = torch.optim.Adam(lenet.parameters(), lr=2e-3)
warmup = bt.objectives.linear_warmup(3, end=0.1)
with hidden("bnn_teach.nn.LinearSVDO", "bnn_teach.kl.sparsevd"):
    for epoch in range(8):
        lenet.train()
        for idx in torch.randperm(len(X_train)).split(100):
            kl = sum(m.kl() for m in lenet.modules() if isinstance(m, MyLinearSVDO))
            loss = bt.objectives.elbo_loss(F.cross_entropy(lenet(X_train[idx]), y_train[idx]), kl, len(X_train),
                                           kl_weight=warmup(epoch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    lenet.eval()
    with torch.no_grad():
        accuracy = float((lenet(X_test).argmax(-1) == y_test).float().mean())
    ratio = compression_ratio(lenet)
print(f"pruned test accuracy {100 * accuracy:.1f} %, compression {ratio:.1f}x, removed per layer "
      f"{ {name: round(f, 3) for name, f in sparsity_per_layer(lenet).items()} }")
assert accuracy > 0.85, f"accuracy {100 * accuracy:.1f} %: check the forward pass in both modes"
assert ratio > 5, f"compression {ratio:.1f}x: check log alpha, the KL (its sign) and the pruning mask"

# %% [markdown] nbgrader={"grade": false, "grade_id": "figure", "locked": true, "schema_version": 3, "solution": false}
# The first layer's weights as 28 × 28 input tiles, one per hidden unit, with the removed weights blank:
# SparseVD keeps the pixels in the middle of the image, where the digits are.

# %%
first = lenet[1]
mask = (log_alpha(first.weight, first.log_sigma2) < first.threshold).detach()
fig = bt.viz.plot_input_tiles(first.weight.detach().numpy(), mask.numpy(), num_units=36,
                              title=f"LeNet-300-100, first layer: {100 * float(mask.float().mean()):.1f} % of weights kept")

# %% [markdown] nbgrader={"grade": false, "grade_id": "written_sparsevd_question", "locked": true, "schema_version": 3, "solution": false}
# ## Written answer (2 points, graded by hand): pruning by $\log\alpha$
#
# Why can a weight with $\log\alpha > 3$ be set to zero without harming the network, and what in the objective
# drives $\alpha$ up for the weights the data do not need?
#
# Answer in the cell below in two to four sentences, in your own words. It is read by your instructor,
# not by the autograder: name the mechanism, not only the result.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_sparsevd", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# **Model answer.** $\alpha = \sigma^2/\theta^2$, so $\log\alpha > 3$ means the weight's noise has a standard
# deviation $e^{1.5} \approx 4.5$ times its mean: during training the network saw that weight as almost pure
# noise and learned to work without its value; replacing it by 0 changes its output by less than the noise it
# was trained with. The KL to the log-uniform prior decreases as $\alpha$ grows, so for every weight the
# likelihood does not defend, the objective raises $\alpha$; only weights the data need keep a small $\alpha$.
#
# **Rubric (2 points).**
# - 1 point: $\alpha$ is the noise-to-signal ratio; at $\log\alpha > 3$ the weight is mostly noise, which the
#   network was trained to tolerate.
# - 1 point: the KL term (log-uniform prior) falls monotonically in $\alpha$ and pushes it up unless the data
#   term resists.

# %% [markdown] nbgrader={"grade": false, "grade_id": "extension", "locked": true, "schema_version": 3, "solution": false}
# ## Extension (optional, not graded)
#
# Train the same network with the full KL weight on all 60,000 images (`bt.data.load_mnist("train")`)
# for 20 epochs and compare the fraction removed per layer with the paper's Table 1 (98.9 %, 97.2 %
# and 62.0 %), then draw the sparsification as it happens with `bt.viz.SparsityRecorder` (lecture L05).
