"""A1's verdicts: how each test cell's points are decided outside the student's code (bnn_teach.grading.verdicts).

Each probe runs in the student's kernel right after its test cell, on the grader's inputs, and sends back
numbers; each judge runs in the grader's process and compares them with references computed there.
"""
import math

import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import bnn_teach as bt
from bnn_teach.grading.verdicts import Verdict, check, close

SEED = 1
F64 = torch.float64
#: what the students rebuild: absent from the library while a submission runs
ABSENT = ("bnn_teach.kl.normal_normal", "bnn_teach.kl.monte_carlo", "bnn_teach.nn.BayesLinear",
          "bnn_teach.objectives.elbo_loss", "bnn_teach.train.fit")
KL_SHORTCUTS = {r"kl_divergence|_kl_normal_normal|register_kl": "torch.distributions' KL"}


# ---- task 1: sample_weights

def _sample_inputs(g):
    return {"mu": torch.randn(5, 4, generator=g, dtype=F64), "rho": 2 * torch.randn(5, 4, generator=g, dtype=F64),
            "eps": torch.randn(5, 4, generator=g, dtype=F64),
            "rho_grad": torch.tensor([-30.0, -1.5, 0.0, 2.0, 30.0], dtype=F64)}


def _sample_judge(obs, ref, x):
    w = obs["w"]
    check(w.shape == x["mu"].shape, f"w should have the shape of mu, {tuple(x['mu'].shape)}, got {tuple(w.shape)}")
    check(not close(w, x["mu"] + torch.exp(x["rho"]) * x["eps"]), "sigma is softplus(rho) = log(1 + e^rho), not e^rho")
    check(not close(w, x["mu"] + F.softplus(x["rho"]) ** 2 * x["eps"]),
          "softplus(rho) is a standard deviation, not a variance")
    check(close(w, ref["w"], rtol=1e-6, atol=1e-9), "w should be mu + softplus(rho) * eps, elementwise")
    check(close(obs["grad"], ref["grad"], rtol=1e-6, atol=1e-9),
          "the gradient of w with respect to rho should be sigmoid(rho) * eps: compute w with differentiable torch "
          "operations (a numerically stable softplus, e.g. F.softplus, also for large |rho|)")


SAMPLE_WEIGHTS = Verdict(
    "test_sample_weights", inputs=_sample_inputs,
    probe=("w = sample_weights(mu, rho, eps)\n"
           "rho_g = rho_grad.clone().requires_grad_(True)\n"
           "sample_weights(torch.zeros_like(rho_g), rho_g, torch.ones_like(rho_g)).sum().backward()\n"
           "result = {'w': w, 'grad': rho_g.grad if rho_g.grad is not None else torch.full_like(rho_g, float('nan'))}"),
    reference=lambda x: {"w": x["mu"] + F.softplus(x["rho"]) * x["eps"], "grad": torch.sigmoid(x["rho_grad"])},
    judge=_sample_judge)


# ---- task 2: kl_gaussian

def _kl_basic_judge(obs, ref, x):
    kl = obs["kl"]
    check(kl.shape == x["mu"].shape, f"the KL is elementwise: expected shape {tuple(x['mu'].shape)}, got "
                                     f"{tuple(kl.shape)} (do not sum)")
    check(close(kl, torch.zeros_like(kl), atol=1e-12), "KL(q || q) must be 0: check the constant term")


KL_BASIC = Verdict(
    "test_kl_gaussian_basic",
    inputs=lambda g: {"mu": 3 * torch.randn(7, generator=g, dtype=F64),
                      "sigma": torch.rand(7, generator=g, dtype=F64) * 3 + 0.05},
    probe="result = {'kl': kl_gaussian(mu, sigma, mu, sigma)}", judge=_kl_basic_judge, forbid=KL_SHORTCUTS)


def _kl_values_inputs(g):
    n = 300
    return {"mu_q": 2 * torch.randn(n, generator=g, dtype=F64), "mu_p": 2 * torch.randn(n, generator=g, dtype=F64),
            "sigma_q": torch.rand(n, generator=g, dtype=F64) * 3 + 0.02,
            "sigma_p": torch.rand(n, generator=g, dtype=F64) * 3 + 0.02}


def _kl_values_reference(x):
    q, p = Normal(x["mu_q"], x["sigma_q"]), Normal(x["mu_p"], x["sigma_p"])
    return {"kl": kl_divergence(q, p), "reversed": kl_divergence(p, q), "standard": kl_divergence(q, Normal(0.0, 1.0))}


def _kl_values_judge(obs, ref, x):
    kl, reference = obs["kl"], ref["kl"]
    check(kl.shape == reference.shape and torch.isfinite(kl).all(),
          f"one finite KL per element: shape {tuple(reference.shape)}")
    log_ratio = torch.log(x["sigma_p"] / x["sigma_q"])  # a log term off by a factor leaves a gap proportional to it
    factor = float(((kl - reference) * log_ratio).sum() / (log_ratio**2).sum())
    check(abs(factor) < 0.01 or not close(kl - reference, factor * log_ratio, rtol=1e-4, atol=1e-6),
          "the log term is off by a factor: log sigma = (1/2) log sigma^2, so a log of variances needs the factor "
          "1/2 and a log of standard deviations none")
    check((kl >= -1e-12).all(), "the KL is negative somewhere: check the sign of each term")
    check(not close(kl, ref["reversed"]), "this is KL(p || q): the expectation must be under q (the posterior), KL(q || p)")
    check(close(kl, reference, rtol=1e-8, atol=1e-10),
          "the values differ from the reference: check the log term, the 1/(2 sigma_p^2) factor and the constant")
    check(close(obs["kl_scalar_prior"], ref["standard"], rtol=1e-8, atol=1e-10),
          "a prior given as scalar tensors should broadcast against the posterior's tensors")


KL_VALUES = Verdict(
    "test_kl_gaussian_values", inputs=_kl_values_inputs, reference=_kl_values_reference, judge=_kl_values_judge,
    probe=("result = {'kl': kl_gaussian(mu_q, sigma_q, mu_p, sigma_p),\n"
           "          'kl_scalar_prior': kl_gaussian(mu_q, sigma_q, torch.tensor(0.0, dtype=torch.float64),\n"
           "                                         torch.tensor(1.0, dtype=torch.float64))}"),
    forbid=KL_SHORTCUTS)


# ---- task 3: kl_monte_carlo

MIXTURE = {"pi": 0.5, "sigma1": 1.0, "sigma2": math.exp(-6)}


def _mc_reference(x):
    q = Normal(x["mu_q"], x["sigma_q"])
    mixture = bt.priors.ScaleMixturePrior(**MIXTURE)
    w = x["mu_q"] + x["sigma_q"] * torch.randn(400_000, len(x["mu_q"]), generator=torch.Generator().manual_seed(11),
                                               dtype=F64)
    return {"gaussian": kl_divergence(q, Normal(0.0, 1.0)), "mixture": (q.log_prob(w) - mixture.log_prob(w)).mean(0)}


def _mc_judge(obs, ref, x):
    for key in ("gaussian", "mixture"):
        check(obs[key].shape == ref[key].shape,
              f"one estimate per weight: expected shape {tuple(ref[key].shape)}, got {tuple(obs[key].shape)}")
    check((obs["gaussian"] > -0.05).all(), "the estimate is negative: average log q(w) - log p(w), in that order")
    check(close(obs["gaussian"], ref["gaussian"], rtol=0, atol=0.05),
          "far from the closed form for a Gaussian prior: draw w from q (mu_q + sigma_q * eps) and average "
          "log q(w) - log p(w) over the samples")
    check(close(obs["mixture"], ref["mixture"], rtol=0, atol=0.05),
          "the scale-mixture KL is off: evaluate log_prior on your samples")


KL_MONTE_CARLO = Verdict(
    "test_kl_monte_carlo",
    inputs=lambda g: {"mu_q": torch.tensor([0.5, -1.0, 1.5, 0.0], dtype=F64),
                      "sigma_q": torch.tensor([0.8, 0.3, 0.2, 1.2], dtype=F64)},
    probe=("mixture = bt.priors.ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))\n"
           "standard = torch.distributions.Normal(0.0, 1.0)\n"
           "result = {'gaussian': kl_monte_carlo(mu_q, sigma_q, standard.log_prob, 20_000, torch.Generator().manual_seed(21)),\n"
           "          'mixture': kl_monte_carlo(mu_q, sigma_q, mixture.log_prob, 20_000, torch.Generator().manual_seed(22))}"),
    reference=_mc_reference, judge=_mc_judge, forbid=KL_SHORTCUTS)


# ---- task 4: MyBayesLinear

def _shapes_judge(obs, ref, x):
    expected = {"weight_mu": (2, 3), "weight_rho": (2, 3), "bias_mu": (2,), "bias_rho": (2,)}
    check(int(obs["count"]) == 4, f"MyBayesLinear(3, 2) should have 4 parameters (weight_mu, weight_rho, bias_mu, "
                                  f"bias_rho), it has {int(obs['count'])}")
    for name, shape in expected.items():
        got = tuple(int(v) for v in obs[f"shape_{name}"].tolist())
        check(got == shape, f"{name} should have the shape {shape}, got {got if got != (-1,) else 'no such parameter'}")
    check(obs["y1"].shape == (7, 2), f"expected outputs of shape (7, 2), got {tuple(obs['y1'].shape)}")
    check(not torch.equal(obs["y1"], obs["y2"]), "two calls gave the same output: draw new weights on every call")


BAYES_LINEAR_SHAPES = Verdict(
    "test_bayes_linear_shapes", inputs=lambda g: {"x": torch.randn(7, 3, generator=g)},
    probe=("layer = MyBayesLinear(3, 2)\n"
           "params = dict(layer.named_parameters())\n"
           "result = {'count': len(params), 'y1': layer(x), 'y2': layer(x)}\n"
           "for name in ('weight_mu', 'weight_rho', 'bias_mu', 'bias_rho'):\n"
           "    result['shape_' + name] = list(params[name].shape) if name in params else [-1]"),
    judge=_shapes_judge)


def _moments_judge(obs, ref, x):
    outputs = obs["outputs"]
    check(outputs.shape == (4000, 3), f"expected 4000 outputs of shape (1, 3), got {tuple(outputs.shape)}")
    mean = x["x"].double() @ obs["weight_mu"].T + obs["bias_mu"]
    var = x["x"].double() ** 2 @ F.softplus(obs["weight_rho"]).T ** 2 + F.softplus(obs["bias_rho"]) ** 2
    check(close(outputs.mean(0), mean[0], rtol=0, atol=float(5 * (var.max() / 4000) ** 0.5)),
          "the outputs' mean is off: forward should compute x W^T + b with the sampled W and b")
    ratio = outputs.var(0) / var[0]
    check(((ratio > 0.85) & (ratio < 1.15)).all(),
          f"the outputs' variance is {[round(r, 2) for r in ratio.tolist()]} times the expected one: sample every "
          "weight and the bias with sigma = softplus(rho), once per call")


BAYES_LINEAR_MOMENTS = Verdict(
    "test_bayes_linear_moments",
    inputs=lambda g: {"x": torch.tensor([[0.5, 2.0, -1.5, 1.0]], dtype=F64),
                      "weight_rho": -0.5 - torch.rand(3, 4, generator=g, dtype=F64),
                      "bias_rho": -1.0 - torch.rand(3, generator=g, dtype=F64)},
    probe=("torch.manual_seed(16)\n"
           "layer = MyBayesLinear(4, 3).double()\n"
           "with torch.no_grad():\n"
           "    layer.weight_rho.copy_(weight_rho)\n"
           "    layer.bias_rho.copy_(bias_rho)\n"
           "    outputs = torch.cat([layer(x) for _ in range(4000)])\n"
           "result = {'outputs': outputs, 'weight_mu': layer.weight_mu, 'bias_mu': layer.bias_mu,\n"
           "          'weight_rho': layer.weight_rho, 'bias_rho': layer.bias_rho}"),
    judge=_moments_judge)


def _layer_kl_inputs(g):
    return {"weight_mu": torch.randn(4, 5, generator=g, dtype=F64), "bias_mu": torch.randn(4, generator=g, dtype=F64),
            "weight_rho": -2 * torch.rand(4, 5, generator=g, dtype=F64),
            "bias_rho": -2 * torch.rand(4, generator=g, dtype=F64)}


def _layer_kl_reference(x):
    prior = Normal(0.0, 0.7)
    parts = [kl_divergence(Normal(x[f"{p}_mu"], F.softplus(x[f"{p}_rho"])), prior).sum() for p in ("weight", "bias")]
    return {"kl": parts[0] + parts[1], "weights_only": parts[0]}


def _layer_kl_judge(obs, ref, x):
    check(obs["kl"].dim() == 0 and obs["is_tensor"] == 1, "kl() should return a scalar tensor (the sum)")
    check(not close(obs["kl"], ref["weights_only"]), "the biases are Bayesian too: add their KL")
    check(close(obs["kl"], ref["kl"], rtol=1e-6), "kl() differs from the sum of the Gaussian KL to N(0, prior_sigma^2)")


BAYES_LINEAR_KL = Verdict(
    "test_bayes_linear_kl", inputs=_layer_kl_inputs, reference=_layer_kl_reference, judge=_layer_kl_judge,
    probe=("layer = MyBayesLinear(5, 4, prior_sigma=0.7).double()\n"
           "with torch.no_grad():\n"
           "    layer.weight_mu.copy_(weight_mu)\n"
           "    layer.weight_rho.copy_(weight_rho)\n"
           "    layer.bias_mu.copy_(bias_mu)\n"
           "    layer.bias_rho.copy_(bias_rho)\n"
           "kl = layer.kl()\n"
           "result = {'kl': kl if torch.is_tensor(kl) else float(kl), 'is_tensor': torch.is_tensor(kl)}"),
    forbid=KL_SHORTCUTS)


# ---- task 5: elbo_loss and train_bbb

def _elbo_judge(obs, ref, x):
    value = float(obs["value"])
    check(not math.isclose(value, 600.3, rel_tol=1e-6), "the KL is summed over all weights: divide it by num_data")
    check(not math.isclose(value, 0.3 + 600 / 32, rel_tol=1e-6),
          "divide by the number of training points, not the batch size")
    check(math.isclose(value, 0.31, rel_tol=1e-6), f"elbo_loss(0.3, 600, 60000) should be 0.31, got {value:g}")
    expected = float(x["nll"] + x["kl"] / x["num_data"])
    check(obs["is_tensor"] == 1 and math.isclose(float(obs["loss"]), expected, rel_tol=1e-6),
          f"elbo_loss on other numbers gave {float(obs['loss']):g}, expected {expected:g}: compute the loss from the "
          "arguments, not from fixed numbers")
    check(math.isclose(float(obs["grad_kl"]), 1 / float(x["num_data"]), rel_tol=1e-6),
          "the loss must be a differentiable function of nll and kl (torch operations on the arguments)")


ELBO_LOSS = Verdict(
    "test_elbo_loss",
    inputs=lambda g: {"nll": torch.tensor(1.25), "kl": torch.tensor(84.0), "num_data": torch.tensor(240)},
    probe=("value = float(elbo_loss(torch.tensor(0.3), torch.tensor(600.0), 60_000))\n"
           "nll_in, kl_in = nll.clone().requires_grad_(True), kl.clone().requires_grad_(True)\n"
           "loss = elbo_loss(nll_in, kl_in, int(num_data))\n"
           "is_tensor = torch.is_tensor(loss)\n"
           "if is_tensor and loss.requires_grad:\n"
           "    loss.backward()\n"
           "result = {'value': value, 'loss': float(loss), 'is_tensor': is_tensor,\n"
           "          'grad_kl': float(kl_in.grad) if kl_in.grad is not None else float('nan')}"),
    judge=_elbo_judge)


def _regression_inputs(g):
    X, y = bt.data.regression_1d(200, seed=7)
    return {"X": X, "y": y}


def _regression_judge(obs, ref, x):
    losses = obs["losses"]
    check(losses.shape == (150,), f"train_bbb should return one loss per epoch (150), got {tuple(losses.shape)}")
    check(losses[-1] < losses[0], "the loss did not go down: check the optimizer step and the loss")
    on_data, far = obs["on_data"], obs["far"]
    check(on_data.shape == (100, 200, 1) and far.shape == (100, 50, 1), "the network's outputs have the wrong shape")
    rmse = float(((on_data.mean(0) - x["y"].double()) ** 2).mean().sqrt())
    check(rmse < 0.5, f"the predictive mean misses the data (RMSE {rmse:.2f}): with KL / num_data the data should "
                      "dominate the prior on 200 points; check the scaling of the KL")
    ratio = float(far.std(0).mean() / on_data.std(0).mean())
    check(ratio > 2, f"the spread off the data is only {ratio:.1f}x that on the data: is each forward drawing new weights?")


BBB_REGRESSION = Verdict(
    "test_bbb_regression", inputs=_regression_inputs, judge=_regression_judge,
    probe=("bt.utils.set_seed(7)\n"
           "net = nn.Sequential(MyBayesLinear(1, 32), nn.ReLU(), MyBayesLinear(32, 32), nn.ReLU(), MyBayesLinear(32, 1))\n"
           "losses = train_bbb(net, X, y, num_epochs=150, batch_size=32, lr=1e-2)\n"
           "with torch.no_grad():\n"
           "    on_data = torch.stack([net(X) for _ in range(100)])\n"
           "    far = torch.stack([net(torch.full((50, 1), 7.0)) for _ in range(100)])\n"
           "result = {'losses': [float(v) for v in losses], 'on_data': on_data, 'far': far}"))


VERDICTS = [SAMPLE_WEIGHTS, KL_BASIC, KL_VALUES, KL_MONTE_CARLO, BAYES_LINEAR_SHAPES, BAYES_LINEAR_MOMENTS,
            BAYES_LINEAR_KL, ELBO_LOSS, BBB_REGRESSION]
