# %% [markdown]
# # L08 · Distributed Bayesian learning: the posterior server
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L08_distributed_bayesian_learning.ipynb)
#
# **The question.** The training data no longer fit one machine: MNIST is split over $m$ workers that may
# not send each other their images. Distributed SGD is easy: the gradient of the loss is a sum over the
# data, so each worker computes its part and the parts are added. What do the workers add up to share a
# *posterior*? The picture: four workers each hold a quarter of a regression data set and compute the
# posterior of the slope $w$ from their own quarter. Averaging their answers is wrong; multiplying them is
# exact.

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

import matplotlib.pyplot as plt
import torch

import bnn_teach as bt
from bnn_teach.distributed import DiagGaussian

# %%
SEED = 0
DEVICE = bt.utils.get_device()  # the workers are CPU processes (gloo); a GPU is not used in this lecture
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer images and rounds, the same code
TRAIN_SIZE = 10_000 if FAST else None  # MNIST training images split over the workers (None: all 60,000)
TEST_SIZE = 2_000 if FAST else None
ROUNDS = 6 if FAST else 20  # server updates on MNIST
LOCAL_STEPS = 16 if FAST else 100  # Adam steps (batch 100) every worker takes between two updates
WORKER_COUNTS = [1, 2, 4, 8]
SGLD_STEPS = (100, 400) if FAST else (200, 800)  # a short and a long SGLD chain per round (section 4)
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)

# %% [markdown]
# ## 1. The picture: four workers, one slope
#
# One weight, $y = w x + \varepsilon$ with $\varepsilon \sim \mathcal N(0, \sigma^2)$,
# prior $w \sim \mathcal N(0, s^2)$, 200 points split into four shards of 50. Bayes' rule splits over the shards:
#
# $$p(w \mid D) \;\propto\; p(w) \prod_{i=1}^m p(D_i \mid w)
#   \;=\; \prod_{i=1}^m \underbrace{p(w)^{1/m}\, p(D_i \mid w)}_{\text{subposterior } i}.$$
#
# Each worker can compute its *subposterior* alone (with the prior to the power $1/m$, so that the prior is
# counted once overall). `bt.vi.linear_regression_posterior` gives each one in closed form; the prior
# $\mathcal N(0, s^2)^{1/m}$ is $\mathcal N(0, m s^2)$ up to a constant.

# %%
NOISE_VAR, PRIOR_SD, M_PICTURE = 1.0, 1.0, 4
generator = torch.Generator().manual_seed(SEED)
x1 = torch.randn(200, 1, generator=generator)
y1 = 0.8 * x1[:, 0] + math.sqrt(NOISE_VAR) * torch.randn(200, generator=generator)
exact_mean, exact_cov, _ = bt.vi.linear_regression_posterior(x1, y1, NOISE_VAR, PRIOR_SD)
subposteriors = []
for shard in torch.arange(200).chunk(M_PICTURE):
    mean_i, cov_i, _ = bt.vi.linear_regression_posterior(x1[shard], y1[shard], NOISE_VAR,
                                                         PRIOR_SD * math.sqrt(M_PICTURE))
    subposteriors.append(DiagGaussian.from_moments(mean_i.float(), cov_i.diagonal().float()))

# %% [markdown]
# Two ways to combine them. **Average** the workers' answers (what averaging SGD models would suggest):
# mean and variance averaged. **Multiply** the densities: for Gaussians a product adds the natural
# parameters, the precision $\lambda = 1/\sigma^2$ and the shift $h = \mu/\sigma^2$ (that is what
# `DiagGaussian.__add__` does, lecture's derivation in section 2).

# %%
average = DiagGaussian.from_moments(torch.stack([q.mean for q in subposteriors]).mean(0),
                                    torch.stack([q.var for q in subposteriors]).mean(0))
product = subposteriors[0]
for q in subposteriors[1:]:
    product = product + q
fig = bt.viz.plot_subposteriors(
    [(q.mean.item(), q.sd.item()) for q in subposteriors],
    {"exact posterior (all 200 points)": (exact_mean.item(), exact_cov.item() ** 0.5),
     "product of the 4 subposteriors": (product.mean.item(), product.sd.item()),
     "average of the 4 subposteriors": (average.mean.item(), average.sd.item())},
    xlabel="slope w", title="Four workers, one posterior: multiply, do not average")
ratio = average.sd.item() / exact_cov.item() ** 0.5
print(f"exact posterior: mean {exact_mean.item():.4f}, sd {exact_cov.item() ** 0.5:.4f}")
print(f"product:         mean {product.mean.item():.4f}, sd {product.sd.item():.4f}")
print(f"average:         mean {average.mean.item():.4f}, sd {average.sd.item():.4f} ({ratio:.2f} x the exact sd)")
assert abs(product.mean.item() - exact_mean.item()) < 1e-4 and abs(product.var.item() - exact_cov.item()) < 1e-6
assert 1.8 < ratio < 2.2  # each subposterior saw a quarter of the data: sqrt(4) times wider

# %% [markdown]
# The product is the exact posterior (to float precision); the average is about $\sqrt m = 2$ times too wide
# (printed above): each worker saw a quarter of the data, and averaging does not add up what they learnt.
#
# **Why is this harder than distributed SGD?** Gradients add exactly, whatever the model. Posteriors
# multiply, and only for Gaussians is the product a simple formula. A network's subposteriors are not
# Gaussian; worse, two workers' samples may sit in different modes (swap two hidden units and the
# network is the same), so multiplying or averaging their samples mixes unrelated networks. The methods
# below differ in how they keep the workers' pictures of $w$ comparable.

# %% [markdown]
# ### Check yourself
# Two workers with a flat prior report the subposteriors $\mathcal N(1, 0.5^2)$ and $\mathcal N(3, 0.5^2)$.
# What is the standard deviation of the combined posterior? Set `answer` to a number.

# %%
answer = None
bt.selfcheck.number(answer, expected=0.5 / math.sqrt(2), rtol=0.01, mistakes={
    0.5: "that averages the two standard deviations; the product adds the precisions 1/0.25 + 1/0.25",
    0.125: "that is the variance; the question asks for the standard deviation",
    0.25: "0.25 is each worker's variance; the precisions add, so the variance halves",
})

# %% [markdown]
# ## 2. Expectation propagation, the posterior server and damping
#
# Keep a Gaussian $q(\theta) \propto p(\theta) \prod_i t_i(\theta)$, one **site** $t_i$ (an unnormalised
# Gaussian) per worker, standing for its likelihood $p(D_i \mid \theta)$. Expectation propagation (EP,
# Minka 2001) improves one site at a time:
#
# 1. **cavity**: remove the site, $q_{-i} = q / t_i$ (natural parameters: subtract);
# 2. **tilted distribution**: put the true likelihood back, $\tilde p_i \propto q_{-i}(\theta)\, p(D_i \mid \theta)$;
# 3. **project**: find the Gaussian $q_i'$ closest to $\tilde p_i$ (matching its mean and variance: moments);
# 4. **new site** $t_i^{\text{new}} = q_i' / q_{-i}$.
#
# Xu et al. (2014) ran EP across machines with workers that estimate the tilted moments by sampling
# (SG-MCMC) and send their site's change. Hasenclever et al. (2017) named the **posterior server**: the
# server holds $q$, worker $i$ holds $t_i$ and its shard, and the workers run SG-MCMC and report
# *asynchronously*, each whenever it is done. The version here is **synchronous**: every round the server
# waits for all $m$ workers, then updates $q$ once (simpler and reproducible with a seed; a slow worker
# holds up the round).
#
# **Damping.** With moments estimated from samples, step 4 replaces a site by a noisy estimate, and EP can
# oscillate or fail to converge. Damped EP (Minka 2001; Heskes & Zoeter 2002) moves each site only a
# fraction $\beta \in (0, 1]$ of the way in natural parameters. Write $t_i^{\text{new}} = q_i'/q_{-i}$ for the
# site step 4 would install; then
#
# $$t_i \leftarrow (1 - \beta)\, t_i + \beta\, t_i^{\text{new}}, \qquad\text{i.e.}\qquad
#   t_i \leftarrow t_i + \Delta_i, \quad \Delta_i = \beta\,\big(t_i^{\text{new}} - t_i\big), \qquad
#   q \leftarrow q + \sum_i \Delta_i ,$$
#
# the last because $q = p \prod_i t_i$ is a sum in natural parameters. Damping does not change what EP
# converges to: at a fixed point $\Delta_i = 0$, i.e. $t_i = t_i^{\text{new}}$, the undamped condition. It only
# shortens the steps, and a step that is an average of successive noisy estimates has less noise. (The
# poster by Webb et al. derives the same update from a Lagrangian with a weight $\beta_i$ per worker; we need
# only the reading above, with one $\beta$.)
#
# **Which projection.** Step 3 as written matches moments: that is EP proper, what `method="sgld"` does
# with its samples' moments. With `method="vi"` the worker instead fits a Gaussian to the tilted distribution
# by minimising $\mathrm{KL}(q_i' \,\|\, \tilde p_i)$ with Bayes by Backprop (lecture 2's direction, which needs
# no moments): the same iteration with the other KL, **partitioned variational inference** (Bui et al.
# 2018). That is why one worker is exactly Bayes by Backprop, and why its fixed point is the mean-field
# optimum (section 3).
#
# With $\beta = 1/m$ the new $q$ is the average of the workers' $q_i'$ *in natural parameters* (always a
# proper Gaussian); a small $\beta$ also averages the noise of the moment estimates over rounds.
#
# **Checked in code.** For the one-weight regression the tilted distribution is Gaussian and its moments
# are exact, so EP should reach the exact posterior. One pass over the four workers, written with
# `DiagGaussian` arithmetic exactly as the steps above say:

# %%
prior = DiagGaussian.from_moments(torch.zeros(1), torch.full((1,), PRIOR_SD ** 2))
sites = [DiagGaussian.flat(torch.zeros(1)) for _ in range(M_PICTURE)]  # t_i = 1: q starts as the prior
q = prior
for i, shard in enumerate(torch.arange(200).chunk(M_PICTURE)):
    cavity = q - sites[i]
    # tilted: cavity x likelihood of shard i, a Gaussian here: its moments in closed form
    xs, ys = x1[shard, 0], y1[shard]
    tilted = cavity + DiagGaussian((xs * ys).sum().reshape(1) / NOISE_VAR, (xs * xs).sum().reshape(1) / NOISE_VAR)
    sites[i] = tilted - cavity
    q = cavity + sites[i]
print(f"EP after one pass: mean {q.mean.item():.5f}, sd {q.sd.item():.5f}; "
      f"exact: mean {exact_mean.item():.5f}, sd {exact_cov.item() ** 0.5:.5f}")
assert torch.allclose(q.mean.double(), exact_mean, atol=1e-5)
assert torch.allclose(q.var.double(), exact_cov[0], rtol=1e-5)

# %% [markdown]
# Exact after one pass, as it should be for a conjugate model: each site became its shard's likelihood.
# A network's tilted distribution is not Gaussian, so its moments must be *estimated*, with noise. That is
# where damping matters.
#
# ## 3. The posterior server on processes: `bt.distributed.posterior_server`
#
# `posterior_server(model, (X, y), m)` starts $m + 1$ processes on this machine (rank 0 the server,
# ranks $1..m$ the workers), joined by `torch.distributed` with the gloo backend over 127.0.0.1, the same
# calls that would join processes on several machines. Each round: the server broadcasts $q$; every
# worker forms its cavity, fits the tilted distribution by `local_steps` steps of Bayes by Backprop with
# the cavity as the prior (`method="vi"`, the layers of lecture 3) or by SGLD moments (`method="sgld"`,
# lecture 6), and sends $\Delta_i$; the server gathers and adds them.
#
# First the test every implementation must pass: Bayesian linear regression with three weights over four
# workers against its exact posterior. The model is a `BayesLinear` layer; the tests of the course demand
# the means within 0.1 posterior sd and the variances within 15 %. The local fits are noisy, so the damping
# decreases after 20 rounds (a function of the round).

# %%
n_blr = 400
generator = torch.Generator().manual_seed(SEED)
X3 = torch.randn(n_blr, 3, generator=generator)
y3 = X3 @ torch.tensor([1.0, -2.0, 0.5]) + math.sqrt(NOISE_VAR) * torch.randn(n_blr, generator=generator)
mean3, cov3, precision3 = bt.vi.linear_regression_posterior(X3, y3, NOISE_VAR, PRIOR_SD)
mean3, var3 = mean3.float(), cov3.diagonal().float()


def blr_model():
    torch.manual_seed(SEED)
    return torch.nn.Sequential(bt.nn.BayesLinear(3, 1, bias=False, init_rho=-3.0,
                                                 prior=bt.priors.GaussianPrior(PRIOR_SD)))


def decreasing(r):  # 1/m = 0.25 for 20 rounds, then 5 / r: averages the noisy local fits over more rounds
    return min(0.25, 5.0 / r)


def blr_run(damping, **kwargs):
    return bt.distributed.posterior_server(blr_model(), (X3, y3), 4, rounds=40, local_steps=50, batch_size=100,
                                           lr=0.01, damping=damping, noise_var=NOISE_VAR, trace=True,
                                           progress=False, **kwargs)


run = blr_run(decreasing)
mean_error = ((run.posterior.mean - mean3).abs() / var3.sqrt()).max().item()
var_error = ((run.posterior.var / var3) - 1).abs().max().item()
print(f"4 workers, 40 rounds, {run.seconds:.1f} s: largest mean error {mean_error:.3f} posterior sd, "
      f"largest variance error {100 * var_error:.1f} %")
print(f"sent: {run.bytes_up} bytes up, {run.bytes_down} bytes down (3 weights: 2 x 3 float32 a message)")
assert mean_error < 0.1 and var_error < 0.15

# %% [markdown]
# What "the exact posterior" means here needs care. With `method="vi"` every local fit is a fully factorised
# Gaussian fitted by minimising $\mathrm{KL}(q\|\text{tilted})$ (lecture 2's direction), so the server's fixed
# point is the **mean-field optimum**: the exact mean, but variances $1/\Lambda_{ii}$ (the inverse diagonal of
# the posterior precision), never wider than the exact marginals $\Sigma_{ii}$. They coincide above only
# because these inputs are uncorrelated. The check below computes both on this design and on the same
# regression with correlated inputs, where a test against $\Sigma_{ii}$ would demand the wrong answer (the
# course's own tests run the server on correlated inputs against $1/\Lambda_{ii}$).

# %%
mixing = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.4, 0.77]])
for design, inputs in [("these inputs", X3), ("correlated inputs", X3 @ mixing.T)]:
    targets = inputs @ torch.tensor([1.0, -2.0, 0.5]) + math.sqrt(NOISE_VAR) * torch.randn(n_blr, generator=generator)
    _, covariance, precision = bt.vi.linear_regression_posterior(inputs, targets, NOISE_VAR, PRIOR_SD)
    ratio = (covariance.diagonal() * precision.diagonal()).max().item()
    print(f"{design:>18}: the exact marginal variance is up to {ratio:.2f}x the mean-field optimum's")
    if design == "these inputs":
        assert ratio < 1.05, ratio

# %% [markdown]
# ## 4. Damping with noisy moments
#
# Each local fit above is 50 steps of stochastic optimisation: its variances are noisy. The same run with
# three dampings: $\beta = 1$ (each round replaces every site by its new noisy estimate), $\beta = 1/m$, and
# the decreasing schedule. The curve is the largest relative error of $q$'s variances against the exact
# posterior after each round (`trace=True` keeps $q$ after every round).

# %%
def variance_errors(run):
    return [((q.var / var3) - 1).abs().max().item() for q in run.trace]


damping_curves = {"β = 1 (no damping)": variance_errors(blr_run(1.0)),
                  "β = 1/m = 0.25": variance_errors(blr_run(0.25)),
                  "β = min(0.25, 5 / round)": variance_errors(run)}
fig = bt.viz.plot_rounds({k: [100 * e for e in v] for k, v in damping_curves.items()},
                         "largest variance error (%)", "EP over 4 workers with noisy local fits: damping averages",
                         logy=True, reference=15, reference_label="the tests' tolerance (15 %)")
tail = {k: sum(v[-10:]) / 10 for k, v in damping_curves.items()}
for k, v in tail.items():
    print(f"{k:>26}: mean variance error over the last 10 rounds {100 * v:.1f} %")
assert tail["β = 1/m = 0.25"] < tail["β = 1 (no damping)"] / 2
assert tail["β = min(0.25, 5 / round)"] < tail["β = 1 (no damping)"] / 2

# %% [markdown]
# Undamped, every round's $q$ is built from the last noisy fits alone, and the error jumps from round to
# round. Damping averages each site over the rounds, and a decreasing $\beta$ keeps averaging (as a
# stochastic-approximation step size does). The price: a damped site moves only part of the way each
# round, so convergence takes more rounds, and with $\beta = 1/m$ more workers need more rounds. We will
# see it on MNIST.
#
# **Noise is not bias.** Xu et al.'s workers estimate the tilted moments from SGLD samples
# (`method="sgld"`, lecture 6). A short chain has not explored the tilted distribution: its sample variance
# is too small, every round, and averaging over rounds keeps that error. Two chain lengths, 2 workers:

# %%
sgld_ratio = {}
for steps in SGLD_STEPS:
    sgld = bt.distributed.posterior_server(blr_model(), (X3, y3), 2, rounds=10, local_steps=steps, batch_size=200,
                                           method="sgld", sgld_lr=2e-4, noise_var=NOISE_VAR, trace=True,
                                           progress=False)
    sgld_ratio[steps] = sum((q.var / var3).mean().item() for q in sgld.trace[-5:]) / 5
    print(f"SGLD chains of {steps} steps a round (half burn-in): q's variance / exact variance "
          f"= {sgld_ratio[steps]:.2f} (mean over the weights and the last 5 rounds)")
short, long = SGLD_STEPS
assert sgld_ratio[short] < 0.85 and sgld_ratio[long] > sgld_ratio[short] + 0.1

# %% [markdown]
# The short chains leave $q$ overconfident, by the ratio printed; four times longer chains bring it closer
# to 1. Damping cannot fix a biased estimate, only a noisy one: with SGLD moments the chain length is the
# other knob (Hasenclever et al. run the chains continuously for that reason).

# %% [markdown]
# ### Check yourself
# A worker's new site would double its precision, from 40 to 80. With damping $\beta = 0.25$, what
# precision does the site have after the update? Set `answer` to a number.

# %%
answer = None
bt.selfcheck.number(answer, expected=40 + 0.25 * (80 - 40), rtol=0.001, mistakes={
    80: "that is the undamped update (beta = 1); damping moves the site a quarter of the way",
    20: "that is beta times the new site; the update is t + beta (t_new - t)",
    0.75 * 80 + 0.25 * 40: "beta and 1 - beta swapped: the site keeps 1 - beta of its old value",
})

# %% [markdown]
# ## 5. MNIST over 1, 2, 4 and 8 workers
#
# The network is `bt.models.mlp(100, "bbb")`, 784-100-10 with Bayes-by-Backprop layers (79,510 weights and
# biases; every message carries two numbers per weight). Each round every worker takes `LOCAL_STEPS` Adam
# steps on its shard, as the machines of a cluster would in parallel. Here two CPU cores run all of them,
# so the wall time grows with $m$; on $m$ machines it would not. With one worker the cavity $q / t_1$ is the
# prior, so each round's local fit is lecture 3's ELBO on all the data: the posterior server with one
# worker *is* Bayes by Backprop, the row to match.
# A run that fails (a worker killed by the system, a hung process past its timeout) is named by the cell,
# which still runs the others and then stops; the cells after it show the runs that finished.

# %%
(X_train, y_train) = bt.data.load_mnist("train", subset=TRAIN_SIZE)
(X_test, y_test) = bt.data.load_mnist("test", subset=TEST_SIZE)


def mnist_model():
    torch.manual_seed(SEED)
    return bt.models.mlp(100, "bbb", init_rho=-3.0)


print(f"{len(X_train)} training and {len(X_test)} test images; "
      f"{bt.distributed.num_parameters(mnist_model()):,} random parameters")
runs, failed = {}, {}  # 1, 2, 4 and 8 workers: 2 min in full mode on 2 busy cores, under 10 s in FAST
for m in WORKER_COUNTS:
    try:
        runs[m] = bt.distributed.posterior_server(mnist_model(), (X_train, y_train), m, rounds=ROUNDS,
                                                  local_steps=LOCAL_STEPS, test_data=(X_test, y_test), seed=SEED)
    except (RuntimeError, TimeoutError) as err:  # a worker died or hung: said here, and the other runs go on
        failed[m] = err
        print(f"{m} worker(s): the run failed: {err}")
if failed:  # the cells below show the runs that finished; run them on to see those
    raise RuntimeError(f"the runs with {sorted(failed)} worker(s) failed (above); the next cells use the others")

# %%
rows_by_workers = {m: run.evaluate(mnist_model(), (X_test, y_test)) for m, run in runs.items()}
rows = list(rows_by_workers.values())
print(bt.distributed.format_table(rows))
fig = bt.viz.plot_rounds({run.label: [100 * h["test_acc"] for h in run.history] for run in runs.values()},
                         "test accuracy of the posterior mean (%)",
                         f"Posterior server, MNIST ({len(X_train):,} images): accuracy after each round")

# %% [markdown]
# What to look at: every curve rises, and after the last round the one-worker run (Bayes by Backprop) is
# ahead of eight workers. With $\beta = 1/m$ a site takes a $1/m$ step each round, so the posterior built
# from $m$ shards fills in over more rounds as $m$ grows, and every worker's local fit sees only its shard
# between two updates. The NLL and ECE columns (lecture 7) say how well the predictive probabilities are
# calibrated, not only whether the top class is right; in FAST mode, after so few steps, every run's ECE
# is still high (the full run below reaches about 0.04).

# %%
first = {m: run.history[0]["test_acc"] for m, run in runs.items()}
last = {m: run.history[-1]["test_acc"] for m, run in runs.items()}
for m in runs:
    print(f"{m} worker(s): accuracy {100 * first[m]:.1f} % after round 1, {100 * last[m]:.1f} % after round {ROUNDS}")
assert all(last[m] > first[m] for m in runs), "a run did not improve over its rounds"
assert last[8] < last[1], "after the same rounds, eight damped workers should trail one"
assert rows_by_workers[1]["accuracy %"] > 85

# %% [markdown]
# The full run (`bnn-teach reproduce distributed`: all 60,000 images, 20 rounds of 100 steps, the same code)
# was recorded; its table:

# %%
recorded = bt.reproduce.load_recorded("distributed")
print(bt.distributed.format_table(recorded["results"]["ours"]["rows"]))
print(f"({recorded['results']['settings']['epochs']} rounds of {recorded['results']['ours']['local steps']} "
      f"steps; {recorded['results']['notes'][0].split(': ')[-1]}; one torch thread in each worker and server "
      "process)")

# %% [markdown]
# ## 6. To convergence: what do more workers buy?
#
# The poster says that more workers, up to eight, improve the solution reached. Comparisons after a fixed
# number of rounds cannot test that: they show where each run is, not where it is going. So we run to
# convergence, on a model small enough to get there in seconds: Bayesian logistic regression on the same
# images (one `BayesLinear(784, 10)`, 7,850 weights and biases), `CONV_ROUNDS` rounds, and two budgets:
#
# * **the same steps per worker** (`CONV_STEPS` a round each): what $m$ machines do in the same wall time;
# * **the same total work** (`CONV_STEPS / m` a round each): the gradient steps of all workers together
#   equal one worker's, what one machine would do in the same time.
#
# After every round `run.round_metrics` scores the run's $q$ (kept by `trace=True`) on the test images.
# The target is where one worker ends (the mean test NLL of its last five rounds); a run has converged
# in the first round its NLL comes within 2 % of that target (about twice the round-to-round noise of a
# converged curve).

# %%
CONV_ROUNDS = 40
CONV_STEPS = 20 if FAST else 100  # the section: 3.5 min in full mode on 2 busy cores, 30 s in FAST
CONV_LR = 6e-3 if FAST else 3e-3  # Adam's step size: FAST's fewer steps a round take larger steps


def logistic_model():
    torch.manual_seed(SEED)
    return torch.nn.Sequential(torch.nn.Flatten(), bt.nn.BayesLinear(784, 10, init_rho=-3.0))


def nll_curve(m, steps):
    run = bt.distributed.posterior_server(logistic_model(), (X_train, y_train), m, rounds=CONV_ROUNDS,
                                          local_steps=steps, lr=CONV_LR, trace=True, seed=SEED, progress=False)
    return run.round_metrics(logistic_model(), (X_test, y_test))


def rounds_to(curve, target, tolerance=0.02):
    """The first round whose NLL is within `tolerance` (relative) of `target` (None: never)."""
    return next((row["round"] for row in curve if row["nll"] <= (1 + tolerance) * target), None)


def final(curve, key="nll"):
    return sum(row[key] for row in curve[-5:]) / 5


same_steps = {m: nll_curve(m, CONV_STEPS) for m in WORKER_COUNTS}
equal_work = {1: same_steps[1]} | {m: nll_curve(m, CONV_STEPS // m) for m in WORKER_COUNTS[1:]}
target = final(same_steps[1])

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, curves, budget in [(axes[0], same_steps, f"{CONV_STEPS} steps per worker a round"),
                           (axes[1], equal_work, f"{CONV_STEPS} steps a round shared by the m workers")]:
    bt.viz.plot_rounds({f"{m} worker(s)": [row["nll"] for row in curves[m]] for m in WORKER_COUNTS},
                       "test NLL of the predictive (nats)", budget, ax=ax, reference=target,
                       reference_label="one worker's final NLL")
    ax.set_ylim(0.9 * target, 2.0 * target)
fig.suptitle("Logistic regression by the posterior server, run to convergence")
fig.tight_layout()
print(f"{'workers':>8} {'same steps per worker':>34} {'same total work':>30}")
for m in WORKER_COUNTS:
    a, b = same_steps[m], equal_work[m]
    print(f"{m:>8} NLL {final(a):.4f}, {final(a, 'accuracy %'):.1f} %, converged at {rounds_to(a, target)!s:>4}"
          f"   NLL {final(b):.4f}, {final(b, 'accuracy %'):.1f} %, converged at {rounds_to(b, target)!s:>4}")

# %% [markdown]
# What to look at, left: every curve ends on the dashed line. With the same steps per worker the runs reach
# the same test NLL and accuracy for one, two, four and eight workers, within about twice the round-to-round
# noise (printed below): the fixed point of damped EP with
# `method="vi"` is the mean-field optimum of the whole data set (section 3; Bui et al. 2018 show that every
# fixed point of partitioned VI is an optimum of the global ELBO), which does not depend on how the data
# were split. More workers take as many rounds or more to get there, since each site moves only
# $eta = 1/m$ of the way a round. Right: with the work of one worker shared out, more workers trail at
# every round, and eight have not converged when the run stops.
#
# So what holds is narrower than the poster's claim. More workers do not improve the solution reached; on
# $m$ machines they reach the same solution in about the same number of rounds while each machine handles
# only $1/m$ of the data, and the data never leave their machines. That is the case for distributing:
# wall time and privacy, not a better posterior. (The MNIST runs of section 5 stop after a fixed number of
# rounds, before convergence; there more workers trail, as here at round 5.)

# %%
spread = max(final(same_steps[m]) for m in WORKER_COUNTS) - min(final(same_steps[m]) for m in WORKER_COUNTS)
noise = torch.tensor([row["nll"] for row in same_steps[1][-10:]]).std().item()
print(f"final NLLs with the same steps per worker lie within {spread:.4f} nats ({100 * spread / target:.1f} %) "
      f"of each other; one worker's NLL varies by {noise:.4f} nats (sd) over its last 10 rounds")
assert all(rounds_to(same_steps[m], target) is not None for m in WORKER_COUNTS), "a run did not converge"
assert spread < 0.02 * target, "the same fixed point for every number of workers"
assert all(final(same_steps[m]) > 0.98 * target for m in WORKER_COUNTS), "no number of workers does better"
assert rounds_to(same_steps[8], target) >= rounds_to(same_steps[1], target)
assert all(equal_work[m][4]["nll"] > same_steps[m][4]["nll"] for m in WORKER_COUNTS[1:]), "shared work is slower"
assert final(equal_work[8]) > 1.05 * target, "at equal total work eight workers trail"

# %% [markdown]
# ## 7. Baselines: federated averaging and consensus Monte Carlo
#
# * **Federated averaging** of variational posteriors (McMahan et al. 2017, applied to $\mu$ and $\rho$):
#   every worker runs Bayes by Backprop on its shard *as if it were all the data* (the KL divided by the
#   full $N$), and the server averages the workers' $\mu$ and $\rho$. No sites, no cavity.
# * **Consensus Monte Carlo** (Scott et al. 2016): every worker runs SGLD on its subposterior
#   $p(\theta)^{1/m} p(D_i \mid \theta)$ without talking to anyone, and sends its draws once; the server
#   averages draw $s$ of every worker weighted by their precisions, exact when the subposteriors are Gaussian
#   (section 1).
#
# Both on the same 4-worker split, and then the split that makes federated learning hard: shards sorted by
# label, so each worker sees two or three digits only. The cavity tells an EP worker what the other shards
# said; a federated-averaging worker only knows its own digits.

# %%
M = 4
mnist = (X_train, y_train)
steps = ROUNDS * LOCAL_STEPS
baselines = [  # with the by-label runs below: 2 min in full mode on 2 busy cores, under 10 s in FAST
    bt.distributed.federated_averaging(mnist_model(), mnist, M, rounds=ROUNDS, local_steps=LOCAL_STEPS,
                                       test_data=(X_test, y_test), seed=SEED),
    bt.distributed.consensus_monte_carlo(mnist_model(), mnist, M, num_samples=20, burn_in=steps // 2,
                                         thin=max(1, steps // 40), sgld_lr=0.2 * M / len(X_train),
                                         test_data=(X_test, y_test), seed=SEED),
]
by_label = {
    "posterior server": bt.distributed.posterior_server(mnist_model(), mnist, M, rounds=ROUNDS,
                                                        local_steps=LOCAL_STEPS, split="by_label", seed=SEED),
    "federated averaging": bt.distributed.federated_averaging(mnist_model(), mnist, M, rounds=ROUNDS,
                                                              local_steps=LOCAL_STEPS, split="by_label", seed=SEED),
}
print(bt.distributed.format_table([rows_by_workers[M]]
                                 + [run.evaluate(mnist_model(), (X_test, y_test)) for run in baselines]))
by_label_rows = {k: run.evaluate(mnist_model(), (X_test, y_test)) for k, run in by_label.items()}
for k, row in by_label_rows.items():
    print(f"shards sorted by label, {k}: accuracy {row['accuracy %']:.1f} %, NLL {row['nll']:.3f}")
assert by_label_rows["posterior server"]["accuracy %"] > by_label_rows["federated averaging"]["accuracy %"]

# %% [markdown]
# On a random split federated averaging does as well as the posterior server or better (each shard looks
# like the whole, and averaging $\mu$ and $\rho$ of nearby networks works; the recorded full run above
# shows the same). On shards sorted by label the posterior server is ahead: its cavity carries the other
# digits. Consensus Monte Carlo talks once, sending every draw of every weight (20 networks per worker),
# and, with chains this short on a network, combines draws that are far from Gaussian: it trails.

# %% [markdown]
# ## 8. Sending less: top-k and 8-bit messages
#
# A message is $2D$ float32 numbers, the change of every shift and precision: 8 bytes per parameter. Two
# ways to shrink it (`bt.distributed.compress`): send only the 10 % of coordinates whose change would move
# $q$ most, both numbers of each and its index (`"topk:0.1"`, 12 bytes per kept coordinate; a coordinate's
# shift and precision travel together, since its mean is their ratio), or round every change to one of
# 256 levels (`"8bit"`, one byte per number plus a range per half). Each worker updates its own site by
# exactly what the server received, so the two stay consistent; what a message left out is still in the
# worker's next change, which is measured from the site as received.

# %%
# 1 min in full mode on 2 busy cores, under 10 s in FAST
compressed = {c: bt.distributed.posterior_server(mnist_model(), mnist, M, rounds=ROUNDS, local_steps=LOCAL_STEPS,
                                                 compression=c, test_data=(X_test, y_test), seed=SEED)
              for c in ("topk:0.1", "8bit")}
comparison = [rows_by_workers[M]] + [run.evaluate(mnist_model(), (X_test, y_test))
                                               for run in compressed.values()]
print(bt.distributed.format_table(comparison))
fig = bt.viz.plot_communication(rows + comparison[1:] + [run.evaluate(mnist_model(), (X_test, y_test))
                                                         for run in baselines])
plain, topk, eight = comparison
print(f"bytes up: top-10% sends {plain['MB up'] / topk['MB up']:.1f}x less, "
      f"8-bit {plain['MB up'] / eight['MB up']:.1f}x less")
assert 6.6 < plain["MB up"] / topk["MB up"] < 6.7 and 3.9 < plain["MB up"] / eight["MB up"] < 4.1
assert abs(eight["accuracy %"] - plain["accuracy %"]) < 1.0

# %% [markdown]
# 8-bit messages cost a quarter of the bytes and nearly nothing in accuracy: the changes are smooth enough
# for 256 levels, and the rounding error is part of the next change. Top-10 % sends 6.7 times fewer bytes
# and converges more slowly: each round most coordinates keep a stale site.

# %% [markdown]
# ### Check yourself
# Eight workers, the 79,510-parameter network, uncompressed float32 messages of shift and precision
# changes. How many megabytes (10⁶ bytes) do the workers send together in one round? Set `answer` to a number.

# %%
answer = None
bt.selfcheck.number(answer, expected=8 * 2 * 79_510 * 4 / 1e6, rtol=0.01, mistakes={
    8 * 79_510 * 4 / 1e6: "each message carries two numbers per parameter: the shift and the precision",
    2 * 79_510 * 4 / 1e6: "that is one worker's message; there are eight",
    8 * 2 * 79_510 * 8 / 1e6: "float32 is 4 bytes per number, not 8",
})

# %% [markdown]
# ## Summary
#
# * Posteriors over split data multiply: $p(\theta \mid D) \propto \prod_i p(\theta)^{1/m} p(D_i \mid \theta)$. For
#   Gaussians the product adds natural parameters (checked: exact), while averaging the workers' answers
#   was about $\sqrt m$ times too wide.
# * Expectation propagation keeps one site per worker: cavity, tilted distribution, projection, new site.
#   On a conjugate model one pass is exact (checked). The posterior server runs it on processes joined by
#   `torch.distributed`; on Bayesian linear regression over four workers it met the tests' tolerance.
# * Damping, the convexified update of the poster, moves each site part of the way: it averages noisy
#   moment estimates (measured with SGLD moments), at the price of more rounds as the number of workers grows.
# * On MNIST one worker is Bayes by Backprop; more workers trail after the same number of rounds. Run to
#   convergence (logistic regression), every number of workers reached the same test NLL: more workers do
#   not improve the solution, they share the work of reaching it; at equal total work they trail.
# * The posterior server beat federated averaging when the shards were sorted by label. Consensus Monte Carlo,
#   one message of many draws, trailed on a network.
# * 8-bit messages cut the bytes by four at almost no cost; top-10 % by 6.7, converging more slowly.
#
# ## References
#
# * S. Webb, Y. W. Teh, T. Lienart, S. Vollmer, M. Xu, B. Lakshminarayanan, C. Blundell, L. Hasenclever.
#   *Distributed Bayesian learning of deep neural networks* (poster; the course's reference).
# * M. Xu, B. Lakshminarayanan, Y. W. Teh, J. Zhu, B. Zhang. *Distributed Bayesian Posterior Sampling via
#   Moment Sharing*. NeurIPS 2014.
# * L. Hasenclever, S. Webb, T. Lienart, S. Vollmer, B. Lakshminarayanan, C. Blundell, Y. W. Teh.
#   *Distributed Bayesian Learning with Stochastic Natural Gradient Expectation Propagation and the Posterior
#   Server*. JMLR 2017.
# * T. P. Minka. *Expectation Propagation for Approximate Bayesian Inference*. UAI 2001.
# * S. L. Scott, A. W. Blocker, F. V. Bonassi, H. A. Chipman, E. I. George, R. E. McCulloch. *Bayes and Big
#   Data: the Consensus Monte Carlo Algorithm*. International Journal of Management Science and Engineering
#   Management, 2016.
# * B. McMahan, E. Moore, D. Ramage, S. Hampson, B. Agüera y Arcas. *Communication-Efficient Learning of Deep
#   Networks from Decentralized Data*. AISTATS 2017.
# * T. D. Bui, C. V. Nguyen, S. Swaroop, R. E. Turner. *Partitioned Variational Inference: A unified framework
#   encompassing federated and continual learning*. 2018. [arXiv:1811.11206](https://arxiv.org/abs/1811.11206)
# * T. Heskes, O. Zoeter. *Expectation Propagation for approximate inference in dynamic Bayesian networks*.
#   UAI 2002 (damped EP).
