"""A4's verdicts: how each test cell's points are decided outside the student's code (bnn_teach.grading.verdicts).

Each probe runs in the student's kernel right after its test cell, on the grader's inputs, and sends back
numbers; each judge runs in the grader's process and compares them with references computed there.
"""
import torch

import bnn_teach as bt
from bnn_teach.grading.verdicts import Verdict, check, close

SEED = 4
F64 = torch.float64
THRESHOLD = 3.0
#: what the students rebuild: absent from the library while a submission runs
ABSENT = ("bnn_teach.nn.LinearSVDO", "bnn_teach.kl.sparsevd", "bnn_teach.sparsity.compression_ratio",
          "bnn_teach.sparsity.sparsity_table")


def _log_alpha(theta, log_sigma2):
    """The library's log alpha (bt.nn.LinearSVDO, clipped to [-8, 8]) of weights theta of any shape."""
    layer = bt.nn.LinearSVDO(theta.numel(), 1, fused=False).double()
    with torch.no_grad():
        layer.weight.copy_(theta.reshape(1, -1))
        layer.log_sigma2.copy_(log_sigma2.reshape(1, -1))
        return layer.log_alpha.detach().reshape(theta.shape)


def _log_sigma2_for(theta, g, pruned_fraction):
    """log sigma^2 giving each weight theta a log alpha well inside [-6, 2.5] (kept) or [3.5, 12] (removed, clipped
    to 8 beyond), away from the threshold 3; and the mask kept."""
    removed = torch.rand(theta.shape, generator=g, dtype=F64) < pruned_fraction
    removed.view(-1)[:2] = torch.tensor([True, False])
    target = torch.where(removed, 3.5 + 8.5 * torch.rand(theta.shape, generator=g, dtype=F64),
                         -6 + 8.5 * torch.rand(theta.shape, generator=g, dtype=F64))
    return target + torch.log(theta**2 + 1e-8), ~removed


def _signs(g, shape):
    return 2.0 * torch.randint(0, 2, shape, generator=g, dtype=F64) - 1


# ---- task 1: log_alpha

def _log_alpha_inputs(g):
    theta = torch.cat([torch.randn(30, generator=g, dtype=F64), torch.tensor([0.0, -2e-5, 12.0, -7.0], dtype=F64)])
    log_sigma2 = torch.cat([3 * torch.randn(30, generator=g, dtype=F64) - 2,
                            torch.tensor([-3.0, -4.0, -40.0, -25.0], dtype=F64)])
    return {"theta": theta, "log_sigma2": log_sigma2}


def _log_alpha_judge(obs, ref, x):
    got, expected = obs["log_alpha"], ref["log_alpha"]
    check(got.shape == expected.shape, f"elementwise: one log alpha per weight, shape {tuple(expected.shape)}, got "
                                       f"{tuple(got.shape)}")
    inside = expected.abs() < 8
    check(close(got[inside], expected[inside], rtol=0, atol=1e-6),
          "log alpha = log sigma^2 - log(theta^2): square theta (its sign must not matter)")
    check(close(got[~inside], expected[~inside], rtol=0, atol=1e-6), "clip log alpha to [-8, 8]")
    check(close(got, expected, rtol=1e-9, atol=1e-9), "log alpha differs: log_sigma2 - log(theta^2 + 1e-8), clipped")


LOG_ALPHA = Verdict(
    "test_log_alpha", inputs=_log_alpha_inputs, judge=_log_alpha_judge,
    reference=lambda x: {"log_alpha": _log_alpha(x["theta"], x["log_sigma2"])},
    probe="result = {'log_alpha': log_alpha(theta, log_sigma2)}")


# ---- task 2: kl_sparsevd

def _kl_inputs(g):
    return {"log_alpha": torch.sort(16 * torch.rand(40, generator=g, dtype=F64) - 8).values,
            "far": torch.tensor([25.0, 40.0], dtype=F64)}


def _kl_reference(x):
    return {"exact": bt.kl.sparsevd_exact_mc(x["log_alpha"], num_samples=200_000,
                                             generator=torch.Generator().manual_seed(5))}


def _kl_judge(obs, ref, x):
    kl, far = obs["kl"], obs["far"]
    check(kl.shape == x["log_alpha"].shape and far.shape == (2,),
          f"elementwise: one KL per log alpha, shape {tuple(x['log_alpha'].shape)}, got {tuple(kl.shape)}")
    check(torch.isfinite(kl).all(), "the KL is not finite everywhere: use a stable form of log(1 + 1/alpha) (F.softplus)")
    check((kl >= -1e-6).all(), "the KL is negative: keep the constant C = -k1 (and check the signs)")
    check((far.abs() < 1e-6).all(), "the KL should vanish as alpha grows: check the constant")
    check((kl[1:] <= kl[:-1] + 1e-12).all(), "a larger alpha (more noise) should never cost more KL")
    check((kl - ref["exact"]).abs().max() < 0.02,
          "far from the exact KL: check k1, k2, k3 and the 0.5 log(1 + 1/alpha) term")


KL_SPARSEVD = Verdict(
    "test_kl_sparsevd", inputs=_kl_inputs, reference=_kl_reference, judge=_kl_judge,
    probe="result = {'kl': kl_sparsevd(log_alpha), 'far': kl_sparsevd(far)}")


# ---- task 3: MyLinearSVDO

PARAMETERS = {"weight": (2, 7), "log_sigma2": (2, 7), "bias": (2,)}


def _shapes_judge(obs, ref, x):
    check(int(obs["count"]) == 3, f"MyLinearSVDO(7, 2) should have 3 parameters (weight, log_sigma2, bias), it has "
                                  f"{int(obs['count'])}")
    for name, shape in PARAMETERS.items():
        got = tuple(int(v) for v in obs[f"shape_{name}"].tolist())
        check(got == shape, f"{name} should have the shape {shape}, got {got if got != (-1,) else 'no such parameter'}")
    got = tuple(obs["y"].shape)
    check(got == (5, 2), f"expected outputs of shape (batch, out_features) = (5, 2), got {got}")


SVDO_SHAPES = Verdict(
    "test_svdo_shapes", inputs=lambda g: {"x": torch.randn(5, 7, generator=g)}, judge=_shapes_judge,
    probe=("layer = MyLinearSVDO(7, 2)\n"
           "params = dict(layer.named_parameters())\n"
           "result = {'count': len(params), 'y': layer(x)}\n"
           "for name in ('weight', 'log_sigma2', 'bias'):\n"
           "    result['shape_' + name] = list(params[name].shape) if name in params else [-1]"))


def _moments_inputs(g):
    return {"weight": torch.randn(3, 5, generator=g, dtype=F64),
            "log_sigma2": -3 * torch.rand(3, 5, generator=g, dtype=F64),
            "bias": 0.5 * torch.randn(3, generator=g, dtype=F64),
            "x": torch.tensor([[0.5, -1.5, 2.0, 1.0, -0.5]], dtype=F64) * (1 + torch.rand(1, 5, generator=g, dtype=F64)),
            "seed": 17}


def _moments_judge(obs, ref, x):
    outputs = obs["outputs"]
    check(outputs.shape == (20_000, 3),
          f"expected (batch, out_features) = (20000, 3), got {tuple(outputs.shape)}")
    check(not close(outputs[0], outputs[1]),
          "rows with identical inputs got identical outputs: the noise is shared by the whole batch; the LRT draws "
          "one eps per example and output unit (the shape of the output)")
    mean = (x["x"] @ x["weight"].T + x["bias"])[0]
    var = (x["x"] ** 2 @ torch.exp(x["log_sigma2"]).T)[0]
    check(close(outputs.mean(0), mean, rtol=0, atol=float(5 * (var.max() / 20_000) ** 0.5)),
          "the outputs' mean is off: in training mode it is x theta^T + bias, and the noise has mean zero")
    ratio = outputs.var(0) / var
    check(((ratio > 0.95) & (ratio < 1.05)).all(),
          f"the variance is {[round(r, 3) for r in ratio.tolist()]} times x^2 sigma^2: sigma^2 = exp(log_sigma2), "
          "and take the square root once")


SVDO_TRAIN_MOMENTS = Verdict(
    "test_svdo_train_moments", inputs=_moments_inputs, judge=_moments_judge,
    probe=("torch.manual_seed(int(seed))\n"
           "layer = MyLinearSVDO(5, 3).double().train()\n"
           "with torch.no_grad():\n"
           "    layer.weight.copy_(weight)\n"
           "    layer.log_sigma2.copy_(log_sigma2)\n"
           "    layer.bias.copy_(bias)\n"
           "    outputs = layer(x.expand(20_000, 5))\n"
           "result = {'outputs': outputs}"))


def _pruned_inputs(g):
    weight = (0.05 + 1.95 * torch.rand(3, 6, generator=g, dtype=F64)) * _signs(g, (3, 6))
    weight[0, 0], weight[1, 1] = -0.02, 1.9  # a small theta removed, a large one kept: theta^2, not |theta|
    log_sigma2, _ = _log_sigma2_for(weight, g, 0.4)
    log_sigma2[0, 0], log_sigma2[1, 1] = 4.0 + torch.log(weight[0, 0] ** 2 + 1e-8), 2.6 + torch.log(weight[1, 1] ** 2)
    return {"weight": weight, "log_sigma2": log_sigma2, "bias": 0.5 * torch.randn(3, generator=g, dtype=F64),
            "x": torch.randn(4, 6, generator=g, dtype=F64)}


def _pruned_reference(x):
    kept = (_log_alpha(x["weight"], x["log_sigma2"]) < THRESHOLD).double()
    return {"pruned": x["x"] @ (x["weight"] * kept).T + x["bias"], "full": x["x"] @ x["weight"].T + x["bias"]}


def _pruned_judge(obs, ref, x):
    out = obs["out"]
    check(out.shape == (4, 3), f"expected outputs of shape (batch, out_features) = (4, 3), got {tuple(out.shape)}")
    check(torch.equal(out, obs["again"]), "eval mode must be deterministic")
    check(not close(out, ref["full"]), "eval mode should drop the weights whose log alpha is at least the threshold")
    check(close(out, ref["pruned"], rtol=1e-6, atol=1e-9), "the kept weights differ from log alpha < threshold")


SVDO_EVAL_PRUNED = Verdict(
    "test_svdo_eval_pruned", inputs=_pruned_inputs, reference=_pruned_reference, judge=_pruned_judge,
    probe=("layer = MyLinearSVDO(6, 3).double().eval()\n"
           "with torch.no_grad():\n"
           "    layer.weight.copy_(weight)\n"
           "    layer.log_sigma2.copy_(log_sigma2)\n"
           "    layer.bias.copy_(bias)\n"
           "    result = {'out': layer(x), 'again': layer(x)}"))


def _layer_kl_reference(x):
    return {"kl": bt.kl.sparsevd(_log_alpha(x["weight"], x["log_sigma2"])).sum()}


def _layer_kl_judge(obs, ref, x):
    check(obs["is_tensor"] == 1 and obs["kl"].dim() == 0, "kl() returns a scalar tensor (the sum)")
    check(close(obs["kl"], ref["kl"], rtol=1e-6), "kl() differs from the sum of kl_sparsevd(log_alpha)")


SVDO_KL = Verdict(
    "test_svdo_kl", reference=_layer_kl_reference, judge=_layer_kl_judge,
    inputs=lambda g: {"weight": 0.5 * torch.randn(4, 6, generator=g, dtype=F64),
                      "log_sigma2": 10 * torch.rand(4, 6, generator=g, dtype=F64) - 8},
    probe=("layer = MyLinearSVDO(6, 4).double()\n"
           "with torch.no_grad():\n"
           "    layer.weight.copy_(weight)\n"
           "    layer.log_sigma2.copy_(log_sigma2)\n"
           "kl = layer.kl()\n"
           "result = {'kl': kl if torch.is_tensor(kl) else float(kl), 'is_tensor': torch.is_tensor(kl)}"))


# ---- task 4: sparsity_per_layer and compression_ratio

#: the grader's model: nn.Sequential(nn.Flatten(), nn.Sequential(MyLinearSVDO(9, 5), nn.ReLU()), MyLinearSVDO(5, 4))
LAYERS = {"1.0": ("nested", (5, 9), 0.5), "2": ("last", (4, 5), 0.3)}


def _compression_inputs(g):
    """Weights of size 1 (log theta^2 = 0: task 1's squaring cannot change the mask); the first layer nested."""
    x = {}
    for key, shape, fraction in LAYERS.values():
        x[f"weight_{key}"] = _signs(g, shape)
        x[f"log_sigma2_{key}"], _ = _log_sigma2_for(x[f"weight_{key}"], g, fraction)
    return x


def _compression_reference(x):
    kept = {name: _log_alpha(x[f"weight_{key}"], x[f"log_sigma2_{key}"]) < THRESHOLD
            for name, (key, _, _) in LAYERS.items()}
    total, count = sum(k.numel() for k in kept.values()), sum(int(k.sum()) for k in kept.values())
    return {"removed": {name: 1 - float(k.double().mean()) for name, k in kept.items()}, "ratio": total / count,
            "inverse": count / total}


def _compression_judge(obs, ref, x):
    names = {key[len("layer "):] for key in obs if key.startswith("layer ")}
    check(names == set(LAYERS), f"one entry per MyLinearSVDO, named as in named_modules(): expected {set(LAYERS)} "
                                f"for the grader's model, got {names}")
    for name, expected in ref["removed"].items():
        got = float(obs[f"layer {name}"])
        check(abs(got - expected) < 1e-9, f"layer {name}: {got:.4f} of its weights removed, which differs from the "
                                          "fraction with log alpha >= threshold")
    ratio = float(obs["ratio"])
    check(abs(ratio - ref["inverse"]) > 1e-9, "that is kept / total: the compression ratio is total / kept")
    check(abs(ratio - ref["ratio"]) < 1e-9 * ref["ratio"],
          f"got a compression ratio of {ratio:.4f}: all weights of the MyLinearSVDO layers (wherever they sit in the "
          "model) over the weights kept, biases not counted")


COMPRESSION = Verdict(
    "test_compression", inputs=_compression_inputs, reference=_compression_reference, judge=_compression_judge,
    probe=("model = nn.Sequential(nn.Flatten(), nn.Sequential(MyLinearSVDO(9, 5), nn.ReLU()), MyLinearSVDO(5, 4))\n"
           "model = model.double()\n"
           "with torch.no_grad():\n"
           "    model[1][0].weight.copy_(weight_nested)\n"
           "    model[1][0].log_sigma2.copy_(log_sigma2_nested)\n"
           "    model[2].weight.copy_(weight_last)\n"
           "    model[2].log_sigma2.copy_(log_sigma2_last)\n"
           "per_layer, ratio = sparsity_per_layer(model), compression_ratio(model)\n"
           "result = {'ratio': float(ratio), **{'layer ' + str(name): float(f) for name, f in per_layer.items()}}"))


# ---- task 5: LeNet-300-100 of MyLinearSVDO, trained as in the test cell

def _lenet_judge(obs, ref, x):
    logits, labels = obs["logits"], obs["labels"]
    check(logits.dim() == 2 and logits.shape == (len(labels), 10),
          f"the pruned network's outputs should be (N, 10) = ({len(labels)}, 10), got {tuple(logits.shape)}")
    accuracy = float((logits.argmax(-1) == labels).double().mean())
    check(accuracy > 0.85, f"accuracy {100 * accuracy:.1f} %: check the forward pass in both modes")
    total = kept = 0
    for i in range(3):
        log_alpha = _log_alpha(obs[f"weight{i}"], obs[f"log_sigma2_{i}"])
        total, kept = total + log_alpha.numel(), kept + int((log_alpha < THRESHOLD).sum())
    ratio = total / max(kept, 1)
    check(ratio > 5, f"compression {ratio:.1f}x: check log alpha, the KL (its sign) and the pruning mask")


LENET = Verdict(
    "test_lenet_sparsifies", judge=_lenet_judge,
    probe=("bt.utils.set_seed(3)\n"
           "model = nn.Sequential(nn.Flatten(), MyLinearSVDO(784, 300), nn.ReLU(), MyLinearSVDO(300, 100), nn.ReLU(),\n"
           "                      MyLinearSVDO(100, 10))\n"
           "optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)\n"
           "warmup = bt.objectives.linear_warmup(3, end=0.1)\n"
           "for epoch in range(8):\n"
           "    model.train()\n"
           "    for idx in torch.randperm(len(X_train)).split(100):\n"
           "        kl = sum(m.kl() for m in model.modules() if isinstance(m, MyLinearSVDO))\n"
           "        loss = bt.objectives.elbo_loss(F.cross_entropy(model(X_train[idx]), y_train[idx]), kl, len(X_train),\n"
           "                                       kl_weight=warmup(epoch))\n"
           "        optimizer.zero_grad()\n"
           "        loss.backward()\n"
           "        optimizer.step()\n"
           "model.eval()\n"
           "with torch.no_grad():\n"
           "    result = {'logits': model(X_test), 'labels': y_test}\n"
           "for i, layer in enumerate((model[1], model[3], model[5])):\n"
           "    result[f'weight{i}'], result[f'log_sigma2_{i}'] = layer.weight, layer.log_sigma2"))


VERDICTS = [LOG_ALPHA, KL_SPARSEVD, SVDO_SHAPES, SVDO_TRAIN_MOMENTS, SVDO_EVAL_PRUNED, SVDO_KL, COMPRESSION, LENET]
