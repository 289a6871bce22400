"""A3's verdicts: how each test cell's points are decided outside the student's code (bnn_teach.grading.verdicts).

Each probe runs in the student's kernel right after its test cell, on the grader's inputs, and sends back
numbers; each judge runs in the grader's process and compares them with references computed there.
"""
import itertools
import math

import torch

import bnn_teach as bt
from bnn_teach.grading.verdicts import Verdict, check, close

SEED = 3
F64 = torch.float64
#: what the students rebuild: absent from the library while a submission runs
ABSENT = ("bnn_teach.predict.mc_predict", "bnn_teach.nn.sampling", "bnn_teach.uncertainty.decompose",
          "bnn_teach.uncertainty.entropy", "bnn_teach.metrics.auroc")
AUROC_SHORTCUTS = {r"roc_auc_score|roc_curve": "scikit-learn's ROC functions"}


def _masked_outputs(hidden, head_weight, head_bias, p):
    """Every dropout mask of the hidden units: (masks, N, C) softmax outputs and each mask's probability."""
    width = hidden.shape[-1]
    masks = torch.tensor(list(itertools.product((0.0, 1.0), repeat=width)), dtype=F64)
    probs = torch.softmax((hidden * masks[:, None, :] / (1 - p)) @ head_weight.T + head_bias, dim=-1)
    weights = (1 - p) ** masks.sum(1) * p ** (width - masks.sum(1))
    return probs, weights


def _is_some_mask(samples, outputs, atol=1e-5):
    """Each sample (S, N, C) is the network's output under one of the dropout masks (outputs: (masks, N, C))."""
    distance = (samples[:, None] - outputs[None]).abs().amax(-1)  # (S, masks, N)
    return bool((distance.amin(1) <= atol).all())


# ---- task 1: mc_dropout_predict

def _samples_inputs(g):
    return {"x": torch.randn(12, 5, generator=g), "w1": torch.randn(6, 5, generator=g),
            "b1": 0.3 * torch.randn(6, generator=g), "w2": 1.5 * torch.randn(4, 6, generator=g),
            "b2": 0.2 * torch.randn(4, generator=g), "p": 0.3, "num_samples": 400, "seed": 12}


def _samples_reference(x):
    hidden = torch.relu(x["x"].double() @ x["w1"].double().T + x["b1"].double())
    outputs, weights = _masked_outputs(hidden, x["w2"].double(), x["b2"].double(), x["p"])
    mean = (weights[:, None, None] * outputs).sum(0)
    spread = (weights[:, None, None] * (outputs - mean) ** 2).sum(0).sqrt()
    return {"outputs": outputs, "mean": mean, "spread": spread}


def _samples_judge(obs, ref, x):
    probs, shape = obs["probs"], (x["num_samples"], len(x["x"]), 4)
    check(probs.shape == shape, f"expected (num_samples, N, classes) = {shape}, got {tuple(probs.shape)}")
    check(close(probs.sum(-1), torch.ones(shape[:2]), atol=1e-5), "each row should be a probability vector (softmax)")
    check((probs - probs[0]).abs().amax() > 1e-6,
          "all samples are equal: dropout must stay on while predicting")
    check(_is_some_mask(probs, ref["outputs"]),
          "some samples are not the network's softmax output under any dropout mask: call the model itself, with "
          "its nn.Dropout layers in training mode (their own rate and scaling)")
    tolerance = 5 * ref["spread"] / x["num_samples"] ** 0.5 + 1e-4
    check(((probs.mean(0) - ref["mean"]).abs() <= tolerance).all(),
          "the samples' average is far from the MC-dropout predictive: draw a new mask for every sample")


MC_DROPOUT_SAMPLES = Verdict(
    "test_mc_dropout_samples", inputs=_samples_inputs, reference=_samples_reference, judge=_samples_judge,
    probe=("torch.manual_seed(int(seed))\n"
           "model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Dropout(float(p)), nn.Linear(6, 4))\n"
           "with torch.no_grad():\n"
           "    model[0].weight.copy_(w1)\n"
           "    model[0].bias.copy_(b1)\n"
           "    model[3].weight.copy_(w2)\n"
           "    model[3].bias.copy_(b2)\n"
           "model.eval()\n"
           "result = {'probs': mc_dropout_predict(model, x, int(num_samples))}"))


def _batchnorm_inputs(g):
    return {"x": torch.randn(6, 5, generator=g), "w1": torch.randn(8, 5, generator=g),
            "b1": torch.randn(8, generator=g), "bn_mean": torch.randn(8, generator=g),
            "bn_var": 0.2 + 3 * torch.rand(8, generator=g), "bn_weight": 1 + 0.5 * torch.rand(8, generator=g),
            "bn_bias": 0.3 * torch.randn(8, generator=g), "w2": 2 * torch.randn(3, 8, generator=g),
            "b2": 0.2 * torch.randn(3, generator=g), "num_samples": 40, "seed": 13}


def _batchnorm_reference(x):
    pre = x["x"].double() @ x["w1"].double().T + x["b1"].double()
    normed = (pre - x["bn_mean"].double()) / (x["bn_var"].double() + 1e-5).sqrt()
    hidden = torch.relu(normed * x["bn_weight"].double() + x["bn_bias"].double())
    outputs, _ = _masked_outputs(hidden, x["w2"].double(), x["b2"].double(), 0.5)
    return {"outputs": outputs}


def _batchnorm_judge(obs, ref, x):
    in_training = "BatchNorm is in training mode during MC dropout: only the dropout layers should sample"
    check(obs["batchnorm_modes"].numel() > 0 and not obs["batchnorm_modes"].any(), in_training)
    check(obs["modes_after_train"].all() and not obs["modes_after_eval"].any(),
          "restore every module's mode afterwards")
    check(close(obs["running_stats"], torch.cat([x["bn_mean"], x["bn_var"]]).double(), rtol=0, atol=1e-6),
          "BatchNorm's running statistics changed: keep it in eval() mode and switch only the dropout layers on")
    batch, alone = obs["batch"], obs["alone"]
    S, N = x["num_samples"], len(x["x"])
    check(batch.shape == (S, N, 3) and alone.shape == (S, 1, 3),
          f"expected (num_samples, N, classes) = {(S, N, 3)} and {(S, 1, 3)} for one input, got "
          f"{tuple(batch.shape)} and {tuple(alone.shape)}")
    check((batch - batch[0]).abs().amax() > 1e-6, "all samples are equal: dropout must stay on while predicting")
    check(_is_some_mask(batch, ref["outputs"]) and _is_some_mask(alone, ref["outputs"][:, :1]),
          "the prediction for one input changes with the batch around it: BatchNorm must use its running statistics")


MC_DROPOUT_BATCHNORM = Verdict(
    "test_mc_dropout_batchnorm", inputs=_batchnorm_inputs, reference=_batchnorm_reference, judge=_batchnorm_judge,
    probe=("torch.manual_seed(int(seed))\n"
           "model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))\n"
           "with torch.no_grad():\n"
           "    model[0].weight.copy_(w1)\n"
           "    model[0].bias.copy_(b1)\n"
           "    model[1].running_mean.copy_(bn_mean)\n"
           "    model[1].running_var.copy_(bn_var)\n"
           "    model[1].weight.copy_(bn_weight)\n"
           "    model[1].bias.copy_(bn_bias)\n"
           "    model[4].weight.copy_(w2)\n"
           "    model[4].bias.copy_(b2)\n"
           "seen = []\n"
           "model[1].register_forward_pre_hook(lambda module, args: seen.append(module.training))\n"
           "model.train()\n"
           "batch = mc_dropout_predict(model, x, int(num_samples))\n"
           "after_train = [m.training for m in model.modules()]\n"
           "stats = torch.cat([model[1].running_mean, model[1].running_var])\n"
           "model.eval()\n"
           "try:\n"
           "    alone = mc_dropout_predict(model, x[:1], int(num_samples))\n"
           "except Exception:\n"
           "    alone = torch.zeros(0)\n"
           "result = {'batchnorm_modes': seen, 'modes_after_train': after_train, 'running_stats': stats,\n"
           "          'modes_after_eval': [m.training for m in model.modules()], 'batch': batch, 'alone': alone}"))


# ---- task 2: decompose

def _textbook_inputs(g):
    third = [1 / 3, 1 / 3, 1 / 3]
    cases = torch.tensor([[third, third, third],                          # unsure samples that agree
                          [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]],        # sure samples that disagree
                          [[0, 1.0, 0], [0, 1.0, 0], [0, 1.0, 0]],        # sure samples that agree
                          [[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1.0]]],   # some of each, with zeros
                         dtype=F64)  # (N, S, C)
    order, classes = torch.randperm(4, generator=g), torch.randperm(3, generator=g)
    return {"probs": cases[order][:, :, classes].transpose(0, 1).contiguous()}


def _decompose_reference(x):
    u = bt.uncertainty.decompose(x["probs"])
    return {"total": u.total, "aleatoric": u.aleatoric, "epistemic": u.epistemic}


def _decompose_checks(obs, ref, x):
    N = x["probs"].shape[1]
    check(all(obs[k].shape == (N,) for k in ("total", "aleatoric", "epistemic")), f"one value per input: shape ({N},)")
    check(all(torch.isfinite(obs[k]).all() for k in ("total", "aleatoric", "epistemic")),
          "NaN: treat 0 log 0 as 0 (e.g. clamp p)")
    check(not close(obs["total"] * math.log(2), ref["total"], rtol=0, atol=1e-9), "that is in bits: use the natural log")


def _textbook_judge(obs, ref, x):
    _decompose_checks(obs, ref, x)
    check(close(obs["aleatoric"], ref["aleatoric"], rtol=0, atol=1e-9),
          "the aleatoric part is the mean of each sample's entropy")
    check(close(obs["epistemic"], ref["epistemic"], rtol=0, atol=1e-9),
          "the epistemic part is what the samples' disagreement adds: total - aleatoric")
    check(close(obs["total"], ref["total"], rtol=0, atol=1e-9), "the total is the entropy of the mean prediction")


DECOMPOSE_PROBE = ("total, aleatoric, epistemic = decompose(probs)\n"
                   "result = {'total': total, 'aleatoric': aleatoric, 'epistemic': epistemic}")

DECOMPOSE_TEXTBOOK = Verdict("test_decompose_textbook", inputs=_textbook_inputs, reference=_decompose_reference,
                             judge=_textbook_judge, probe=DECOMPOSE_PROBE)


def _values_judge(obs, ref, x):
    _decompose_checks(obs, ref, x)
    check((obs["epistemic"] > -1e-9).all(),
          "the mutual information is never negative: total is the entropy of the MEAN prediction")
    check(close(obs["total"], ref["total"], rtol=0, atol=1e-9), "total differs: the entropy of the mean prediction")
    check(close(obs["aleatoric"], ref["aleatoric"], rtol=0, atol=1e-9), "aleatoric differs: the mean of the entropies")
    check(close(obs["epistemic"], ref["epistemic"], rtol=0, atol=1e-9), "epistemic differs: total - aleatoric")


DECOMPOSE_VALUES = Verdict(
    "test_decompose_values",
    inputs=lambda g: {"probs": torch.softmax(2.5 * torch.randn(12, 150, 7, generator=g, dtype=F64), dim=-1)},
    reference=_decompose_reference, judge=_values_judge, probe=DECOMPOSE_PROBE)


# ---- task 3: auroc

AUROC_CASES = ("perfect", "reversed", "tied", "random", "spread")


def _auroc_inputs(g):
    positive = torch.rand(7, generator=g, dtype=F64) + 1.0
    negative = torch.rand(5, generator=g, dtype=F64)
    order = torch.randperm(12, generator=g)
    scores = torch.cat([positive, negative])[order]
    labels = torch.cat([torch.ones(7, dtype=torch.long), torch.zeros(5, dtype=torch.long)])[order]
    random_labels = torch.randint(0, 2, (400,), generator=g)
    random_labels[:2] = torch.tensor([0, 1])
    spread_labels = torch.randint(0, 2, (250,), generator=g)
    spread_labels[:2] = torch.tensor([0, 1])
    return {"perfect_scores": scores, "perfect_labels": labels, "reversed_scores": -scores, "reversed_labels": labels,
            "tied_scores": torch.full((9,), 0.25, dtype=F64),
            "tied_labels": torch.tensor([1, 0, 0, 1, 0, 0, 1, 0, 0]),
            "random_scores": torch.randint(0, 15, (400,), generator=g).double(), "random_labels": random_labels,
            "spread_scores": torch.randn(250, generator=g, dtype=F64) + 0.8 * spread_labels,
            "spread_labels": spread_labels}


def _auroc_judge(obs, ref, x):
    check(obs["all_floats"] == 1, "return a Python float")
    perfect, reversed_ = float(obs["perfect"]), float(obs["reversed"])
    check(math.isclose(perfect, 1.0) and math.isclose(reversed_, 0.0, abs_tol=1e-12),
          f"got {perfect} and {reversed_}: positives (label 1) scoring higher should give 1")
    tied = float(obs["tied"])
    check(math.isclose(tied, 0.5), f"all scores tied should give 0.5, got {tied}: ties count one half")
    check(math.isclose(float(obs["random"]), ref["random"], rel_tol=1e-9), "differs from the reference on scores "
                                                                         "with ties")
    check(math.isclose(float(obs["spread"]), ref["spread"], rel_tol=1e-9), "differs from the reference on random "
                                                                         "scores without ties")


AUROC = Verdict(
    "test_auroc", inputs=_auroc_inputs, judge=_auroc_judge, forbid=AUROC_SHORTCUTS,
    reference=lambda x: {case: bt.metrics.auroc(x[f"{case}_scores"], x[f"{case}_labels"]) for case in AUROC_CASES},
    probe=("values = {'perfect': auroc(perfect_scores, perfect_labels),\n"
           "          'reversed': auroc(reversed_scores, reversed_labels),\n"
           "          'tied': auroc(tied_scores, tied_labels),\n"
           "          'random': auroc(random_scores, random_labels),\n"
           "          'spread': auroc(spread_scores, spread_labels)}\n"
           "result = {case: float(value) for case, value in values.items()}\n"
           "result['all_floats'] = all(isinstance(value, float) for value in values.values())"))


# ---- task 4: ood_auroc

def _ood_inputs(g):
    """Three kinds of input to a network with a direct path and a dropout path: unsure and agreeing (in),
    sure and agreeing (in), sure and disagreeing (out)."""
    def kind(index, count):
        return torch.eye(3)[index].repeat(count, 1) * (1 + torch.rand(count, 1, generator=g))

    x_in = torch.cat([kind(0, 6), kind(1, 9)])[torch.randperm(15, generator=g)]
    direct = torch.zeros(4, 3)
    direct[0, 1] = 15.0                                   # kind 1: class 0, whatever the mask
    hidden = torch.tensor([[-1.0, -1.0, 1.0]] * 4)        # only kind 2 reaches the dropout units
    head = torch.tensor([[8.0, 8.0, 0, 0], [0, 0, 8.0, 8.0], [0, 0, 0, 0], [0, 0, 0, 0]])
    return {"x_in": x_in, "x_out": kind(2, 8), "direct": direct, "hidden": hidden, "head": head,
            "noise_seed": 1234, "seed": 14}


class _OODNet(torch.nn.Module):
    def __init__(self, x):
        super().__init__()
        self.direct, self.hidden = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)
        self.dropout, self.head = torch.nn.Dropout(0.5), torch.nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            for layer, name in ((self.direct, "direct"), (self.hidden, "hidden"), (self.head, "head")):
                layer.weight.copy_(x[name])
            self.direct.bias.zero_()
            self.hidden.bias.zero_()

    def forward(self, inputs):
        return self.direct(inputs) + self.head(self.dropout(torch.relu(self.hidden(inputs))))


def _ood_reference(x):
    model = _OODNet(x).double().train()
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        parts = [bt.uncertainty.decompose(torch.stack([torch.softmax(model(inputs.double()), -1) for _ in range(500)]))
                 for inputs in (x["x_in"], x["x_out"])]
    labels = torch.cat([torch.zeros(len(x["x_in"])), torch.ones(len(x["x_out"]))]).long()
    return {key: bt.metrics.auroc(torch.cat([parts[0][i], parts[1][i]]), labels)
            for key, i in (("total", 0), ("epistemic", 2))}


def _ood_judge(obs, ref, x):
    check(obs["keys"] == 1, "return a dict with keys 'total' and 'epistemic'")
    total, epistemic = float(obs["total"]), float(obs["epistemic"])
    wrong_way = math.isclose(total, 1 - ref["total"], abs_tol=1e-6) and math.isclose(epistemic, 1 - ref["epistemic"],
                                                                                      abs_tol=1e-6)
    check(not wrong_way, f"AUROC {total:.3f} and {epistemic:.3f}, the wrong way round: X_out is label 1, X_in label 0")
    check(not (math.isclose(total, ref["epistemic"], abs_tol=1e-6) and math.isclose(epistemic, ref["total"],
                                                                                    abs_tol=1e-6)),
          "the two scores are swapped: 'total' is the predictive entropy, 'epistemic' the mutual information")
    check(math.isclose(total, ref["total"], abs_tol=1e-6),
          f"on the grader's network the AUROC of the total uncertainty is off ({total:.3f}): score each input by the "
          "entropy of its mean MC-dropout prediction, and compute the AUROC from these scores")
    check(math.isclose(epistemic, ref["epistemic"], abs_tol=1e-6),
          f"on the grader's network the AUROC of the epistemic uncertainty is off ({epistemic:.3f}): score each input "
          "by its mutual information, and compute the AUROC from these scores")
    digits = {key: round(float(obs[f"digits_{key}"]), 3) for key in ("total", "epistemic")}
    check(min(digits.values()) > 0.8, f"AUROC {digits} for test digits against new noise: below 0.5 means the labels "
                                      "are the wrong way round (noise is label 1)")


OOD = Verdict(
    "test_ood", inputs=_ood_inputs, reference=_ood_reference, judge=_ood_judge,
    probe=("class GraderNet(nn.Module):\n"
           "    def __init__(self):\n"
           "        super().__init__()\n"
           "        self.direct, self.hidden = nn.Linear(3, 4), nn.Linear(3, 4)\n"
           "        self.dropout, self.head = nn.Dropout(0.5), nn.Linear(4, 4, bias=False)\n"
           "\n"
           "    def forward(self, inputs):\n"
           "        return self.direct(inputs) + self.head(self.dropout(torch.relu(self.hidden(inputs))))\n"
           "\n"
           "grader_net = GraderNet()\n"
           "with torch.no_grad():\n"
           "    grader_net.direct.weight.copy_(direct)\n"
           "    grader_net.hidden.weight.copy_(hidden)\n"
           "    grader_net.head.weight.copy_(head)\n"
           "    grader_net.direct.bias.zero_()\n"
           "    grader_net.hidden.bias.zero_()\n"
           "torch.manual_seed(int(seed))\n"
           "scores = ood_auroc(grader_net.eval(), x_in, x_out, num_samples=30)\n"
           "noise = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(int(noise_seed)))\n"
           "digits = ood_auroc(net, X_test[-300:], noise, num_samples=20)\n"
           "result = {'keys': set(scores) == {'total', 'epistemic'}, 'total': float(scores.get('total', -1)),\n"
           "          'epistemic': float(scores.get('epistemic', -1)),\n"
           "          'digits_total': float(digits['total']), 'digits_epistemic': float(digits['epistemic'])}"))


VERDICTS = [MC_DROPOUT_SAMPLES, MC_DROPOUT_BATCHNORM, DECOMPOSE_TEXTBOOK, DECOMPOSE_VALUES, AUROC, OOD]
