"""A5's verdicts: how each test cell's points are decided outside the student's code (bnn_teach.grading.verdicts).

Each probe runs in the student's kernel right after its test cell, on the grader's inputs, and sends back
numbers; each judge runs in the grader's process and compares them with references computed there.
"""
import random

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

import bnn_teach as bt
from bnn_teach.grading.verdicts import Verdict, check, close

SEED = 5
F64 = torch.float64
#: what the students rebuild: absent from the library while a submission runs. Not bt.nn.LinearARD and
#: bt.nn.LinearGroupSVDO: the notebook's given cells train lenet300("ard") and lenet300("group_svdo") with them
#: (their fused KL does not call bt.kl.ard).
ABSENT = ("bnn_teach.kl.ard", "bnn_teach.sparsity.prune", "bnn_teach.sparsity.shrink")
KL_SHORTCUTS = {r"kl_divergence|_kl_normal_normal|register_kl": "torch.distributions' KL"}


def _shape(t):
    return tuple(t.shape)


# ---- task 1: ard_prior_variance and kl_ard

def _prior_inputs(g):
    theta = 1.5 * torch.randn(40, generator=g, dtype=F64)
    theta[0] = 0.0
    return {"theta": theta, "sigma": 2 * torch.rand(40, generator=g, dtype=F64) + 0.05}


def _prior_judge(obs, ref, x):
    tau2 = obs["tau2"]
    check(tau2.shape == x["theta"].shape and torch.isfinite(tau2).all() and (tau2 > 0).all(),
          f"one positive prior variance per weight: expected shape {_shape(x['theta'])}, got {_shape(tau2)}")
    check(not close(tau2, ref["tau2"].sqrt()), "that is a standard deviation: the optimum is a variance tau^2 (set the "
                                               "derivative of the KL in tau^2 to zero)")
    check(close(tau2, ref["tau2"], rtol=1e-8, atol=1e-12),
          "a nearby prior variance gives a smaller KL: set the derivative of KL(q || N(0, tau^2)) in tau^2 to zero "
          "(a variance, not a sd)")


def _prior_reference(x):
    exact = x["theta"] ** 2 + x["sigma"] ** 2
    q = Normal(x["theta"], x["sigma"])
    at = [kl_divergence(q, Normal(0.0, (factor * exact).sqrt())) for factor in (0.999, 1.0, 1.001)]
    assert (at[1] < at[0]).all() and (at[1] < at[2]).all(), "theta^2 + sigma^2 minimises the KL"
    return {"tau2": exact}


ARD_PRIOR = Verdict("test_ard_prior", inputs=_prior_inputs, reference=_prior_reference, judge=_prior_judge,
                    probe="result = {'tau2': ard_prior_variance(theta, sigma)}")


def _kl_inputs(g):
    theta = 1.5 * torch.randn(60, generator=g, dtype=F64)
    theta = torch.where(theta.abs() < 0.02, torch.full_like(theta, 0.7), theta)
    sigma = 1.5 * torch.rand(60, generator=g, dtype=F64) + 0.05
    return {"theta": theta, "sigma": sigma, "log_alpha": torch.log(sigma**2 / theta**2),
            "extreme": torch.tensor([-100.0, -30.0, 40.0, 60.0])}


def _kl_reference(x):
    q = Normal(x["theta"], x["sigma"])
    kl = kl_divergence(q, Normal(0.0, (x["theta"] ** 2 + x["sigma"] ** 2).sqrt()))
    return {"kl": kl, "extreme": bt.kl.ard(x["extreme"].double())}


def _kl_judge(obs, ref, x):
    kl, extreme = obs["kl"], obs["extreme"]
    check(kl.shape == ref["kl"].shape and extreme.shape == ref["extreme"].shape,
          f"the ARD KL is elementwise: expected shape {_shape(ref['kl'])}, got {_shape(kl)}")
    check(torch.isfinite(kl).all() and (kl >= 0).all() and (extreme[2:] < 1e-9).all(),
          "the ARD KL is non-negative and vanishes as alpha grows")
    check(not close(kl, 2 * ref["kl"], rtol=1e-6), "the KL is twice the expected one: mind the 1/2")
    check(close(kl, ref["kl"], rtol=1e-8, atol=1e-12),
          "differs from KL(q || N(0, tau*^2)): substitute the optimal tau^2 into the Gaussian KL and simplify "
          "(mind the 1/2)")
    check(torch.isfinite(extreme).all() and close(extreme, ref["extreme"], rtol=1e-5, atol=1e-9),
          "kl_ard overflows for a tiny alpha (log alpha = -100 in float32): write it in a numerically stable form "
          "(F.softplus)")


KL_ARD = Verdict("test_kl_ard", inputs=_kl_inputs, reference=_kl_reference, judge=_kl_judge, forbid=KL_SHORTCUTS,
                 probe="result = {'kl': kl_ard(log_alpha), 'extreme': kl_ard(extreme)}")


# ---- task 2: group_input

GROUP_SHORTCUT = {r"\._input\s*\(": "the library's LinearGroupSVDO._input"}


def _moments_inputs(g):
    sign = torch.where(torch.rand(4, generator=g) < 0.5, -1.0, 1.0).double()
    return {"x_row": torch.tensor([[-1.5, 0.8, 2.0, 1.2]], dtype=F64),
            "z_mu": sign * (0.5 + torch.rand(4, generator=g, dtype=F64)),
            "z_log_sigma2": -0.4 - 1.6 * torch.rand(4, generator=g, dtype=F64)}


def _moments_judge(obs, ref, x):
    out, n = obs["out"], 20_000
    check(out.shape == (n, 4), f"one value per example and neuron: expected ({n}, 4), got {_shape(out)}")
    check(not close(out[0], out[1]), "draw a fresh z for every example")
    check(not close(out[:2], obs["again"]), "two calls gave the same noise: draw a new z on every call")
    row, z_mu, var = x["x_row"][0], x["z_mu"], x["x_row"][0] ** 2 * torch.exp(x["z_log_sigma2"])
    ratio = out.var(0) / var
    check(((ratio > 0.95) & (ratio < 1.05)).all(),
          f"the variance is {[round(r, 3) for r in ratio.tolist()]} times x^2 sigma_z^2: sigma_z = "
          "exp(z_log_sigma2 / 2) is a standard deviation")
    check(close(out.mean(0), row * z_mu, rtol=0, atol=float(5 * (var.max() / n).sqrt())), "the mean should be x * mu_z")
    correlation = torch.corrcoef(out.T)
    off_diagonal = correlation - torch.diag(torch.diag(correlation))
    check(off_diagonal.abs().max() < 0.05, "the neurons' noises are correlated: draw an independent z for every "
                                           "neuron of every example (noise of the shape of x)")


GROUP_MOMENTS = Verdict(
    "test_group_input_moments", inputs=_moments_inputs, judge=_moments_judge, forbid=GROUP_SHORTCUT,
    probe=("torch.manual_seed(11)\n"
           "x = x_row.expand(20_000, 4)\n"
           "out = group_input(x, z_mu, z_log_sigma2, sample=True)\n"
           "result = {'out': out, 'again': group_input(x[:2], z_mu, z_log_sigma2, sample=True)}"))


def _pruned_inputs(g):
    # log alpha_z = log sigma^2 - log(mu^2 + 1e-8): -2.4, 5.0, 1.9, -3.6, -0.9, 5.4 (the second is kept if mu is not
    # squared; the third is removed at threshold 1)
    return {"x": torch.randn(7, 6, generator=g, dtype=F64),
            "z_mu": torch.tensor([1.2, 0.05, -0.8, 0.002, 2.0, -0.5], dtype=F64),
            "z_log_sigma2": torch.tensor([-2.0, -1.0, 1.5, -16.0, 0.5, 4.0], dtype=F64)}


def _pruned_reference(x):
    log_alpha = torch.clamp(x["z_log_sigma2"] - torch.log(x["z_mu"] ** 2 + 1e-8), -8.0, 8.0)
    return {f"out_{name}": x["x"] * x["z_mu"] * (log_alpha < t).double() for name, t in (("3", 3.0), ("1", 1.0))}


def _pruned_judge(obs, ref, x):
    out, mean = obs["out_3"], x["x"] * x["z_mu"]
    check(out.shape == mean.shape, f"the shape of x, {_shape(mean)}: got {_shape(out)}")
    check(not close(out, mean), "nothing was removed: zero the neurons whose log alpha_z >= threshold")
    check(not close(out, mean - ref["out_3"]), "the mask is reversed: keep the neurons whose log alpha_z < threshold")
    check(close(out, ref["out_3"], rtol=1e-8, atol=1e-12),
          "keep x * mu_z where log alpha_z < threshold and zero elsewhere, with log alpha_z = log sigma_z^2 - "
          "log(mu_z^2 + 1e-8) clipped to [-8, 8]")
    check(close(obs["out_1"], ref["out_1"], rtol=1e-8, atol=1e-12),
          "with threshold=1.0 the wrong neurons were removed: compare with the `threshold` argument")


GROUP_PRUNED = Verdict(
    "test_group_input_pruned", inputs=_pruned_inputs, reference=_pruned_reference, judge=_pruned_judge,
    forbid=GROUP_SHORTCUT,
    probe=("result = {'out_3': group_input(x, z_mu, z_log_sigma2, threshold=3.0, sample=False),\n"
           "          'out_1': group_input(x, z_mu, z_log_sigma2, threshold=1.0, sample=False)}"))


# ---- task 3: first_layer_inputs and shrink_layer

def _log_sigma2_for(mu, offsets):
    """log sigma^2 that puts log alpha = log sigma^2 - log(mu^2 + 1e-8) at ``offsets`` (far from any threshold)."""
    return torch.log(mu**2 + 1e-8) + offsets


def _first_inputs(g):
    z_mu = torch.where(torch.rand(784, generator=g) < 0.5, -1.0, 1.0) * (0.5 + torch.rand(784, generator=g))
    u = torch.rand(784, generator=g)
    offsets = torch.where(u < 0.5, -4.0, torch.where(u < 0.7, 2.5, 6.0))  # kept, removed at threshold 2 only, removed
    return {"z_mu": z_mu, "z_log_sigma2": _log_sigma2_for(z_mu, offsets)}


def _first_reference(x):
    kept = {}
    for threshold in (2.0, 3.0):
        layer = bt.nn.LinearGroupSVDO(784, 1, threshold=threshold)
        with torch.no_grad():
            layer.z_mu.copy_(x["z_mu"])
            layer.z_log_sigma2.copy_(x["z_log_sigma2"])
        kept[threshold] = layer.neuron_mask()
    return {"kept": torch.nonzero(kept[2.0]).flatten(), "kept_at_3": torch.nonzero(kept[3.0]).flatten(),
            "removed": torch.nonzero(~kept[2.0]).flatten()}


def _same(observed, expected):
    return observed.shape == expected.shape and torch.equal(observed, expected.double())


def _first_judge(obs, ref, x):
    kept = obs["kept"]
    check(obs["dim"] == 1 and obs["is_long"] == 1, "a 1-D tensor of indices (torch.nonzero(...).flatten())")
    check(not _same(kept, ref["removed"]), "these are the removed inputs: keep those whose log alpha_z is below the "
                                           "threshold")
    check(not _same(kept, ref["kept_at_3"]), "use the layer's own threshold (model.fc1.threshold), not a fixed 3: the "
                                             "layer's neuron_mask() knows it")
    check(_same(kept, ref["kept"]), "the kept inputs are those whose log alpha_z is below the threshold, in increasing "
                                    "order")


FIRST_LAYER_INPUTS = Verdict(
    "test_first_layer_inputs", inputs=_first_inputs, reference=_first_reference, judge=_first_judge,
    probe=("model = bt.models.lenet300('group_svdo', threshold=2.0)\n"
           "with torch.no_grad():\n"
           "    model.fc1.z_mu.copy_(z_mu)\n"
           "    model.fc1.z_log_sigma2.copy_(z_log_sigma2)\n"
           "kept = first_layer_inputs(model)\n"
           "is_tensor = torch.is_tensor(kept)\n"
           "result = {'kept': kept if is_tensor else torch.as_tensor(kept), 'dim': kept.dim() if is_tensor else -1,\n"
           "          'is_long': is_tensor and kept.dtype == torch.long}"))


def _shrink_inputs(g):
    n_in, n_out = 40, 12
    weight = 0.3 * torch.randn(n_out, n_in, generator=g)
    z_mu = torch.where(torch.rand(n_in, generator=g) < 0.5, -1.0, 1.0) * (0.6 + 0.8 * torch.rand(n_in, generator=g))
    weight_offsets = torch.where(torch.rand(n_out, n_in, generator=g) < 0.3, 5.5, -4.0)
    z_offsets = torch.where(torch.rand(n_in, generator=g) < 0.35, 6.0, -5.0)
    x = {"weight": weight, "log_sigma2": _log_sigma2_for(weight, weight_offsets),
         "bias": 0.1 * torch.randn(n_out, generator=g), "z_mu": z_mu, "z_log_sigma2": _log_sigma2_for(z_mu, z_offsets),
         "outputs_kept": torch.randperm(n_out, generator=g)[:8].sort().values, "x": torch.randn(25, n_in, generator=g)}
    x["inputs_kept"] = torch.nonzero(z_offsets < 0).flatten()
    return x


def _layer(x):
    layer = bt.nn.LinearGroupSVDO(*reversed(x["weight"].shape))
    with torch.no_grad():
        for name in ("weight", "log_sigma2", "bias", "z_mu", "z_log_sigma2"):
            getattr(layer, name).copy_(x[name])
    return layer.eval()


def _shrink_reference(x):
    layer = _layer(x)
    inputs, outputs = x["inputs_kept"], x["outputs_kept"]
    with torch.no_grad():
        mask = layer.pruning_mask().double()
        mean = layer.mean_weight().double()
        small_x = x["x"].double()[:, inputs]

        def dense(weight):
            return small_x @ weight[outputs][:, inputs].T + x["bias"].double()[outputs]

        assert torch.allclose(layer(x["x"])[:, outputs].double(), dense(mean * mask), atol=1e-5)
        return {"out": dense(mean * mask), "unmasked": dense(mean), "without_z": dense(layer.weight.double() * mask)}


def _shrink_judge(obs, ref, x):
    n_in, n_out = len(x["inputs_kept"]), len(x["outputs_kept"])
    check(obs["is_linear"] == 1 and obs["in_features"] == n_in, "an nn.Linear on the kept inputs")
    check(obs["out_features"] == n_out and obs["count"] == (n_in + 1) * n_out,
          f"the smaller layer should have (inputs kept + 1) x outputs kept = {(n_in + 1) * n_out} parameters, "
          f"it has {int(obs['count'])}")
    out = obs["out"]
    check(out.shape == ref["out"].shape, f"expected outputs of shape {_shape(ref['out'])}, got {_shape(out)}")
    check(not close(out, ref["unmasked"], rtol=0, atol=1e-4),
          "outputs differ: use the pruned mean weights (mean_weight() times pruning_mask())")
    check(not close(out, ref["without_z"], rtol=0, atol=1e-4),
          "outputs differ: layer.weight leaves out the input noise's mean mu_z, which mean_weight() folds in")
    check(close(out, ref["out"], rtol=0, atol=1e-4),
          "outputs differ: use the pruned mean weights (mean_weight() times pruning_mask()) and the kept rows and "
          "columns")


SHRINK = Verdict(
    "test_shrink", inputs=_shrink_inputs, reference=_shrink_reference, judge=_shrink_judge,
    probe=("layer = bt.nn.LinearGroupSVDO(40, 12)\n"
           "with torch.no_grad():\n"
           "    for name, value in (('weight', weight), ('log_sigma2', log_sigma2), ('bias', bias), ('z_mu', z_mu),\n"
           "                        ('z_log_sigma2', z_log_sigma2)):\n"
           "        getattr(layer, name).copy_(value)\n"
           "layer.eval()\n"
           "dense = shrink_layer(layer, inputs_kept, outputs_kept)\n"
           "with torch.no_grad():\n"
           "    out = dense(x[:, inputs_kept])\n"
           "result = {'is_linear': isinstance(dense, nn.Linear), 'in_features': getattr(dense, 'in_features', -1),\n"
           "          'out_features': getattr(dense, 'out_features', -1), 'out': out,\n"
           "          'count': sum(p.numel() for p in dense.parameters())}"))


# ---- task 4: which method removes more

def _which_reference(x):
    """The notebook's comparison, rerun here with the real library: the weights each method keeps."""
    states = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng():
            X_train, y_train = bt.data.load_mnist("train", subset=3_000)
            kept = {}
            for flavour, name in (("svdo", "SparseVD"), ("ard", "ARD")):
                bt.utils.set_seed(0)
                net = bt.models.lenet300(flavour)
                bt.train.fit(net, (X_train, y_train), 6, torch.optim.Adam(net.parameters(), lr=3e-3),
                             kl_weight=bt.objectives.linear_warmup(2, end=0.1), progress=False)
                kept[name] = sum(row["kept"] for row in bt.sparsity.sparsity_table(net))
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return {"SparseVD": kept["SparseVD"], "ARD": kept["ARD"]}


def _which_judge(obs, ref, x):
    check(obs["sparsevd"] + obs["ard"] == 1, 'answer must be "SparseVD" or "ARD"')
    kept = {name: int(ref[name]) for name in ("SparseVD", "ARD")}
    fewer = min(kept, key=kept.get)
    check(obs["sparsevd" if fewer == "SparseVD" else "ard"] == 1,
          f"the table says otherwise: weights kept in the grader's rerun of that cell {kept}")


WHICH_REMOVES_MORE = Verdict(
    "test_which_removes_more", reference=_which_reference, judge=_which_judge,
    probe="result = {'sparsevd': answer == 'SparseVD', 'ard': answer == 'ARD'}")


VERDICTS = [ARD_PRIOR, KL_ARD, GROUP_MOMENTS, GROUP_PRUNED, FIRST_LAYER_INPUTS, SHRINK, WHICH_REMOVES_MORE]
