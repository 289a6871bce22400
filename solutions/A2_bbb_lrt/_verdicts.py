"""A2's verdicts: how each test cell's points are decided outside the student's code (bnn_teach.grading.verdicts).

Each probe runs in the student's kernel right after its test cell, on the grader's inputs, and sends back
numbers; each judge runs in the grader's process and compares them with references computed there.
"""
import math

import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

import bnn_teach as bt
from bnn_teach.grading.verdicts import Verdict, check, close

SEED = 2
F64 = torch.float64
#: what the students rebuild: absent from the library while a submission runs (the given LRTLinear's
#: bt.kl.normal_normal stays: the notebook uses it outside the tests)
ABSENT = ("bnn_teach.nn.BayesLinear", "bnn_teach.nn.BayesConv2d", "bnn_teach.objectives.elbo_loss",
          "bnn_teach.train.fit", "bnn_teach.predict.mc_predict", "bnn_teach.metrics.accuracy",
          "bnn_teach.metrics.nll", "bnn_teach.metrics.ece", "bnn_teach.metrics.reliability_bins")


def _shape(t):
    return tuple(t.shape)


# ---- task 1: lrt_linear

def _lrt_linear_inputs(g):
    return {"x": torch.randn(5, 7, generator=g, dtype=F64),
            "weight_mu": torch.randn(4, 7, generator=g, dtype=F64),
            "weight_sigma": torch.rand(4, 7, generator=g, dtype=F64) * 1.5 + 0.05,
            "bias_mu": torch.randn(4, generator=g, dtype=F64),
            "bias_sigma": torch.rand(4, generator=g, dtype=F64) + 0.05,
            "eps": torch.randn(5, 4, generator=g, dtype=F64)}


def _lrt_linear_reference(x):
    sigma = x["weight_sigma"].clone().requires_grad_(True)
    mean = x["x"] @ x["weight_mu"].T + x["bias_mu"]
    var = x["x"] ** 2 @ (sigma**2).T + x["bias_sigma"] ** 2
    out = mean + var.sqrt() * x["eps"]
    out.sum().backward()
    return {"out": out.detach(), "mean": mean, "variance_times_eps": (mean + var * x["eps"]).detach(),
            "grad": sigma.grad}


def _lrt_linear_judge(obs, ref, x):
    out = obs["out"]
    check(out.shape == ref["out"].shape,
          f"expected (batch, out_features) = {_shape(ref['out'])}, got {_shape(out)}")
    check(not close(obs["twins"][0], obs["twins"][1]),
          "rows with the same input got the same output: the noise is shared by the whole batch; use eps as given, "
          "one value per example and output unit")
    check(close(obs["at_zero"], ref["mean"]), "with eps = 0 the output should be the mean x mu^T + mu_b")
    check(not close(out, ref["variance_times_eps"]),
          "the noise is scaled by the standard deviation: take the square root of the variance")
    check(torch.isfinite(out).all(), "NaN in the output: a variance cannot be negative; Var(x w) = x^2 Var(w)")
    check(close(out, ref["out"], rtol=1e-6, atol=1e-8), "the output differs from mean + sqrt(variance) * eps")
    check(close(obs["grad"], ref["grad"], rtol=1e-6, atol=1e-8),
          "the gradient with respect to weight_sigma is wrong or missing: the sample must be a differentiable "
          "function of sigma (torch operations on the arguments, nothing detached)")


LRT_LINEAR = Verdict(
    "test_lrt_linear", inputs=_lrt_linear_inputs, reference=_lrt_linear_reference, judge=_lrt_linear_judge,
    probe=("out = lrt_linear(x, weight_mu, weight_sigma, bias_mu, bias_sigma, eps)\n"
           "twins = lrt_linear(x[:1].expand_as(x), weight_mu, weight_sigma, bias_mu, bias_sigma, eps)\n"
           "at_zero = lrt_linear(x, weight_mu, weight_sigma, bias_mu, bias_sigma, torch.zeros_like(eps))\n"
           "sigma_g = weight_sigma.clone().requires_grad_(True)\n"
           "sample = lrt_linear(x, weight_mu, sigma_g, bias_mu, bias_sigma, eps)\n"
           "if torch.is_tensor(sample) and sample.requires_grad:\n"
           "    sample.sum().backward()\n"
           "result = {'out': out, 'twins': twins, 'at_zero': at_zero,\n"
           "          'grad': sigma_g.grad if sigma_g.grad is not None else torch.full_like(sigma_g, float('nan'))}"))


# ---- task 2: lrt_conv2d

#: (stride, padding) of each call; the last uses the defaults (1, 0)
CONV_CALLS = {"same": (1, 1), "strided": (2, 0), "default": (1, 0)}


def _conv_inputs(g):
    x = {"x": torch.randn(3, 2, 8, 8, generator=g, dtype=F64),
         "weight_mu": torch.randn(5, 2, 3, 3, generator=g, dtype=F64),
         "weight_sigma": torch.rand(5, 2, 3, 3, generator=g, dtype=F64) + 0.05,
         "bias_mu": torch.randn(5, generator=g, dtype=F64),
         "bias_sigma": torch.rand(5, generator=g, dtype=F64) + 0.05}
    for name, (stride, padding) in CONV_CALLS.items():
        side = (8 + 2 * padding - 3) // stride + 1
        x[f"eps_{name}"] = torch.randn(3, 5, side, side, generator=g, dtype=F64)
    return x


def _conv_reference(x):
    ref = {}
    for name, (stride, padding) in CONV_CALLS.items():
        mean = F.conv2d(x["x"], x["weight_mu"], x["bias_mu"], stride=stride, padding=padding)
        var = F.conv2d(x["x"] ** 2, x["weight_sigma"] ** 2, x["bias_sigma"] ** 2, stride=stride, padding=padding)
        ref[name] = mean + var.sqrt() * x[f"eps_{name}"]
        for bias, bias_sigma in (("", x["bias_sigma"] ** 2), ("_bias_too", x["bias_sigma"])):  # sigma for sigma^2
            sd = F.conv2d(x["x"] ** 2, x["weight_sigma"], bias_sigma, stride=stride, padding=padding)
            ref[f"{name}_sigma_not_squared{bias}"] = mean + sd.sqrt() * x[f"eps_{name}"]
    return ref


def _conv_judge(obs, ref, x):
    for name, (stride, padding) in CONV_CALLS.items():
        check(obs[name].shape == ref[name].shape,
              f"expected {_shape(ref[name])} with stride {stride} and padding {padding}, got {_shape(obs[name])}: "
              "pass stride and padding to F.conv2d")
    for name in CONV_CALLS:
        check(not any(close(obs[name], ref[f"{name}_sigma_not_squared{bias}"]) for bias in ("", "_bias_too")),
              "the variance convolves the squared inputs with the *variances* sigma^2")
    for name, (stride, padding) in CONV_CALLS.items():
        check(close(obs[name], ref[name], rtol=1e-6, atol=1e-8),
              f"with stride {stride} and padding {padding} the output differs from mean + sqrt(variance) * eps, "
              "mean = conv(x, mu) + mu_b and variance = conv(x^2, sigma^2) + sigma_b^2")


LRT_CONV2D = Verdict(
    "test_lrt_conv2d", inputs=_conv_inputs, reference=_conv_reference, judge=_conv_judge,
    probe=("args = (x, weight_mu, weight_sigma, bias_mu, bias_sigma)\n"
           "result = {'same': lrt_conv2d(*args, eps_same, stride=1, padding=1),\n"
           "          'strided': lrt_conv2d(*args, eps_strided, stride=2, padding=0),\n"
           "          'default': lrt_conv2d(*args, eps_default)}"))


# ---- task 3: negative_elbo

def _elbo_inputs(g):
    return {"logits": 2 * torch.randn(40, 7, generator=g, dtype=F64), "y": torch.randint(0, 7, (40,), generator=g),
            "kl": torch.tensor(987.5, dtype=F64), "num_data": torch.tensor(2500)}


def _elbo_reference(x):
    logits = x["logits"].clone().requires_grad_(True)
    cross_entropy = F.cross_entropy(logits, x["y"])
    cross_entropy.backward()
    kl, n = float(x["kl"]), int(x["num_data"])
    return {"loss": cross_entropy.detach() + kl / n, "kl_not_divided": cross_entropy.detach() + kl,
            "summed": len(x["y"]) * cross_entropy.detach() + kl / n, "grad_logits": logits.grad}


def _elbo_judge(obs, ref, x):
    loss = float(obs["loss"])
    check(not math.isclose(loss, float(ref["kl_not_divided"]), rel_tol=1e-5), "divide the KL by num_data")
    check(not math.isclose(loss, float(ref["summed"]), rel_tol=1e-5),
          "take the mean cross-entropy of the batch, not the sum")
    check(math.isclose(loss, float(ref["loss"]), rel_tol=1e-6),
          f"negative_elbo on other numbers gave {loss:g}, expected mean cross-entropy + kl / num_data = "
          f"{float(ref['loss']):g}: compute the loss from the arguments (logits, y, kl, num_data), not from fixed "
          "numbers")
    check(obs["is_tensor"] == 1 and math.isclose(float(obs["grad_kl"]), 1 / int(x["num_data"]), rel_tol=1e-6)
          and close(obs["grad_logits"], ref["grad_logits"], rtol=1e-6, atol=1e-10),
          "the loss must be a differentiable function of logits and kl (torch operations on the arguments), or "
          "train cannot minimise it")


NEGATIVE_ELBO = Verdict(
    "test_negative_elbo", inputs=_elbo_inputs, reference=_elbo_reference, judge=_elbo_judge,
    probe=("logits_in, kl_in = logits.clone().requires_grad_(True), kl.clone().requires_grad_(True)\n"
           "loss = negative_elbo(logits_in, y, kl_in, int(num_data))\n"
           "is_tensor = torch.is_tensor(loss)\n"
           "if is_tensor and loss.requires_grad:\n"
           "    loss.backward()\n"
           "nan = float('nan')\n"
           "result = {'loss': loss.detach() if is_tensor else float(loss), 'is_tensor': is_tensor,\n"
           "          'grad_kl': float(kl_in.grad) if kl_in.grad is not None else nan,\n"
           "          'grad_logits': logits_in.grad if logits_in.grad is not None else torch.full_like(logits, nan)}"))


# ---- task 4: mc_predict and train

def _mc_inputs(g):
    return {"X": torch.rand(12, 1, 28, 28, generator=g),
            "W1": torch.randn(200, 784, generator=g) / 28, "b1": 0.1 * torch.randn(200, generator=g),
            "W2": 3 * torch.randn(10, 200, generator=g) / math.sqrt(200), "b2": 0.1 * torch.randn(10, generator=g)}


def _mc_reference(x):
    hidden = torch.relu(x["X"].double().flatten(1) @ x["W1"].double().T + x["b1"].double())
    return {"probs": torch.softmax(hidden @ x["W2"].double().T + x["b2"].double(), dim=-1)}


def _mc_judge(obs, ref, x):
    probs, exact = obs["probs"], obs["exact"]
    check(probs.shape == (6, 12, 10) and exact.shape == (3, 12, 10),
          f"expected (num_samples, N, classes) = (6, 12, 10), got {_shape(probs)}")
    check((probs >= 0).all() and close(probs.sum(-1), torch.ones(6, 12), rtol=0, atol=1e-5),
          "each row should be a probability vector: apply softmax over the classes")
    check(close(exact, ref["probs"].expand(3, -1, -1), rtol=0, atol=1e-5),
          "with (almost) no weight noise each sample should be the softmax of the network's output on X: run the "
          "model on the X it is given, once per sample")
    check(not close(probs[0], probs[1]), "the samples are equal: switch sampling on (layer.sample = True)")
    check(obs["sampling_after"] == 0, "switch sampling off again afterwards")


MC_PREDICT = Verdict(
    "test_mc_predict", inputs=_mc_inputs, reference=_mc_reference, judge=_mc_judge,
    probe=("bt.utils.set_seed(40)\n"
           "net = make_mlp()\n"
           "layers = [m for m in net.modules() if isinstance(m, LRTLinear)]\n"
           "def set_rho(value):\n"
           "    with torch.no_grad():\n"
           "        for layer in layers:\n"
           "            layer.weight_rho.fill_(value)\n"
           "            layer.bias_rho.fill_(value)\n"
           "with torch.no_grad():\n"
           "    for layer, (w, b) in zip(layers, [(W1, b1), (W2, b2)]):\n"
           "        layer.weight_mu.copy_(w)\n"
           "        layer.bias_mu.copy_(b)\n"
           "set_rho(-20.0)\n"
           "exact = mc_predict(net, X, num_samples=3)\n"
           "set_rho(-2.0)\n"
           "result = {'exact': exact, 'probs': mc_predict(net, X, num_samples=6),\n"
           "          'sampling_after': float(any(layer.sample for layer in layers))}"))


def _train_judge(obs, ref, x):
    losses = obs["losses"]
    check(losses.shape == (3,), f"train should return one mean loss per epoch (3), got {losses.numel()} values")
    check(losses[-1] < losses[0], f"the loss should fall over the 3 epochs: {[round(v, 3) for v in losses.tolist()]}")
    probs, y = obs["probs"], obs["y"]
    check(probs.shape == (10, len(y), 10), f"mc_predict should give (10, {len(y)}, 10), got {_shape(probs)}")
    accuracy = float((probs.mean(0).argmax(-1) == y).double().mean())
    check(accuracy > 0.85, f"test accuracy {100 * accuracy:.1f} %: check the loss (mean cross-entropy + KL / N) and "
                           "the optimiser loop")
    check(obs["init_mu"].shape == obs["init_sigma"].shape, "the network's means and spreads do not match")
    kl = kl_divergence(Normal(obs["init_mu"], obs["init_sigma"]), Normal(0.0, 1.0)).sum()
    kl_start = float(kl) / float(obs["num_data"])
    first = float(losses[0])
    check(0.9 * kl_start < first < 1.1 * kl_start + 3,
          f"the first epoch's mean loss is {first:.1f} while the untrained network's KL / N alone is {kl_start:.1f}: "
          "divide the network's KL by num_data = len(X) once per step (not by the batch size, not also by the number "
          "of batches), and return the mean loss of each epoch")


TRAIN_ACCURACY = Verdict(
    "test_train_accuracy", judge=_train_judge,
    probe=("Xtr, ytr = bt.data.load_mnist('train', subset=3_000)\n"
           "Xte, yte = bt.data.load_mnist('test', subset=1_000)\n"
           "bt.utils.set_seed(5)\n"
           "net = make_mlp()\n"
           "layers = [m for m in net.modules() if isinstance(m, LRTLinear)]\n"
           "init_mu = torch.cat([p.detach().flatten() for m in layers for p in (m.weight_mu, m.bias_mu)])\n"
           "init_sigma = torch.cat([F.softplus(p.detach()).flatten()\n"
           "                        for m in layers for p in (m.weight_rho, m.bias_rho)])\n"
           "losses = train(net, Xtr, ytr, num_epochs=3)\n"
           "result = {'losses': [float(v) for v in losses], 'probs': mc_predict(net, Xte, num_samples=10), 'y': yte,\n"
           "          'init_mu': init_mu, 'init_sigma': init_sigma, 'num_data': len(Xtr)}"))


# ---- task 5: accuracy and nll

def _metrics_inputs(g):
    return {"probs": torch.softmax(2.5 * torch.randn(6, 250, 7, generator=g, dtype=F64), dim=-1),
            "y": torch.randint(0, 7, (250,), generator=g)}


def _metrics_reference(x):
    probs, y = x["probs"], x["y"]
    per_sample = -torch.log(probs[:, torch.arange(len(y)), y]).mean()
    return {"accuracy": bt.metrics.accuracy(probs, y), "nll": bt.metrics.nll(probs, y),
            "per_sample_nll": float(per_sample), "per_sample_accuracy": float((probs.argmax(-1) == y).double().mean())}


def _metrics_judge(obs, ref, x):
    check(obs["floats"] == 1, "return Python floats (float(...))")
    got_accuracy, got_nll = float(obs["accuracy"]), float(obs["nll"])
    check(not math.isclose(got_nll, ref["per_sample_nll"], rel_tol=1e-6),
          "that averages the log-likelihood of each sample; the NLL is of the averaged probabilities")
    check(not math.isclose(got_accuracy, ref["per_sample_accuracy"], rel_tol=1e-9),
          "that averages the accuracy of each sample; the accuracy is of the averaged probabilities")
    check(math.isclose(got_accuracy, ref["accuracy"], rel_tol=1e-9),
          "accuracy differs: argmax of the mean probabilities")
    check(not math.isclose(got_nll, ref["nll"] / math.log(2), rel_tol=1e-6),
          "that is the NLL in bits: use the natural logarithm (nats)")
    check(math.isclose(got_nll, ref["nll"], rel_tol=1e-6), "nll differs from -mean log p_bar(y)")


ACCURACY_NLL = Verdict(
    "test_accuracy_nll", inputs=_metrics_inputs, reference=_metrics_reference, judge=_metrics_judge,
    probe=("got_accuracy, got_nll = accuracy(probs, y), nll(probs, y)\n"
           "result = {'accuracy': float(got_accuracy), 'nll': float(got_nll),\n"
           "          'floats': isinstance(got_accuracy, float) and isinstance(got_nll, float)}"))


# ---- task 6: ece

def _ece_inputs(g):
    return {"probs": torch.softmax(2 * torch.randn(5, 400, 10, generator=g, dtype=F64), dim=-1),
            "y": torch.randint(0, 10, (400,), generator=g)}


def _unweighted(probs, y, num_bins):
    bins = bt.metrics.reliability_bins(probs, y, num_bins)
    filled = bins["count"] > 0
    gaps = (bins["accuracy"][filled] - bins["confidence"][filled]).abs()
    return {"over_bins": float(gaps.sum() / num_bins), "over_filled": float(gaps.mean())}


def _ece_reference(x):
    probs, y = x["probs"], x["y"]
    return {"ece": bt.metrics.ece(probs, y, num_bins=15), "ece_10": bt.metrics.ece(probs, y, num_bins=10),
            "per_sample": sum(bt.metrics.ece(p, y, num_bins=15) for p in probs) / len(probs),
            **_unweighted(probs, y, 15)}


def _ece_judge(obs, ref, x):
    check(obs["floats"] == 1, "return a Python float")
    value = float(obs["ece"])
    check(not any(math.isclose(value, ref[key], rel_tol=1e-6) for key in ("over_bins", "over_filled")),
          "weight each bin's gap by its share of the inputs, n_b / N")
    check(not math.isclose(value, ref["per_sample"], rel_tol=1e-6),
          "that averages the ECE of each sample: bin the confidences of the predictive mean (average the "
          "probabilities over the samples first)")
    check(math.isclose(value, ref["ece"], rel_tol=1e-6),
          "differs from the reference: take the confidence max_c p_bar_c of the predictive mean, put it in one of "
          "num_bins equal-width bins of [0, 1], and weight each bin's |acc_b - conf_b| by its share n_b / N")
    check(math.isclose(float(obs["ece_10"]), ref["ece_10"], rel_tol=1e-6),
          "with num_bins=10 the value differs from the reference: use the num_bins argument")


ECE = Verdict(
    "test_ece", inputs=_ece_inputs, reference=_ece_reference, judge=_ece_judge,
    probe=("value, value_10 = ece(probs, y), ece(probs, y, num_bins=10)\n"
           "result = {'ece': float(value), 'ece_10': float(value_10),\n"
           "          'floats': isinstance(value, float) and isinstance(value_10, float)}"))


VERDICTS = [LRT_LINEAR, LRT_CONV2D, NEGATIVE_ELBO, MC_PREDICT, TRAIN_ACCURACY, ACCURACY_NLL, ECE]
