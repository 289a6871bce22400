# %% [markdown]
# # L00 · Setup and a tour of the course
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/lectures/L00_setup_and_tour.ipynb)
#
# **The question of this course.** A network has seen inputs between $x=-4$ and $x=4$, none in the
# gap around $0$. Asked about $x = 7$, how sure should it be? An ordinary network answers with one
# curve and no doubt. A *Bayesian* network keeps a distribution over its weights, and the spread of
# its predictions says where it knows and where it guesses. By the end of this notebook you will
# have trained one and moved its knobs.

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
import bnn_teach as bt

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()  # BNN_TEACH_FAST=1: fewer epochs, the same code
NUM_EPOCHS = 150 if FAST else 300
THREADS = bt.utils.set_threads()  # torch CPU threads: the idle cores here (BNN_TEACH_THREADS=n to choose)
bt.utils.set_seed(SEED)
print(f"device {DEVICE} · {THREADS} CPU thread(s) · FAST mode {FAST} · {NUM_EPOCHS} epochs")

# %% [markdown]
# ## 1. The picture
#
# `bt.viz.RegressionExplorer` trains a small Bayesian network (three `bt.nn.BayesLinear` layers, 32
# ReLU units each) on 120 noisy points and draws its prediction. It takes a few seconds. It weights the
# KL term of the ELBO by 0.2: the data count five times against the prior, which makes the fit a
# **tempered** posterior, not the Bayes posterior of this model (section 3 moves the weight to 1).

# %%
explorer = bt.viz.RegressionExplorer(num_epochs=NUM_EPOCHS, seed=SEED)
explorer.figure

# %% [markdown]
# What to look at:
#
# * the **black line** is the average prediction over 100 weight samples drawn from the posterior;
# * the **blue band** (*epistemic* uncertainty) is how much those samples disagree: narrow where there
#   are data, wider in the gap and wide beyond $|x| = 4$, where the network has seen nothing;
# * the **orange band** adds the *aleatoric* uncertainty: the network's second output, the log variance
#   of the noise. On the data it has learnt the noise that is there (here it grows with $|x|$); off the
#   data it is that output extrapolated, a guess about noise nobody measured. More data would shrink the
#   blue band; on the data, never the orange one.
#
# The figure makes a claim; the next cell measures it. The prediction holds, for each $x$ of the
# grid, the two variances (`epistemic`, `aleatoric`) whose square roots are the bands.

# %%
x = explorer.x_grid[:, 0]
prediction = explorer.prediction
epistemic_sd = prediction["epistemic"].sqrt()
on_data = (x.abs() >= 1.0) & (x.abs() <= 4.0)
in_gap = x.abs() < 1.0
beyond = x.abs() >= 6.0
for name, region in [("on the data", on_data), ("in the gap", in_gap), ("beyond the data (|x| >= 6)", beyond)]:
    print(f"epistemic sd {name:<28} {epistemic_sd[region].mean():.3f}")
ratio = float(epistemic_sd[beyond].mean() / epistemic_sd[on_data].mean())
print(f"far from the data the epistemic band is {ratio:.1f}x wider than on it")
assert ratio > 3, "the figure's lesson: the network knows where it has seen data"

# %% [markdown]
# Part of the reason is the units: with ReLUs every sampled function continues linearly, each with its
# own slope, so the samples fan out. With tanh units a mean-field network's samples saturate, and its
# band stays about as wide off the data as on it; lecture 6 (section 8) measures this, and shows that
# the exact posterior of that tanh network does widen off the data: the narrow band belongs to the
# approximation, not to the model.

# %% [markdown]
# ### Check yourself
#
# The bands are drawn at ±2 standard deviations. Variances of independent sources add; standard
# deviations do not. At $x = 0$ the prediction's two variances are printed below. What is the
# **total predictive standard deviation** there? Compute it from the printed numbers and replace `None`.

# %%
at_zero = int(x.abs().argmin())
aleatoric_0, epistemic_0 = float(prediction["aleatoric"][at_zero]), float(prediction["epistemic"][at_zero])
print(f"at x = {float(x[at_zero]):.2f}: aleatoric variance {aleatoric_0:.4f}, epistemic variance {epistemic_0:.4f}")

# %%
answer = None
bt.selfcheck.number(answer, expected=(aleatoric_0 + epistemic_0) ** 0.5, rtol=0.02, mistakes={
    aleatoric_0 + epistemic_0: "that is the total variance; the band's width is a standard deviation",
    aleatoric_0**0.5 + epistemic_0**0.5: "standard deviations do not add; variances do",
})

# %% [markdown]
# ## 2. How to run the course
#
# * **On your machine**: `make lab` in the repository sets everything up (a virtual environment with a
#   CPU build of PyTorch) and opens this course in JupyterLab. `make test` runs the test suite.
# * **On Colab**: the badge at the top of each notebook opens it there; the setup cell installs
#   `bnn_teach` (only on Colab), and MNIST is downloaded on first use.
# * **On a GPU**: nothing to change. `bt.utils.get_device()` picks CUDA when there is one; the
#   library never calls `.cuda()` itself.
# * **FAST mode**: `BNN_TEACH_FAST=1` shrinks data and epochs and keeps the code the same; the tests
#   run every notebook that way. Unset it for the teaching-sized experiments.
# * **A busy machine**: `bt.utils.set_threads()` in each settings cell gives torch one thread per *idle*
#   core. Threads that outnumber the free cores fight other programs for them, and training slows many
#   times over. `BNN_TEACH_THREADS=1` (or any number) chooses for you.
#
# `bnn-teach check` prints what is installed, the device and where MNIST comes from, and says
# `ready.` when everything the course needs is there. Run it whenever something looks wrong.

# %%
# !bnn-teach check

# %% [markdown]
# ## 3. Move the knobs
#
# The explorer refits when a slider moves (a few seconds each). Try, and predict before you look:
#
# * **KL weight** from 0.2 to 1: the full ELBO (the untempered posterior) on only 120 points lets the
#   prior win; the fit flattens.
# * **prior σ** down to 0.05: the prior allows only small weights; the network cannot bend.
# * **dropout** up to 0.3: MC dropout adds its own spread (lecture 4 says why that is also Bayesian).
# * **MC samples** down to 3: the band becomes ragged, because it is estimated from three functions.

# %%
explorer.widget()

# %% [markdown]
# The sliders call `explorer.update(...)`, which you can also call yourself. Here the prior is
# made very narrow; the cell measures what that does to the predictive mean's range.

# %%
wiggle_before = float(prediction["mean"].max() - prediction["mean"].min())
band_before = float(prediction["epistemic"].sqrt().mean())
narrow = explorer.update(prior_sigma=0.05)
wiggle_after = float(narrow["mean"].max() - narrow["mean"].min())
band_after = float(narrow["epistemic"].sqrt().mean())
print(f"range of the predictive mean: {wiggle_before:.2f} with prior σ = 1, {wiggle_after:.2f} with prior σ = 0.05")
print(f"mean epistemic sd over the grid: {band_before:.3f} with prior σ = 1, {band_after:.4f} with prior σ = 0.05")
assert wiggle_after < wiggle_before / 2 and band_after < band_before / 5, (wiggle_after, band_after)
explorer.figure

# %% [markdown]
# The mean goes flat **and the blue band almost vanishes** (printed). That is not certainty: every
# weight's posterior has collapsed onto the narrow prior (the KL term wins, the data term gives up), so
# every sampled function is nearly the same flat line. This is **variational collapse** (the posterior
# collapsing to the prior); a narrow band from a model that cannot fit the data says nothing about what
# it knows. Check the fit before you read the band.

# %% [markdown]
# ### Check yourself
#
# Which change would shrink the **orange** band (aleatoric) on the data, rather than the blue one?

# %%
answer = None
bt.selfcheck.choice(answer, expected="none of these", options=[
    "more training data", "more Monte Carlo samples", "a wider prior", "none of these",
], explanations={
    "more training data": "more data shrinks the epistemic band; the noise in the data stays",
    "more Monte Carlo samples": "more samples estimate the bands more precisely; they do not change their size",
    "a wider prior": "the prior acts on the weights (epistemic), not on the noise of the data",
    "none of these": "the aleatoric band is the noise in the data itself; only better measurements shrink it",
})

# %% [markdown]
# ## 4. The course at a glance
#
# | lecture | question |
# |---|---|
# | L00 Setup and tour | this notebook |
# | L01 Why Bayesian | what does averaging over weights buy, and what are aleatoric and epistemic uncertainty? |
# | L02 Variational inference | how to fit an approximate posterior, and why the ELBO is divided by N |
# | L03 Bayes by Backprop and the LRT | a Bayesian MLP on MNIST, and a cheaper, less noisy gradient |
#
# The graded assignments (A1–A6, with nbgrader) make you build the same ladder yourself: BBB,
# dropout as Bayes, Sparse Variational Dropout, ARD, and SG-MCMC.
#
# ## Summary
#
# * A Bayesian network predicts with many weight samples; their spread is its *epistemic*
#   uncertainty, largest where there were no data (here several times wider off the data than on it,
#   measured above).
# * The *aleatoric* part is the noise in the data; variances add, standard deviations do not.
# * `make lab` (or the Colab badge) runs the course; `bnn-teach check` says whether all is in place;
#   `FAST` mode keeps every notebook under a minute.
#
# ## References
#
# * C. Blundell, J. Cornebise, K. Kavukcuoglu, D. Wierstra. *Weight Uncertainty in Neural Networks*. ICML 2015.
# * A. Kendall, Y. Gal. *What Uncertainties Do We Need in Bayesian Deep Learning for Computer Vision?* NeurIPS 2017.
# * N. Chirkova. *Bayesian neural networks and their applications*. Lecture at the Deep Bayes summer school, 2019
#   ([the school's materials](https://github.com/bayesgroup/deepbayes-2019)).
