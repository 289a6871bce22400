# %% [markdown]
# # L07 · Bayesian CNNs and uncertainty in practice
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L07_bayesian_cnns.ipynb)
#
# **The question.** A convolutional network trained on handwritten digits is handed a digit turned on
# its side, or an image of pure noise. It answers with a softmax all the same. Does its answer say
# that it does not know? This lecture makes LeNet-5 Bayesian in the four ways of the course (Bayes by
# Backprop with the local reparametrization trick, Sparse Variational Dropout, MC dropout, an SGLD
# ensemble), sets them against the plain network, and asks three things: whose probabilities can be
# trusted on digits (calibration), who can tell a digit from something that is not one
# (out-of-distribution detection), and which part of the uncertainty does the telling: the noise in the
# data (aleatoric) or the network's doubt about its own weights (epistemic). The picture: a plain
# LeNet-5's answers on the three kinds of input.

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
import copy
import math

import torch
import torch.nn.functional as F

import bnn_teach as bt

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer images, epochs and samples, the same code
TRAIN_SIZE = 2_000 if FAST else 20_000  # training images (of 60,000)
TEST_SIZE = 300 if FAST else 1_000  # test digits: the in-distribution inputs
OOD_SIZE = 150 if FAST else 500  # rotated digits, and as many noise images
NUM_EPOCHS = 2 if FAST else 3
NUM_SAMPLES = 6 if FAST else 16  # Monte Carlo samples per prediction (and SGLD ensemble members)
SGLD_STEPS = 40 if FAST else 400
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: a plain LeNet-5 on digits, rotated digits and noise
#
# Three kinds of input: MNIST test digits (what the network was trained for); the same digits rotated
# by 60° to 90° either way (`F.affine_grid` and `F.grid_sample` turn each image about its centre);
# and images whose pixels are uniform noise on $[0, 1]$. The rotated digits keep their labels, so the
# network's accuracy on them can be measured too: they are a **covariate shift** (the same classes, the
# inputs drawn differently), not out-of-distribution inputs in the strict sense; the noise images belong
# to no class at all.

# %%
X, y = bt.data.load_mnist("train", subset=TRAIN_SIZE)
X_test, y_test = bt.data.load_mnist("test", subset=TEST_SIZE)


def rotate(images, degrees):
    """Each image (N, 1, 28, 28) turned about its centre by its own angle (degrees; the sign sets the way)."""
    angle = torch.deg2rad(degrees)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


generator = torch.Generator().manual_seed(SEED)
degrees = (60 + 30 * torch.rand(OOD_SIZE, generator=generator)) * torch.where(
    torch.rand(OOD_SIZE, generator=generator) < 0.5, -1.0, 1.0)
X_rotated, y_rotated = rotate(X_test[:OOD_SIZE], degrees), y_test[:OOD_SIZE]
X_noise = torch.rand(OOD_SIZE, 1, 28, 28, generator=generator)
inputs = {"test digits": X_test, "rotated digits": X_rotated, "noise": X_noise}
print(f"{len(X):,} training images; {len(X_test):,} test digits, {OOD_SIZE:,} rotated digits "
      f"(angles {float(degrees.abs().min()):.0f}° to {float(degrees.abs().max()):.0f}°), {OOD_SIZE:,} noise images")

# %% [markdown]
# The plain network: LeNet-5-Caffe (`bt.models.lenet5()`: two convolutions, two fully connected layers),
# trained with Adam on the cross-entropy.

# %%
models, histories = {}, {}


def train(name, model, num_epochs=NUM_EPOCHS, lr=1e-3, weight_decay=0.0, **fit_args):
    """Fit `model` with Adam (bt.train.fit: NLL + kl_weight * KL / N per data point) and keep it under `name`."""
    bt.utils.set_seed(SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    histories[name] = bt.train.fit(model, (X, y), num_epochs, optimizer, test_data=(X_test, y_test),
                                   device=DEVICE, **fit_args)
    models[name] = model
    record = histories[name][-1]
    print(f"{name}: test accuracy {100 * record['test_acc']:.2f} % (eval mode: the posterior mean), "
          f"{sum(histories[name]['seconds']):.0f} s")


bt.utils.set_seed(SEED)
train("deterministic", bt.models.lenet5("deterministic").to(DEVICE))


def predict(model, images, num_samples=NUM_SAMPLES):
    """Monte Carlo class probabilities (num_samples, N, 10), on the CPU."""
    return bt.predict.mc_predict(model, images, num_samples).cpu()


plain = {kind: predict(models["deterministic"], images, num_samples=1) for kind, images in inputs.items()}
fig = bt.viz.plot_ood_inputs(inputs, plain, title="A plain LeNet-5: predicted class (its probability)")

# %% [markdown]
# The network puts a class on every input, and the right-hand panel shows how sure it is. Compare its
# confidence with its accuracy on each kind of input (noise has no right answer):

# %%
confidence = {kind: float(probs[0].max(-1).values.mean()) for kind, probs in plain.items()}
accuracy_rotated = bt.metrics.accuracy(plain["rotated digits"], y_rotated)
for kind in inputs:
    print(f"{kind:>15}: mean probability of the predicted class {confidence[kind]:.2f}")
print(f"accuracy on the test digits {bt.metrics.accuracy(plain['test digits'], y_test):.3f}, "
      f"on the rotated digits {accuracy_rotated:.3f}")
assert confidence["rotated digits"] > accuracy_rotated + 0.2, \
    f"on rotated digits the network is overconfident: confidence {confidence['rotated digits']:.2f}, " \
    f"accuracy {accuracy_rotated:.2f}"

# %% [markdown]
# On rotated digits the network is wrong far more often than its confidence admits. A softmax output
# is a distribution over the ten classes *given* that the input is a digit like those it was trained
# on; nothing in it measures how far the input is from them. A Bayesian network adds a second source
# of uncertainty: it is unsure of its weights, and different plausible weights may disagree exactly
# where the data said nothing. The next two sections give the tools to measure both.
#
# ## 2. Two kinds of uncertainty: total = aleatoric + epistemic
#
# A Bayesian network predicts with the posterior predictive, estimated with $S$ samples
# $w_s \sim q(w)$ (or posterior samples from SG-MCMC):
#
# $$\bar p(y \mid x) = \mathbb E_{q(w)}\, p(y \mid x, w) \approx \frac1S \sum_{s=1}^S p_s,
#   \qquad p_s = \operatorname{softmax} f(x; w_s).$$
#
# Its entropy $\mathbb H[\bar p] = -\sum_c \bar p_c \log \bar p_c$ (nats) is the **total** uncertainty.
# Write $\bar p_c = \frac1S \sum_s p_{sc}$ inside the sum and add and subtract $\log p_{sc}$:
#
# $$\mathbb H[\bar p] = -\frac1S \sum_s \sum_c p_{sc} \log \bar p_c
#   = \underbrace{\frac1S \sum_s \Big(-\sum_c p_{sc} \log p_{sc}\Big)}
#     _{\text{aleatoric: } \frac1S \sum_s \mathbb H[p_s]}
#   + \underbrace{\frac1S \sum_s \sum_c p_{sc} \log \frac{p_{sc}}{\bar p_c}}
#     _{\text{epistemic: } \frac1S \sum_s \mathrm{KL}(p_s \,\|\, \bar p)} .$$
#
# This split is Depeweg et al.'s (2018); the epistemic term as a score goes back to Houlsby et al. (2011).
#
# * **Aleatoric** (expected entropy): how unsure each sampled network is on its own, e.g. on a digit
#   that could be a 4 or a 9. More data of the same kind does not remove it.
# * **Epistemic** (mutual information): how much the sampled networks disagree. It is the mutual
#   information $\mathbb I[y; w \mid x, \mathcal D]$ between the label and the weights: with $s$ drawn
#   uniformly, the pair $(s, y)$ has the joint distribution $P(s, c) = p_{sc} / S$, and
#   $\sum_{s,c} P(s, c) \log \frac{P(s, c)}{P(s) P(c)}$ is the second term above. It is $\ge 0$, and zero
#   exactly when all samples agree. More data shrinks it.
#
# A deterministic network is one sample ($S = 1$): its epistemic term is **zero by construction**, on
# every input, and all its uncertainty is called aleatoric.
#
# **Check it in code.** Three samples, two inputs, three classes, by hand: the total and the aleatoric
# term from their definitions, the epistemic term from the joint distribution $P(s, c)$, against
# `bt.uncertainty.decompose` (float64, tolerance $10^{-12}$).

# %%
p = torch.tensor([[[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]],
                  [[0.6, 0.3, 0.1], [0.9, 0.05, 0.05]],
                  [[0.8, 0.1, 0.1], [0.05, 0.05, 0.9]]], dtype=torch.float64)  # (S=3, inputs=2, classes=3)
S = p.shape[0]
p_bar = p.mean(0)
total = -(p_bar * p_bar.log()).sum(-1)
aleatoric = -(p * p.log()).sum(-1).mean(0)
joint = p / S                                               # P(s, c) for each input
marginal_s, marginal_c = joint.sum(-1, keepdim=True), joint.sum(0, keepdim=True)
mutual_information = (joint * (joint / (marginal_s * marginal_c)).log()).sum((0, 2))

u = bt.uncertainty.decompose(p)
for name, ours, library in [("total", total, u.total), ("aleatoric", aleatoric, u.aleatoric),
                            ("epistemic", mutual_information, u.epistemic)]:
    torch.testing.assert_close(ours, library, rtol=0, atol=1e-12)
    print(f"{name:>9}: by hand {ours.tolist()}, bt.uncertainty.decompose {library.tolist()}")
torch.testing.assert_close(u.total, u.aleatoric + u.epistemic, rtol=0, atol=1e-12)
one_sample = bt.uncertainty.decompose(p[:1])                 # a deterministic network: S = 1
assert (one_sample.epistemic == 0).all()
print(f"total = aleatoric + epistemic holds; with one sample the epistemic term is {one_sample.epistemic.tolist()}")

# %% [markdown]
# Input 0 (the first number of each pair printed): the three samples agree that it is probably class 0,
# and almost all of its uncertainty is aleatoric. Input 1: each sample is sure, each of a different
# class, and most of its uncertainty is epistemic.
#
# ### Check yourself
#
# Two posterior samples predict $p_1 = (0.9, 0.1)$ and $p_2 = (0.1, 0.9)$ for one input. What is its
# **epistemic** uncertainty, in nats?

# %%
answer = None
pair = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]], dtype=torch.float64)
pair_u = bt.uncertainty.decompose(pair)
bt.selfcheck.number(answer, expected=float(pair_u.epistemic), rtol=0.01, mistakes={
    float(pair_u.total): "that is the total, the entropy of the average (0.5, 0.5); subtract the expected entropy",
    float(pair_u.aleatoric): "that is the aleatoric part, the samples' mean entropy; the epistemic part is the rest",
    float(pair_u.epistemic) / math.log(2): "that is in bits; the course uses the natural log (nats)",
})

# %% [markdown]
# ## 3. Is a probability of 0.9 right 90 % of the time? NLL, Brier score, ECE
#
# Three numbers judge the predictive $\bar p$ on $N$ labelled test inputs:
#
# * the **negative log-likelihood** $\mathrm{NLL} = -\frac1N \sum_i \log \bar p(y_i \mid x_i)$ (nats),
#   which punishes a confident mistake without bound;
# * the **Brier score** $\frac1N \sum_i \sum_c \big(\bar p_{ic} - [y_i = c]\big)^2$, a squared error
#   between 0 and 2;
# * the **expected calibration error** (Guo et al. 2017). Take each input's confidence
#   $\hat p_i = \max_c \bar p_{ic}$ and its prediction $\hat y_i = \arg\max_c \bar p_{ic}$; sort the inputs into
#   $M$ equal-width bins $B_m = \{i : \hat p_i \in (\frac{m-1}M, \frac mM]\}$ (the first bin also holds 0); then
#
# $$\mathrm{ECE} = \sum_{m=1}^M \frac{|B_m|}{N}\, \big|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)\big|,
#   \qquad \mathrm{acc}(B_m) = \frac{1}{|B_m|}\sum_{i \in B_m} [\hat y_i = y_i], \quad
#   \mathrm{conf}(B_m) = \frac{1}{|B_m|}\sum_{i \in B_m} \hat p_i .$$
#
# A perfectly calibrated predictor has $\mathrm{acc}(B_m) = \mathrm{conf}(B_m)$ in every bin; the
# reliability diagram draws the two against each other. ECE alone is not enough: a classifier that
# always predicts the class frequencies is calibrated and useless, which is why NLL and Brier come too.
#
# **Check it in code** on eight hand-made predictions, $M = 5$ bins, with a plain loop over the bins:

# %%
probs = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.85, 0.15], [0.3, 0.7],
                      [0.45, 0.55], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
M = 5
conf, pred = probs.max(-1)
ece_by_hand = 0.0
for m in range(1, M + 1):
    in_bin = (conf > (m - 1) / M) & (conf <= m / M) | ((m == 1) & (conf == 0))
    if in_bin.any():
        gap = (pred[in_bin] == labels[in_bin]).double().mean() - conf[in_bin].mean()
        ece_by_hand += in_bin.double().mean() * gap.abs()
nll_by_hand = -probs[torch.arange(8), labels].log().mean()
brier_by_hand = ((probs - F.one_hot(labels, 2)) ** 2).sum(-1).mean()
for name, ours, library in [("ECE", ece_by_hand, bt.metrics.ece(probs, labels, num_bins=M)),
                            ("NLL", nll_by_hand, bt.metrics.nll(probs, labels)),
                            ("Brier", brier_by_hand, bt.metrics.brier(probs, labels))]:
    assert abs(float(ours) - library) < 1e-12, name
    print(f"{name:>5}: by hand {float(ours):.6f}, bt.metrics {library:.6f}")

# %% [markdown]
# ### Check yourself
#
# Twenty predictions: 5 with confidence 0.9, of which 3 are right, and 15 with confidence 0.6, of which
# 10 are right. With bins of width 0.2, what is the ECE?

# %%
answer = None
quiz_conf = torch.tensor([0.9] * 5 + [0.6] * 15, dtype=torch.float64)
quiz_probs = torch.stack([quiz_conf, 1 - quiz_conf], 1)
quiz_labels = torch.tensor([0] * 3 + [1] * 2 + [0] * 10 + [1] * 5)   # class 0 is each prediction
bt.selfcheck.number(answer, expected=bt.metrics.ece(quiz_probs, quiz_labels, num_bins=5), rtol=0.01, mistakes={
    abs(13 / 20 - float(quiz_conf.mean())): "that compares the overall accuracy with the mean confidence: "
                                            "gaps of opposite sign cancel. ECE takes the gap bin by bin",
    (abs(3 / 5 - 0.9) + abs(10 / 15 - 0.6)) / 2: "weight each bin's gap by its share of the inputs, |B_m| / N",
})

# %% [markdown]
# ## 4. Five LeNet-5s
#
# The same architecture, trained on the same `TRAIN_SIZE` images for `NUM_EPOCHS` epochs with
# `bt.train.fit` (loss: NLL + KL/$N$ per data point):
#
# * **deterministic**: trained in section 1;
# * **BBB + LRT** (`bt.models.lenet5("bbb")`, lecture 3): a Gaussian $\mathcal N(\mu, \sigma^2)$ per weight,
#   prior $\mathcal N(0, 1)$, pre-activations sampled with the local reparametrization trick (for the
#   convolutions too);
# * **SparseVD** (`"svdo"`, lecture 5): multiplicative Gaussian noise per weight with the log-uniform
#   prior; its KL weight rises from 0 to 1 over the first epochs (a warm-up, as in Molchanov et al.'s recipe);
# * **MC dropout** (`"mcdropout"`, lecture 4): dropout with $p = 0.5$ after the first fully connected
#   layer, kept on when predicting; weight decay $l^2 / ((1-p)N) = 2/N$ plays the $\mathcal N(0, 1)$ prior
#   ($l^2 = 1$, lecture 4's formula, used for every layer for simplicity). The $1/(1-p)$ is there because
#   PyTorch's dropout multiplies the kept units by $1/(1-p)$: the weights the prior sees are the kept
#   columns $M/(1-p)$ (lecture 4, section 3);
# * **SGLD ensemble** (lecture 6): the plain network, sampled with SGLD (prior $\mathcal N(0, 1)$).
#
# The three variational networks first:

# %%
# three LeNet-5 trainings: 2 min in full mode on 2 idle cores (the whole lecture: 4.5 min)
bt.utils.set_seed(SEED)
train("BBB + LRT", bt.models.lenet5("bbb").to(DEVICE))
bt.utils.set_seed(SEED)
train("SparseVD", bt.models.lenet5("svdo").to(DEVICE), kl_weight=bt.objectives.linear_warmup(max(1, NUM_EPOCHS - 1)))
bt.utils.set_seed(SEED)
train("MC dropout", bt.models.lenet5("mcdropout", p=0.5).to(DEVICE), weight_decay=1.0 / ((1 - 0.5) * len(X)))

# %% [markdown]
# SGLD is an optimiser (`bt.sgmcmc.SGLD`) that steps on the full-data negative log posterior $U$:
# $\theta \leftarrow \theta - \mathrm{lr}\,\nabla U + \mathcal N(0, 2\,\mathrm{lr})$. The chain starts at
# the trained plain network, which spares most of the burn-in, and `bt.sgmcmc.SampleCollector` keeps
# `NUM_SAMPLES` evenly spaced states after it. `bt.train.fit` has no hook after each step, so the loop
# is written out; its loss is the same per-data-point loss as the ELBO's, NLL + (negative log prior)/$N$,
# which the sampler multiplies by $N$ itself. So the drift is a gradient step of size $N \cdot \mathrm{lr}$
# on that loss, and the noise has standard deviation $\sqrt{2\,\mathrm{lr}}$ per parameter and step
# (both printed below).

# %%
SGLD_LR = 5e-6
X_device, y_device = X.to(DEVICE), y.to(DEVICE)


def langevin_steps(model, temperature, collector=None):
    """SGLD_STEPS steps of SGLD on the per-data-point loss (temperature 0: the same steps without noise)."""
    sampler = bt.sgmcmc.SGLD(model.parameters(), lr=SGLD_LR, num_data=len(X), temperature=temperature)
    for _ in range(SGLD_STEPS):
        batch = torch.randint(0, len(X), (100,), device=DEVICE)
        neg_log_prior = sum((param**2).sum() for param in model.parameters()) / 2   # N(0, 1) on every parameter
        loss = F.cross_entropy(model(X_device[batch]), y_device[batch]) + neg_log_prior / len(X)
        sampler.zero_grad()
        loss.backward()
        sampler.step()
        if collector is not None:
            collector.step()
    return model


bt.utils.set_seed(SEED)
chain = copy.deepcopy(models["deterministic"]).train()
burn_in = SGLD_STEPS // 4
collector = bt.sgmcmc.SampleCollector(chain, burn_in=burn_in, thin=math.ceil((SGLD_STEPS - burn_in) / NUM_SAMPLES),
                                      max_samples=NUM_SAMPLES)
langevin_steps(chain, temperature=1.0, collector=collector)
models["SGLD ensemble"] = collector.ensemble()
# the control: the same extra steps from the same start, without the noise (one network, not an ensemble)
bt.utils.set_seed(SEED)
extra_steps = langevin_steps(copy.deepcopy(models["deterministic"]).train(), temperature=0.0).eval()
print(f"SGLD: gradient step N * lr = {len(X) * SGLD_LR:.3g}, noise sd {math.sqrt(2 * SGLD_LR):.4f}; "
      f"{SGLD_STEPS} steps, {len(collector.samples)} samples kept (steps {collector.sample_steps})")

# %% [markdown]
# ## 5. Calibration on test digits: one table, five reliability diagrams
#
# Every model predicts the test digits with `bt.predict.mc_predict`: `NUM_SAMPLES` weight samples (or
# dropout masks) for the variational networks, each member once for the SGLD ensemble, one pass for the
# plain network.

# %%
NAMES = ["deterministic", "BBB + LRT", "SparseVD", "MC dropout", "SGLD ensemble"]


def predict_all(model, name):
    """{kind of input: Monte Carlo probabilities}: one pass for the plain network."""
    return {kind: predict(model, images, 1 if name.startswith("deterministic") else NUM_SAMPLES)
            for kind, images in inputs.items()}


predictions = {name: predict_all(models[name], name) for name in NAMES}


def scores(probs):
    """Accuracy, NLL, Brier and ECE of Monte Carlo probabilities on the test digits."""
    return {"accuracy": bt.metrics.accuracy(probs, y_test), "NLL": bt.metrics.nll(probs, y_test),
            "Brier": bt.metrics.brier(probs, y_test), "ECE": bt.metrics.ece(probs, y_test)}


table = {name: scores(predictions[name]["test digits"]) for name in NAMES}
# how precisely TEST_SIZE digits pin the ECE down: its spread over 200 bootstrap resamples of the test digits
resamples = torch.randint(0, len(y_test), (200, len(y_test)), generator=torch.Generator().manual_seed(SEED))
ece_sd = {name: float(torch.tensor([bt.metrics.ece(predictions[name]["test digits"][:, i], y_test[i])
                                    for i in resamples]).std()) for name in NAMES}
print(f"{'model':<15}{'accuracy':>10}{'NLL':>8}{'Brier':>8}{'ECE %':>7}{'(bootstrap sd)':>16}")
for name, row in table.items():
    print(f"{name:<15}{row['accuracy']:>10.4f}{row['NLL']:>8.4f}{row['Brier']:>8.4f}{100 * row['ECE']:>7.2f}"
          f"{100 * ece_sd[name]:>16.2f}")

# %%
fig = bt.viz.plot_reliability_grid({name: predictions[name]["test digits"] for name in NAMES}, y_test,
                                   title="Reliability on the test digits (15 bins)")

# %% [markdown]
# How to read a diagram: each bar is one confidence bin; a bar below the diagonal is a bin where the
# model is more confident than it is accurate (overconfident), a bar above it, underconfident. Bins
# with few inputs (low confidence, on the left) are noisy.
#
# What the table says, checked on its numbers in the next cell: the NLL of the SGLD ensemble is below
# the plain network's (fewer confident mistakes, which the NLL punishes most), and so is that of Bayes by
# Backprop once it has trained on enough images for long enough (full mode; in FAST mode's two short
# epochs its noisy weights may not have caught up). The SGLD chain also trained the network for extra
# steps; the control, the plain network trained for the same extra steps without noise, says how much of
# the gain is training rather than averaging (the printed line says which won in this run: in FAST mode's
# short chain the control can win, and then the ensemble's advantage is no evidence for sampling).
# SparseVD has already removed many of its weights in this short run (its compression ratio is printed
# below) and pays for it in accuracy and NLL: its KL, summed over every weight and divided by only
# `TRAIN_SIZE` images, pulls hard, and lecture 5's recipe trains for far longer. Read the ECE column
# together with its bootstrap standard deviation: with
# `TEST_SIZE` digits, most of them in the top bin (section 1's histogram), a difference of ECE between
# two models smaller than a few of those standard deviations says little.

# %%
nll_plain = table["deterministic"]["NLL"]
nll_extra = bt.metrics.nll(predict(extra_steps, X_test, 1), y_test)
print(f"the plain network after the SGLD run's {SGLD_STEPS} extra steps without noise: NLL {nll_extra:.4f}")
print("the SGLD ensemble beats that control: the averaging helps beyond the extra steps"
      if table["SGLD ensemble"]["NLL"] < nll_extra else
      "the control does at least as well as the SGLD ensemble: here the extra steps, not the averaging, explain "
      "the ensemble's gain over the plain network")
for name in ["BBB + LRT", "SGLD ensemble"]:
    print(f"{name:>14}: NLL {table[name]['NLL']:.4f}, the plain network's {nll_plain:.4f}")
    if name == "SGLD ensemble" or not FAST:
        assert table[name]["NLL"] < nll_plain, \
            f"{name}: NLL {table[name]['NLL']:.4f} is not below the plain network's {nll_plain:.4f}"
num_weights = sum(bt.sparsity.weight_mask(layer).numel()
                  for _, layer in bt.sparsity.prunable_layers(models["SparseVD"]))
print(f"      SparseVD: {num_weights:,} weights, compression {bt.sparsity.compression_ratio(models['SparseVD']):.1f}x"
      f" after {NUM_EPOCHS} epochs on {len(X):,} images; accuracy {table['SparseVD']['accuracy']:.4f}")

# %% [markdown]
# ## 6. Shifted and out-of-distribution inputs: can the uncertainty tell?
#
# An uncertainty score detects unfamiliar inputs if it is larger on them than on test digits (below,
# "out-of-distribution" covers both the shifted digits and the noise).
# The AUROC (`bt.metrics.auroc`) is the probability that a random out-of-distribution input scores
# higher than a random test digit: 1 is a perfect detector, 0.5 is chance. Two scores per model: the
# **total** uncertainty (predictive entropy) and the **epistemic** part alone (mutual information),
# each for rotated digits and for noise against the test digits.

# %%
OOD = ["rotated digits", "noise"]


def ood_aurocs(probs):
    """{"<kind>: entropy" or "<kind>: mutual information": AUROC of that score, <kind> vs the test digits}."""
    u_in = bt.uncertainty.decompose(probs["test digits"])
    out = {}
    for kind in OOD:
        u_out = bt.uncertainty.decompose(probs[kind])
        labels = torch.cat([torch.zeros(len(u_in.total)), torch.ones(len(u_out.total))])
        out[f"{kind}: entropy"] = bt.metrics.auroc(torch.cat([u_in.total, u_out.total]), labels)
        out[f"{kind}: mutual information"] = bt.metrics.auroc(torch.cat([u_in.epistemic, u_out.epistemic]), labels)
    return out


aurocs = {name: ood_aurocs(predictions[name]) for name in NAMES}
print(f"{'AUROC':<15}" + "".join(f"{kind:>28}" for kind in OOD))
print(f"{'':<15}" + f"{'entropy':>14}{'mutual inf.':>14}" * len(OOD))
for name, row in aurocs.items():
    print(f"{name:<15}" + "".join(f"{value:>14.3f}" for value in row.values()))
fig = bt.viz.plot_auroc_bars(aurocs, title="Out-of-distribution detection by entropy and by mutual information")

# %% [markdown]
# What the bars show, checked on the printed numbers in the next cell:
#
# * The plain network's mutual-information bars stand exactly at 0.5: its epistemic term is zero on
#   every input, so it cannot rank anything by it.
# * Every Bayesian network's mutual information does separate noise from digits: its AUROC is well
#   above chance (asserted in full mode; FAST mode's two short epochs are too few for some of them).
# * Honestly, though, the mutual information alone is **not** the better detector on these inputs: on
#   average over the four Bayesian networks the total entropy does better, on both kinds. The entropy
#   contains the mutual information, and the softmax alone already spreads out on many of these inputs
#   (section 1: the plain network is less sure of noise than of digits). Rotated digits are the hard
#   case for every score: many still look like some digit (a turned 0 is still a 0), and there a
#   confident answer is not a mistake of the uncertainty.

# %%
bayesian = NAMES[1:]
for kind in OOD:
    assert aurocs["deterministic"][f"{kind}: mutual information"] == 0.5, "a single network has no epistemic term"
    entropy_mean = sum(aurocs[name][f"{kind}: entropy"] for name in bayesian) / len(bayesian)
    mi_mean = sum(aurocs[name][f"{kind}: mutual information"] for name in bayesian) / len(bayesian)
    print(f"{kind}: mean AUROC of the four Bayesian networks, entropy {entropy_mean:.3f}, mutual information "
          f"{mi_mean:.3f}; the plain network's entropy {aurocs['deterministic'][f'{kind}: entropy']:.3f}")
    assert entropy_mean > mi_mean, f"{kind}: entropy {entropy_mean:.3f} vs mutual information {mi_mean:.3f}"
worst = min(bayesian, key=lambda name: aurocs[name]["noise: mutual information"])
print(f"lowest mutual-information AUROC on noise: {worst}, {aurocs[worst]['noise: mutual information']:.3f}")
if not FAST:  # two short epochs on 2,000 images (FAST) leave some networks' samples nearly identical
    assert aurocs[worst]["noise: mutual information"] > 0.6, \
        f"{worst}: mutual information separates noise only at AUROC {aurocs[worst]['noise: mutual information']:.3f}"

# %% [markdown]
# The histograms behind the noise bars: the plain network's mutual information is one spike at zero for
# both kinds of input; for the Bayesian networks the noise images (orange) sit to the right of the test
# digits (blue): their samples disagree more about noise. Note the scales, different for each network
# and all far below the largest possible value, $\log 10$ nats: the AUROC looks only at how the score
# *ranks* the inputs, not at its size.

# %%
fig = bt.viz.plot_uncertainty_hists({name: predictions[name]["test digits"] for name in NAMES},
                                    {name: predictions[name]["noise"] for name in NAMES}, kind="epistemic",
                                    title="Mutual information on test digits and on noise",
                                    labels=("test digits", "noise"))

# %% [markdown]
# ### Check yourself
#
# Why is the AUROC of the plain network's mutual information exactly 0.5, on both kinds of input?

# %%
answer = None
bt.selfcheck.choice(answer, expected="its epistemic term is zero on every input, so every score ties", options=[
    "it is overconfident on out-of-distribution inputs",
    "its epistemic term is zero on every input, so every score ties",
    "it was trained for too few epochs",
], explanations={
    "it is overconfident on out-of-distribution inputs": "that lowers its entropy on them, but the mutual "
                                                         "information does not look at confidence",
    "its epistemic term is zero on every input, so every score ties": "one sample cannot disagree with itself; "
                                                                      "ties count one half in the AUROC",
    "it was trained for too few epochs": "no amount of training gives one network a second opinion",
})

# %% [markdown]
# ## 7. Making a trained network Bayesian: `bt.nn.bayesianize`
#
# Often a plain network is already trained. `bt.nn.bayesianize(model, "bbb")` swaps each `nn.Conv2d`
# and `nn.Linear` for a `BayesConv2d`/`BayesLinear` whose posterior means $\mu$ **are** the trained
# weights and whose $\sigma = \operatorname{softplus}(\rho)$ starts small (the layers' default
# $\rho = -5$, $\sigma \approx 0.0067$). In eval mode (the posterior mean) it is the same function as before:

# %%
bayesianized = bt.nn.bayesianize(copy.deepcopy(models["deterministic"]), "bbb").to(DEVICE)
with torch.no_grad():
    before = models["deterministic"].eval()(X_test.to(DEVICE))
    after = bayesianized.eval()(X_test.to(DEVICE))
print(f"largest difference of the logits, plain vs bayesianized posterior mean: "
      f"{float((before - after).abs().max()):.1e}")
torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)

# %% [markdown]
# Then fine-tune it on the ELBO for one epoch, so that each $\sigma$ learns how far its weight may move.
# The fair comparison is the plain network trained for the same one more epoch:

# %%
train("bayesianized + 1 epoch", bayesianized, num_epochs=1)
train("deterministic + 1 epoch", copy.deepcopy(models["deterministic"]), num_epochs=1)
COMPARE = ["deterministic", "deterministic + 1 epoch", "bayesianized + 1 epoch", "BBB + LRT"]
for name in COMPARE[1:3]:
    predictions[name] = predict_all(models[name], name)
    table[name], aurocs[name] = scores(predictions[name]["test digits"]), ood_aurocs(predictions[name])
epochs = {"deterministic": NUM_EPOCHS, "deterministic + 1 epoch": NUM_EPOCHS + 1,
          "bayesianized + 1 epoch": NUM_EPOCHS + 1, "BBB + LRT": NUM_EPOCHS}
print(f"{'model':<24}{'epochs':>7}{'accuracy':>10}{'NLL':>8}{'ECE %':>7}{'MI AUROC rotated':>18}{'MI AUROC noise':>16}")
for name in COMPARE:
    row, auc = table[name], aurocs[name]
    print(f"{name:<24}{epochs[name]:>7}{row['accuracy']:>10.4f}{row['NLL']:>8.4f}{100 * row['ECE']:>7.2f}"
          f"{auc['rotated digits: mutual information']:>18.3f}{auc['noise: mutual information']:>16.3f}")
fig = bt.viz.plot_auroc_bars({name: aurocs[name] for name in COMPARE},
                             title="What one epoch of Bayesian fine-tuning adds")

# %% [markdown]
# What the one epoch bought, checked below: an epistemic term that separates rotated digits and noise
# from test digits, where the plain network, trained for the same extra epoch, still has none; and
# this at the plain network's accuracy. What it did not buy: the NLL moves little either way, since
# the $\sigma$'s are still small after one epoch and the predictive is close to the plain network's.
# Bayes by Backprop trained from scratch (last row) gets the same kind of detector, but needs
# `NUM_EPOCHS` epochs of the more expensive Bayesian training rather than one epoch on top of a
# network you already have.

# %%
gained = {kind: aurocs["bayesianized + 1 epoch"][f"{kind}: mutual information"] for kind in OOD}
accuracy_gap = table["bayesianized + 1 epoch"]["accuracy"] - table["deterministic + 1 epoch"]["accuracy"]
nll_change = table["bayesianized + 1 epoch"]["NLL"] / table["deterministic + 1 epoch"]["NLL"] - 1
print(f"mutual-information AUROC after bayesianizing: rotated {gained['rotated digits']:.3f}, "
      f"noise {gained['noise']:.3f} (plain network: 0.5); accuracy {100 * accuracy_gap:+.2f} points, "
      f"NLL {100 * nll_change:+.1f} % against the plain network's extra epoch")
assert all(aurocs["deterministic + 1 epoch"][f"{kind}: mutual information"] == 0.5 for kind in OOD)
assert min(gained.values()) > 0.6, f"the bayesianized network's mutual information: AUROC {gained}"
assert abs(accuracy_gap) < 0.02 and abs(nll_change) < 0.2, (accuracy_gap, nll_change)

# %% [markdown]
# ## Summary
#
# * The predictive entropy splits exactly into **aleatoric** (the samples' mean entropy) and
#   **epistemic** (their mutual information with the label, the mean KL to the average) uncertainty;
#   checked by hand against `bt.uncertainty.decompose`. One network has no epistemic term at all.
# * **Calibration**: NLL, Brier and ECE $= \sum_m \frac{|B_m|}{N}|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)|$
#   (checked against `bt.metrics`); on test digits averaging over weights lowered the NLL of Bayes by
#   Backprop and of the SGLD ensemble below the plain network's, while short-trained SparseVD traded
#   accuracy for compression.
# * **Out of distribution**: the plain network is confidently wrong on many rotated digits. Every
#   Bayesian LeNet-5's mutual information separates noise from digits, which the plain network's
#   cannot; as a single detector, though, the total entropy did better here. The mutual information's
#   value is that it says *why* a prediction is uncertain: the model has not seen such inputs.
# * `bt.nn.bayesianize` turns a trained network into the posterior mean of a Bayesian one; one epoch of
#   fine-tuning on the ELBO gave it an epistemic term at the same accuracy.
#
# ## References
#
# * C. Blundell, J. Cornebise, K. Kavukcuoglu, D. Wierstra. *Weight Uncertainty in Neural Networks*. ICML 2015.
# * D. Kingma, T. Salimans, M. Welling. *Variational Dropout and the Local Reparameterization Trick*. NeurIPS 2015.
# * Y. Gal, Z. Ghahramani. *Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep
#   Learning*. ICML 2016.
# * D. Molchanov, A. Ashukha, D. Vetrov. *Variational Dropout Sparsifies Deep Neural Networks*. ICML 2017.
# * M. Welling, Y. W. Teh. *Bayesian Learning via Stochastic Gradient Langevin Dynamics*. ICML 2011.
# * C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger. *On Calibration of Modern Neural Networks*. ICML 2017.
# * N. Houlsby, F. Huszár, Z. Ghahramani, M. Lengyel. *Bayesian Active Learning for Classification and
#   Preference Learning*. 2011. [arXiv:1112.5745](https://arxiv.org/abs/1112.5745) (the mutual information
#   between the label and the weights as a score).
# * S. Depeweg, J. M. Hernández-Lobato, F. Doshi-Velez, S. Udluft. *Decomposition of Uncertainty in
#   Bayesian Deep Learning for Efficient and Risk-sensitive Learning*. ICML 2018 (the split of the
#   predictive entropy into aleatoric and epistemic parts).
