"""bnn_teach.sparsity and bnn_teach.models: masks, compression, pruning, and SparseVD on real MNIST."""
import pytest
import torch
from torch import nn

import bnn_teach as bt
from bnn_teach import models, sparsity
from bnn_teach.train import evaluate, fit


def test_compression_ratio_and_table_count_weights_not_biases():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[:2] = 0.0  # 8 of 12 zero
        model[2].weight[0, 0] = 0.0  # 1 of 6 zero
    assert sparsity.compression_ratio(model) == pytest.approx(18 / 9)
    table = sparsity.sparsity_table(model)
    assert [(r["layer"], r["kept"], r["total"]) for r in table] == [("0", 4, 12), ("2", 5, 6)]
    assert table[0]["sparsity"] == pytest.approx(100 * 8 / 12)
    assert "compression 2.0x" in str(table)


def test_sparsevd_masks_follow_log_alpha():
    layer = bt.nn.LinearSVDO(4, 3)
    with torch.no_grad():
        layer.log_sigma2.copy_(torch.log(layer.weight**2) + torch.linspace(-5, 6, 12).reshape(3, 4))
    expected = layer.log_alpha < 3.0
    assert torch.equal(sparsity.weight_mask(layer), expected)
    by_zero = sparsity.prune(nn.Sequential(layer), "log_alpha", threshold=0.0)
    torch.testing.assert_close(by_zero[0].weight, layer.weight.detach() * (layer.log_alpha < 0.0))
    assert sparsity.compression_ratio(nn.Sequential(layer)) == pytest.approx(12 / int(expected.sum()))
    pruned = sparsity.prune(nn.Sequential(layer))
    assert isinstance(pruned[0], nn.Linear)
    torch.testing.assert_close(pruned[0].weight, layer.weight.detach() * expected)
    x = torch.rand(5, 4)
    layer.eval()
    torch.testing.assert_close(pruned(x), layer(x))


def test_prune_by_snr_and_magnitude_fraction():
    torch.manual_seed(0)
    model = nn.Sequential(bt.nn.BayesLinear(10, 8, init_rho=-2.0), nn.ReLU(), bt.nn.BayesLinear(8, 4, init_rho=-2.0))
    snr = torch.cat([model[0].pruning_score().flatten(), model[2].pruning_score().flatten()]).detach()
    pruned = sparsity.prune(model, "snr", fraction=0.75)
    assert sparsity.compression_ratio(pruned) == pytest.approx(4.0, rel=0.02)
    kept = torch.cat([pruned[0].weight.flatten(), pruned[2].weight.flatten()]) != 0
    assert snr[kept].min() > snr[~kept].max(), "the highest signal-to-noise weights survive"
    by_threshold = sparsity.prune(model, "snr", threshold=float(snr.median()))
    assert sparsity.compression_ratio(by_threshold) == pytest.approx(2.0, rel=0.05)
    mag = sparsity.prune(nn.Sequential(nn.Linear(10, 10)), "magnitude", fraction=0.9)
    assert sparsity.compression_ratio(mag) == pytest.approx(10.0)
    assert isinstance(model[0], bt.nn.BayesLinear), "the original model is untouched"
    with pytest.raises(ValueError, match="exactly one"):
        sparsity.prune(model, "snr")
    with pytest.raises(TypeError, match="threshold"):
        sparsity.prune(nn.Sequential(bt.nn.LinearSVDO(2, 2)), "log_alpha", threshold="3")
    with pytest.raises(TypeError, match="BayesLinear"):
        sparsity.prune(nn.Sequential(nn.Linear(2, 2)), "snr", fraction=0.5)


def test_storage_bytes_csr_against_dense():
    model = nn.Sequential(nn.Linear(100, 10))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[:, :5] = 1.0  # 50 non-zeros
    assert sparsity.storage_bytes(model, "dense") == 1000 * 4
    assert sparsity.storage_bytes(model, "csr") == 50 * 8 + 11 * 4


@pytest.mark.parametrize("flavour", models.MODEL_FLAVOURS)
def test_lenet300_flavours(flavour):
    model = models.lenet300(flavour)
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    n_weights = sum(r["total"] for r in sparsity.sparsity_table(model))
    assert n_weights == 784 * 300 + 300 * 100 + 100 * 10
    assert (len(bt.nn.bayesian_modules(model)) > 0) == (flavour != "deterministic")


@pytest.mark.parametrize("flavour", [f for f in models.MODEL_FLAVOURS if f != "group_svdo"])
def test_lenet5_flavours(flavour):
    model = models.lenet5(flavour)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    totals = [r["total"] for r in sparsity.sparsity_table(model)]
    assert totals == [20 * 25, 50 * 20 * 25, 800 * 500, 500 * 10]


def test_model_builder_rejects_unknown_flavour():
    with pytest.raises(ValueError, match="flavour"):
        models.lenet300("dropconnect")
    with pytest.raises(TypeError, match="layer arguments"):
        models.lenet300("deterministic", threshold=3.0)


@pytest.fixture(scope="module")
def mnist_subset(tmp_path_factory):
    """The embedded subset (10,000 training images), also where BNN_TEACH_DATA names the full set: the thresholds
    below are for the subset, and training on all 60,000 images took five times as long."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("BNN_TEACH_DATA", raising=False)
        patch.setenv("BNN_TEACH_CACHE", str(tmp_path_factory.mktemp("empty_cache")))
        X, y = bt.data.load_mnist("train", download=False, root="/nonexistent")
        Xt, yt = bt.data.load_mnist("test", download=False, root="/nonexistent")
    assert len(y) == 10_000 and len(yt) == 2_000, "the embedded subset"
    return (X, y), (Xt, yt)


@pytest.mark.slow
def test_sparsevd_lenet300_prunes_most_weights_and_keeps_accuracy(mnist_subset, monkeypatch):
    (X, y), test = mnist_subset
    bt.utils.set_seed(0)
    model = models.lenet300("svdo")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, (X, y), 8, opt, batch_size=100, kl_weight=bt.objectives.linear_warmup(4), progress=False)
    ratio = sparsity.compression_ratio(model)
    acc = evaluate(model, test)["accuracy"]
    print(f"SparseVD on the embedded subset: {ratio:.1f}x at {acc:.4f}")
    assert ratio > 10, f"compression {ratio:.1f}x"
    assert acc > 0.90, f"accuracy {acc:.3f} at compression {ratio:.1f}x"


@pytest.mark.slow
def test_sparsevd_on_random_labels_prunes_nearly_everything(mnist_subset):
    (X, y), _ = mnist_subset
    bt.utils.set_seed(0)
    y_random = bt.data.random_labels(y, seed=0)
    model = models.lenet300("svdo")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, (X, y_random), 8, opt, kl_weight=bt.objectives.linear_warmup(4), progress=False)
    ratio = sparsity.compression_ratio(model)
    print(f"random labels: {ratio:.0f}x")
    assert ratio > 1000, f"compression {ratio:.0f}x on random labels"


def test_group_layer_prunes_a_weight_with_its_input_neuron():
    torch.manual_seed(0)
    layer = bt.nn.LinearGroupSVDO(6, 4)
    with torch.no_grad():
        layer.log_sigma2.copy_(torch.log(layer.weight**2) + torch.linspace(-4, 4, 24).reshape(4, 6))
        layer.z_log_sigma2.copy_(torch.log(layer.z_mu**2) + torch.tensor([-3.0, 5.0, -3.0, 5.0, -3.0, -3.0]))
    expected = (layer.log_alpha < 1.0) & (layer.z_log_alpha < 1.0).unsqueeze(0)
    pruned = sparsity.prune(nn.Sequential(layer), "log_alpha", threshold=1.0)
    torch.testing.assert_close(pruned[0].weight, (layer.weight * layer.z_mu).detach() * expected)
    assert not expected[:, 1].any() and not expected[:, 3].any(), "a dropped input neuron takes its whole column"
    assert torch.equal(sparsity.weight_mask(layer), (layer.log_alpha < 3.0) & (layer.z_log_alpha < 3.0).unsqueeze(0))


def test_pruning_curve_matches_prune_and_evaluate():
    torch.manual_seed(0)
    X, y = bt.data.two_moons(300, noise=0.1, seed=0)
    model = nn.Sequential(bt.nn.BayesLinear(2, 32, init_rho=-4.0), nn.ReLU(), bt.nn.BayesLinear(32, 2, init_rho=-4.0))
    fit(model, (X, y), 60, torch.optim.Adam(model.parameters(), 1e-2), batch_size=50, progress=False)
    curve = sparsity.pruning_curve(model, (X, y), "snr", fractions=(0.0, 0.5, 0.99))
    assert [row["removed %"] for row in curve] == [0.0, 50.0, 99.0]
    for row, pruned in zip(curve, [sparsity.prune(model), sparsity.prune(model, "snr", fraction=0.5),
                                   sparsity.prune(model, "snr", fraction=0.99)]):
        assert row["error %"] == pytest.approx(100 * (1 - evaluate(pruned, (X, y))["accuracy"]), abs=0.01)
    assert curve[0]["error %"] < 10 and curve[-1]["error %"] > curve[0]["error %"], curve
    with pytest.raises(ValueError, match="method"):
        sparsity.pruning_curve(model, (X, y), "log_alpha")


def test_shrink_keeps_the_eval_output_with_fewer_inputs_and_units():
    """Removed pixels and hidden units go; a unit with no inputs left becomes a bias of the next layer."""
    torch.manual_seed(0)
    net = bt.models.lenet300("group_svdo")
    with torch.no_grad():
        net.fc1.z_log_sigma2[:500] = 10.0        # 500 input pixels removed
        net.fc2.z_log_sigma2[:200] = 10.0        # 200 of fc1's 300 units unused by fc2
        net.fc1.log_sigma2[250] = 20.0           # unit 250 keeps its outgoing weights but loses its inputs
        net.fc1.bias[250] = 0.7                  # so it outputs relu(0.7): a constant
    net.eval()
    small = bt.sparsity.shrink(net)
    X = torch.rand(64, 1, 28, 28)
    torch.testing.assert_close(small(X), net(X), atol=1e-5, rtol=0)
    linears = [m for m in small if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(284, 99), (99, 100), (100, 10)]
    assert isinstance(small[0], bt.sparsity.SelectInputs) and len(small[0].index) == 284
    assert not any(isinstance(m, bt.nn.BayesianModule) for m in small.modules())
    without_folding = bt.sparsity.shrink(net)
    with torch.no_grad():
        without_folding[3].bias.copy_(net.fc2.mean_bias() if hasattr(net.fc2, "mean_bias") else net.fc2.bias)
    assert not torch.allclose(without_folding(X), net(X), atol=1e-4), "the constant unit's bias must be folded"


def test_shrink_plain_network_with_dropout_and_refusals():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), bt.nn.MCDropout(0.3), nn.Linear(5, 2)).eval()
    with torch.no_grad():
        net[1].weight[:, 0] = 0.0      # input 0 unused
        net[4].weight[:, 2] = 0.0      # hidden unit 2 unused
    small = bt.sparsity.shrink(net)
    X = torch.randn(10, 6)
    torch.testing.assert_close(small(X), net(X))
    assert small[1].in_features == 5 and small[1].out_features == 4
    assert not any(isinstance(m, bt.nn.MCDropout) for m in small)
    with pytest.raises(ValueError, match="fully connected"):
        bt.sparsity.shrink(bt.models.lenet5())
    with pytest.raises(TypeError, match="nn.Sequential"):
        bt.sparsity.shrink(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="neither a linear layer nor element-wise"):
        bt.sparsity.shrink(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)))
