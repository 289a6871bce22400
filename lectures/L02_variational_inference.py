# %% [markdown]
# # L02 · Variational inference
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L02_variational_inference.ipynb)
#
# **The question.** The posterior of a network is a distribution over millions of weights that we
# cannot write down. Variational inference picks a simple family, here Gaussians, and finds its
# member closest to the posterior. But "closest" depends on which way round we measure: the
# picture below fits one Gaussian to a two-humped target in the two directions of the
# Kullback–Leibler divergence, and gets two very different answers.

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
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import bnn_teach as bt

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer steps and samples, the same code
NUM_EPOCHS = 100 if FAST else 400
NUM_MC = 20_000 if FAST else 200_000  # Monte Carlo samples for the ELBO checks
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: two directions of the KL divergence
#
# **Notation.** In this section $p$ is the *target*: any density we want to approximate (in variational
# inference it will be the posterior). From section 2 on, $p$ is always written with its argument: $p(w)$
# the prior, $p(\mathcal D \mid w)$ the likelihood, $p(w \mid \mathcal D)$ the posterior.

# %%
target = bt.vi.mixture_target(means=(-2.0, 2.0), stds=(0.6, 0.6))
fits = {
    "KL(q || p), started at +0.5": bt.vi.fit_gaussian(target, "reverse", init_mean=0.5),
    "KL(q || p), started at -0.5": bt.vi.fit_gaussian(target, "reverse", init_mean=-0.5),
    "KL(p || q)": bt.vi.fit_gaussian(target, "forward"),
}
fig = bt.viz.plot_gaussian_fits(target, fits)
for label, (mean, std) in fits.items():
    print(f"{label:<28} mean {mean:+.3f}  std {std:.3f}")

# %% [markdown]
# $$\mathrm{KL}(q\,\|\,p) = \mathbb E_{q}\Big[\log \frac{q(w)}{p(w)}\Big], \qquad
#   \mathrm{KL}(p\,\|\,q) = \mathbb E_{p}\Big[\log \frac{p(w)}{q(w)}\Big].$$
#
# * **$\mathrm{KL}(q\|p)$ is mode-seeking.** Its expectation is under $q$: wherever $q$ puts mass and
#   $p$ has little, $\log q/p$ is huge. So $q$ hides inside one hump; which one depends on the start.
# * **$\mathrm{KL}(p\|q)$ is mass-covering.** Its expectation is under $p$: wherever $p$ has mass and
#   $q$ has little, the penalty is huge. So $q$ stretches over both humps and puts its peak where
#   $p$ has almost nothing. Its minimiser matches the target's mean and variance (set the derivatives of
#   $-\mathbb E_p[\log q]$ in $m$ and $s$ to zero); the fit above was not told this: it started at mean 0.5
#   and sd 0.5 and minimised a sampled estimate of $\mathrm{KL}(p\|q)$.
#
# The numbers printed above say the same; the cell below asserts it, the mass-covering fit against the
# mixture's moments computed by hand.

# %%
(m_right, s_right), (m_left, s_left), (m_cover, s_cover) = fits.values()
assert abs(m_right - 2) < 0.1 and abs(m_left + 2) < 0.1, "each reverse fit sits on the hump it started near"
assert abs(s_right - 0.6) < 0.05, "and has that hump's width"
# moment matching: the mixture's variance is E[std² + mean²] - (E[mean])² over its two humps
mixture_variance = 0.5 * (0.6**2 + (-2.0) ** 2) + 0.5 * (0.6**2 + 2.0**2) - (0.5 * -2.0 + 0.5 * 2.0) ** 2
assert abs(m_cover) < 0.05 and abs(s_cover - math.sqrt(mixture_variance)) < 0.05, (m_cover, s_cover)
print(f"the mass-covering fit is {s_cover / s_right:.1f}x wider than a mode-seeking one")

# %% [markdown]
# Variational inference uses $\mathrm{KL}(q\|p)$, because its expectation is under $q$, which we can
# sample, while the target (the posterior) is what we cannot. It also needs $p$ only up to its normaliser: with
# $p = \tilde p / Z$, $\mathrm{KL}(q\|p) = \mathbb E_q[\log q - \log \tilde p] + \log Z$, and $\log Z$ does
# not depend on $q$, so it drops out of the minimisation (for a posterior, $Z = p(\mathcal D)$, the one
# number we cannot compute). Expect Bayesian networks trained this way to be
# somewhat *over-confident*: $q$ sits inside one region of the posterior.
#
# ### Check yourself
#
# Which divergence, minimised over Gaussians $q$, gives the fit that covers both humps?

# %%
answer = None
bt.selfcheck.choice(answer, expected="KL(p || q)", options=["KL(q || p)", "KL(p || q)"], explanations={
    "KL(q || p)": "its expectation is under q: q is punished for mass where p has none, so it hides in one hump",
    "KL(p || q)": "its expectation is under p: q is punished for missing any of p's mass, so it covers both",
})

# %% [markdown]
# ## 2. The ELBO
#
# For weights $w$, prior $p(w)$ and data $\mathcal D$, for any $q$:
#
# $$\log p(\mathcal D)
#   = \underbrace{\mathbb E_{q}[\log p(\mathcal D \mid w)] - \mathrm{KL}(q(w)\,\|\,p(w))}_{\text{ELBO}(q)}
#   + \mathrm{KL}\big(q(w)\,\|\,p(w \mid \mathcal D)\big).$$
#
# (Write $\log p(\mathcal D) = \mathbb E_q[\log p(\mathcal D, w) - \log p(w \mid \mathcal D)]$ and add and
# subtract $\log q$.) The last term is $\ge 0$, so the ELBO is a lower bound on the evidence, and
# maximising it over $q$ is the same as minimising $\mathrm{KL}(q\|\text{posterior})$, the mode-seeking
# direction above, without ever computing the posterior.
#
# **Check it numerically** on Bayesian linear regression, $y = Xw + \varepsilon$,
# $\varepsilon \sim \mathcal N(0, \sigma^2)$, $w \sim \mathcal N(0, \sigma_p^2 I)$, where everything is
# known in closed form: the posterior (`bt.vi.linear_regression_posterior`) and the evidence
# $p(\mathcal D) = \mathcal N(y;\, 0,\, \sigma^2 I + \sigma_p^2 X X^\top)$. The features are correlated,
# so the posterior is not factorised.

# %%
NOISE_VAR, PRIOR_SIGMA, N, P = 1.0, 1.0, 30, 2
g = torch.Generator().manual_seed(SEED)
X = torch.randn(N, P, generator=g, dtype=torch.float64) @ torch.tensor([[1.0, 0.8], [0.0, 0.6]], dtype=torch.float64)
w_true = torch.tensor([1.0, -0.5], dtype=torch.float64)
y = X @ w_true + math.sqrt(NOISE_VAR) * torch.randn(N, generator=g, dtype=torch.float64)

m, Sigma, Lambda = bt.vi.linear_regression_posterior(X, y, NOISE_VAR, PRIOR_SIGMA)
log_evidence = MultivariateNormal(torch.zeros(N, dtype=torch.float64),
                                  NOISE_VAR * torch.eye(N, dtype=torch.float64) + PRIOR_SIGMA**2 * X @ X.T).log_prob(y)
print(f"log p(D) = {log_evidence:.4f}")

# %% [markdown]
# The ELBO of a Gaussian $q$ by Monte Carlo: the expected log-likelihood from samples $w \sim q$, and
# the KL to the prior. For the fully factorised $q$ we use the library's elementwise formula
# `bt.kl.normal_normal`, summed over the weights; the cell checks it against `torch.distributions` first.

# %%
def expected_log_likelihood(q, num_samples):
    """The Monte Carlo estimate of E_q[log p(D | w)] and its standard error."""
    w = q.sample((num_samples,))                                        # (S, P)
    log_lik = Normal(w @ X.T, math.sqrt(NOISE_VAR)).log_prob(y).sum(-1)  # (S,): log p(D | w_s)
    return log_lik.mean(), log_lik.std() / math.sqrt(num_samples)


prior = Normal(torch.zeros(P, dtype=torch.float64), PRIOR_SIGMA)
mean_field_sd = Lambda.diagonal().rsqrt()  # the best factorised q: the posterior mean, sd 1 / sqrt(Lambda_ii)
q_mean_field = Normal(m, mean_field_sd)
kl_prior = bt.kl.normal_normal(m, mean_field_sd, torch.zeros(P, dtype=torch.float64),
                               torch.full((P,), PRIOR_SIGMA, dtype=torch.float64)).sum()
torch.testing.assert_close(kl_prior, kl_divergence(q_mean_field, prior).sum())

torch.manual_seed(SEED)
log_lik, standard_error = expected_log_likelihood(q_mean_field, NUM_MC)
elbo_mean_field = log_lik - kl_prior
gap = kl_divergence(MultivariateNormal(m, torch.diag(mean_field_sd**2)), MultivariateNormal(m, Sigma))
print(f"ELBO(mean-field q) = {elbo_mean_field:.4f} ± {standard_error:.4f};  "
      f"ELBO + KL(q || posterior) = {elbo_mean_field + gap:.4f};  log p(D) = {log_evidence:.4f}")
assert abs(elbo_mean_field + gap - log_evidence) < 4 * standard_error, "within 4 Monte Carlo standard errors"

q_exact = MultivariateNormal(m, Sigma)
log_lik, standard_error = expected_log_likelihood(q_exact, NUM_MC)
elbo_exact = log_lik - kl_divergence(q_exact, MultivariateNormal(
    torch.zeros(P, dtype=torch.float64), PRIOR_SIGMA**2 * torch.eye(P, dtype=torch.float64)))
print(f"ELBO(exact posterior) = {elbo_exact:.4f} ± {standard_error:.4f}: the bound is tight")
assert abs(elbo_exact - log_evidence) < 4 * standard_error

# %% [markdown]
# The identity holds to Monte Carlo precision, the bound is tight at the posterior, and the
# factorised $q$ loses exactly $\mathrm{KL}(q\|\text{posterior})$, printed below, because it cannot
# represent the correlation of the two weights. Its standard deviations are *narrower* than the
# posterior's marginals: mean-field VI is over-confident here, as section 1 predicted.

# %%
print(f"KL(mean-field q || posterior) = {gap:.4f} nats")
print(f"posterior marginal sd {Sigma.diagonal().sqrt().tolist()}, mean-field sd {mean_field_sd.tolist()}")
assert (mean_field_sd < Sigma.diagonal().sqrt()).all()

# %% [markdown]
# ## 3. Doubly stochastic VI, and why the course divides the ELBO by $N$
#
# For a network the ELBO has no closed form, so its gradient is estimated twice over: a **mini-batch**
# of $B$ of the $N$ points stands for the whole likelihood, and **one sample** $w \sim q$ stands for the
# expectation. Divided by $N$, the loss the course minimises everywhere is
#
# $$\mathcal L = -\frac{\text{ELBO}}{N}
#   \approx \underbrace{\frac1B \sum_{i \in \text{batch}} -\log p(y_i \mid x_i, w)}_{\mathtt{nll}}
#   + \mathtt{kl\_weight}\cdot\frac{\mathrm{KL}(q(w)\|p(w))}{N},
#   \qquad w \sim q,$$
#
# `bt.objectives.elbo_loss(nll, kl, num_data)`. Dividing by $N$ changes neither the optimum nor the
# direction of the gradient; it makes the loss a *per-data-point* number, comparable between data sets
# and with a learning rate that does not depend on $N$. The classic mistake is to divide the KL by the
# batch size instead (or not at all): the prior then weighs $N/B$ times too much.
#
# The test: train a `bt.nn.BayesLinear` (weight sampling, Gaussian prior) on $N = 2{,}000$ points of a
# linear regression with `bt.train.fit`, batches of 50, and compare with the exact answer. Its optimum
# is the mean-field $q$ of section 2: the posterior mean, and standard deviations $1/\sqrt{\Lambda_{ii}}$.

# %%
N_BIG = 2000
X_big = torch.randn(N_BIG, P, generator=g, dtype=torch.float64)
y_big = X_big @ w_true + math.sqrt(NOISE_VAR) * torch.randn(N_BIG, generator=g, dtype=torch.float64)
m_big, _, Lambda_big = bt.vi.linear_regression_posterior(X_big, y_big, NOISE_VAR, PRIOR_SIGMA)


def nll_known_noise(out, target):  # -log N(target | out, NOISE_VAR), mean over the batch, constant dropped
    return torch.nn.functional.gaussian_nll_loss(out, target, torch.full_like(out, NOISE_VAR))


def fit_vi(num_data):
    bt.utils.set_seed(SEED)
    layer = bt.nn.BayesLinear(P, 1, bias=False, local_reparam=False, prior=bt.priors.GaussianPrior(PRIOR_SIGMA))
    bt.train.fit(layer, (X_big.float(), y_big.float().unsqueeze(1)), NUM_EPOCHS,
                 torch.optim.Adam(layer.parameters(), lr=1e-2), batch_size=50, num_data=num_data,
                 nll_fn=nll_known_noise, progress=False)
    return layer.mean_weight().detach().double()[0], layer.weight_sigma.detach().double()[0]


mu_right, sigma_right = fit_vi(num_data=N_BIG)
mu_wrong, sigma_wrong = fit_vi(num_data=50)  # the mistake: KL divided by the batch size
exact_sd = Lambda_big.diagonal().rsqrt()
print(f"exact: mean {m_big.numpy().round(4)}, sd {exact_sd.numpy().round(4)}")
print(f"KL / N:          mean {mu_right.numpy().round(4)}, sd {sigma_right.numpy().round(4)}")
print(f"KL / batch size: mean {mu_wrong.numpy().round(4)}, sd {sigma_wrong.numpy().round(4)}")
sd_error_right = float((sigma_right / exact_sd - 1).abs().max())
sd_ratio_wrong = float((sigma_wrong / exact_sd).mean())
print(f"largest sd error with KL / N: {100 * sd_error_right:.0f} %; with KL / batch size the sd is "
      f"{sd_ratio_wrong:.1f}x too large (sqrt(N / B) = {math.sqrt(N_BIG / 50):.1f})")
assert sd_error_right < 0.25 and sd_ratio_wrong > 3

# %% [markdown]
# With the right scaling, doubly stochastic VI lands on the exact mean-field answer (to the noise of
# its gradient); with the KL divided by the batch size, the posterior is several times too wide, by
# about $\sqrt{N/B}$.
#
# ### Check yourself
#
# A mini-batch of 100 MNIST images (of $N = 60{,}000$) has a mean negative log-likelihood of 0.3 nats,
# and the network's KL to its prior is 600 nats. What loss does the course minimise (`kl_weight` = 1)?

# %%
answer = None
bt.selfcheck.number(answer, expected=float(bt.objectives.elbo_loss(torch.tensor(0.3), torch.tensor(600.0), 60_000)),
                    rtol=1e-3, mistakes={600.3: "the KL is a sum over all weights: divide it by N",
                                         6.3: "the KL is divided by the number of training points, not the batch size",
                                         0.3: "the KL term is missing: that is plain maximum likelihood"})

# %% [markdown]
# ## 4. Two gradient estimators
#
# Training needs $\nabla_\mu \mathbb E_{w \sim \mathcal N(\mu, \sigma^2)}[f(w)]$. Two unbiased estimates:
#
# * **score function** (REINFORCE): $\nabla_\mu \mathbb E_q[f] = \mathbb E_q[f(w)\,\nabla_\mu \log q(w)]
#   = \mathbb E_q\big[f(w)\,(w - \mu)/\sigma^2\big]$. It needs only values of $f$, but they are
#   multiplied by a random factor.
# * **reparametrization**: write $w = \mu + \sigma\varepsilon$, $\varepsilon \sim \mathcal N(0, 1)$, so
#   $\nabla_\mu \mathbb E_q[f] = \mathbb E_\varepsilon[f'(\mu + \sigma\varepsilon)]$. It uses the
#   gradient of $f$, which a network gives us by backpropagation.
#
# For $f(w) = w^2$ the exact gradient is $\nabla_\mu(\mu^2 + \sigma^2) = 2\mu$. Both estimators from
# `bt.diagnostics.gradient_samples`, 20,000 one-sample estimates each:

# %%
MU, SIGMA = 1.0, 1.0
gen = torch.Generator().manual_seed(SEED)
estimates = {estimator: bt.diagnostics.gradient_samples(lambda w: w**2, MU, SIGMA, 20_000, estimator, generator=gen)
             for estimator in ("score", "reparam")}
fig = bt.viz.plot_gradient_estimators({"score function": estimates["score"],
                                        "reparametrization": estimates["reparam"]}, true_gradient=2 * MU)
for name, e in estimates.items():
    error = 3 * e.std() / math.sqrt(len(e))
    assert abs(e.mean() - 2 * MU) < error, f"{name}: unbiased, within 3 standard errors"
medians = {name: e.median().item() for name, e in estimates.items()}
assert abs(medians["score"]) < 0.1 and abs(medians["reparam"] - 2 * MU) < 0.1, medians
variance_ratio = float(estimates["score"].var() / estimates["reparam"].var())
print(f"variance: score {estimates['score'].var():.2f}, reparametrization {estimates['reparam'].var():.2f} "
      f"({variance_ratio:.1f}x smaller)")

# %% [markdown]
# Both estimators are unbiased: their means (in the legend) match the exact gradient 2. Their shapes do not.
# The reparametrization estimates $2(\mu + \sigma\varepsilon)$ form a symmetric bell around 2. The
# score-function estimates $f(w)(w - \mu)/\sigma^2 = \varepsilon(1 + \varepsilon)^2$ here are skewed: half of
# them lie below 0 (their median is about 0), and the mean of 2 is carried by a long right tail of rare,
# large values, partly beyond the plotted axis (the legend gives the share). A single score-function sample
# usually points the wrong way or nowhere; SGD would need many times more samples to be as precise.
# For $f(w) = w^2$ the variances are known: $4\sigma^2 = 4$ for the reparametrization and
# $(\mu^4 + 18\mu^2\sigma^2 + 15\sigma^4)/\sigma^2 - 4\mu^2 = 30$ for the score function (expand
# $\mathbb E[w^4 (w-\mu)^2]/\sigma^4$ with the Gaussian moments $\mathbb E\varepsilon^4 = 3$,
# $\mathbb E\varepsilon^6 = 15$), which the measured values match.

# %%
torch.testing.assert_close(estimates["reparam"].var(), torch.tensor(4.0, dtype=torch.float64), rtol=0.05, atol=0)
torch.testing.assert_close(estimates["score"].var(), torch.tensor(30.0, dtype=torch.float64), rtol=0.1, atol=0)

# %% [markdown]
# The next lecture takes this one step further: the *local* reparametrization trick samples the
# pre-activations of a layer instead of its weights, and lowers the variance again.
#
# ## Summary
#
# * VI fits $q$ by maximising the ELBO $= \mathbb E_q[\log p(\mathcal D\mid w)] - \mathrm{KL}(q(w)\|p(w))$, which
#   equals $\log p(\mathcal D) - \mathrm{KL}(q\|\text{posterior})$ (checked above to Monte Carlo precision).
# * That is the mode-seeking direction $\mathrm{KL}(q\|\text{posterior})$: $q$ sits in one region of the posterior and
#   is too narrow where the posterior is correlated or multimodal.
# * The course's loss is $-\text{ELBO}/N$: mean NLL of the batch + KL$/N$ (`bt.objectives.elbo_loss`);
#   dividing the KL by the batch size instead makes the posterior far too wide (measured above).
# * The reparametrization gradient has a much smaller variance than the score function (measured above).
#
# ## References
#
# * D. Blei, A. Kucukelbir, J. McAuliffe. *Variational Inference: A Review for Statisticians*. JASA 2017.
# * M. Titsias, M. Lázaro-Gredilla. *Doubly Stochastic Variational Bayes for non-Conjugate Inference*. ICML 2014.
# * D. Kingma, M. Welling. *Auto-Encoding Variational Bayes*. ICLR 2014.
# * N. Chirkova. *Bayesian neural networks and their applications*. Lecture at the Deep Bayes summer school, 2019
#   ([the school's materials](https://github.com/bayesgroup/deepbayes-2019)).
