# %% [markdown]
# # L05 · Bayesian sparsification: Sparse Variational Dropout, ARD and group sparsity
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L05_bayesian_sparsification.ipynb)
#
# **The question.** LeNet-300-100 has 266,200 weights. How many does it need to read a digit? Lecture 3
# ranked Bayes-by-Backprop weights by $|\mu|/\sigma$ after training; lecture 4 met Gaussian dropout
# with one noise level $\alpha$ for a whole layer. Give every weight its own $\alpha$, let training learn
# it, and choose a prior that rewards large $\alpha$: weights whose noise swamps their value can be
# removed. Which weights survive, and what does the network lose? The picture: the first layer of
# LeNet-300-100 after 200 epochs of Sparse Variational Dropout on MNIST, recorded by
# `bnn-teach reproduce sparsevd-lenet300 --record`: each square is one hidden unit's 28 × 28 input
# weights, black where a weight is kept.

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
import tempfile
import time
from pathlib import Path

import torch
from IPython.display import Image
from torch import nn

import bnn_teach as bt

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer images and epochs, the same code
TRAIN_SIZE = 2_000 if FAST else 10_000  # MNIST images for the live runs
TEST_SIZE = 1_000 if FAST else 5_000
NUM_EPOCHS = 10 if FAST else 15
KL_WEIGHT = TRAIN_SIZE / 10_000  # the live runs' final KL weight: 1 on 10,000 images (see section 6)
NUM_MC = 100_000  # Monte Carlo draws for the exact KL and the moment checks
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: a recorded run
#
# The run below took the paper's recipe (Molchanov, Ashukha & Vetrov 2017): 200 epochs on the 60,000
# training images, Adam, the KL weight raised from 0 to 1 over epochs 5–20, threshold $\log\alpha = 3$. It
# is loaded from the package (checksums verified); its numbers are printed beside the paper's.

# %%
lenet300_run = bt.reproduce.load_recorded("sparsevd-lenet300")
ours, paper = lenet300_run["results"]["ours"], lenet300_run["results"]["paper"]
frames = lenet300_run["frames"]
print(f"recorded: {ours['epochs']} epochs on {ours['train_images']:,} images, "
      f"{lenet300_run['results']['wall seconds'] / 60:.0f} min on {lenet300_run['results']['device']}")
print(f"{'':>24}{'ours':>12}{'paper':>12}")
print(f"{'test error %':>24}{ours['error %']:>12.2f}{paper['error %']:>12.2f}")
print(f"{'compression (x)':>24}{ours['compression']:>12.1f}{paper['compression']:>12.0f}")
for layer, (a, b) in enumerate(zip(ours["sparsity % per layer"], paper["sparsity % per layer"]), start=1):
    print(f"{f'sparsity % of layer {layer}':>24}{a:>12.1f}{b:>12.1f}")
fig = bt.viz.plot_frame(frames, len(frames.frames) - 1, "fc1", view="tiles")

# %%
last = frames.frames[-1]
first_units = frames.mask(len(frames.frames) - 1, "fc1")  # (100 units, 784 pixels), True = kept
empty_units = int((~first_units.any(1)).sum())
print(f"of the first 100 hidden units, {empty_units} read no pixel at all; the others read "
      f"{first_units.sum(1)[first_units.any(1)].mean():.0f} pixels on average")
assert last["epoch"] == ours["epochs"], "the last frame is the last epoch"
assert abs(last["compression"] - ours["compression"]) < 0.1, (last["compression"], ours["compression"])
assert abs(100 * (1 - last["accuracy"]) - ours["error %"]) < 0.01

# %% [markdown]
# Most tiles are empty: those hidden units read no pixel at all (the count is printed), so they can go
# altogether. The others read a small blob where digits have ink. The whole network keeps one weight in
# `compression` (printed above) at about the paper's test error. The rest of the lecture derives why, then
# watches it happen.
#
# ## 2. Why compress, and what a removed weight saves
#
# A removed weight need not be stored or multiplied. Stored as a dense matrix, every weight costs 4 bytes
# (float32). Stored sparse, in **CSR** (compressed sparse row) format, each kept weight costs its value and its
# column index (4 + 4 bytes), plus one row pointer per row (4 bytes, rows + 1 of them):
#
# $$\text{CSR bytes} = \text{nnz}\,(4 + 4) + (\text{rows} + 1)\cdot 4 .$$
#
# `bt.sparsity.storage_bytes(model, "csr")` computes it layer by layer. The recorded run:

# %%
print(f"dense: {ours['dense_bytes'] / 1e3:,.1f} kB   CSR: {ours['csr_bytes'] / 1e3:,.1f} kB   "
      f"({ours['dense_bytes'] / ours['csr_bytes']:.0f}x smaller); weights kept: 1 in {ours['compression']:.1f}")

# %% [markdown]
# The bytes shrink about half as much as the count of weights: a kept weight costs 8 bytes in CSR (its value
# and its column index) against 4 in the dense matrix, and every row adds a pointer. With compression
# $c = \lvert W\rvert / \mathrm{nnz}$ the ratio of bytes is $4\lvert W\rvert / (8\,\mathrm{nnz} + 4(\text{rows} + 1))
# \le c/2$.

# %%
assert ours["dense_bytes"] / ours["csr_bytes"] <= ours["compression"] / 2, ours

# %% [markdown]
# ### Check yourself
# A 300 × 784 layer keeps 2,000 of its weights. How many bytes does it take in CSR (4-byte values and
# indices)?

# %%
answer = None
bt.selfcheck.number(answer, expected=2_000 * 8 + 301 * 4, rtol=1e-6, mistakes={
    2_000 * 4: "each kept weight also stores its column index",
    2_000 * 8: "the row pointers are missing: rows + 1 of them, 4 bytes each",
    300 * 784 * 4: "that is the dense matrix",
    2_000 * 8 + 300 * 4: "CSR stores rows + 1 row pointers"})

# %% [markdown]
# ## 3. The log-uniform prior and its KL
#
# Sparse Variational Dropout keeps lecture 4's Gaussian dropout posterior, one $\alpha$ per weight:
#
# $$q(w_{ij}) = \mathcal N\big(\theta_{ij},\ \alpha_{ij}\,\theta_{ij}^2\big).$$
#
# For the KL to depend on $\alpha$ alone (so that the noise level, not the weight's size, is penalised),
# Kingma et al. (2015) chose the improper **log-uniform** prior $p(\lvert w\rvert) \propto 1/\lvert w\rvert$,
# flat in $\log\lvert w\rvert$. With $w = \theta(1 + \sqrt\alpha\,\varepsilon)$ the KL is
#
# $$-\mathrm{KL}\big(q \,\|\, p\big) = \tfrac12\log\alpha
#   - \mathbb E_{\varepsilon\sim\mathcal N(0,1)}\log\big\lvert 1 + \sqrt\alpha\,\varepsilon \big\rvert + C,$$
#
# and $\theta$ has dropped out. Why: $-\mathrm{KL}(q\|p) = \mathbb H[q] + \mathbb E_q \log p(w)$. The entropy
# of $\mathcal N(\theta, \alpha\theta^2)$ is $\tfrac12\log(2\pi e) + \tfrac12\log\alpha + \log\lvert\theta\rvert$.
# With $w = \theta(1 + \sqrt\alpha\,\varepsilon)$ the prior gives $\mathbb E_q[-\log\lvert w\rvert]$, which is
# $-\log\lvert\theta\rvert$ minus $\mathbb E \log\lvert 1 + \sqrt\alpha\,\varepsilon\rvert$, plus its (improper)
# constant. The two $\log\lvert\theta\rvert$ cancel: scaling a weight scales its posterior and the log-uniform
# prior alike, so only the relative noise
# $\alpha$ is charged. That is the point of this prior. The expectation has no closed form;
# Molchanov et al. fit it:
#
# $$\mathrm{KL} \approx k_1 - k_1\,\sigma(k_2 + k_3\log\alpha) + \tfrac12\log\big(1 + \alpha^{-1}\big),
#   \qquad k_1 = 0.63576,\ k_2 = 1.87320,\ k_3 = 1.48695 .$$
#
# The prior is improper, so $C$ is a free constant; the course keeps $C = -k_1$, which makes the KL vanish
# as $\alpha\to\infty$: a weight that is pure noise costs nothing, and every other weight costs something.
# That is what pushes $\alpha$ up. (The Deep Bayes summer-school practical drops the constant, which
# changes no gradient but makes the KL negative; the authors' released code uses another approximation of
# the same curve.) Check the fit against a Monte Carlo estimate of the exact expression,
# `bt.kl.sparsevd_exact_mc`, which takes the constant that makes the exact KL vanish as $\alpha \to \infty$:
# $C = -\tfrac12(\gamma + \log 2) \approx -0.6352$ ($\gamma$ is Euler's constant, from
# $\mathbb E\log\lvert\varepsilon\rvert = -\tfrac12(\gamma + \log 2)$), close to the fit's $k_1 = 0.63576$. Over the
# range the layers allow ($\log\alpha$ is clamped to $[-8, 8]$):

# %%
log_alpha = torch.linspace(-8, 8, 81, dtype=torch.float64)
approx = bt.kl.sparsevd(log_alpha)
exact = bt.kl.sparsevd_exact_mc(log_alpha, num_samples=NUM_MC, generator=torch.Generator().manual_seed(SEED))
error = approx - exact
print(f"largest |approximation - exact|: {error.abs().max():.4f} nats per weight, at log alpha = "
      f"{log_alpha[error.abs().argmax()]:.1f}; KL at log alpha = 8: approx {approx[-1]:.4f}, exact {exact[-1]:.4f}")
fig = bt.viz.plot_sweep(log_alpha, {"approximation (bt.kl.sparsevd)": approx,
                                    "exact, Monte Carlo (bt.kl.sparsevd_exact_mc)": exact},
                        xlabel="log alpha", ylabel="KL(q || log-uniform) per weight (nats)",
                        title="SparseVD KL: the fit and the exact value", marker=None)
fig = bt.viz.plot_sweep(log_alpha, {"approximation - exact": error}, xlabel="log alpha",
                        ylabel="error (nats per weight)", title="Error of the KL approximation", marker=None)

# %%
assert error.abs().max() < 0.012, f"the approximation is off by {error.abs().max():.4f} nats"
assert (approx[1:] < approx[:-1]).all(), "the KL falls as alpha grows: larger noise is always cheaper"
assert abs(float(approx[-1])) < 0.02 and abs(float(exact[-1])) < 0.02, "with C = -k1 the KL vanishes"

# %% [markdown]
# The fit is within about a hundredth of a nat everywhere (the printed maximum; the Monte Carlo estimate
# itself wobbles by a few thousandths), and the KL falls monotonically towards 0. The data term pulls the
# other way: a weight the likelihood needs must stay precise (small $\alpha$). Where the data do not
# care, $\alpha$ grows without bound, and a weight with $\log\alpha > 3$ is removed.
#
# ### Check yourself
# The threshold $\log\alpha = 3$, read as lecture 4's Gaussian dropout $\alpha = p/(1-p)$: what dropout rate
# $p$ does a weight have when it is removed?

# %%
answer = None
bt.selfcheck.number(answer, expected=math.exp(3) / (1 + math.exp(3)), rtol=1e-3, mistakes={
    1 / (1 + math.exp(3)): "that is the keep probability 1 - p",
    math.exp(3): "that is alpha itself; solve alpha = p / (1 - p) for p",
    3 / 4: "log alpha = 3 means alpha = e^3, not 3"})

# %% [markdown]
# ## 4. Training it: additive reparametrization and the LRT
#
# Parametrised by $(\theta, \alpha)$, a sample $w = \theta(1 + \sqrt\alpha\,\varepsilon)$ has
# $\partial w / \partial\theta = 1 + \sqrt\alpha\,\varepsilon$: for large $\alpha$ the gradient of $\theta$ is
# mostly noise. Molchanov et al. parametrise by $(\theta, \sigma)$ instead, $w = \theta + \sigma\varepsilon$ with
# $\sigma^2 = \alpha\theta^2$ a free parameter (`log_sigma2` in `bt.nn.LinearSVDO`): then
# $\partial w/\partial\theta = 1$. Measure the two gradients of $\theta$ for a one-weight loss
# $(w x - y)^2$ at $\log\alpha = 2$:

# %%
theta, x_in, y_out, alpha_w = 0.5, 1.0, 2.0, math.exp(2.0)
eps = torch.randn(NUM_MC, dtype=torch.float64)
grads = {}
for name in ("multiplicative (theta, alpha)", "additive (theta, sigma)"):
    t = torch.full((NUM_MC,), theta, dtype=torch.float64, requires_grad=True)
    if name.startswith("multiplicative"):
        w = t * (1 + math.sqrt(alpha_w) * eps)
    else:
        w = t + math.sqrt(alpha_w) * abs(theta) * eps  # sigma held as its own parameter
    ((w * x_in - y_out) ** 2).sum().backward()
    grads[name] = t.grad
    print(f"{name:>30}: mean gradient {t.grad.mean():.3f}, variance {t.grad.var():.1f}")
ratio = float(grads["multiplicative (theta, alpha)"].var() / grads["additive (theta, sigma)"].var())
print(f"the multiplicative gradient's variance is {ratio:.1f}x larger")
assert ratio > 3, ratio

# %% [markdown]
# The two estimate different things (with $\sigma$ fixed the additive one does not move $\alpha$ along with
# $\theta$), but only the additive one is usable at large $\alpha$. On top, `LinearSVDO` samples
# pre-activations with lecture 3's LRT, $b \sim \mathcal N(x\theta^\top,\ x^2(\sigma^2)^\top)$; check it on a
# layer by sampling:

# %%
layer = bt.nn.LinearSVDO(20, 4).double()
with torch.no_grad():
    layer.weight.normal_(0, 1)
    layer.log_sigma2.copy_(torch.log(layer.weight**2) + torch.empty_like(layer.weight).uniform_(-3, 1))
x = torch.randn(1, 20, dtype=torch.float64)
layer.train()
with torch.no_grad():
    samples = layer(x.expand(NUM_MC, 20))
    mean_lrt = x @ layer.weight.T + layer.bias
    var_lrt = (x**2) @ layer.log_sigma2.exp().T
torch.testing.assert_close(samples.mean(0, keepdim=True), mean_lrt, atol=5 * float(var_lrt.max().sqrt()) / NUM_MC**0.5,
                           rtol=0)
torch.testing.assert_close(samples.var(0, keepdim=True), var_lrt, rtol=0.05, atol=0)
print("LinearSVDO's training-mode output has the LRT's mean and variance;",
      "log alpha = log sigma^2 - log theta^2:",
      torch.allclose(layer.log_alpha, (layer.log_sigma2 - torch.log(layer.weight**2 + 1e-8)).clamp(-8, 8)))

# %% [markdown]
# ## 5. Watching a network sparsify
#
# The recorded run kept a frame of the first 100 units' masks every few epochs (64 at most, and the last
# epoch). Move the slider: early on every weight is kept; as the KL weight rises (epochs 5–20) the border
# pixels go first, then whole units empty.

# %%
bt.viz.sparsification_slider(frames, "fc1", view="tiles")

# %% [markdown]
# The same frames as an animation (a GIF written by `bt.viz.save_animation`):

# %%
animation_path = Path(tempfile.mkdtemp()) / "sparsevd_lenet300.gif"
bt.viz.save_animation(frames, animation_path, layer="fc1", view="tiles", fps=6)
Image(filename=str(animation_path))

# %% [markdown]
# Which input pixels does the first layer still read (any of its 300 units)?

# %%
pixels = torch.tensor(ours["input pixels kept"], dtype=torch.bool).reshape(28, 28)
fig = bt.viz.plot_input_pixels(pixels, title="SparseVD LeNet-300-100: input pixels still read (recorded run)")
border = torch.ones(28, 28, dtype=torch.bool)
border[3:-3, 3:-3] = False
print(f"pixels read: {int(pixels.sum())} of 784; of the 3-pixel border: {int(pixels[border].sum())} of "
      f"{int(border.sum())}")
assert pixels[border].float().mean() < 0.5 * pixels[~border].float().mean(), "the border should be mostly gone"

# %% [markdown]
# The same recipe on the convolutional LeNet-5 (`bnn-teach reproduce sparsevd-lenet5 --record`; 20 epochs,
# the paper's 200 need a GPU). Its second convolution has 50 × 20 kernels of 5 × 5: a row is an output
# channel, a column an input channel. Whole rows and columns empty: channels the network no longer uses.

# %%
lenet5_run = bt.reproduce.load_recorded("sparsevd-lenet5")
ours5, paper5 = lenet5_run["results"]["ours"], lenet5_run["results"]["paper"]
print(f"LeNet-5, {ours5['epochs']} epochs: error {ours5['error %']:.2f} % (paper {paper5['error %']} %), "
      f"compression {ours5['compression']:.0f}x (paper {paper5['compression']}x)")
print("sparsity % per layer, ours:", ours5["sparsity % per layer"], " paper:", paper5["sparsity % per layer"])
bt.viz.sparsification_slider(lenet5_run["frames"], "conv2")

# %%
conv2 = lenet5_run["frames"].mask(-1, "conv2")
unused_in = int((~conv2.any(axis=(0, 2, 3))).sum())
unused_out = int((~conv2.any(axis=(1, 2, 3))).sum())
print(f"conv2 at the end: {unused_out} of 50 output channels and {unused_in} of 20 input channels are empty")
assert ours5["sparsity % per layer"][0] == min(ours5["sparsity % per layer"]), "conv1 is the least sparse layer"

# %% [markdown]
# The first convolution's 20 filters of 5 × 5 taps at the end: the input layer is the least sparse (the
# paper's too), since every pixel's evidence passes through it.

# %%
fig = bt.viz.plot_frame(lenet5_run["frames"], len(lenet5_run["frames"].frames) - 1, "conv1")

# %% [markdown]
# The second convolution over the 20 epochs, as an animation:

# %%
animation_path = Path(tempfile.mkdtemp()) / "sparsevd_lenet5_conv2.gif"
bt.viz.save_animation(lenet5_run["frames"], animation_path, layer="conv2", fps=3)
Image(filename=str(animation_path))

# %% [markdown]
# ## 6. A live run, pruning, and ARD beside it
#
# Now train it yourself, small: LeNet-300-100 (`bt.models.lenet300("svdo")`) on `TRAIN_SIZE` images for
# `NUM_EPOCHS` epochs, the KL weight warmed up from 0 to `KL_WEIGHT` over the first third. Why not always 1?
# The loss is NLL + KL/$N$: with fewer images each weight's KL weighs more per data point, and on 2,000
# images the full KL removes every weight of the first layer before the data term can defend any. FAST
# mode therefore scales the KL weight by `TRAIN_SIZE` / 10,000 (a tempered posterior): its run behaves
# like the 10,000-image run of full mode, which uses the true ELBO (weight 1). Beside it, on the same data,
# seed and schedule, **ARD** (`"ard"`, automatic relevance determination): the same posterior, but the prior
# $\mathcal N(0, \lambda_{ij})$ has a variance per weight, chosen to maximise the ELBO (empirical Bayes). The
# optimum is $\lambda = \theta^2 + \sigma^2$ and leaves
#
# $$\mathrm{KL}_{\text{ARD}} = \tfrac12\log\big(1 + \alpha^{-1}\big)$$
#
# (`bt.kl.ard`): SparseVD's KL without its sigmoid term. Check that optimum: the Gaussian KL to
# $\mathcal N(0, \lambda)$, minimised over $\lambda$ numerically, against the formula.

# %%
theta_a, sigma_a = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
lam = torch.linspace(0.01, 1.0, 100_000, dtype=torch.float64)
kl_over_lambda = bt.kl.normal_normal(theta_a, sigma_a, torch.zeros_like(lam), lam.sqrt())
best = lam[kl_over_lambda.argmin()]
ard_formula = bt.kl.ard(torch.log(sigma_a**2 / theta_a**2))
print(f"best prior variance {best:.5f} (theta^2 + sigma^2 = {theta_a**2 + sigma_a**2:.5f}); "
      f"KL there {kl_over_lambda.min():.6f}, bt.kl.ard {ard_formula:.6f}")
torch.testing.assert_close(kl_over_lambda.min(), ard_formula, atol=1e-6, rtol=0)
fig = bt.viz.plot_sweep(log_alpha, {"SparseVD (log-uniform prior)": bt.kl.sparsevd(log_alpha),
                                    "ARD (optimal Gaussian prior)": bt.kl.ard(log_alpha)},
                        xlabel="log alpha", ylabel="KL per weight (nats)",
                        title="The two KLs: both fall to 0 as the noise grows", marker=None)

# %%
X, y = bt.data.load_mnist("train", subset=TRAIN_SIZE)
X_test, y_test = bt.data.load_mnist("test", subset=TEST_SIZE)
live, tables = {}, {}  # both runs: 32 s in full mode on 2 idle cores
for flavour, name in (("svdo", "SparseVD"), ("ard", "ARD")):
    bt.utils.set_seed(SEED)
    model = bt.models.lenet300(flavour).to(DEVICE)
    warmup = bt.objectives.linear_warmup(max(1, NUM_EPOCHS // 3), end=KL_WEIGHT)
    history = bt.train.fit(model, (X, y), NUM_EPOCHS, torch.optim.Adam(model.parameters(), lr=1e-3),
                           test_data=(X_test, y_test), kl_weight=warmup, device=DEVICE)
    live[name], tables[name] = model.eval(), bt.sparsity.sparsity_table(model)
    print(f"{name}: test accuracy {history[-1]['test_acc']:.4f}, compression "
          f"{bt.sparsity.compression_ratio(model):.1f}x", tables[name], sep="\n")
fig = bt.viz.plot_sparsity_bars(tables, title=f"Weights removed per layer (live runs, {len(X):,} images)")

# %% [markdown]
# The two remove weights layer by layer in much the same proportions (the bars): the first layer, which
# reads mostly empty pixels, almost entirely. `bt.sparsity.prune` turns a trained model into an ordinary
# network holding the pruned mean weights; it computes exactly what the Bayesian model computes in
# `eval()`, and its storage follows:

# %%
pruned = bt.sparsity.prune(live["SparseVD"])
with torch.no_grad():
    torch.testing.assert_close(pruned(X_test[:500].to(DEVICE)), live["SparseVD"](X_test[:500].to(DEVICE)))
print(f"pruned network: {bt.sparsity.storage_bytes(pruned, 'csr') / 1e3:.1f} kB in CSR against "
      f"{bt.sparsity.storage_bytes(pruned, 'dense') / 1e3:.1f} kB dense")

# %% [markdown]
# ## 7. Group sparsity: removing neurons, for speed
#
# Sparse weights save storage, but a sparse matrix product is rarely faster than a dense one on a CPU or a
# GPU. To go faster, remove whole **neurons**: `bt.nn.LinearGroupSVDO` multiplies each *input* neuron by
# its own noise $z_i \sim \mathcal N(\theta^z_i, \alpha^z_i\,\theta^{z\,2}_i)$ with the same log-uniform prior;
# when $\log\alpha^z_i > 3$ the whole column goes. `bt.sparsity.shrink` then builds the smaller **dense**
# network: it drops removed pixels and hidden units (and folds a unit that lost all its inputs into the next
# layer's bias).

# %%
bt.utils.set_seed(SEED)
group_net = bt.models.lenet300("group_svdo", init_log_sigma2=-4.0).to(DEVICE)  # 20 s full, 2 idle cores
history = bt.train.fit(group_net, (X, y), NUM_EPOCHS, torch.optim.Adam(group_net.parameters(), lr=1e-2),
                       test_data=(X_test, y_test),
                       kl_weight=bt.objectives.linear_warmup(max(1, NUM_EPOCHS // 3), end=KL_WEIGHT), device=DEVICE)
group_net.eval()
small = bt.sparsity.shrink(group_net)
with torch.no_grad():
    torch.testing.assert_close(small(X_test.to(DEVICE)), group_net(X_test.to(DEVICE)), atol=1e-4, rtol=0)
sizes = [(m.in_features, m.out_features) for m in small if isinstance(m, nn.Linear)]
print(f"test accuracy {history[-1]['test_acc']:.4f}; the dense network that computes the same: "
      + " -> ".join(str(s[0]) for s in sizes) + f" -> {sizes[-1][1]} (LeNet-300-100 is 784 -> 300 -> 100 -> 10)")
small_params = sum(p.numel() for p in small.parameters())
dense_params = sum(p.numel() for p in bt.models.lenet300().parameters())
print(f"parameters: {small_params:,} against {dense_params:,} ({dense_params / small_params:.1f}x fewer)")
assert small_params < dense_params, (small_params, dense_params)

# %% [markdown]
# Time one forward pass over the test images, best of several repeats: a plain dense LeNet-300-100 (the
# size of the original), the group-sparse network in `eval()` (it still multiplies full-size masked
# matrices), and the shrunk network. (Timings vary with the machine and its load; the parameter counts do
# not.)

# %%
def best_time(model, inputs, repeats=20):
    """The fastest of ``repeats`` forward passes, in milliseconds."""
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - start)
    return 1000 * min(times)


inputs = X_test.to(DEVICE)
timings = {"dense LeNet-300-100": best_time(bt.models.lenet300().to(DEVICE).eval(), inputs),
           "group SparseVD, eval": best_time(group_net, inputs),
           "shrunk dense network": best_time(small, inputs)}
for name, ms in timings.items():
    print(f"{name:>22}: {ms:7.2f} ms for {len(inputs):,} images")
print(f"speed-up of the shrunk network over the dense LeNet-300-100: "
      f"{timings['dense LeNet-300-100'] / timings['shrunk dense network']:.1f}x")

# %% [markdown]
# ## 8. When there is nothing to learn: random labels
#
# Shuffle the labels of 10,000 training images: there is nothing to learn, and chance is 10 %. A
# deterministic LeNet-300-100 memorises most of them anyway (its training accuracy, printed below, is far
# above chance) while learning nothing that generalises. SparseVD asks, weight by weight, whether
# a weight pays for its KL; on random labels none does. Recorded by `bnn-teach reproduce random-labels
# --record`:

# %%
random_run = bt.reproduce.load_recorded("random-labels")["results"]["ours"]
for flavour in ("deterministic", "svdo"):
    row = random_run[flavour]
    print(f"{flavour:>13}: training accuracy {row['train accuracy %']:.1f} % on random labels, "
          f"compression {row['compression']:.0f}x ({random_run['epochs']} epochs)")
assert random_run["deterministic"]["train accuracy %"] > 50 and random_run["svdo"]["train accuracy %"] < 20
assert random_run["svdo"]["compression"] > 100 * random_run["deterministic"]["compression"]

# %% [markdown]
# SparseVD stays at chance and removes almost every weight: a Bayesian Occam's razor. The ELBO's KL term
# charges for every bit of information the weights store about the data; memorising noise does not pay.
#
# ## 9. Against magnitude pruning, at matched accuracy
#
# The usual way to compress: train a plain network, remove the smallest weights. Recorded by
# `bnn-teach reproduce compare-pruning --epochs 30 --record`: LeNet-300-100 trained four ways; magnitude
# pruning (of the plain network) and signal-to-noise pruning (of BBB, lecture 3) are pushed as far as they
# go while their test error stays at SparseVD's. The pruned networks are **not retrained**: Han et al.
# (2015) prune and retrain, repeatedly, and reach far higher compression that way. This is the one-shot
# baseline, weaker than the published one; SparseVD needs no retraining, which is part of its appeal, but
# the fair comparison against retrained magnitude pruning is not made here.

# %%
compare = bt.reproduce.load_recorded("compare-pruning")["results"]["ours"]
rows = {"SparseVD": compare["svdo"], "ARD": compare["ard"], "magnitude": compare["magnitude, matched accuracy"],
        "BBB |mu|/sigma": compare["bbb snr, matched accuracy"]}
print(f"{compare['epochs']} epochs each on full MNIST")
print(f"{'':>16}{'error %':>10}{'compression':>14}")
for name, row in rows.items():
    unreachable = row.get("fraction removed") == 0.0 and row["error %"] > rows["SparseVD"]["error %"]
    note = "  (unpruned, it is already above SparseVD's error)" if unreachable else ""
    print(f"{name:>16}{row['error %']:>10.2f}{row['compression']:>13.1f}x{note}")
fig = bt.viz.plot_sparsity_bars(
    {name: [{"layer": f"fc{i + 1}", "sparsity": s} for i, s in enumerate(row["sparsity % per layer"])]
     for name, row in rows.items()}, title="Weights removed per layer at SparseVD's test error (recorded)")

# %%
assert rows["SparseVD"]["compression"] > rows["magnitude"]["compression"], rows
print(f"at the same error SparseVD keeps {rows['SparseVD']['compression'] / rows['magnitude']['compression']:.1f}x "
      "fewer weights than magnitude pruning")

# %% [markdown]
# ## Summary
#
# * SparseVD: $q(w) = \mathcal N(\theta, \alpha\theta^2)$ per weight, a log-uniform prior whose KL depends on
#   $\alpha$ only; Molchanov et al.'s fit of it is within $10^{-2}$ nats of the exact value (checked by Monte
#   Carlo above), and with $C = -k_1$ a pure-noise weight costs nothing.
# * Train with the additive reparametrization ($\theta$, $\log\sigma^2$; measured lower gradient variance) and
#   the LRT; remove a weight when $\log\alpha > 3$. `bt.sparsity.prune` gives the plain network,
#   `storage_bytes` its CSR size.
# * ARD is the empirical-Bayes sibling: the prior variance per weight is optimised,
#   $\mathrm{KL} = \tfrac12\log(1 + \alpha^{-1})$; it removes weights in much the same places.
# * Group sparsity removes neurons; `bt.sparsity.shrink` turns that into a smaller dense network, which is
#   what runs faster.
# * On random labels SparseVD keeps almost nothing, and at matched accuracy it keeps fewer weights than
#   magnitude pruning (recorded runs above).
#
# To record the runs again (full MNIST; times in `benchmarks/README.md`):
# `bnn-teach reproduce sparsevd-lenet300 --record`, `bnn-teach reproduce sparsevd-lenet5 --record`,
# `bnn-teach reproduce random-labels --record`, `bnn-teach reproduce compare-pruning --epochs 30 --record`.
#
# ## References
#
# * D. Molchanov, A. Ashukha, D. Vetrov. *Variational Dropout Sparsifies Deep Neural Networks*. ICML 2017.
# * D. Kingma, T. Salimans, M. Welling. *Variational Dropout and the Local Reparameterization Trick*.
#   NeurIPS 2015.
# * K. Neklyudov, D. Molchanov, A. Ashukha, D. Vetrov. *Structured Bayesian Pruning via Log-Normal
#   Multiplicative Noise*. NeurIPS 2017.
# * C. Louizos, K. Ullrich, M. Welling. *Bayesian Compression for Deep Learning*. NeurIPS 2017.
# * D. MacKay. *Bayesian Interpolation* (automatic relevance determination). Neural Computation 1992.
# * S. Han, J. Pool, J. Tran, W. Dally. *Learning both Weights and Connections for Efficient Neural
#   Networks*. NeurIPS 2015.
# * C. Zhang, S. Bengio, M. Hardt, B. Recht, O. Vinyals. *Understanding deep learning requires rethinking
#   generalization*. ICLR 2017.
