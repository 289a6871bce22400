"""One contract suite over every Bayesian layer, then layer-specific numerics (LRT moments, pruning)."""
import copy
import math

import pytest
import torch
from torch import nn

import bnn_teach as bt

LIN_X = (6, 5)
CONV_X = (4, 2, 7, 7)

# name -> (factory, input shape, output shape)
LAYERS = {
    "BayesLinear-lrt": (lambda: bt.nn.BayesLinear(5, 3), LIN_X, (6, 3)),
    "BayesLinear-weights": (lambda: bt.nn.BayesLinear(5, 3, local_reparam=False), LIN_X, (6, 3)),
    "BayesLinear-mixture": (lambda: bt.nn.BayesLinear(5, 3, prior=bt.priors.ScaleMixturePrior()), LIN_X, (6, 3)),
    "BayesLinear-nobias": (lambda: bt.nn.BayesLinear(5, 3, bias=False), LIN_X, (6, 3)),
    "BayesConv2d-lrt": (lambda: bt.nn.BayesConv2d(2, 3, 3, padding=1), CONV_X, (4, 3, 7, 7)),
    "BayesConv2d-weights": (lambda: bt.nn.BayesConv2d(2, 3, 3, stride=2, local_reparam=False), CONV_X, (4, 3, 3, 3)),
    "LinearSVDO": (lambda: bt.nn.LinearSVDO(5, 3), LIN_X, (6, 3)),
    "Conv2dSVDO": (lambda: bt.nn.Conv2dSVDO(2, 3, 3), CONV_X, (4, 3, 5, 5)),
    "LinearARD": (lambda: bt.nn.LinearARD(5, 3), LIN_X, (6, 3)),
    "Conv2dARD": (lambda: bt.nn.Conv2dARD(2, 3, 3, bias=False), CONV_X, (4, 3, 5, 5)),
    "LinearGroupSVDO": (lambda: bt.nn.LinearGroupSVDO(5, 3), LIN_X, (6, 3)),
}
# noisier initial posteriors so that sampling is visible in float32
NOISY = {"rho": -1.0, "log_sigma2": -2.0}


def make(name, noisy=True):
    factory, in_shape, out_shape = LAYERS[name]
    torch.manual_seed(0)
    layer = factory()
    if noisy:
        with torch.no_grad():
            for pname, p in layer.named_parameters():
                for key, value in NOISY.items():
                    if pname.endswith(key):
                        p.fill_(value)
    return layer, torch.rand(in_shape), out_shape


params = pytest.mark.parametrize("name", list(LAYERS))


@params
def test_output_shape_and_kl(name):
    layer, x, out_shape = make(name)
    assert layer(x).shape == out_shape
    layer.eval()
    assert layer(x).shape == out_shape
    kl = layer.kl()
    assert kl.dim() == 0 and torch.isfinite(kl) and float(kl) >= 0
    assert torch.equal(bt.nn.kl_divergence(nn.Sequential(layer)), kl) or name.endswith("mixture")


@params
def test_reproducible_under_seed(name):
    layer, x, _ = make(name)
    torch.manual_seed(42)
    first = layer(x)
    torch.manual_seed(42)
    assert torch.equal(layer(x), first)


@params
def test_modes_train_samples_eval_deterministic_sampling_context(name):
    layer, x, _ = make(name)
    layer.train()
    assert not torch.allclose(layer(x), layer(x)), "train() samples"
    layer.eval()
    assert torch.equal(layer(x), layer(x)), "eval() is deterministic"
    with bt.nn.sampling(layer):
        assert not torch.allclose(layer(x), layer(x)), "sampling() samples in eval"
    assert torch.equal(layer(x), layer(x)), "the context restores eval behaviour"
    layer.train()
    with bt.nn.sampling(layer, on=False):
        assert torch.equal(layer(x), layer(x)), "sampling(on=False) gives the mean in train()"


@params
def test_state_dict_round_trip(name):
    layer, x, _ = make(name)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    clone = LAYERS[name][0]()
    clone.load_state_dict(layer.state_dict())
    layer.eval(), clone.eval()
    assert torch.equal(clone(x), layer(x))
    assert torch.equal(clone.kl(), layer.kl()) or name.endswith("mixture")


@params
def test_device_and_float64(name):
    layer, x, out_shape = make(name)
    device = bt.utils.get_device()
    layer = layer.to(device).double()
    out = layer(x.to(device).double())
    assert out.dtype == torch.float64 and out.device.type == device.type and out.shape == out_shape
    assert layer.kl().dtype == torch.float64


BBB_EXTREMES = [{"rho": 20.0, "mu": 0.0}, {"rho": -20.0, "mu": 0.0}]
SPARSE_EXTREMES = [{"log_sigma2": 20.0, "weight": 0.0}, {"log_sigma2": -20.0, "weight": 0.0}]
EXTREME_CASES = [(name, extreme) for name in LAYERS
                 for extreme in (BBB_EXTREMES if name.startswith("Bayes") else SPARSE_EXTREMES)]


@pytest.mark.parametrize("name, extreme", EXTREME_CASES,
                         ids=[f"{n}-" + ",".join(f"{k}={v}" for k, v in e.items()) for n, e in EXTREME_CASES])
def test_no_nan_after_200_adam_steps_from_extreme_init(name, extreme):
    layer, x, _ = make(name, noisy=False)
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            for key, value in extreme.items():
                if pname.endswith(key):
                    p.fill_(value)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    target = torch.randn(LAYERS[name][2])
    for _ in range(200):
        out = layer(x)
        loss = (out - target).pow(2).mean() + layer.kl() / 1000
        opt.zero_grad()
        loss.backward()
        for pname, p in layer.named_parameters():
            assert torch.all(torch.isfinite(p.grad)), f"non-finite gradient of {pname}"
        opt.step()
    assert torch.all(torch.isfinite(out)) and torch.isfinite(layer.kl())
    layer.eval()
    assert torch.all(torch.isfinite(layer(x)))


# ---------------------------------------------------------------- KL = 0 when q = p, and its limits

def test_bbb_kl_is_zero_when_posterior_equals_prior():
    layer = bt.nn.BayesLinear(4, 3, prior=bt.priors.GaussianPrior(0.5))
    with torch.no_grad():
        layer.weight_mu.zero_(), layer.bias_mu.zero_()
        rho = math.log(math.expm1(0.5))  # softplus(rho) = 0.5
        layer.weight_rho.fill_(rho), layer.bias_rho.fill_(rho)
    assert abs(float(layer.kl())) < 1e-5


def test_bbb_kl_is_the_sum_of_normal_normal():
    layer = bt.nn.BayesConv2d(2, 3, 3, prior=bt.priors.GaussianPrior(0.3))
    expected = (bt.kl.normal_normal(layer.weight_mu, torch.nn.functional.softplus(layer.weight_rho), 0.0, 0.3).sum()
                + bt.kl.normal_normal(layer.bias_mu, torch.nn.functional.softplus(layer.bias_rho), 0.0, 0.3).sum())
    torch.testing.assert_close(layer.kl(), expected)


def test_sparsevd_kl_vanishes_when_every_weight_is_pruned():
    layer = bt.nn.LinearSVDO(10, 10)
    with torch.no_grad():
        layer.log_sigma2.fill_(20.0)
    assert float(layer.kl()) < 100 * 2e-4  # log_alpha clamped at 8: at most 1.7e-4 nats a weight
    assert int(layer.pruning_mask().sum()) == 0
    layer.eval()
    torch.testing.assert_close(layer(torch.rand(3, 10)), layer.bias.expand(3, 10))


def test_ard_kl_differs_from_sparsevd_on_same_posterior():
    svdo, ard = bt.nn.LinearSVDO(5, 4), bt.nn.LinearARD(5, 4)
    ard.load_state_dict(svdo.state_dict())
    torch.testing.assert_close(ard.kl(), bt.kl.ard(svdo.log_alpha).sum())
    torch.testing.assert_close(svdo.kl(), bt.kl.sparsevd(svdo.log_alpha).sum())


# ---------------------------------------------------------------- LRT moments

def _moments(samples):
    return samples.mean(0), samples.var(0)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_lrt_moments_match_weight_sampling(kind):
    """For fixed parameters, LRT pre-activations have the mean and variance of explicit weight sampling."""
    torch.manual_seed(0)
    if kind == "linear":
        lrt, ws, x = (
            bt.nn.BayesLinear(6, 4, init_rho=-1.0),
            bt.nn.BayesLinear(6, 4, local_reparam=False),
            torch.rand(3, 6),
        )
    else:
        lrt, ws = bt.nn.BayesConv2d(2, 2, 3, init_rho=-1.0), bt.nn.BayesConv2d(2, 2, 3, local_reparam=False)
        x = torch.rand(1, 2, 4, 4)
    ws.load_state_dict(lrt.state_dict())
    n = 40_000
    with torch.no_grad():
        a = torch.stack([lrt(x) for _ in range(n)])
        b = torch.stack([ws(x) for _ in range(n)])
        # the exact moments, for the tolerance
        mean = lrt._op(x, lrt.weight_mu, lrt.bias_mu)
        var = lrt._op(x * x, lrt.weight_sigma**2, lrt.bias_sigma**2)
    for samples in (a, b):
        m, v = _moments(samples)
        # standard errors: sqrt(var/n) for the mean, var*sqrt(2/n) for the variance; 5 of them
        assert torch.all((m - mean).abs() < 5 * torch.sqrt(var / n)), "means differ"
        assert torch.all((v - var).abs() < 5 * var * math.sqrt(2 / n)), "variances differ"


def test_sparsevd_lrt_variance_is_alpha_theta_squared():
    torch.manual_seed(0)
    layer = bt.nn.LinearSVDO(4, 2, init_log_sigma2=-3.0)
    x = torch.rand(2, 4)
    with torch.no_grad():
        samples = torch.stack([layer(x) for _ in range(40_000)])
        var = (x * x) @ (torch.exp(layer.log_alpha) * layer.weight**2).T + 1e-8
    torch.testing.assert_close(samples.var(0), var, rtol=0.05, atol=1e-6)
    torch.testing.assert_close(samples.mean(0), x @ layer.weight.T + layer.bias, rtol=0,
                               atol=float(5 * var.max().sqrt() / 200))


# ---------------------------------------------------------------- group sparsity

def test_group_layer_removes_whole_input_neurons():
    layer = bt.nn.LinearGroupSVDO(6, 4)
    with torch.no_grad():
        layer.z_log_sigma2[[1, 4]] = 20.0
    assert layer.neuron_mask().tolist() == [True, False, True, True, False, True]
    mask = layer.pruning_mask()
    assert not mask[:, [1, 4]].any() and mask[:, [0, 2, 3, 5]].all()
    layer.eval()
    x = torch.rand(3, 6)
    x_changed = x.clone()
    x_changed[:, [1, 4]] = 100.0
    assert torch.equal(layer(x), layer(x_changed)), "pruned input neurons have no influence"
    assert bt.sparsity.compression_ratio(layer) == pytest.approx(24 / 16)


# ---------------------------------------------------------------- MC dropout, sampling, bayesianize

def test_mc_dropout_and_batchnorm_under_sampling():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), bt.nn.MCDropout(0.5), nn.Linear(8, 2))
    model(torch.randn(16, 4))  # update the running statistics once
    model.eval()
    stats = model[1].running_mean.clone()
    x = torch.randn(5, 4)
    assert torch.equal(model(x), model(x))
    with bt.nn.sampling(model):
        assert not model[1].training, "BatchNorm stays in eval mode"
        assert not torch.equal(model(x), model(x))
    assert torch.equal(model[1].running_mean, stats)
    with pytest.raises(ValueError, match="p must"):
        bt.nn.MCDropout(1.0)


@pytest.mark.parametrize("flavour", ["bbb", "svdo", "ard", "group_svdo"])
def test_bayesianize_keeps_the_function_as_posterior_mean(flavour):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    x = torch.rand(3, 1, 8, 8)
    before = model(x)
    # with a tiny initial variance no SparseVD weight starts above the pruning threshold
    kwargs = {} if flavour == "bbb" else {"init_log_sigma2": -30.0}
    bt.nn.bayesianize(model, flavour, **kwargs)
    assert len(bt.nn.bayesian_modules(model)) == 2
    model.eval()
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    assert float(bt.nn.kl_divergence(model)) > 0


def test_bayesianize_passes_layer_arguments_and_skips():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    bt.nn.bayesianize(model, "bbb", skip=["1"], prior=bt.priors.GaussianPrior(0.1), local_reparam=False)
    assert isinstance(model[0], bt.nn.BayesLinear) and type(model[1]) is nn.Linear
    assert model[0].prior.sigma == 0.1 and not model[0].local_reparam
    with pytest.raises(ValueError, match="flavour"):
        bt.nn.bayesianize(model, "dropout")


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", ["BayesLinear-lrt", "LinearSVDO", "LinearGroupSVDO"])
def test_wrong_input_shape_names_in_features(name):
    layer, _, _ = make(name)
    with pytest.raises(ValueError, match="in_features=5"):
        layer(torch.rand(6, 4))


@pytest.mark.parametrize("name", ["BayesConv2d-lrt", "Conv2dSVDO"])
def test_wrong_conv_input_names_in_channels(name):
    layer, _, _ = make(name)
    with pytest.raises(ValueError, match="in_channels=2"):
        layer(torch.rand(4, 3, 7, 7))
    with pytest.raises(ValueError, match="in_channels=2"):
        layer(torch.rand(2, 7, 7))


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="threshold"):
        bt.nn.LinearSVDO(3, 3, threshold="3")
    with pytest.raises(ValueError, match="threshold"):
        bt.nn.Conv2dSVDO(3, 3, 3, threshold=float("nan"))
    with pytest.raises(ValueError, match="in_features"):
        bt.nn.BayesLinear(0, 3)
    with pytest.raises(TypeError, match="prior"):
        bt.nn.BayesLinear(3, 3, prior=1.0)
    with pytest.raises(ValueError, match="out_channels"):
        bt.nn.BayesConv2d(3, -2, 3)
    with pytest.raises(TypeError, match="train_clip"):
        bt.nn.LinearSVDO(3, 3, train_clip="yes")


# ---------------------------------------------------------------- the fused LRT against plain autograd

@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("layer_type", ["bbb", "svdo", "svdo-train-clip"])
def test_fused_lrt_gradients_match_autograd_reference(kind, layer_type):
    """The closed-form backward of the fused LRT equals autograd through the plain formula (float64).

    ``train_clip=True``: the mean term uses the pruned means, the variance term all of them."""
    torch.manual_seed(0)
    clip = {"train_clip": True} if layer_type == "svdo-train-clip" else {}
    if kind == "linear":
        cls = bt.nn.BayesLinear if layer_type == "bbb" else bt.nn.LinearSVDO
        layer, x = cls(5, 4, **clip), torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    else:
        cls = bt.nn.BayesConv2d if layer_type == "bbb" else bt.nn.Conv2dSVDO
        layer = cls(2, 3, 3, padding=1, stride=2, **clip)
        x = torch.rand(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    layer = layer.double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith(("rho", "log_sigma2")):
                p.copy_(torch.empty_like(p).uniform_(-3, -1))
        if clip:  # prune every other weight: log alpha > 3
            layer.log_sigma2.view(-1)[::2] = 4.0
            assert 0 < int((~layer.pruning_mask()).sum()) < layer.weight.numel()

    def reference(noise):
        if layer_type == "bbb":
            mean = layer._op(x, layer.weight_mu, layer.bias_mu)
            var = layer._op(x * x, torch.nn.functional.softplus(layer.weight_rho) ** 2,
                            torch.nn.functional.softplus(layer.bias_rho) ** 2)
        else:
            keep = layer.pruning_mask().double() if clip else 1.0
            mean = layer._op(x, layer.weight * keep, layer.bias)
            var = layer._op(x * x, torch.exp(layer.log_alpha) * layer.weight**2, None)
        return mean + torch.sqrt(var + 1e-8) * noise

    torch.manual_seed(7)
    out = layer(x)
    torch.manual_seed(7)
    noise = torch.randn_like(out)
    ref = reference(noise)
    torch.testing.assert_close(out, ref)
    grad_out = torch.randn_like(out)
    params = [x] + list(layer.parameters())
    got = torch.autograd.grad(out, params, grad_out)
    want = torch.autograd.grad(ref, params, grad_out)
    for p, g, w in zip(["x"] + [n for n, _ in layer.named_parameters()], got, want):
        torch.testing.assert_close(g, w, msg=lambda m, p=p: f"gradient of {p}: {m}")


@pytest.mark.parametrize("cls", [bt.nn.LinearSVDO, bt.nn.LinearARD, bt.nn.LinearGroupSVDO])
def test_fused_log_alpha_and_kl_match_the_plain_formulas(cls):
    """log_alpha and kl() have closed-form backwards; they equal autograd through the plain formulas
    (float64), with weights clamped at both ends of LOG_ALPHA_RANGE and inside it."""
    torch.manual_seed(0)
    layer = cls(40, 30).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(30, 40) * 0.05)
        layer.weight.view(-1)[::9] = 1e-6  # log alpha clamped at +8
        layer.log_sigma2.uniform_(-16, 0)  # some clamped at -8
    lo, hi = bt.nn.sparse.LOG_ALPHA_RANGE

    def plain_log_alpha(theta, log_sigma2):
        return torch.clamp(log_sigma2 - torch.log(theta * theta + 1e-8), lo, hi)

    la = plain_log_alpha(layer.weight, layer.log_sigma2)
    assert (la == lo).any() and (la == hi).any() and ((la > lo) & (la < hi)).any()
    torch.testing.assert_close(layer.log_alpha, la, rtol=0, atol=1e-12)
    kl_fn = bt.kl.ard if cls is bt.nn.LinearARD else bt.kl.sparsevd
    plain = kl_fn(la).sum()
    if cls is bt.nn.LinearGroupSVDO:
        plain = plain + kl_fn(plain_log_alpha(layer.z_mu, layer.z_log_sigma2)).sum()
    fused = layer.kl()
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-9)
    params = list(layer.parameters())
    got = torch.autograd.grad(fused * 0.3, params, allow_unused=True)
    want = torch.autograd.grad(plain * 0.3, params, allow_unused=True)
    for (name, _), g, w in zip(layer.named_parameters(), got, want):
        if w is None:
            assert g is None or float(g.abs().max()) == 0.0, name
        else:
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12, msg=lambda m, name=name: f"gradient of {name}: {m}")


# ---------------------------------------------------------------- fused = plain, second derivatives, torch.func

def _float64_pair(name):
    """The layer (fused, float64, parameters away from clamps and thresholds) and its fused=False twin."""
    layer, x, _ = make(name)
    layer = layer.double()
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            if pname.endswith(("rho", "log_sigma2")):
                p.uniform_(-3.0, -1.0)
    plain = copy.deepcopy(layer)
    for m in plain.modules():
        if hasattr(m, "fused"):
            m.fused = False
    return layer, plain, x.double()


FUSABLE = [n for n in LAYERS if not n.endswith("weights")]


@pytest.mark.parametrize("name", FUSABLE)
def test_fused_path_equals_plain_autograd(name):
    """Same seed, same sample; same KL; the same gradients of both (float64)."""
    layer, plain, x = _float64_pair(name)
    results = []
    for module in (layer, plain):
        xg = x.clone().requires_grad_(True)
        torch.manual_seed(3)
        out = module(xg)
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum() + 0.01 * module.kl()
        grads = torch.autograd.grad(loss, [xg, *module.parameters()])
        results.append((out.detach(), module.kl().detach(), grads))
    (out_f, kl_f, grads_f), (out_p, kl_p, grads_p) = results
    torch.testing.assert_close(out_f, out_p, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kl_f, kl_p, rtol=1e-10, atol=1e-10)
    for pname, gf, gp in zip(["x"] + [n for n, _ in layer.named_parameters()], grads_f, grads_p):
        torch.testing.assert_close(gf, gp, rtol=1e-8, atol=1e-10,
                                   msg=lambda m, pname=pname: f"gradient of {pname}: {m}")


def _functional(module, x, seed=0):
    """``f(x, *params)`` of the layer's output with a fixed noise draw, and its inputs (float64)."""
    names = [n for n, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())

    def f(x, *params):
        torch.manual_seed(seed)
        return torch.func.functional_call(module, dict(zip(names, params)), (x,))

    return f, (x.clone().requires_grad_(True), *params)


@pytest.mark.parametrize("mode", ["train", "eval"])
@params
def test_gradgradcheck_plain_path(name, mode):
    """Second derivatives of the output and of the KL are right (fused=False, float64, both modes)."""
    _, plain, x = _float64_pair(name)
    plain.train(mode == "train")
    f, inputs = _functional(plain, x)
    assert torch.autograd.gradgradcheck(f, inputs, atol=1e-5, rtol=1e-4, nondet_tol=1e-12)
    kl_names = [n for n, _ in plain.named_parameters()]

    def kl(*params):
        torch.manual_seed(0)  # the scale-mixture prior's KL is a Monte Carlo estimate
        return _kl_of(plain, kl_names, params)

    assert torch.autograd.gradgradcheck(kl, inputs[1:], atol=1e-5, rtol=1e-4, nondet_tol=1e-12)


def _kl_of(module, names, params):
    class _KL(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self):
            return self.inner.kl()

    return torch.func.functional_call(_KL(module), {f"inner.{n}": p for n, p in zip(names, params)}, ())


@pytest.mark.parametrize("name", FUSABLE)
def test_second_derivative_through_fused_path_raises_a_clear_error(name):
    layer, _, x = _float64_pair(name)
    x = x.requires_grad_(True)
    with pytest.raises(RuntimeError, match="fused=False"):
        torch.autograd.grad(layer(x).pow(2).sum(), x, create_graph=True)
    if name.endswith("mixture"):  # a Monte Carlo KL in plain autograd: twice differentiable
        return
    with pytest.raises(RuntimeError, match="fused=False"):
        torch.autograd.grad(layer.kl(), list(layer.parameters()), create_graph=True)


def test_mixed_second_derivative_of_the_lrt_matches_the_formula():
    """d²L/dx dmu for L = sum(out²) with fused=False equals the same derivative of the LRT formula written out."""
    torch.manual_seed(0)
    layer = bt.nn.BayesLinear(3, 2, fused=False).double()
    x = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    out = layer(x)
    (gx,) = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
    (got,) = torch.autograd.grad(gx.sum(), layer.weight_mu)
    torch.manual_seed(1)
    noise = torch.randn(4, 2, dtype=torch.float64)
    mu, sigma = layer.weight_mu.detach().clone().requires_grad_(True), layer.weight_sigma.detach()
    x2 = x.detach().clone().requires_grad_(True)
    ref = x2 @ mu.T + layer.bias_mu.detach() + torch.sqrt((x2 * x2) @ (sigma**2).T + layer.bias_sigma.detach()**2
                                                          + 1e-8) * noise
    (gx_ref,) = torch.autograd.grad(ref.pow(2).sum(), x2, create_graph=True)
    (want,) = torch.autograd.grad(gx_ref.sum(), mu)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(LAYERS))
def test_torch_func_vmap_and_grad(name):
    """torch.func works on every layer (the fused path steps aside): per-example gradients by vmap(grad)
    equal a loop of autograd gradients, in eval mode (deterministic)."""
    layer, x, _ = make(name)
    layer.eval()
    params = {n: p.detach() for n, p in layer.named_parameters()}

    def loss(params, xi):
        return torch.func.functional_call(layer, params, (xi.unsqueeze(0),)).pow(2).sum()

    per_example = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, x)
    for i in range(2):
        layer.zero_grad()
        layer(x[i:i + 1]).pow(2).sum().backward()
        for n, p in layer.named_parameters():
            if p.grad is not None:
                torch.testing.assert_close(per_example[n][i], p.grad, rtol=1e-5, atol=1e-6)
    layer.train()
    with pytest.raises(RuntimeError, match="randomness"):
        torch.func.vmap(lambda xi: torch.func.functional_call(layer, params, (xi.unsqueeze(0),)))(x)
    sampled = torch.func.vmap(lambda xi: torch.func.functional_call(layer, params, (xi.unsqueeze(0),)),
                              randomness="different")(x)
    assert sampled.shape[0] == x.shape[0] and torch.all(torch.isfinite(sampled))


# ---------------------------------------------------------------- bad arguments and inputs, said clearly

@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.uint8])
def test_wrong_input_dtype_names_both_dtypes_and_the_fix(name, dtype):
    layer, x, _ = make(name)
    with pytest.raises(TypeError, match=rf"{dtype}.*torch.float32.*x.to\(torch.float32\)"):
        layer(x.to(dtype))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(init_rho=float("nan")), ValueError, "init_rho must be finite"),
    (dict(init_rho="-5"), TypeError, "init_rho must be a number"),
    (dict(local_reparam="no"), TypeError, "local_reparam"),
    (dict(fused=1), TypeError, "fused"),
])
def test_bbb_constructor_refuses_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        bt.nn.BayesLinear(3, 2, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(padding=-1), "padding must be an int >= 0"),
    (dict(stride=0), "stride must be a positive int"),
    (dict(kernel_size=(3, 3, 3)), "kernel_size must be an int or a pair"),
    (dict(dilation=1.5), "dilation"),
])
@pytest.mark.parametrize("cls", [bt.nn.BayesConv2d, bt.nn.Conv2dSVDO])
def test_conv_constructor_refuses_bad_geometry(cls, kwargs, match):
    kw = {"kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        cls(2, 4, **kw)


def test_svdo_constructor_refuses_nonfinite_init():
    with pytest.raises(ValueError, match="init_log_sigma2 must be finite"):
        bt.nn.LinearSVDO(3, 2, init_log_sigma2=float("inf"))


def test_input_on_another_device_is_named():
    layer = bt.nn.BayesLinear(3, 2)
    with pytest.raises(ValueError, match="input is on meta but BayesLinear is on cpu"):
        layer(torch.empty(4, 3, device="meta"))
