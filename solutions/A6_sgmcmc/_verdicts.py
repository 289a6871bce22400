"""A6's verdicts: how each test cell's points are decided outside the student's code (bnn_teach.grading.verdicts).

Each probe runs in the student's kernel right after its test cell, on the grader's inputs, and sends back
numbers; each judge runs in the grader's process and compares them with references computed there.
"""
import math

import torch

import bnn_teach as bt
from bnn_teach.grading.verdicts import Verdict, check, close

SEED = 6
F64 = torch.float64
#: what the students rebuild: absent from the library while a submission runs
ABSENT = ("bnn_teach.sgmcmc.SGLD", "bnn_teach.sgmcmc.SGHMC", "bnn_teach.sgmcmc.SGLDSA", "bnn_teach.predict.mc_predict")
#: the library's sample collection and ensembles: task 4 asks for them
ENSEMBLE_SHORTCUTS = {r"SampleCollector|SampleEnsemble": "bt.sgmcmc's sample collection and ensembles"}


def _shape(t):
    return tuple(t.shape)


# ---- task 1: sgld_step

SGLD_SETTINGS = ((0.03, 1.0), (0.005, 0.0), (0.005, 3.0))  # (lr, temperature) of each call of the probe


def _sgld_inputs(g):
    return {"theta": torch.randn(6, generator=g, dtype=F64), "grad": 3 * torch.randn(6, generator=g, dtype=F64),
            "noise": torch.randn(6, generator=g, dtype=F64)}


def _sgld_reference(x):
    refs = {"no_noise": x["theta"] - SGLD_SETTINGS[0][0] * x["grad"]}
    for i, (lr, temperature) in enumerate(SGLD_SETTINGS):
        refs[f"step{i}"] = x["theta"] - lr * x["grad"] + math.sqrt(2 * lr * temperature) * x["noise"]
    refs["lr_noise"] = refs["no_noise"] + math.sqrt(SGLD_SETTINGS[0][0]) * x["noise"]
    return refs


def _sgld_judge(obs, ref, x):
    check(obs["no_noise"].shape == x["theta"].shape, f"the new theta has the shape of theta, {_shape(x['theta'])}")
    check(close(obs["no_noise"], ref["no_noise"], rtol=1e-8, atol=1e-12),
          "without noise the step is theta - lr * grad_U (a descent step)")
    check(close(obs["step1"], ref["step1"], rtol=1e-8, atol=1e-12), "at temperature 0 SGLD is plain gradient descent")
    check(not close(obs["step0"], ref["lr_noise"], rtol=1e-8, atol=1e-12),
          "the noise variance is 2 * lr * T, not lr: the factor 2 makes the stationary distribution the posterior")
    check(close(obs["step0"], ref["step0"], rtol=1e-8, atol=1e-12), "expected theta - lr grad + sqrt(2 lr T) xi")
    check(close(obs["step2"], ref["step2"], rtol=1e-8, atol=1e-12), "the temperature multiplies the noise variance")


SGLD_STEP = Verdict(
    "test_sgld_step", inputs=_sgld_inputs, reference=_sgld_reference, judge=_sgld_judge,
    probe=(f"result = {{'no_noise': sgld_step(theta, grad, {SGLD_SETTINGS[0][0]}, 1.0, torch.zeros_like(noise))}}\n"
           f"for i, (lr, temperature) in enumerate({SGLD_SETTINGS!r}):\n"
           "    result[f'step{i}'] = sgld_step(theta, grad, lr, temperature, noise)"))


# ---- task 2: sghmc_step

def _sghmc_inputs(g):
    return {"theta": torch.randn(6, generator=g, dtype=F64), "v": 0.3 * torch.randn(6, generator=g, dtype=F64),
            "grad": 3 * torch.randn(6, generator=g, dtype=F64), "noise": torch.randn(6, generator=g, dtype=F64)}


def _sghmc_reference(x):
    lr, friction = 0.02, 0.2
    drift = (1 - friction) * x["v"] - lr * x["grad"]
    refs = {"v_cold": drift, "theta_cold": x["theta"] + drift}
    for name, temperature in (("warm", 1.0), ("hot", 2.5)):
        v = drift + math.sqrt(2 * friction * lr * temperature) * x["noise"]
        refs.update({f"v_{name}": v, f"theta_{name}": x["theta"] + v})
    refs["v_without_friction"] = drift + math.sqrt(2 * lr) * x["noise"]
    return refs


def _sghmc_judge(obs, ref, x):
    check(obs["v_cold"].shape == x["v"].shape and obs["theta_cold"].shape == x["theta"].shape,
          "return (theta, v), each of the shape of theta")
    check(close(obs["v_cold"], ref["v_cold"], rtol=1e-8, atol=1e-12), "without noise: v = (1 - friction) v - lr grad_U")
    check(close(obs["theta_cold"], ref["theta_cold"], rtol=1e-8, atol=1e-12), "theta moves by the NEW v")
    check(not close(obs["v_warm"], ref["v_without_friction"], rtol=1e-8, atol=1e-12),
          "the noise variance is 2 * friction * lr * T: the friction that damps v also sizes its noise")
    check(close(obs["v_warm"], ref["v_warm"], rtol=1e-8, atol=1e-12) and
          close(obs["v_hot"], ref["v_hot"], rtol=1e-8, atol=1e-12), "the noise variance is 2 * friction * lr * T")
    check(close(obs["theta_warm"], ref["theta_warm"], rtol=1e-8, atol=1e-12) and
          close(obs["theta_hot"], ref["theta_hot"], rtol=1e-8, atol=1e-12), "theta moves by the new v, noise included")


SGHMC_STEP = Verdict(
    "test_sghmc_step", inputs=_sghmc_inputs, reference=_sghmc_reference, judge=_sghmc_judge,
    probe=("result = {}\n"
           "for name, temperature in (('cold', 0.0), ('warm', 1.0), ('hot', 2.5)):\n"
           "    result['theta_' + name], result['v_' + name] = sghmc_step(theta, v, grad, 0.02, 0.2, temperature,\n"
           "                                                               noise)"))


# ---- task 3: run_sgld

def _regression_inputs(g):
    X = torch.randn(400, 3, generator=g, dtype=F64) * torch.tensor([1.0, 0.7, 1.3], dtype=F64)
    noise_var = 0.6
    y = X @ torch.tensor([0.8, -1.2, 0.3], dtype=F64) + math.sqrt(noise_var) * torch.randn(400, generator=g, dtype=F64)
    return {"X": X, "y": y, "noise_var": noise_var, "prior_sigma": 1.5}


def _regression_reference(x):
    mean, covariance, _ = bt.vi.linear_regression_posterior(x["X"], x["y"], noise_var=float(x["noise_var"]),
                                                            prior_sigma=float(x["prior_sigma"]))
    return {"mean": mean, "sd": covariance.diagonal().sqrt()}


def _regression_judge(obs, ref, x):
    samples = obs["samples"]
    check(samples.shape == (40_000, 3), f"expected (num_steps, p) = (40000, 3), got {_shape(samples)}")
    check(torch.isfinite(samples).all(), "the chain diverged: check the gradient's sign and its N / B scaling")
    check(samples[0].abs().max() < 0.1, f"the first sample is {[round(v, 3) for v in samples[0].tolist()]}: start the "
                                        "chain at w = 0")
    kept = samples[4_000:]
    centred = kept - kept.mean(0)
    lag_one = (centred[1:] * centred[:-1]).sum(0) / (centred**2).sum(0)
    check((lag_one > 0.5).all(), "consecutive samples are nearly independent: each sample should be one SGLD step "
                                 "from the previous one (a chain), not a fresh draw")
    error = ((kept.mean(0) - ref["mean"]) / ref["sd"]).abs().max()
    check(error < 0.25, f"the sample mean is {float(error):.2f} posterior sd from the exact mean: check the gradient "
                        "(its N / B scaling, noise_var and the prior term)")
    ratio = kept.std(0) / ref["sd"]
    check(((ratio > 0.85) & (ratio < 1.2)).all(),
          f"the samples' sd is {[round(r, 2) for r in ratio.tolist()]} times the posterior's: check the noise "
          "(variance 2 lr), the N / B scaling, noise_var and prior_sigma")
    check(close(obs["again_a"], obs["again_b"]),
          "two runs with the same generator differ: draw the mini-batches and the noise with `generator` "
          "(torch.randint(..., generator=generator), torch.randn(..., generator=generator))")


RUN_SGLD = Verdict(
    "test_run_sgld", inputs=_regression_inputs, reference=_regression_reference, judge=_regression_judge,
    probe=("nv, ps = float(noise_var), float(prior_sigma)\n"
           "samples = run_sgld(X, y, nv, ps, num_steps=40_000, lr=3e-5, batch_size=50,\n"
           "                   generator=torch.Generator().manual_seed(12))\n"
           "torch.manual_seed(0)\n"
           "again_a = run_sgld(X, y, nv, ps, 50, 3e-5, 10, torch.Generator().manual_seed(3))\n"
           "torch.manual_seed(1)\n"
           "again_b = run_sgld(X, y, nv, ps, 50, 3e-5, 10, torch.Generator().manual_seed(3))\n"
           "result = {'samples': samples, 'again_a': again_a, 'again_b': again_b}"))


# ---- task 4: collect_samples and ensemble_predict

def _members_inputs(g):
    k = 3
    return {"X": torch.rand(20, 1, 28, 28, generator=g), "w1": 0.08 * torch.randn(k, 100, 784, generator=g),
            "b1": 0.1 * torch.randn(k, 100, generator=g), "w2": 0.5 * torch.randn(k, 10, 100, generator=g),
            "b2": 2 * torch.randn(k, 10, generator=g)}


def _members_reference(x):
    X = x["X"].double().flatten(1)
    logits = torch.stack([torch.relu(X @ x["w1"][i].double().T + x["b1"][i].double()) @ x["w2"][i].double().T
                          + x["b2"][i].double() for i in range(len(x["w1"]))])
    return {"probs": torch.softmax(logits, -1).mean(0), "logit_average": torch.softmax(logits.mean(0), -1)}


def _members_judge(obs, ref, x):
    check(obs["count"] == 3, f"3 epochs of 5 steps, kept every 3rd after the 6th: 3 samples, got {int(obs['count'])}")
    check(obs["keys"] == 1, "keep copies of the model's state_dict() (the same keys)")
    kept = obs["kept"]
    check(not close(kept[0], kept[1]) and not close(kept[1], kept[2]), "keep copies (clone), not the same tensors")
    check(close(kept[-1], obs["final"]), "the last copy should be the model's state after the last step (step 15)")
    probs = obs["probs"]
    check(probs.shape == ref["probs"].shape, f"expected (N, classes) = {_shape(ref['probs'])}, got {_shape(probs)}")
    check(close(probs.sum(-1), torch.ones(len(probs)), rtol=0, atol=1e-5), "average the softmax probabilities")
    check(not close(probs, ref["logit_average"], rtol=0, atol=1e-5),
          "the posterior predictive averages the members' probabilities (softmax each, then average), not their logits")
    check(close(probs, ref["probs"], rtol=0, atol=1e-5),
          "ensemble_predict should load each state dict into the model and average the softmax probabilities")


ENSEMBLE_SHAPES = Verdict(
    "test_ensemble_shapes", inputs=_members_inputs, reference=_members_reference, judge=_members_judge,
    forbid=ENSEMBLE_SHORTCUTS,
    probe=("Xtr, ytr = bt.data.load_mnist('train', subset=3_000)\n"
           "bt.utils.set_seed(13)\n"
           "net = make_classifier()\n"
           "samples = collect_samples(net, Xtr[1000:1500], ytr[1000:1500], num_epochs=3, lr=1e-5, burn_in=6, thin=3)\n"
           "keys = set(net.state_dict())\n"
           "members = [{'1.weight': w1[i], '1.bias': b1[i], '3.weight': w2[i], '3.bias': b2[i]} for i in range(len(w1))]\n"
           "result = {'count': len(samples), 'keys': all(set(s) == keys for s in samples),\n"
           "          'kept': torch.stack([s['3.weight'] for s in samples[:3]]) if samples else torch.zeros(0),\n"
           "          'final': net.state_dict()['3.weight'].clone(),\n"
           "          'probs': ensemble_predict(net, members, X)}"))


def _quality_reference(x):
    _, y = bt.data.load_mnist("test", subset=1_000)
    return {"y": y}


def _quality_judge(obs, ref, x):
    y, probs, members = ref["y"], obs["probs"], obs["members"]
    check(probs.shape == (len(y), 10), f"expected (N, classes) = ({len(y)}, 10), got {_shape(probs)}")
    check(members.dim() == 3 and len(members) > 1 and members.shape[1:] == probs.shape,
          f"the ensemble kept {len(members)} samples: collect one every `thin` steps after `burn_in`")
    rows = torch.arange(len(y))
    accuracy = float((probs.argmax(-1) == y).double().mean())
    ensemble_nll = float(-torch.log(probs[rows, y]).mean())
    member_nll = float(-torch.log(members[:, rows, y]).mean(1).mean())
    check(accuracy > 0.86, f"accuracy {100 * accuracy:.1f} %: check the loss (mean NLL + prior / N) and the step")
    check(ensemble_nll < member_nll, f"the ensemble's NLL {ensemble_nll:.3f} is not below its average member's "
                                     f"{member_nll:.3f}: averaging the members' probabilities should lower it")


ENSEMBLE_QUALITY = Verdict(
    "test_ensemble_quality", reference=_quality_reference, judge=_quality_judge, forbid=ENSEMBLE_SHORTCUTS,
    probe=("Xtr, ytr = bt.data.load_mnist('train', subset=3_000)\n"
           "Xte, _ = bt.data.load_mnist('test', subset=1_000)\n"
           "bt.utils.set_seed(14)\n"
           "net = make_classifier()\n"
           "samples = collect_samples(net, Xtr, ytr, num_epochs=10, lr=2e-4, burn_in=120, thin=10)\n"
           "result = {'probs': ensemble_predict(net, samples, Xte),\n"
           "          'members': torch.stack([ensemble_predict(net, [s], Xte) for s in samples])}"))


VERDICTS = [SGLD_STEP, SGHMC_STEP, RUN_SGLD, ENSEMBLE_SHAPES, ENSEMBLE_QUALITY]
