# %% [markdown]
# # L01 · Why Bayesian?
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L01_why_bayesian.ipynb)
#
# **The question.** Five networks trained on the same two moons, from five random starts, all fit the
# data. Asked about a point far from both moons, do they agree? If not, their disagreement is
# information that a single network throws away. This lecture turns that disagreement into a number,
# the *epistemic* uncertainty, and separates it from the *aleatoric* uncertainty of noisy data.

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
from torch import nn

import bnn_teach as bt

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer epochs, the same code
NUM_EPOCHS = 100 if FAST else 300
NUM_MEMBERS = 5
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: a deep ensemble on two moons
#
# `make_net` builds one small classifier; we train `NUM_MEMBERS` of them from different seeds and
# let `bt.sgmcmc.SampleEnsemble.from_models` predict with all of them at once.

# %%
X, y = bt.data.two_moons(200, noise=0.1, seed=SEED)


def make_net():
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))


members = []
for seed in range(NUM_MEMBERS):
    bt.utils.set_seed(seed)
    net = make_net()
    bt.train.fit(net, (X, y), NUM_EPOCHS, torch.optim.Adam(net.parameters(), lr=1e-2), batch_size=50, progress=False)
    members.append(net)
ensemble = bt.sgmcmc.SampleEnsemble.from_models(members)
fig = bt.viz.plot_uncertainty_map(ensemble, X, y, kind="epistemic")

# %% [markdown]
# Dark means the members agree; bright means they disagree. They agree on and near the moons, where
# every member had to fit the data. Away from the data each member extends its boundary its own way,
# so they disagree where those extensions differ: in bands that run outward from the gap between the
# moons. Far from the data but off those bands they agree again, and confidently: a ReLU network's
# logits grow linearly along every ray from the data, so far away each member becomes certain
# (Hein et al. 2019), and members whose boundaries point the same way agree. Far from the data is not
# the same as uncertain. The next cell measures the picture: the map's values near the training points,
# far from them, and how much of the far region is bright.

# %%
xs, ys, epistemic_map = bt.viz.uncertainty_grid(ensemble, X, kind="epistemic")
grid_points = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
distance = torch.cdist(grid_points, X).min(dim=1).values  # to the nearest training point
near, far = distance < 0.15, distance > 0.6
epistemic_near = float(epistemic_map.reshape(-1)[near].mean())
epistemic_far = float(epistemic_map.reshape(-1)[far].mean())
print(f"mean epistemic uncertainty: {epistemic_near:.4f} nats near the data, {epistemic_far:.4f} nats far from it")
far_values = epistemic_map.reshape(-1)[far]
bright = float((far_values > 0.5 * far_values.max()).float().mean())
quiet = float((far_values < 3 * epistemic_near).float().mean())
print(f"of the far region, {100 * bright:.0f} % is bright (over half the map's far maximum) and {100 * quiet:.0f} % "
      f"is as quiet as near the data (under 3x its mean)")
assert epistemic_far > 3 * epistemic_near, "the members should disagree far more away from the data"
assert bright < 0.5 and quiet > 0.1, "the disagreement far away lies in bands, not everywhere"

# %% [markdown]
# ## 2. The posterior predictive is an average
#
# Bayes' rule turns a prior $p(w)$ and the likelihood of the data $\mathcal D$ into a posterior
# $p(w \mid \mathcal D) \propto p(\mathcal D \mid w)\, p(w)$. A prediction does not pick one $w$; it
# averages over all of them:
#
# $$p(y \mid x, \mathcal D) = \int p(y \mid x, w)\, p(w \mid \mathcal D)\, dw
#   \;\approx\; \frac1S \sum_{s=1}^S p(y \mid x, w_s), \qquad w_s \sim q(w) \approx p(w \mid \mathcal D).$$
#
# A deep ensemble takes $q$ to be $S$ point masses, one per trained network. Bayes by Backprop (lecture 3)
# takes $q$ to be a Gaussian over every weight, $q(w) = \mathcal N(\mu, \sigma^2)$, and draws fresh $w_s$
# for every prediction. `bt.predict.mc_predict(model, X, num_samples)` returns the $S$ terms of the sum,
# shape `(S, N, classes)`. We train such a network on the same moons and check the sum by hand.

# %%
bt.utils.set_seed(SEED)
bayes_net = nn.Sequential(bt.nn.BayesLinear(2, 32), nn.ReLU(), bt.nn.BayesLinear(32, 32), nn.ReLU(),
                          bt.nn.BayesLinear(32, 2))
history = bt.train.fit(bayes_net, (X, y), NUM_EPOCHS, torch.optim.Adam(bayes_net.parameters(), lr=1e-2),
                       batch_size=50, progress=False)
print(f"final training accuracy {history[-1]['train_acc']:.3f}")

# %%
corner = torch.tensor([[2.5, 2.0]])  # a point far from both moons
torch.manual_seed(1)
probs = bt.predict.mc_predict(bayes_net, corner, num_samples=200)  # (200, 1, 2)
torch.manual_seed(1)
with bt.nn.sampling(bayes_net):  # eval mode, but every Bayesian layer draws new weights
    by_hand = torch.stack([torch.softmax(bayes_net(corner), dim=-1) for _ in range(200)])
torch.testing.assert_close(probs, by_hand)
print(f"p(class 1 | corner) = {probs.mean(0)[0, 1]:.3f} averaged over 200 weight samples")

# %% [markdown]
# The average is a Monte Carlo estimate, so it has an error that shrinks like $1/\sqrt S$. Measured:
# repeat the estimate 50 times with $S = 10$ and with $S = 100$ and compare the spreads.

# %%
def spread_of_estimate(num_samples, repeats=50):
    estimates = [bt.predict.mc_predict(bayes_net, corner, num_samples)[:, 0, 1].mean() for _ in range(repeats)]
    return float(torch.stack(estimates).std())


spread_10, spread_100 = spread_of_estimate(10), spread_of_estimate(100)
print(f"spread of the estimate: {spread_10:.4f} with S = 10, {spread_100:.4f} with S = 100 "
      f"(ratio {spread_10 / spread_100:.2f}; 1/sqrt(S) predicts {math.sqrt(10):.2f})")

# %% [markdown]
# ## 3. Aleatoric and epistemic uncertainty
#
# Two different things make a prediction uncertain:
#
# * **aleatoric**: the data are noisy; even the true $w$ would not predict $y$ exactly. It lives in
#   $p(y \mid x, w)$ and stays however much data we collect.
# * **epistemic**: we do not know $w$; it lives in $p(w \mid \mathcal D)$ and shrinks with data.
#
# For regression, a network that predicts a mean $m_w(x)$ and a noise variance $s_w(x)$ gives, by the
# law of total variance,
#
# $$\operatorname{Var}[y \mid x, \mathcal D]
#   = \underbrace{\mathbb E_{w}\,[s_w(x)]}_{\text{aleatoric}}
#   + \underbrace{\operatorname{Var}_{w}[m_w(x)]}_{\text{epistemic}}.$$
#
# The 1-D data set has noise whose standard deviation grows with $|x|$ ($0.05 + 0.1|x|$) and no data
# in $(-1, 1)$. The network below has two outputs, $m$ and $\log s$, and `bt.objectives.gaussian_nll`
# is its likelihood. Its layers sample whole weight matrices (`local_reparam=False`), so each sample
# is one smooth function. As in lecture 0 the KL term is weighted by 0.2 (`kl_weight=0.2`): a tempered
# posterior, in which the 200 points count five times against the prior.

# %%
X_reg, y_reg = bt.data.regression_1d(200, seed=SEED)
bt.utils.set_seed(SEED)
layer = dict(local_reparam=False, prior=bt.priors.GaussianPrior(1.0))
regressor = nn.Sequential(bt.nn.BayesLinear(1, 32, **layer), nn.ReLU(), bt.nn.BayesLinear(32, 32, **layer), nn.ReLU(),
                          bt.nn.BayesLinear(32, 2, **layer))
bt.train.fit(regressor, (X_reg, y_reg), 2 * NUM_EPOCHS, torch.optim.Adam(regressor.parameters(), lr=1e-2),
             batch_size=32, kl_weight=0.2, nll_fn=bt.objectives.gaussian_nll, progress=False)
x_grid = torch.linspace(-8, 8, 240).unsqueeze(1)
prediction = bt.predict.predictive_regression(regressor, x_grid, num_samples=100)
fig = bt.viz.plot_regression_bands(x_grid, prediction, X_reg, y_reg,
                                   title="Heteroscedastic 1-D regression: aleatoric and epistemic bands")

# %% [markdown]
# `predictive_regression` returns the two terms of the sum separately. Check it by hand: draw the same
# 100 weight samples yourself (the same seed), read off each sample's mean $m_{w_s}(x)$ and noise variance
# $s_{w_s}(x) = e^{\log s}$, and form the two terms of the formula. Then read the lesson off the numbers:
# the aleatoric part follows the true noise, the epistemic part grows off the data.

# %%
bt.utils.set_seed(1)
prediction = bt.predict.predictive_regression(regressor, x_grid, num_samples=100)
bt.utils.set_seed(1)
with torch.no_grad(), bt.nn.sampling(regressor):
    outputs = torch.stack([regressor(x_grid) for _ in range(100)])  # (100 samples, 240 points, 2)
m, s = outputs[..., 0], outputs[..., 1].exp()
torch.testing.assert_close(prediction["aleatoric"], s.mean(0))                       # E_w[s_w(x)]
torch.testing.assert_close(prediction["epistemic"], ((m - m.mean(0)) ** 2).mean(0))  # Var_w[m_w(x)]
torch.testing.assert_close(prediction["var"], s.mean(0) + ((m - m.mean(0)) ** 2).mean(0))

x = x_grid[:, 0]
true_sd = bt.data.regression_1d_truth(x)[1]
for lo, hi in [(1.0, 1.5), (3.5, 4.0)]:
    region = (x.abs() >= lo) & (x.abs() <= hi)
    print(f"|x| in [{lo}, {hi}]: learnt aleatoric sd {prediction['aleatoric'][region].sqrt().mean():.3f}, "
          f"true noise sd {true_sd[region].mean():.3f}")
on_data, beyond = (x.abs() >= 1) & (x.abs() <= 4), x.abs() >= 6
epistemic_ratio = float(prediction["epistemic"][beyond].sqrt().mean() / prediction["epistemic"][on_data].sqrt().mean())
print(f"the epistemic sd is {epistemic_ratio:.1f}x larger beyond |x| = 6 than on the data")
edge, middle = (x.abs() >= 3.5) & (x.abs() <= 4), (x.abs() >= 1) & (x.abs() <= 1.5)
assert prediction["aleatoric"][edge].mean() > 2 * prediction["aleatoric"][middle].mean(), "noise grows with |x|"
assert epistemic_ratio > 3

# %% [markdown]
# ## 4. The same split for classification: entropy
#
# For a classifier the spread is measured by entropy, $\mathbb H[p] = -\sum_c p_c \log p_c$ (in nats).
# With $\bar p = \frac1S\sum_s p_s$ the averaged prediction,
#
# $$\underbrace{\mathbb H[\bar p]}_{\text{total}}
#   = \underbrace{\frac1S \sum_s \mathbb H[p_s]}_{\text{aleatoric: expected entropy}}
#   + \underbrace{\mathbb H[\bar p] - \frac1S \sum_s \mathbb H[p_s]}_{\text{epistemic: mutual information } I(y; w)}.$$
#
# The last term is the mutual information between the label and the weights: how much knowing $w$
# would tell us about $y$. It is $\ge 0$ because entropy is concave, and it is zero exactly when all
# samples agree. Two extreme cases, computed by hand and with `bt.uncertainty.decompose`:

# %%
agree = torch.tensor([[[0.5, 0.5]], [[0.5, 0.5]]])      # (S=2, N=1, classes=2): both unsure
disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])   # both sure, of different classes

for name, probs_case in [("agree, unsure", agree), ("disagree, sure", disagree)]:
    p_bar = probs_case.mean(0)
    total = -(p_bar * p_bar.clamp_min(1e-12).log()).sum(-1)  # clamp: 0 log 0 = 0
    aleatoric = -(probs_case * probs_case.clamp_min(1e-12).log()).sum(-1).mean(0)
    u = bt.uncertainty.decompose(probs_case)
    torch.testing.assert_close(u.total, total)
    torch.testing.assert_close(u.aleatoric, aleatoric)
    torch.testing.assert_close(u.epistemic, total - aleatoric)
    print(f"{name:>15}: total {float(u.total):.4f}, aleatoric {float(u.aleatoric):.4f}, "
          f"epistemic {float(u.epistemic):.4f} nats")

# %% [markdown]
# Both cases have the same total, $\log 2$: a single network's softmax could not tell them apart.
#
# ### Check yourself
#
# Two weight samples predict $p_1 = (0.9, 0.1)$ and $p_2 = (0.1, 0.9)$. Compute, by hand or in a
# scratch cell, the **epistemic** uncertainty (mutual information) in nats, and replace `None`.

# %%
answer = None
entropy = bt.uncertainty.entropy
p_1, p_2 = torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.9])
bt.selfcheck.number(answer, expected=float(entropy((p_1 + p_2) / 2) - (entropy(p_1) + entropy(p_2)) / 2), rtol=0.02,
                    mistakes={math.log(2): "that is the total entropy; subtract the expected entropy of the samples",
                              float(entropy(p_1)): "that is the expected entropy (aleatoric); the question asks "
                                                   "for what is left",
                              (math.log(2) - float(entropy(p_1))) / math.log(2): "that is in bits; the course uses "
                                                                                 "nats (natural logarithms)"})

# %% [markdown]
# ## 5. Both kinds on the moons
#
# The ensemble's **aleatoric** map is bright where the moons touch: there each member is unsure,
# because the classes overlap. Its **epistemic** map (the picture at the top) is bright where the
# members disagree. The share of the total that is epistemic says which kind dominates where.

# %%
fig = bt.viz.plot_uncertainty_map(ensemble, X, y, kind="aleatoric")

# %%
_, _, total_map = bt.viz.uncertainty_grid(ensemble, X, kind="total")
share = (epistemic_map / total_map.clamp_min(1e-6)).reshape(-1)
share_near, share_far = float(share[near].mean()), float(share[far].mean())
in_bands = far_values > 0.5 * far_values.max()  # the bright bands of the far region (section 1)
share_bands = float(share[far][in_bands].mean())
print(f"epistemic share of the total uncertainty: {share_near:.2f} near the data, {share_far:.2f} far from it on "
      f"average, {share_bands:.2f} in the far region's bright bands")
assert share_bands > 0.5 and share_bands > share_far > share_near

# %% [markdown]
# Read the three shares. Near the data almost all of the uncertainty is aleatoric: the members agree,
# and what is left is the overlap of the classes. Averaged over the whole far region the epistemic share
# is still small, because most of that region is quiet (section 1). In the bands where the members
# disagree, epistemic uncertainty is most of the total. The question to ask of a point is not only how
# far it is from the data, but whether the plausible models extrapolate differently there.

# %% [markdown]
# ### Check yourself
#
# A point lies far from both moons; every member of the ensemble is confident, but they split between
# the classes. Which part of the uncertainty is large there?

# %%
answer = None
bt.selfcheck.choice(answer, expected="epistemic", options=["aleatoric", "epistemic", "neither"], explanations={
    "aleatoric": "each member is confident, so the expected entropy of the members is small",
    "epistemic": "confident members that disagree: large mutual information between the label and the weights",
    "neither": "the averaged prediction is close to 50/50, so the total entropy is large",
})

# %% [markdown]
# ## Summary
#
# * The posterior predictive averages the predictions of many weights; `bt.predict.mc_predict` returns
#   the samples of that average, whose Monte Carlo error falls like $1/\sqrt S$ (measured above).
# * A deep ensemble and a Bayes-by-Backprop network are two ways to get those samples; both are unsure
#   away from the data where their extrapolations differ (the ensemble's disagreement far from the moons,
#   measured above), but not everywhere far away: ReLU networks become confident along most rays.
# * Predictive uncertainty splits into **aleatoric** (noise in the data: the expected variance or
#   expected entropy) and **epistemic** (disagreement between weights: the variance of the means or the
#   mutual information). `bt.predict.predictive_regression` and `bt.uncertainty.decompose` compute both.
#
# ## References
#
# * B. Lakshminarayanan, A. Pritzel, C. Blundell. *Simple and Scalable Predictive Uncertainty Estimation
#   using Deep Ensembles*. NeurIPS 2017.
# * A. Kendall, Y. Gal. *What Uncertainties Do We Need in Bayesian Deep Learning for Computer Vision?* NeurIPS 2017.
# * S. Depeweg, J. M. Hernández-Lobato, F. Doshi-Velez, S. Udluft. *Decomposition of Uncertainty in
#   Bayesian Deep Learning for Efficient and Risk-sensitive Learning*. ICML 2018.
# * M. Hein, M. Andriushchenko, J. Bitterwolf. *Why ReLU Networks Yield High-Confidence Predictions Far
#   Away From the Training Data and How to Mitigate the Problem*. CVPR 2019.
#   [arXiv:1812.05720](https://arxiv.org/abs/1812.05720)
# * K. Shridhar, F. Laumann, M. Liwicki. *A Comprehensive Guide to Bayesian Convolutional Neural Network
#   with Variational Inference*. 2019. [arXiv:1901.02731](https://arxiv.org/abs/1901.02731)
