# %% [markdown]
# # L03 · Bayes by Backprop and the local reparametrization trick
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L03_bayes_by_backprop.ipynb)
#
# **The question.** Lecture 2 fitted a Gaussian posterior to two weights. A network for MNIST has
# half a million. Can the same recipe, a Gaussian $q(w) = \mathcal N(\mu, \sigma^2)$ for every weight
# trained by backpropagation on the ELBO, learn a classifier? How noisy are its gradients, and can a
# change of variables make them less so? And if every weight has its own $\sigma$, which weights
# does the network need at all? The picture: a full run of Bayes by Backprop on MNIST, recorded by
# `bnn-teach reproduce bbb-mnist`.

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
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

import bnn_teach as bt

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer images and epochs, the same code
TRAIN_SIZE = 2_000 if FAST else None  # None: every training image there is (60,000 with full MNIST)
TEST_SIZE = 2_000 if FAST else None
NUM_EPOCHS = 2 if FAST else 3  # the live runs of section 2
NUM_MC = 5_000 if FAST else 20_000  # samples for the moment checks
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: the recorded full run
#
# 784–400–400–10 ReLU network, every weight Gaussian, 50 epochs on the 60,000 training images, once with
# a Gaussian prior and once with the scale-mixture prior of Blundell et al., trained with the local
# reparametrization trick of section 3 (which changes the variance of the gradients, not the model or its
# objective). Loaded from the package, where `bnn-teach reproduce bbb-mnist --record` wrote it (its
# checksum is verified on loading). Its test errors are those of the **posterior mean** network (every
# weight at its $\mu$), the usual way BBB is scored; the Monte Carlo predictive of section 6 is another.

# %%
recorded = bt.reproduce.load_recorded("bbb-mnist")
ours = recorded["results"]["ours"]
print(f"recorded run: {ours['epochs']} epochs, {recorded['results']['wall seconds'] / 60:.0f} min on "
      f"{recorded['results']['device']} ({recorded['results']['threads']} threads)")
for prior in ("gaussian", "scale mixture"):
    print(f"test error with the {prior} prior: {ours[f'error % ({prior})']:.2f} %")
print(f"Blundell et al. 2015 report {recorded['results']['paper']['error % (scale mixture)']} % (scale mixture)")
kl = recorded["history"]["kl"]
print(f"KL per data point over the last 10 epochs: {kl[-11]:.4f} -> {kl[-1]:.4f}")
fig = bt.viz.plot_history(recorded["history"], keys=("nll", "kl", "test_acc"),
                          title="Bayes by Backprop on MNIST, scale-mixture prior (recorded run)")

# %% [markdown]
# The KL per data point falls all along: the posterior starts with tiny $\sigma$, far from the prior,
# and moves towards it wherever the data allow. The NLL falls fast, then creeps up a little as the KL
# term trades fit for simplicity; the test accuracy levels off. The KL is **still falling** at epoch 50
# (printed): this run is not converged, and its error is not the method's best. Blundell et al. trained
# for far longer and chose the prior's hyper-parameters on a validation set; their Table 1 reports about
# 1.3 % for the scale-mixture prior at 400 units per layer, the width used here, so the gap is training
# length and tuning, not the size of the network.
#
# ## 2. Bayes by Backprop
#
# Each weight has a mean $\mu$ and $\sigma = \operatorname{softplus}(\rho) = \log(1 + e^\rho)$, so $\rho$
# is unconstrained while $\sigma > 0$. One step: draw $\varepsilon \sim \mathcal N(0, I)$, set
# $w = \mu + \sigma \odot \varepsilon$, and descend
#
# $$\mathcal L(\mu, \rho) = \frac1B \sum_{i} -\log p(y_i \mid x_i, w) + \frac{\mathrm{KL}(q\,\|\,p)}{N}$$
#
# (lecture 2's scaling). With a Gaussian prior the KL is closed-form per weight,
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, \sigma_p^2)\big)
#   = \log\frac{\sigma_p}{\sigma} + \frac{\sigma^2 + \mu^2}{2\sigma_p^2} - \frac12 .$$
#
# The **scale-mixture prior** $p(w) = \pi\,\mathcal N(0, \sigma_1^2) + (1 - \pi)\,\mathcal N(0, \sigma_2^2)$,
# $\sigma_1 \gg \sigma_2$, is a wide slab plus a narrow spike at zero; it has no closed-form KL, so the
# layer uses the one-sample estimate $\log q(w) - \log p(w)$ at the sampled $w$. First, check the
# closed form against `torch.distributions`, and the mixture's density against its definition:

# %%
mu, sigma = torch.randn(1000, dtype=torch.float64), torch.rand(1000, dtype=torch.float64) + 0.01
ours_kl = bt.kl.normal_normal(mu, sigma, torch.zeros(1000, dtype=torch.float64), torch.ones(1000, dtype=torch.float64))
Normal = torch.distributions.Normal
reference = torch.distributions.kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0))
torch.testing.assert_close(ours_kl, reference)

mixture = bt.priors.ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))
w = torch.linspace(-3, 3, 101, dtype=torch.float64)
by_definition = torch.log(0.5 * Normal(0.0, 1.0).log_prob(w).exp() + 0.5 * Normal(0.0, math.exp(-6)).log_prob(w).exp())
torch.testing.assert_close(mixture.log_prob(w), by_definition)
print("the Gaussian KL and the mixture's log density match their references")

# %% [markdown]
# Now train the same network live, shorter: `NUM_EPOCHS` epochs (on fewer images in FAST mode), with each prior.
# `bt.nn.bayesianize` swaps the `nn.Linear` layers of an ordinary network for `bt.nn.BayesLinear`; here with
# `local_reparam=False`, plain weight sampling exactly as just described (one $w$ per mini-batch). Section 3
# introduces the faster-learning alternative.

# %%
X, y = bt.data.load_mnist("train", subset=TRAIN_SIZE)
X_test, y_test = bt.data.load_mnist("test", subset=TEST_SIZE)


def make_bbb(prior):
    net = nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(784, 400), relu1=nn.ReLU(),
                                    fc2=nn.Linear(400, 400), relu2=nn.ReLU(), fc3=nn.Linear(400, 10)))
    return bt.nn.bayesianize(net, "bbb", prior=prior, local_reparam=False).to(DEVICE)


live = {}  # full mode: 3 min an epoch for both priors on a loaded 2-core machine, so about 9 min; FAST: seconds
for name, prior in [("gaussian", bt.priors.GaussianPrior(1.0)), ("scale mixture", mixture)]:
    bt.utils.set_seed(SEED)
    model = make_bbb(prior)
    history = bt.train.fit(model, (X, y), NUM_EPOCHS, torch.optim.Adam(model.parameters(), lr=1e-3),
                           test_data=(X_test, y_test), device=DEVICE)
    live[name] = model
    print(f"{name}: test error {100 * (1 - history[-1]['test_acc']):.2f} % after {NUM_EPOCHS} epochs "
          f"on {len(X):,} images")

# %% [markdown]
# This is the **live** run (small); section 1 showed the **recorded** full run. Both priors learn, far
# from the recorded error: fewer images, fewer epochs, and on a small training set the KL weighs more
# per data point ($N$ is smaller), so the prior pulls harder.
#
# ## 3. The local reparametrization trick (LRT)
#
# Weight sampling draws one matrix $W$ per mini-batch, so every example of the batch sees the *same*
# noise: their gradient contributions are correlated, and averaging over the batch does not reduce
# the noise as $1/B$. Kingma, Salimans & Welling (2015) sample the pre-activations instead. For a
# linear layer $b = x W^\top$ with independent $W_{ji} \sim \mathcal N(\mu_{ji}, \sigma_{ji}^2)$, each
# $b_j$ is a sum of independent Gaussians, so
#
# $$b_j \sim \mathcal N\Big(\sum_i x_i \mu_{ji},\; \sum_i x_i^2 \sigma_{ji}^2\Big),
#   \qquad b = x\mu^\top + \sqrt{x^2 (\sigma^2)^\top} \odot \varepsilon, \quad \varepsilon \sim \mathcal N(0, I),$$
#
# with a fresh $\varepsilon$ for every example. Same marginal distribution of each $b$, independent
# across examples, and $B \times \text{out}$ random numbers instead of $\text{in} \times \text{out}$.
#
# **Check it by sampling.** One layer, one input $x$; `NUM_MC` outputs by weight sampling and by the
# LRT, against the formula. Tolerances: 5 standard errors of the Monte Carlo estimates.

# %%
bt.utils.set_seed(SEED)
layer = bt.nn.BayesLinear(20, 5, local_reparam=False, init_rho=-1.0)
x = torch.randn(1, 20)
mean_formula = (x @ layer.weight_mu.T + layer.bias_mu).detach()[0]
var_formula = (x**2 @ (layer.weight_sigma**2).T + layer.bias_sigma**2).detach()[0]

with torch.no_grad():
    by_weights = torch.cat([layer(x) for _ in range(NUM_MC)])   # one weight matrix per sample
    layer.local_reparam = True
    by_lrt = layer(x.expand(NUM_MC, 20))                        # one batch, independent noise per row
for name, samples in [("weight sampling", by_weights), ("LRT", by_lrt)]:
    se_mean = (var_formula / NUM_MC).sqrt()
    se_var = var_formula * math.sqrt(2 / NUM_MC)
    assert ((samples.mean(0) - mean_formula).abs() < 5 * se_mean).all(), name
    assert ((samples.var(0) - var_formula).abs() < 5 * se_var).all(), name
    print(f"{name:>15}: largest error of the mean {float((samples.mean(0) - mean_formula).abs().max()):.4f}, "
          f"of the variance {float((samples.var(0) - var_formula).abs().max()):.4f}")

# %% [markdown]
# Same moments. What differs is the noise *across examples*. Feed the same input twice in one batch:

# %%
pair = torch.cat([x, x])
with torch.no_grad():
    layer.local_reparam = False
    ws = torch.stack([layer(pair) for _ in range(NUM_MC)])   # (NUM_MC, 2, 5)
    layer.local_reparam = True
    lrt = torch.stack([layer(pair) for _ in range(NUM_MC)])
corr_ws = float(torch.corrcoef(ws[:, :, 0].T)[0, 1])
corr_lrt = float(torch.corrcoef(lrt[:, :, 0].T)[0, 1])
print(f"correlation of the two copies' outputs: weight sampling {corr_ws:.3f}, LRT {corr_lrt:.3f}")
assert corr_ws > 0.99 and abs(corr_lrt) < 0.1

# %% [markdown]
# ### Check yourself
#
# A unit has two inputs $x = (1, 2)$ and weight standard deviations $\sigma = (0.1, 0.2)$ (no bias). What
# is the **variance** of its pre-activation under the LRT?

# %%
answer = None
x_q, sigma_q = torch.tensor([1.0, 2.0]), torch.tensor([0.1, 0.2])
bt.selfcheck.number(answer, expected=float((x_q**2 * sigma_q**2).sum()), rtol=0.01, mistakes={
    float((x_q * sigma_q**2).sum()): "square the inputs too: Var(x w) = x² Var(w)",
    float((x_q * sigma_q).sum() ** 2): "variances of independent terms add; square each term, then sum",
    float((x_q**2 * sigma_q**2).sum().sqrt()): "that is the standard deviation; the question asks for the variance",
})

# %% [markdown]
# ## 4. Measured: the gradient variance of weight sampling and of the LRT
#
# As in Kingma et al. (2015, table 2): at fixed parameters (the live Gaussian-prior network of
# section 2), compute the gradient on many mini-batches of 100, each with fresh noise, and take the
# variance of each parameter's gradient, averaged over its elements (`bt.diagnostics.gradient_variance`).
# Only the sampling rule changes between the two measurements.

# %%
model = live["gaussian"]
generator = torch.Generator().manual_seed(SEED)
batches = [(X[idx].to(DEVICE), y[idx].to(DEVICE))
           for idx in torch.randint(0, len(X), (40, 100), generator=generator)]
params = {name: p for name, p in model.named_parameters() if name.endswith(("weight_mu", "weight_rho"))}
variances = {}
for method, lrt in [("weight sampling", False), ("LRT", True)]:
    for module in bt.nn.bayesian_modules(model):
        module.local_reparam = lrt
    torch.manual_seed(SEED)
    variances[method] = bt.diagnostics.gradient_variance(model, F.cross_entropy, batches, params)
fig = bt.viz.plot_gradient_variance(variances)
for name in params:
    print(f"{name:<16} weight sampling {variances['weight sampling'][name]:.3e}   LRT {variances['LRT'][name]:.3e}"
          f"   ratio {variances['weight sampling'][name] / variances['LRT'][name]:.1f}x")

# %% [markdown]
# The LRT gives a smaller variance for the $\sigma$-parameters ($\rho$) of every layer, where the
# sampling noise dominates; for the means the mini-batch noise is a large share of the total, and the
# gain is smaller. (Your numbers depend on how far training went, as in the paper's table.)

# %%
rho_ratios = [variances["weight sampling"][n] / variances["LRT"][n] for n in params if n.endswith("weight_rho")]
print(f"LRT lowers the variance of the rho gradients {min(rho_ratios):.1f}x to {max(rho_ratios):.1f}x")
assert min(rho_ratios) > 1.0

# %% [markdown]
# ## 5. The LRT for convolutions
#
# A convolution is a linear map too: each output is $\sum x_i w_i$ over a patch. So
#
# $$b = \operatorname{conv}(x, \mu) + \sqrt{\operatorname{conv}(x^2, \sigma^2)} \odot \varepsilon,$$
#
# two convolutions instead of one, with the noise drawn per output position. `bt.nn.BayesConv2d` does
# exactly that; check its moments by sampling the same way:

# %%
bt.utils.set_seed(SEED)
conv = bt.nn.BayesConv2d(1, 2, kernel_size=3, init_rho=-1.0)
image = torch.randn(1, 1, 5, 5)
mean_formula = F.conv2d(image, conv.weight_mu, conv.bias_mu).detach()
var_formula = F.conv2d(image**2, conv.weight_sigma**2, conv.bias_sigma**2).detach()
with torch.no_grad():
    samples = conv(image.expand(NUM_MC, 1, 5, 5))
assert ((samples.mean(0) - mean_formula[0]).abs() < 5 * (var_formula[0] / NUM_MC).sqrt()).all()
assert ((samples.var(0) - var_formula[0]).abs() < 5 * var_formula[0] * math.sqrt(2 / NUM_MC)).all()
print(f"conv LRT: largest relative error of the variance "
      f"{float(((samples.var(0) - var_formula[0]) / var_formula[0]).abs().max()):.3f} over {NUM_MC} samples")

# %% [markdown]
# Each output has the right distribution. **The joint distribution is not the same**, though: a sampled
# kernel is one $w$ shared by every position, while the LRT draws independent noise per position. Show the
# layer an image that is the same everywhere, so that two positions see identical patches: with a sampled
# kernel their outputs are equal in every sample; with the LRT they are independent.

# %%
flat = torch.ones(1, 1, 5, 5)
correlation = {}
for lrt in (False, True):
    conv.local_reparam = lrt
    with torch.no_grad():
        out = conv(flat.expand(NUM_MC, 1, 5, 5))[:, 0]  # (NUM_MC, 3, 3): first channel
    correlation[lrt] = float(torch.corrcoef(torch.stack([out[:, 0, 0], out[:, 2, 2]]))[0, 1])
    print(f"{'LRT' if lrt else 'sampled kernel':>14}: correlation of two positions with the same patch "
          f"{correlation[lrt]:+.3f}")
conv.local_reparam = True
assert correlation[False] > 0.999 and abs(correlation[True]) < 0.05, correlation

# %% [markdown]
# The ELBO's likelihood term is an expectation per example, so what matters is the joint distribution of
# one example's pre-activations. For a linear layer with a factorised $q$, different output units use
# different weights: they are independent Gaussians, exactly what the LRT samples, so there the LRT is
# exact. For a convolution the positions of one example share the kernel, and the LRT drops that
# correlation: it is a different noise model from the one $q(w)$ defines, an approximation that buys
# lower-variance gradients (Kingma et al. 2015 make the same choice for their convolutional layers).

# %% [markdown]
# ## 6. Which weights does the network need? Pruning by signal-to-noise
#
# A weight whose mean is small compared to its standard deviation, $|\mu|/\sigma$ small, is one the
# posterior cannot tell from zero. Blundell et al. remove the weights with the lowest signal-to-noise
# ratio and find that most of the network can go. `bt.sparsity.pruning_curve` prunes a copy of the
# network at growing fractions and reports the test error; compare with pruning by $|\mu|$ alone, and
# with the recorded full run. (Early in training every $\sigma$ is still near its initial value, so
# the two rankings agree; they part as the $\sigma$'s learn. An under-trained network also pays much
# more for pruning than the recorded one.)

# %%
model = live["scale mixture"]
curves = {
    "live run, by |mu|/sigma": bt.sparsity.pruning_curve(model, (X_test, y_test), "snr"),
    "live run, by |mu|": bt.sparsity.pruning_curve(model, (X_test, y_test), "magnitude"),
    "recorded run, by |mu|/sigma": ours["snr pruning (scale mixture)"],
}
fig = bt.viz.plot_pruning_curve(curves)
for label, curve in curves.items():
    print(f"{label:<28} " + "  ".join(f"{row['removed %']:.0f}%: {row['error %']:.2f}" for row in curve))

# %%
recorded_curve = ours["snr pruning (scale mixture)"]
at_90 = min(recorded_curve, key=lambda row: abs(row["removed %"] - 90))
cost_at_90 = at_90["error %"] - recorded_curve[0]["error %"]
print(f"recorded run: removing 90 % of the weights by |mu|/sigma changes the test error by {cost_at_90:+.2f} points")
assert abs(cost_at_90) < 1.0

# %% [markdown]
# ### Check yourself
#
# Why does the LRT lower the variance of the gradient?

# %%
answer = None
bt.selfcheck.choice(answer, expected="each example of the batch gets its own noise", options=[
    "it uses a smaller posterior variance", "each example of the batch gets its own noise",
    "it removes the KL term from the gradient",
], explanations={
    "it uses a smaller posterior variance": "the marginal of every pre-activation is the same as with weight sampling",
    "each example of the batch gets its own noise": "independent noise averages out over the batch, as 1/B",
    "it removes the KL term from the gradient": "the KL is the same; only the likelihood term is sampled differently",
})

# %% [markdown]
# ## Summary
#
# * Bayes by Backprop: a Gaussian per weight, $\sigma = \operatorname{softplus}(\rho)$, trained on
#   NLL + KL/$N$ with one weight sample per step; a scale-mixture prior needs a Monte Carlo KL.
# * The LRT samples pre-activations, $b \sim \mathcal N(x\mu^\top, x^2(\sigma^2)^\top)$: the same moments
#   (checked by sampling, for linear and convolutional layers), independent noise per example, and a
#   smaller gradient variance (measured above).
# * Signal-to-noise $|\mu|/\sigma$ ranks the weights: most can be removed at little cost in accuracy
#   (the recorded run's curve above). Lecture 5 makes this principled with Sparse Variational Dropout.
#
# To record the full run again (its time is printed in section 1; it needs full MNIST):
# `bnn-teach reproduce bbb-mnist --record`.
#
# ## References
#
# * C. Blundell, J. Cornebise, K. Kavukcuoglu, D. Wierstra. *Weight Uncertainty in Neural Networks*. ICML 2015.
# * D. Kingma, T. Salimans, M. Welling. *Variational Dropout and the Local Reparameterization Trick*. NeurIPS 2015.
# * A. Graves. *Practical Variational Inference for Neural Networks*. NeurIPS 2011.
# * N. Chirkova. *Bayesian neural networks and their applications*. Lecture at the Deep Bayes summer school, 2019
#   ([the school's materials](https://github.com/bayesgroup/deepbayes-2019)).
