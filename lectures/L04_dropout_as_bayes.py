# %% [markdown]
# # L04 · Dropout as Bayesian inference
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L04_dropout_as_bayes.ipynb)
#
# **The question.** Almost every network is trained with dropout: each step multiplies the hidden units
# by random 0/1 masks. Leave the masks on at test time and ask the same network the same question a
# hundred times: the answers spread. Is that spread a posterior, the uncertainty of lecture 1 for the
# price of an ordinary network? When can you trust it, and when not? The picture: a plain ReLU network
# with dropout on the 1-D regression of lecture 0, predicting with 100 dropout masks.

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

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer images and epochs, the same code
NUM_EPOCHS_1D = 150 if FAST else 300  # epochs of each 1-D regression fit (120 points)
TRAIN_SIZE = 2_000 if FAST else 10_000  # MNIST images for sections 4 and 6
TEST_SIZE = 1_000 if FAST else 5_000
NUM_EPOCHS = 2 if FAST else 5
NUM_MC = 200_000  # Monte Carlo draws for the moment checks
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: two bands on a 1-D regression
#
# `bt.viz.DropoutExplorer` trains a 1–64–64–2 ReLU network with `bt.nn.MCDropout` after each hidden
# layer (rate $p$) on 120 points with a gap in $[-1, 1]$, by the heteroscedastic Gaussian NLL and weight
# decay. It then predicts with `num_samples` dropout masks: the mean of the sampled networks, the spread
# of their means (**epistemic**, the darker band) and their predicted noise (**aleatoric**). Beside it,
# lecture 0's Bayes by Backprop network (`bt.viz.RegressionExplorer`) on the same points, with its KL
# weight of 0.2 (a tempered posterior, lecture 0).

# %%
X_1d, y_1d = bt.data.regression_1d(120, seed=SEED)
explorer = bt.viz.DropoutExplorer(X_1d, y_1d, dropout=0.2, seed=SEED)
explorer.figure

# %%
bbb_explorer = bt.viz.RegressionExplorer(X_1d, y_1d, seed=SEED)
bbb_explorer.figure

# %% [markdown]
# Both bands look like uncertainty. Measure where each is wide: on the data ($|x| < 4$) and far from it
# ($|x| > 6$).

# %%
x_grid = explorer.x_grid.reshape(-1)
on_data, off_data = x_grid.abs() < 4, x_grid.abs() > 6


def epistemic_sd(prediction, where):
    """Mean epistemic standard deviation of a prediction over the grid points ``where``."""
    return float(prediction["epistemic"].sqrt()[where].mean())


widening = {}
for name, ex in [("MC dropout", explorer), ("Bayes by Backprop", bbb_explorer)]:
    on, off = epistemic_sd(ex.prediction, on_data), epistemic_sd(ex.prediction, off_data)
    widening[name] = off / on
    print(f"{name:>17}: epistemic sd {on:.3f} on the data, {off:.3f} off it: {off / on:.1f}x wider off the data")
assert widening["Bayes by Backprop"] > 3 and widening["Bayes by Backprop"] > 2 * widening["MC dropout"], widening

# %% [markdown]
# The BBB band opens up where there were no data, more than three times wider than on them; MC
# dropout's widens far less (the printed ratios). The rest of the lecture asks what distribution over
# weights dropout masks are, what objective dropout training optimises for it, and why its band behaves
# differently.
#
# ## 2. Dropout as a variational family
#
# Take a linear layer $b = x W^\top$ with weight means $M$ (out × in). **Binary dropout** on its input
# multiplies input $i$ by $z_i / (1 - p)$ with $z_i \sim \mathrm{Bernoulli}(1 - p)$ (PyTorch rescales at
# training time, so test time needs no change). Equivalently, the weights are random:
#
# $$W = M \operatorname{diag}\!\Big(\frac{z}{1 - p}\Big), \qquad
#   \mathbb E\Big[\frac{z_i}{1-p}\Big] = 1, \quad \operatorname{Var}\Big[\frac{z_i}{1-p}\Big] = \frac{p}{1-p}.$$
#
# So dropout training is training a distribution $q_M(W)$: each column of $W$ is either $M_{:,i}/(1-p)$
# or 0. Gal & Ghahramani (2016) showed that its training loss is a Monte Carlo estimate of a (negative)
# ELBO for this $q$: one mask per step is one sample $W \sim q$, just as one $\varepsilon$ was in
# lecture 3.
#
# **Gaussian dropout** (Srivastava et al. 2014; Kingma et al. 2015) replaces the Bernoulli factor by
# $\xi \sim \mathcal N(1, \alpha)$ with the same mean and variance, $\alpha = p / (1-p)$. With one $\xi$
# per *weight*, $w_{ji} = \mu_{ji}\,\xi_{ji}$ is $\mathcal N(\mu_{ji}, \alpha\,\mu_{ji}^2)$, and the local
# reparametrization trick of lecture 3 gives the pre-activation
#
# $$b_j \sim \mathcal N\Big(\sum_i x_i \mu_{ji},\; \alpha \sum_i x_i^2 \mu_{ji}^2\Big).$$
#
# Check by sampling: the binary and the Gaussian multipliers give pre-activations with the same mean
# and variance, equal to the formula, though one distribution is discrete and the other Gaussian.

# %%
p = 0.5
alpha = p / (1 - p)
x = torch.randn(1, 8, dtype=torch.float64)
M = torch.randn(3, 8, dtype=torch.float64)
mean_formula = (x @ M.T)[0]
var_formula = alpha * ((x**2) @ (M**2).T)[0]

z = torch.bernoulli(torch.full((NUM_MC, 1, 8), 1 - p, dtype=torch.float64)) / (1 - p)  # one mask per input
b_binary = (x * z) @ M.T                                               # (NUM_MC, 1, 3)
xi = 1 + math.sqrt(alpha) * torch.randn(NUM_MC, 3, 8, dtype=torch.float64)   # one factor per weight
b_gauss = ((M * xi) @ x.T)[..., 0]                                     # (NUM_MC, 3)
for name, b in [("binary, per input", b_binary[:, 0]), ("Gaussian, per weight", b_gauss)]:
    print(f"{name:>21}: mean {b.mean(0).numpy().round(3)}  variance {b.var(0).numpy().round(3)}")
print(f"{'formula':>21}: mean {mean_formula.numpy().round(3)}  variance {var_formula.numpy().round(3)}")
sd_of_mean = (var_formula / NUM_MC).sqrt()
for b in (b_binary[:, 0], b_gauss):
    assert ((b.mean(0) - mean_formula).abs() < 5 * sd_of_mean).all(), "the sampled mean is off the formula"
    torch.testing.assert_close(b.var(0), var_formula, rtol=0.03, atol=0.0)

# %% [markdown]
# The Gaussian form is the layer `bt.nn.LinearSVDO` of lecture 5, with one $\alpha$ *per weight*,
# learnt: its posterior is $\mathcal N(\mu, \sigma^2)$ with $\log\alpha = \log\sigma^2 - \log\mu^2$. Set its
# $\log\sigma^2$ so that every $\alpha$ equals $p/(1-p)$ and its training-mode output has the moments of
# Gaussian dropout:

# %%
layer = bt.nn.LinearSVDO(8, 3, bias=False).double()
with torch.no_grad():
    layer.weight.copy_(M)
    layer.log_sigma2.copy_(math.log(alpha) + torch.log(M**2))
layer.train()
samples = layer(x.expand(20_000, 8))
print(f"LinearSVDO mean {samples.mean(0).detach().numpy().round(3)}  "
      f"variance {samples.var(0).detach().numpy().round(3)}")
assert ((samples.mean(0) - mean_formula).abs() < 5 * (var_formula / 20_000).sqrt()).all(), "the mean is off"
torch.testing.assert_close(samples.var(0), var_formula, rtol=0.05, atol=0.0)

# %% [markdown]
# ### Check yourself
# Gaussian dropout with the variance of binary dropout at rate $p = 0.2$: what is $\alpha$?

# %%
answer = None
bt.selfcheck.number(answer, expected=0.2 / 0.8, rtol=1e-3, mistakes={
    0.2: "that is p itself; alpha is the variance of the multiplier z / (1 - p)",
    0.16: "p (1 - p) is the variance of z, before dividing by (1 - p)",
    4.0: "upside down: alpha = p / (1 - p)"})

# %% [markdown]
# ## 3. What dropout training optimises
#
# Put a Gaussian prior $\mathcal N(0, l^{-2})$ on every weight. Under $q_M$ each column $W_{:,i}$ is
# $M_{:,i}/(1-p)$ with probability $1-p$ and $0$ with probability $p$. Gal & Ghahramani smooth the two
# outcomes into narrow Gaussians of width $s$ and show that, for small $s$, the KL of such a mixture is
# the probability-weighted KL of its components plus a constant:
#
# $$\mathrm{KL}(q_M \,\|\, p) \approx (1-p)\,\frac{l^2}{2}\Big\lVert \frac{M}{1-p} \Big\rVert^2 + \text{const}
#   = \frac{l^2}{2\,(1-p)}\,\lVert M \rVert^2 + \text{const}.$$
#
# (Their paper writes $W = M\operatorname{diag}(z)$ without the rescaling and gets $(1-p)\,l^2/2$; PyTorch's
# dropout, and `bt.nn.MCDropout`, rescale the kept units by $1/(1-p)$, which moves the factor.) Check the
# approximation on one weight: a Monte Carlo estimate of the mixture's KL, minus the formula's
# $m$-dependent term, should not depend on the mean $m$.

# %%
p, l2, s = 0.2, 1.0, 1e-3
Normal = torch.distributions.Normal
prior = Normal(0.0, 1 / math.sqrt(l2))


def mixture_kl(m, num_samples=NUM_MC):
    """Monte Carlo KL(q || prior) for q = (1-p) N(m/(1-p), s^2) + p N(0, s^2), one weight (float64)."""
    kept = torch.rand(num_samples, dtype=torch.float64) < 1 - p
    w = torch.where(kept, m / (1 - p), 0.0) + s * torch.randn(num_samples, dtype=torch.float64)
    log_q = torch.logsumexp(torch.stack([math.log(1 - p) + Normal(m / (1 - p), s).log_prob(w),
                                         math.log(p) + Normal(0.0, s).log_prob(w)]), 0)
    return float((log_q - prior.log_prob(w)).mean())


means = [0.5, 1.0, 1.5, 2.0]
constant = [mixture_kl(m) - l2 / (2 * (1 - p)) * m**2 for m in means]
for m, c in zip(means, constant):
    print(f"m = {m}: KL(q || p) - l^2 m^2 / (2 (1-p)) = {c:.4f}")
assert max(constant) - min(constant) < 0.02, constant

# %% [markdown]
# The remainder is the same for every $m$ (it is $-$ the entropy of the narrow components and of the
# Bernoulli choice, minus a term of the prior), so to the optimiser the KL is $\frac{l^2}{2(1-p)}\lVert
# M\rVert^2$. The course's per-data-point loss, NLL + KL/$N$, is then the ordinary dropout loss plus
# $\frac{l^2}{2(1-p)N}\lVert M\rVert^2$: **weight decay**. That is why `bt.nn.MCDropout.kl()` is zero and
# the prior lives in the optimiser: `weight_decay = wd` adds $\mathrm{wd}\cdot M$ to the gradient, the
# gradient of $\frac{\mathrm{wd}}{2}\lVert M\rVert^2$, so $\mathrm{wd} = l^2 / ((1-p)\,N)$. Check the claim
# about the optimiser: one SGD step with `weight_decay` equals one step on the loss plus the penalty.

# %%
wd, lr = 0.1, 0.5
theta_a = torch.randn(5, requires_grad=True)
theta_b = theta_a.detach().clone().requires_grad_(True)
target = torch.randn(5)
optimizer_a = torch.optim.SGD([theta_a], lr=lr, weight_decay=wd)
((theta_a - target) ** 2).sum().backward()
optimizer_a.step()
optimizer_b = torch.optim.SGD([theta_b], lr=lr)
(((theta_b - target) ** 2).sum() + wd / 2 * (theta_b**2).sum()).backward()
optimizer_b.step()
torch.testing.assert_close(theta_a, theta_b)
net = nn.Sequential(nn.Linear(4, 4), bt.nn.MCDropout(0.5), nn.Linear(4, 1))
print("weight_decay = wd is the penalty wd/2 ||theta||^2; the network's KL term:",
      float(bt.nn.kl_divergence(net)))

# %% [markdown]
# ### Check yourself
# A network with dropout rate $p = 0.2$ (PyTorch's rescaled dropout), prior precision $l^2 = 1$, trained
# on $N = 60{,}000$ images with the course's per-data-point loss. Which `weight_decay` is the prior?

# %%
answer = None
bt.selfcheck.number(answer, expected=1.0 / ((1 - 0.2) * 60_000), rtol=1e-3, mistakes={
    1.0 / (1 - 0.2): "the KL is divided by N in a per-data-point loss",
    (1 - 0.2) / 60_000: "that is the formula for masks without the 1/(1-p) rescaling",
    1.0 / 60_000: "the kept columns are M / (1 - p): the factor 1 / (1 - p) is missing",
    1.0 / (2 * (1 - 0.2) * 60_000): "weight_decay already is the gradient's factor: wd/2 ||M||^2 has gradient wd M"})

# %% [markdown]
# ## 4. MC dropout prediction, and the BatchNorm pitfall
#
# The posterior predictive $p(y \mid x, \mathcal D) \approx \frac1S \sum_s p(y \mid x, W_s)$ needs the masks
# **on** at test time. The tempting way is `model.train()`. In a network with BatchNorm that is a
# bug: in training mode BatchNorm normalises by the statistics *of the batch* it is given, and updates its
# running averages. `bt.nn.sampling(model)` switches on the Bayesian modules (here the dropout) and leaves
# BatchNorm in evaluation mode. Train a small MNIST network with both:

# %%
X, y = bt.data.load_mnist("train", subset=TRAIN_SIZE)
X_test, y_test = bt.data.load_mnist("test", subset=TEST_SIZE)
bt.utils.set_seed(SEED)
bn_net = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.BatchNorm1d(300), nn.ReLU(), bt.nn.MCDropout(0.3),
                       nn.Linear(300, 100), nn.BatchNorm1d(100), nn.ReLU(), bt.nn.MCDropout(0.3),
                       nn.Linear(100, 10)).to(DEVICE)
history = bt.train.fit(bn_net, (X, y), NUM_EPOCHS, torch.optim.Adam(bn_net.parameters(), lr=1e-3, weight_decay=1e-5),
                       test_data=(X_test, y_test), device=DEVICE)
print(f"test accuracy after {NUM_EPOCHS} epochs on {len(X):,} images: {history[-1]['test_acc']:.3f}")

# %% [markdown]
# Now predict the same 200 test digits twice: alone, and in one batch with 800 images of noise (a test
# batch is whatever a user sends). With `bt.nn.sampling` a digit's prediction cannot depend on its
# neighbours; with `model.train()` it does, and BatchNorm's running statistics change under your feet.

# %%
digits, labels = X_test[:200].to(DEVICE), y_test[:200].to(DEVICE)
noise = torch.rand(800, *digits.shape[1:], device=DEVICE)
mixed = torch.cat([digits, noise])
bn_layer = bn_net[2]


def mc_probs(model, inputs, num_samples=20):
    return torch.stack([F.softmax(model(inputs), -1) for _ in range(num_samples)]).mean(0)


results = {}
for how in ("model.train()", "bt.nn.sampling"):
    running_mean = bn_layer.running_mean.clone()
    state = {k: v.clone() for k, v in bn_net.state_dict().items()}
    with torch.no_grad():
        if how == "model.train()":
            bn_net.train()
            alone, together = mc_probs(bn_net, digits), mc_probs(bn_net, mixed)[:200]
        else:
            bn_net.eval()
            with bt.nn.sampling(bn_net):
                alone, together = mc_probs(bn_net, digits), mc_probs(bn_net, mixed)[:200]
    moved = float((bn_layer.running_mean - running_mean).abs().max())
    results[how] = {"accuracy alone": bt.metrics.accuracy(alone, labels),
                    "accuracy among noise": bt.metrics.accuracy(together, labels), "running mean moved": moved}
    bn_net.load_state_dict(state)  # undo what the forward passes did to BatchNorm
    print(f"{how:>14}: accuracy alone {results[how]['accuracy alone']:.3f}, among noise "
          f"{results[how]['accuracy among noise']:.3f}; BatchNorm running mean moved by {moved:.3g}")

# %%
wrong, right = results["model.train()"], results["bt.nn.sampling"]
assert right["running mean moved"] == 0.0, "sampling() must leave BatchNorm alone"
assert abs(right["accuracy alone"] - right["accuracy among noise"]) < 0.03, right
assert wrong["accuracy among noise"] < wrong["accuracy alone"] - 0.05, wrong
assert wrong["running mean moved"] > 0.0, wrong

# %% [markdown]
# With `model.train()` the same digits are classified worse when noise shares their batch (the printed
# accuracies), and every prediction has shifted BatchNorm's running mean: the model you evaluate next is
# not the model you trained. With `bt.nn.sampling` the accuracy does not depend on the company (the
# small difference is the Monte Carlo noise of the masks), and nothing in the model changed.
#
# ### Check yourself
# You want MC-dropout predictions from a trained network with BatchNorm. Which do you call?

# %%
answer = None
bt.selfcheck.choice(answer, expected="model.eval(), then predict inside bt.nn.sampling(model)", options=[
    "model.train(), then predict", "model.eval(), then predict",
    "model.eval(), then predict inside bt.nn.sampling(model)"], explanations={
    "model.train(), then predict": "BatchNorm then uses each batch's statistics and updates its running ones",
    "model.eval(), then predict": "eval() switches dropout off: every prediction is the same network",
    "model.eval(), then predict inside bt.nn.sampling(model)": "dropout samples, BatchNorm stays in eval mode"})

# %% [markdown]
# ## 5. The dropout rate sets the uncertainty
#
# Move the sliders: refit with another rate $p$, weight decay, or number of Monte Carlo masks. (Each move
# retrains the small network, a second or two.)

# %%
explorer.widget()

# %% [markdown]
# The same refit, measured for three rates: the epistemic band on the data, where the data leave no
# doubt about the function, widens with $p$.

# %%
rates = [0.05, 0.2, 0.4]
on_sd, off_sd = [], []
for rate in rates:
    prediction = bt.viz.DropoutExplorer(X_1d, y_1d, dropout=rate, num_epochs=NUM_EPOCHS_1D, seed=SEED).prediction
    on_sd.append(epistemic_sd(prediction, on_data))
    off_sd.append(epistemic_sd(prediction, off_data))
    print(f"p = {rate:.2f}: epistemic sd on the data {on_sd[-1]:.3f}, off the data {off_sd[-1]:.3f}")
fig = bt.viz.plot_sweep(rates, {"on the data (|x| < 4)": on_sd, "off the data (|x| > 6)": off_sd},
                        xlabel="dropout rate p", ylabel="mean epistemic sd (units of y)",
                        title="MC dropout: the band follows the dropout rate")

# %%
assert on_sd[0] < on_sd[1] < on_sd[2], f"the band on the data should widen with p: {on_sd}"
print(f"from p = {rates[0]} to p = {rates[-1]} the band on the data widens {on_sd[-1] / on_sd[0]:.1f}x")

# %% [markdown]
# ## 6. Limits
#
# **The band does not shrink with data.** A posterior concentrates as the data grow: for a regular model
# its spread falls like $1/\sqrt N$, a slope of $-\tfrac12$ on a log-log plot. The dropout rate is a fixed
# hyper-parameter, so MC dropout's band stays as wide as $p$ makes it, even with the weight decay that
# section 3 ties to the data, $1/((1-p)N)$ for the prior $\mathcal N(0, 1)$. Fit both, with $N$ = 30, 120
# and 600 points: the BBB network of lecture 3 (`bt.viz.RegressionExplorer` with the full ELBO, KL weight 1)
# and MC dropout at $p = 0.2$ with that weight decay, the same number of gradient steps for each $N$.

# %%
sizes = [30, 120, 600]
bbb_sd, dropout_sd = [], []
for n in sizes:
    X_n, y_n = bt.data.regression_1d(n, seed=SEED)
    epochs = max(20, NUM_EPOCHS_1D * 120 // n)
    bbb = bt.viz.RegressionExplorer(X_n, y_n, kl_weight=1.0, num_epochs=epochs, seed=SEED)
    mcd = bt.viz.DropoutExplorer(X_n, y_n, dropout=0.2, weight_decay=1 / ((1 - 0.2) * n), num_epochs=epochs,
                                 seed=SEED)
    bbb_sd.append(epistemic_sd(bbb.prediction, on_data))
    dropout_sd.append(epistemic_sd(mcd.prediction, on_data))
    print(f"N = {n:>3}: epistemic sd on the data, BBB {bbb_sd[-1]:.3f}, MC dropout {dropout_sd[-1]:.3f}")
fig = bt.viz.plot_sweep(sizes, {"Bayes by Backprop (KL weight 1)": bbb_sd, "MC dropout, p = 0.2": dropout_sd},
                        xlabel="training points N", ylabel="mean epistemic sd on the data (units of y)",
                        title="A posterior concentrates with data; MC dropout does not", logx=True, logy=True)

# %%
bbb_shrink, dropout_shrink = bbb_sd[0] / bbb_sd[-1], dropout_sd[0] / dropout_sd[-1]
span = math.log(sizes[-1] / sizes[0])
bbb_slope, dropout_slope = (-math.log(shrink) / span for shrink in (bbb_shrink, dropout_shrink))
print(f"from N = {sizes[0]} to {sizes[-1]}: BBB's band shrinks {bbb_shrink:.1f}x (slope {bbb_slope:.2f}), MC dropout's "
      f"{dropout_shrink:.2f}x (slope {dropout_slope:.2f}); 1/sqrt(N) would give "
      f"{math.sqrt(sizes[-1] / sizes[0]):.1f}x (slope -0.50)")
assert bbb_slope < -0.4 and dropout_slope > -0.2, (bbb_slope, dropout_slope)

# %% [markdown]
# BBB's band falls with $N$, MC dropout's hardly moves although its weight decay fell twenty-fold (the
# printed slopes). BBB's falls faster than the $-\tfrac12$ of a concentrated posterior over this range:
# at $N = 30$ its band is still nearly the prior's (the first printed row); the $1/\sqrt N$ law describes
# the regime where the data already dominate.
#
# Gal & Ghahramani tie $p$ and the weight decay to the data through the prior length-scale and a
# model precision, and *concrete dropout* (Gal et al. 2017) learns $p$; with a hand-set $p$, as in most
# networks, the band measures the rate more than the data (Osband 2016).
#
# **The KL term.** The binary-dropout $q$ puts each column of $W$ exactly at 0 with probability $p$: a
# point mass, whose KL to a continuous prior is infinite. The "KL ≈ weight decay" of section 3 holds only
# for a version smeared by tiny Gaussians, and its value depends on how tiny (Hron et al. 2018). The
# objective works; reading it as an ELBO needs care. Lecture 5's Gaussian family has a finite KL, and
# learns one $\alpha$ per weight.
#
# **Calibration.** Does averaging over masks at least give better probabilities? Train LeNet-300-100 with
# dropout (`bt.models.lenet300("mcdropout")`) and compare the plain network (`eval()`, masks off, the
# usual test-time rule) with the MC average of 50 masks, on accuracy, NLL and expected calibration error.

# %%
bt.utils.set_seed(SEED)
lenet = bt.models.lenet300("mcdropout").to(DEVICE)
bt.train.fit(lenet, (X, y), NUM_EPOCHS, torch.optim.Adam(lenet.parameters(), lr=1e-3, weight_decay=1e-5),
             test_data=(X_test, y_test), device=DEVICE)
lenet.eval()
with torch.no_grad():
    plain = F.softmax(lenet(X_test.to(DEVICE)), -1).cpu()
mc = bt.predict.mc_predict(lenet, X_test, num_samples=50).mean(0).cpu()
scores = {}
for name, probs in [("masks off (eval)", plain), ("MC dropout, 50 masks", mc)]:
    scores[name] = {"accuracy": bt.metrics.accuracy(probs, y_test), "NLL": bt.metrics.nll(probs, y_test),
                    "ECE": bt.metrics.ece(probs, y_test)}
    confidence = float(probs.max(-1).values.mean())
    print(f"{name:>20}: accuracy {scores[name]['accuracy']:.4f}  NLL {scores[name]['NLL']:.4f}  "
          f"ECE {100 * scores[name]['ECE']:.2f} %  mean confidence {confidence:.4f}")
change = "lowered" if scores["MC dropout, 50 masks"]["ECE"] < scores["masks off (eval)"]["ECE"] else "raised"
print(f"averaging over masks {change} the calibration error here")
fig = bt.viz.plot_reliability(plain, y_test, title="masks off (eval)")
fig = bt.viz.plot_reliability(mc, y_test, title="MC dropout, 50 masks")

# %% [markdown]
# Compare the two printed rows and the two diagrams. Averaging over masks usually lowers the confidence (the
# sampled networks disagree, and an average of disagreeing softmax outputs is less peaked); whether that helps
# depends on whether the plain network was over- or under-confident (its mean confidence against its
# accuracy, printed above) and on $p$. Better calibration is not guaranteed. Lecture 7 compares MC dropout
# with BBB, SparseVD and an SGLD ensemble on the same convolutional network, on calibration and on
# detecting inputs unlike the training data.
#
# ## Summary
#
# * Dropout is a variational family: binary masks make each weight column either $M_{:,i}/(1-p)$ or 0;
#   Gaussian dropout has the same mean and variance, $\alpha = p/(1-p)$, and is `bt.nn.LinearSVDO` with a
#   shared $\alpha$ (checked by sampling above).
# * Dropout training with weight decay is approximately the ELBO; the prior is the weight decay,
#   $\mathrm{wd} = l^2 / ((1 - p)\,N)$ in the course's per-data-point loss (the KL approximation was
#   checked by Monte Carlo).
# * MC dropout predicts with the masks on: `bt.nn.sampling(model)`, never `model.train()`, which lets
#   BatchNorm use each batch's statistics and changes its running averages (measured in section 4).
# * The band it gives follows the dropout rate and does not shrink with more data, unlike a posterior
#   (measured in sections 5 and 6): MC dropout is cheap, useful, and not the posterior of a fixed prior.
#
# ## References
#
# * Y. Gal, Z. Ghahramani. *Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep
#   Learning*. ICML 2016.
# * N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov. *Dropout: A Simple Way to
#   Prevent Neural Networks from Overfitting*. JMLR 2014.
# * D. Kingma, T. Salimans, M. Welling. *Variational Dropout and the Local Reparameterization Trick*.
#   NeurIPS 2015.
# * J. Hron, A. Matthews, Z. Ghahramani. *Variational Bayesian dropout: pitfalls and fixes*. ICML 2018.
# * Y. Gal, J. Hron, A. Kendall. *Concrete Dropout*. NeurIPS 2017.
# * I. Osband. *Risk versus Uncertainty in Deep Learning: Bayes, Bootstrap and the Dangers of Dropout*.
#   NeurIPS Workshop on Bayesian Deep Learning 2016.
