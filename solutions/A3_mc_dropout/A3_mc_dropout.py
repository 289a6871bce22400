# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # A3 · Dropout as Bayes
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/bnn-teach/bnn_teach/blob/main/assignments/A3_mc_dropout/A3_mc_dropout.ipynb)
#
# Gal and Ghahramani showed that a network trained with dropout is a variational approximation of a
# Bayesian one, whose posterior samples are the dropout masks. Keeping dropout on at prediction time
# ("MC dropout") turns any such network into a Bayesian predictor. You build that predictor without
# the classic bug (switching BatchNorm to training mode), split its uncertainty into aleatoric and
# epistemic parts, and use the epistemic part to tell MNIST digits from inputs unlike anything in
# the training set.
#
# **How this is graded (20 points).** Each task says what to build, why, and how it is checked.
# Replace every `raise NotImplementedError()` with your code. Cells that start with a docstring are
# tests for you: they check shapes, sanity and typical mistakes as you work. The points are decided by
# the grader: right after each test cell it calls your functions again on inputs of its own and checks
# the numbers outside your notebook, so a test cell that passes is a good sign, not yet the grade. While
# a test runs, and throughout grading, the library function you are rebuilding (e.g.
# `bt.uncertainty.decompose`) is not there, so your code must compute the answer itself. Tiers:
# **basic** (task 1), **intermediate** (2, 3), **advanced** (4). Before handing in, run `bnn-teach grade
# check A3_mc_dropout.ipynb` (or *Restart and run all*); a test cell that prints a warning (to stderr)
# counts as failed. On Colab: run it there, then *File → Download → .ipynb* and hand in that file.

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
from bnn_teach.grading import hidden

# %%
SEED = 0
DEVICE = bt.utils.get_device()
FAST = bt.utils.fast_mode()
bt.utils.set_seed(SEED)
X_train, y_train = bt.data.load_mnist("train", subset=3_000)
X_test, y_test = bt.data.load_mnist("test", subset=1_000)
X_noise = torch.rand(1_000, 1, 28, 28, generator=torch.Generator().manual_seed(SEED))  # nothing like a digit

# %% [markdown] nbgrader={"grade": false, "grade_id": "given_network", "locked": true, "schema_version": 3, "solution": false}
# ## Given: a network with BatchNorm and dropout, trained as usual
#
# An ordinary network: dropout ($p = 0.5$) after the hidden layer, and BatchNorm before it. `bt.train.fit`
# trains it with plain cross-entropy (it has no KL). Three epochs on 3,000 images take a few seconds.

# %%
def make_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(256, 10))


bt.utils.set_seed(SEED)
net = make_net()
history = bt.train.fit(net, (X_train, y_train), 3, torch.optim.Adam(net.parameters(), lr=1e-3), progress=False)
print(f"training accuracy after 3 epochs: {history[-1]['train_acc']:.3f}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "task1", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1 (basic, 5 points): MC-dropout prediction that leaves BatchNorm alone
#
# Write `mc_dropout_predict(model, X, num_samples)`: softmax probabilities of `num_samples` forward
# passes with **only the dropout layers** sampling, shape `(num_samples, N, classes)`. Calling
# `model.train()` would also switch BatchNorm to batch statistics, and update its running averages
# with the test data: predictions would then depend on which other inputs share the batch. Put the
# model in `eval()` mode and switch each `nn.Dropout` to training mode; afterwards restore every
# module's mode as it was, and compute without gradients. Checked: the shape, that the samples differ,
# that BatchNorm's running statistics do not move, that a prediction does not depend on the rest of the
# batch, and that the modes are restored.

# %% nbgrader={"grade": false, "grade_id": "mc_dropout_predict", "locked": false, "schema_version": 3, "solution": true}
def mc_dropout_predict(model, X, num_samples):
    """(num_samples, N, classes) probabilities with dropout on and everything else in eval() mode."""
    ### BEGIN SOLUTION
    modes = {module: module.training for module in model.modules()}
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.train()
    try:
        with torch.no_grad():
            return torch.stack([torch.softmax(model(X), dim=-1) for _ in range(num_samples)])
    finally:
        for module, mode in modes.items():
            module.train(mode)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_mc_dropout_samples", "locked": true, "points": 2, "schema_version": 3, "solution": false}
"""mc_dropout_predict: shape (S, N, 10), probability rows, and samples that differ."""
with hidden("bnn_teach.predict.mc_predict", "bnn_teach.nn.sampling"):
    probs = mc_dropout_predict(net, X_test[:50], num_samples=8)
assert probs.shape == (8, 50, 10), f"expected (num_samples, N, classes) = (8, 50, 10), got {tuple(probs.shape)}"
assert torch.allclose(probs.sum(-1), torch.ones(8, 50), atol=1e-5), "each row should be a probability vector (softmax)"
assert not torch.allclose(probs[0], probs[1]), "all samples are equal: dropout must stay on while predicting"

# %% nbgrader={"grade": true, "grade_id": "test_mc_dropout_batchnorm", "locked": true, "points": 3, "schema_version": 3, "solution": false}
"""mc_dropout_predict: BatchNorm keeps its running statistics and eval mode; a prediction does not depend on the batch."""
batchnorm = net[2]
mean_before, var_before = batchnorm.running_mean.clone(), batchnorm.running_var.clone()
batchnorm_modes = []  # BatchNorm's mode at each of its forward passes
hook = batchnorm.register_forward_pre_hook(lambda module, inputs: batchnorm_modes.append(module.training))
net.train()
try:
    with hidden("bnn_teach.predict.mc_predict", "bnn_teach.nn.sampling"):
        torch.manual_seed(8)
        alone = mc_dropout_predict(net, X_test[:1], num_samples=20)
except Exception:
    assert not any(batchnorm_modes), "BatchNorm is in training mode during MC dropout: only the dropout layers should sample"
    raise
finally:
    hook.remove()
assert batchnorm_modes and not any(batchnorm_modes), \
    "BatchNorm is in training mode during MC dropout: only the dropout layers should sample"
assert net.training and all(m.training for m in net.modules()), "restore every module's mode afterwards"
assert torch.equal(batchnorm.running_mean, mean_before) and torch.equal(batchnorm.running_var, var_before), \
    "BatchNorm's running statistics changed: keep it in eval() mode and switch only the dropout layers on"
net.eval()
with hidden("bnn_teach.predict.mc_predict", "bnn_teach.nn.sampling"):
    torch.manual_seed(8)
    in_batch = mc_dropout_predict(net, X_test[:1].expand(64, 1, 28, 28).contiguous(), num_samples=20)
assert not net.training, "restore every module's mode afterwards"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task2", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2 (intermediate, 6 points): the uncertainty decomposition
#
# With $\bar p = \frac1S \sum_s p_s$ and the entropy $\mathbb H[p] = -\sum_c p_c \log p_c$ in nats (lecture L01),
#
# $$\underbrace{\mathbb H[\bar p]}_{\text{total}} = \underbrace{\tfrac1S \textstyle\sum_s \mathbb H[p_s]}_{\text{aleatoric}}
#   + \underbrace{\text{total} - \text{aleatoric}}_{\text{epistemic (mutual information)}} .$$
#
# Write `decompose(probs)` for `probs` of shape `(S, N, C)` returning `(total, aleatoric, epistemic)`,
# three tensors of shape `(N,)`. Treat $0 \log 0$ as 0. Checked on textbook cases and against the
# library's `bt.uncertainty.decompose` (hidden while it runs).

# %% nbgrader={"grade": false, "grade_id": "decompose", "locked": false, "schema_version": 3, "solution": true}
def decompose(probs):
    """(total, aleatoric, epistemic) entropies in nats, each (N,), from probs (S, N, C)."""
    ### BEGIN SOLUTION
    def entropy(p):
        return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)

    total = entropy(probs.mean(0))
    aleatoric = entropy(probs).mean(0)
    return total, aleatoric, total - aleatoric
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_decompose_textbook", "locked": true, "points": 2, "schema_version": 3, "solution": false}
"""decompose: two unsure samples that agree (all aleatoric) and two sure samples that disagree (all epistemic)."""
probs = torch.tensor([[[0.5, 0.5], [1.0, 0.0]],
                      [[0.5, 0.5], [0.0, 1.0]]], dtype=torch.float64)  # (S=2, N=2, C=2)
with hidden("bnn_teach.uncertainty.decompose", "bnn_teach.uncertainty.entropy"):
    total, aleatoric, epistemic = decompose(probs)
assert total.shape == aleatoric.shape == epistemic.shape == (2,), "one value per input: shape (N,)"
assert torch.isfinite(total).all() and torch.isfinite(aleatoric).all(), "NaN: treat 0 log 0 as 0 (e.g. clamp p)"
assert not torch.allclose(total, torch.full((2,), 1.0, dtype=torch.float64)), "that is in bits: use the natural log"
log2 = math.log(2)
assert torch.allclose(aleatoric, torch.tensor([log2, 0.0], dtype=torch.float64), atol=1e-9), \
    "the aleatoric part is the mean of each sample's entropy"
assert torch.allclose(epistemic, torch.tensor([0.0, log2], dtype=torch.float64), atol=1e-9), \
    "the epistemic part is what the samples' disagreement adds: total - aleatoric"

# %% nbgrader={"grade": true, "grade_id": "test_decompose_values", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""decompose: equal to the library's decomposition on random predictions, epistemic never negative."""
g = torch.Generator().manual_seed(9)
probs = torch.softmax(2 * torch.randn(10, 200, 10, generator=g, dtype=torch.float64), dim=-1)
with hidden("bnn_teach.uncertainty.decompose", "bnn_teach.uncertainty.entropy"):
    total, aleatoric, epistemic = decompose(probs)
assert (epistemic > -1e-9).all(), "the mutual information is never negative: total is the entropy of the MEAN prediction"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task3", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3 (intermediate, 4 points): AUROC
#
# To judge an uncertainty score as a detector of out-of-distribution inputs, use the area under the ROC
# curve: the probability that a randomly chosen out-of-distribution input (label 1) scores higher than a
# randomly chosen in-distribution one (label 0), ties counting one half. Write `auroc(scores, labels)`
# (1-D tensors, labels 0/1), a Python float. Checked on small cases with ties and against the library.

# %% nbgrader={"grade": false, "grade_id": "auroc", "locked": false, "schema_version": 3, "solution": true}
def auroc(scores, labels):
    """P(score of a random positive > score of a random negative), ties counting 1/2."""
    ### BEGIN SOLUTION
    positive, negative = scores[labels == 1], scores[labels == 0]
    greater = (positive[:, None] > negative[None, :]).double().mean()
    ties = (positive[:, None] == negative[None, :]).double().mean()
    return float(greater + 0.5 * ties)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_auroc", "locked": true, "points": 4, "schema_version": 3, "solution": false}
"""auroc: perfect, reversed and tied cases, and the library's value on random scores."""
with hidden("bnn_teach.metrics.auroc"):
    perfect = auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1]))
    reversed_ = auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([0, 0, 1, 1]))
    tied = auroc(torch.tensor([0.5, 0.5, 0.5, 0.5]), torch.tensor([0, 1, 0, 1]))
assert isinstance(perfect, float), "return a Python float"
assert math.isclose(perfect, 1.0) and math.isclose(reversed_, 0.0), \
    f"got {perfect} and {reversed_}: positives (label 1) scoring higher should give 1"
assert math.isclose(tied, 0.5), f"all scores tied should give 0.5, got {tied}: ties count one half"

# %% [markdown] nbgrader={"grade": false, "grade_id": "task4", "locked": true, "schema_version": 3, "solution": false}
# ## Task 4 (advanced, 5 points): digits or noise?
#
# Write `ood_auroc(model, X_in, X_out, num_samples=20)`: with your MC-dropout predictions and your
# decomposition, return a dict `{"total": ..., "epistemic": ...}` with the AUROC of each uncertainty for
# telling `X_out` (label 1) from `X_in` (label 0). Checked on the test digits against uniform noise:
# both scores must detect the noise well. Which of the two does better here, and why? (Not graded:
# try rotated digits too, with `torch.rot90`.)

# %% nbgrader={"grade": false, "grade_id": "ood_auroc", "locked": false, "schema_version": 3, "solution": true}
def ood_auroc(model, X_in, X_out, num_samples=20):
    """{"total": AUROC of the predictive entropy, "epistemic": AUROC of the mutual information}."""
    ### BEGIN SOLUTION
    labels = torch.cat([torch.zeros(len(X_in)), torch.ones(len(X_out))]).long()
    parts = [decompose(mc_dropout_predict(model, X, num_samples)) for X in (X_in, X_out)]
    total = torch.cat([parts[0][0], parts[1][0]])
    epistemic = torch.cat([parts[0][2], parts[1][2]])
    return {"total": auroc(total, labels), "epistemic": auroc(epistemic, labels)}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ood", "locked": true, "points": 5, "schema_version": 3, "solution": false}
"""ood_auroc: both uncertainties tell uniform noise from test digits (AUROC > 0.8)."""
torch.manual_seed(11)
with hidden("bnn_teach.predict.mc_predict", "bnn_teach.uncertainty.decompose", "bnn_teach.metrics.auroc"):
    result = ood_auroc(net, X_test, X_noise, num_samples=20)
assert set(result) == {"total", "epistemic"}, f"return a dict with keys 'total' and 'epistemic', got {set(result)}"
assert result["total"] > 0.8 and result["epistemic"] > 0.8, \
    f"AUROC {result}: below 0.5 means the labels are the wrong way round (noise is label 1)"
print(f"AUROC for noise vs digits: total {result['total']:.3f}, epistemic {result['epistemic']:.3f}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "written_mc_dropout_question", "locked": true, "schema_version": 3, "solution": false}
# ## Written answer (2 points, graded by hand): dropout at test time
#
# Why must dropout stay on at test time for MC dropout to give an uncertainty estimate, and what kind of
# uncertainty does the spread of the $T$ stochastic predictions measure?
#
# Answer in the cell below in two to four sentences, in your own words. It is read by your instructor,
# not by the autograder: name the mechanism, not only the result.

# %% [markdown] nbgrader={"grade": true, "grade_id": "written_mc_dropout", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# **Model answer.** Each dropout mask is a sample of the weights from the approximate posterior $q(W)$; with
# dropout off the network uses the mean weights, one point estimate, and every pass gives the same prediction.
# Averaging $T$ passes with dropout on is a Monte Carlo estimate of the predictive distribution. Their spread
# (the variance of the means, or the mutual information for classes) is epistemic: the disagreement between
# plausible weights, which shrinks with more data, unlike the aleatoric noise of the labels.
#
# **Rubric (2 points).**
# - 1 point: dropout masks sample weights from the approximate posterior; off, the network is a point estimate
#   with no spread.
# - 1 point: the spread across passes is epistemic (model) uncertainty, reduced by more data; not the label
#   noise.

# %% [markdown] nbgrader={"grade": false, "grade_id": "extension", "locked": true, "schema_version": 3, "solution": false}
# ## Extension (optional, not graded)
#
# Vary the dropout rate (0.1, 0.3, 0.5, 0.7) and plot, for each, the test accuracy and the mean mutual
# information on the digits and on the noise. Lecture L04 shows that the dropout rate is a variational
# parameter that is not learnt here: what does that mean for how much the epistemic uncertainty can be
# trusted?
