"""bnn_teach.viz with the Agg backend: the plotted content matches the inputs, not just "no exception"."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

import bnn_teach as bt  # noqa: E402
from bnn_teach import viz  # noqa: E402
from bnn_teach.train import History, fit  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def sparse_layer():
    torch.manual_seed(0)
    layer = bt.nn.LinearSVDO(784, 300)
    with torch.no_grad():
        layer.log_sigma2.copy_(torch.log(layer.weight**2) + torch.empty_like(layer.weight).uniform_(-2, 6))
    return layer


def test_plot_weights_leaves_exactly_the_pruned_weights_empty():
    layer = sparse_layer()
    mask = bt.sparsity.weight_mask(layer).numpy()
    fig = viz.plot_weights(layer.weight.detach().numpy(), mask, title="t", patch=100)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (100, 100)
    np.testing.assert_array_equal(np.ma.getmaskarray(shown) | np.isnan(np.ma.getdata(shown)), ~mask[:100, :100])
    np.testing.assert_allclose(
        np.ma.getdata(shown)[mask[:100, :100]], layer.weight.detach().numpy()[:100, :100][mask[:100, :100]]
    )
    assert fig.axes[0].get_title() == "t"


def test_input_tiles_and_conv_filters_grids():
    layer = sparse_layer()
    mask = bt.sparsity.weight_mask(layer).numpy()
    fig = viz.plot_input_tiles(layer.weight.detach().numpy(), mask, num_units=16)
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 16
    first = tiles[0].images[0].get_array()
    assert first.shape == (28, 28)
    np.testing.assert_array_equal(np.isnan(np.ma.getdata(first)).ravel(), ~mask[0])
    conv = bt.nn.Conv2dSVDO(3, 4, 5)
    fig = viz.plot_conv_filters(conv.weight.detach().numpy(), bt.sparsity.weight_mask(conv).numpy(), title="c")
    assert sum(1 for ax in fig.axes if ax.images) == 12
    with pytest.raises(ValueError, match="kernels"):
        viz.plot_conv_filters(np.zeros((3, 3)), np.ones((3, 3), bool))


@pytest.fixture(scope="module")
def recorded():
    """A short SparseVD run on the embedded subset, recorded every epoch."""
    X, y = bt.data.load_mnist("train", download=False, root="/nonexistent", subset=2000)
    Xt, yt = bt.data.load_mnist("test", download=False, root="/nonexistent", subset=500)
    torch.manual_seed(0)
    model = bt.models.lenet300("svdo")
    recorder = viz.SparsityRecorder()
    fit(model, (X, y), 4, torch.optim.Adam(model.parameters(), 1e-3), test_data=(Xt, yt), callbacks=[recorder],
        kl_weight=bt.objectives.linear_warmup(2), progress=False)
    return model, recorder


def test_recorder_frames_match_the_model(recorded):
    model, recorder = recorded
    assert [f["epoch"] for f in recorder.frames] == [1, 2, 3, 4]
    assert recorder.layer_names() == ["fc1", "fc2", "fc3"]
    final_mask = bt.sparsity.weight_mask(model.fc1).numpy()
    np.testing.assert_array_equal(recorder.mask(-1, "fc1"), final_mask)
    np.testing.assert_allclose(recorder.score(-1, "fc1"), model.fc1.log_alpha.detach().numpy(), atol=0.01)
    assert recorder.frames[-1]["compression"] == pytest.approx(bt.sparsity.compression_ratio(model))
    assert recorder.frames[0]["compression"] < recorder.frames[-1]["compression"]


def test_recorder_memory_is_bounded_for_100_epochs():
    model = bt.models.lenet300("svdo")
    recorder = viz.SparsityRecorder(max_frames=200)
    history = History()
    for epoch in range(1, 101):
        history.append({"epoch": epoch, "test_acc": 0.9})
        recorder(epoch, model, history)
    assert len(recorder.frames) == 100
    assert recorder.nbytes() < 200 * 2**20, f"{recorder.nbytes() / 2**20:.0f} MB"
    small = viz.SparsityRecorder(max_frames=8)
    for epoch in range(1, 101):
        small(epoch, model, history)
    epochs = [f["epoch"] for f in small.frames]
    assert len(epochs) <= 8 and len(set(np.diff(epochs))) == 1, epochs


def test_frame_title_and_slider_redraw(recorded):
    _, recorder = recorded
    box = viz.sparsification_slider(recorder, "fc1")
    ax = box.figure.axes[0]
    last = recorder.frames[-1]
    assert ax.get_title() == viz.frame_title(last["epoch"], last["compression"], last["accuracy"])
    assert ax.get_title().startswith("Epoch 4 · compression ") and ax.get_title().endswith(" %")
    box.slider.value = 0  # triggers the observe callback
    assert ax.get_title().startswith("Epoch 1 · ")
    shown = ax.images[0].get_array()
    np.testing.assert_array_equal(np.isnan(np.ma.getdata(shown)), ~recorder.mask(0, "fc1")[:100, :100])


def png_pixels(data: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(data), format="png")


def test_slider_redraws_the_picture_it_shows(recorded):
    """What the student sees is the widget's own PNG: moving the slider must change its pixels."""
    _, recorder = recorded
    box = viz.sparsification_slider(recorder, "fc1")
    assert box.image in box.children and box.image.format == "png"
    last = png_pixels(box.image.value)
    box.slider.value = 0
    first = png_pixels(box.image.value)
    assert first.shape == last.shape
    changed = np.abs(first - last).max(axis=-1) > 0.05
    assert changed.mean() > 0.01, f"only {changed.mean():.2%} of the pixels changed"
    box.slider.value = len(recorder.frames) - 1
    np.testing.assert_array_equal(png_pixels(box.image.value), last)


def test_animation_has_one_frame_per_recorded_epoch(recorded, tmp_path):
    _, recorder = recorded
    path = viz.save_animation(recorder, tmp_path / "sparsify.gif", layer="fc2")
    with Image.open(path) as gif:
        assert gif.n_frames == len(recorder.frames)
    html = viz.save_animation(recorder, tmp_path / "sparsify.html", layer="fc2")
    assert "<script" in open(html).read()
    with pytest.raises(ValueError, match="gif"):
        viz.save_animation(recorder, tmp_path / "x.mp4")


def test_mu_sigma_log_alpha_and_bars(recorded):
    model, _ = recorded
    layer = model[3]
    fig = viz.plot_mu_sigma(layer, max_points=10**6)
    kept, pruned = fig.axes[0].collections[:2]
    assert len(pruned.get_offsets()) == int((~bt.sparsity.weight_mask(layer)).sum())
    assert len(kept.get_offsets()) == int(bt.sparsity.weight_mask(layer).sum())
    line = fig.axes[0].lines[0].get_xydata()
    assert line[1, 1] - line[1, 0] == pytest.approx(layer.threshold / 2)
    share = 100 * (~bt.sparsity.weight_mask(layer)).float().mean().item()
    assert fig.axes[0].get_title() == f"Each weight's mean and sd: {share:.1f} % above the line are pruned"
    fig = viz.plot_log_alpha_hist(model)
    assert len(fig.axes) == 3
    tables = {"SparseVD": bt.sparsity.sparsity_table(model),
              "magnitude": bt.sparsity.sparsity_table(bt.sparsity.prune(model, "magnitude", fraction=0.5))}
    fig = viz.plot_sparsity_bars(tables)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([r["sparsity"] for t in tables.values() for r in t])


def test_regression_bands_and_reliability():
    x = torch.linspace(-3, 3, 50)
    pred = {"mean": torch.sin(x), "aleatoric": torch.full((50,), 0.04), "epistemic": x.abs() / 10}
    fig = viz.plot_regression_bands(x, pred, torch.zeros(5), torch.ones(5))
    ax = fig.axes[0]
    assert len(ax.collections) == 3  # two bands + the data
    np.testing.assert_allclose(ax.lines[0].get_ydata(), torch.sin(x).numpy())
    outer = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert outer.max() == pytest.approx(float((torch.sin(x) + 2 * torch.sqrt(0.04 + x.abs() / 10)).max()), rel=1e-5)

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(400, 5, generator=g), -1)
    y = torch.randint(0, 5, (400,), generator=g)
    fig = viz.plot_reliability(probs, y, num_bins=10)
    assert fig.axes[0].get_title() == f"ECE = {100 * bt.metrics.ece(probs, y, 10):.2f} %"
    bins = bt.metrics.reliability_bins(probs, y, 10)
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, np.nan_to_num(bins["accuracy"].numpy()))


def test_uncertainty_hist_and_certainty_grid():
    g = torch.Generator().manual_seed(1)
    confident = torch.softmax(8 * torch.randn(20, 100, 10, generator=g), -1).mean(0, keepdim=True).expand(5, 100, 10)
    disagreeing = torch.softmax(8 * torch.randn(5, 80, 10, generator=g), -1)
    fig = viz.plot_uncertainty_hist(confident, disagreeing, kind="epistemic")
    u_in, u_out = bt.uncertainty.decompose(confident).epistemic, bt.uncertainty.decompose(disagreeing).epistemic
    auc = bt.metrics.auroc(torch.cat([u_in, u_out]), torch.cat([torch.zeros(100), torch.ones(80)]))
    assert fig.axes[0].get_title() == f"epistemic uncertainty · AUROC {auc:.3f}"
    assert auc > 0.99
    X = torch.rand(80, 1, 28, 28)
    fig = viz.plot_certainty_grid(X, disagreeing, k=3)
    assert len(fig.axes) == 12
    total = bt.uncertainty.decompose(disagreeing).total
    most = int(torch.argmin(total))
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), X[most, 0].numpy())


def test_autocorrelation_and_ess_of_an_ar1_chain():
    rng = np.random.default_rng(0)
    phi, n = 0.7, 100_000
    x = np.empty(n)
    x[0] = 0
    noise = rng.normal(size=n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    rho = viz.autocorrelation(x, max_lag=5)
    np.testing.assert_allclose(rho, phi ** np.arange(6), atol=0.02)
    expected = n * (1 - phi) / (1 + phi)
    assert viz.effective_sample_size(x) == pytest.approx(expected, rel=0.1)
    assert viz.effective_sample_size(rng.normal(size=5000)) == pytest.approx(5000, rel=0.1)
    fig = viz.plot_traces({"theta": torch.tensor(x[:2000])})
    assert fig.axes[0].get_title().startswith("theta · ESS ")
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), x[:2000])
    with pytest.raises(ValueError, match="constant"):
        viz.autocorrelation(np.ones(10))


def test_samples_2d_over_exact_density():
    samples = torch.randn(300, 2, dtype=torch.float64)
    fig = viz.plot_samples_2d(samples, lambda p: -0.5 * (p**2).sum(1), extent=(-3, 3, -3, 3))
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.collections[-1].get_offsets(), samples.numpy())
    assert len(ax.collections) >= 2, "contours and the samples"


def test_regression_explorer_recomputes_on_slider_change():
    explorer = bt.viz.RegressionExplorer(num_epochs=20, num_samples=5)
    box = explorer.widget()
    before = explorer.prediction["epistemic"].clone()
    assert explorer.num_updates == 1
    box.sliders["dropout"].value = 0.5  # the observe callback refits
    assert explorer.num_updates == 2 and explorer.values["dropout"] == 0.5
    assert not torch.allclose(explorer.prediction["epistemic"], before)
    assert "dropout 0.5" in explorer.ax.get_title()
    box.sliders["num_samples"].value = 7
    assert explorer.prediction["samples"].shape[0] == 7
    assert box.image in box.children


def test_regression_explorer_picture_changes_with_the_prior():
    explorer = bt.viz.RegressionExplorer(num_epochs=20, num_samples=5)
    box = explorer.widget()
    before = png_pixels(box.image.value)
    box.sliders["prior_sigma"].value = 0.05  # a tight prior: a different fit, a different picture
    after = png_pixels(box.image.value)
    assert explorer.num_updates == 2
    changed = np.abs(after - before).max(axis=-1) > 0.05
    assert changed.mean() > 0.01, f"only {changed.mean():.2%} of the pixels changed"
    with pytest.raises(ValueError, match="knob"):
        explorer.update(learning_rate=1.0)


def test_experiment_figure_shows_error_and_compression_per_epoch():
    history = History([{"epoch": e, "nll": 1.0 / e, "kl": 2.0 / e, "test_acc": 0.9 + 0.01 * e, "compression": 10.0 * e}
                       for e in range(1, 6)])
    layer = sparse_layer()
    fig = viz.experiment_figure("demo", history, nn.Sequential(layer))
    loss_ax, error_ax, bars_ax = fig.axes[:3]
    assert loss_ax.get_yscale() == "log" and [line.get_label() for line in loss_ax.lines] == ["nll", "kl"]
    np.testing.assert_allclose(error_ax.lines[0].get_ydata(), [10 - e for e in range(1, 6)])
    compression_ax = fig.axes[3]  # the twin axis
    np.testing.assert_allclose(compression_ax.lines[0].get_ydata(), [10.0 * e for e in range(1, 6)])
    assert error_ax.get_title() == "final error 5.00 % · compression 50.0×"
    table = bt.sparsity.sparsity_table(nn.Sequential(layer))
    assert [round(p.get_height(), 6) for p in bars_ax.patches] == [round(r["sparsity"], 6) for r in table]
    traces = viz.experiment_figure("sgld", History([{"epoch": 1, "sigma": 1.0, "beta1": 3.0}]), None)
    assert len(traces.axes) == 1 and [line.get_label() for line in traces.axes[0].lines] == ["sigma", "beta1"]
    short = History([{"epoch": e, "nll": 1.0, "kl": 1.0, "test_acc": 0.9} for e in (1, 2)])
    dense = viz.experiment_figure("bbb", short, nn.Sequential(bt.nn.BayesLinear(3, 2)))
    assert len(dense.axes) == 2, "a model without SparseVD/ARD layers gets no (empty) sparsity panel"
    dense.canvas.draw()
    for ax in dense.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), "epochs are whole numbers"


def test_unknown_layer_names_the_recorded_ones(recorded, tmp_path):
    _, recorder = recorded
    with pytest.raises(KeyError, match="recorded layers: fc1, fc2, fc3"):
        viz.save_animation(recorder, tmp_path / "a.gif", layer="3")
    assert not (tmp_path / "a.gif").exists()


def test_regression_explorer_epistemic_band_widens_off_the_data():
    """The lesson the explorer's picture claims: far from the data the model knows less."""
    explorer = bt.viz.RegressionExplorer()
    x = explorer.x_grid
    epistemic_sd = explorer.prediction["epistemic"].sqrt().reshape(-1)
    near_data = torch.cdist(x, explorer.X).min(1).values < 0.1
    far = x.reshape(-1).abs() > 6  # the data lie in [-4, 4]
    ratio = float(epistemic_sd[far].mean() / epistemic_sd[near_data].mean())
    assert ratio > 3.0, f"the epistemic band is only {ratio:.2f}x wider off the data than on it"


@pytest.fixture(scope="module")
def moons_bbb():
    X, y = bt.data.two_moons(200, noise=0.1, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(bt.nn.BayesLinear(2, 32), nn.ReLU(), bt.nn.BayesLinear(32, 2))
    fit(model, (X, y), 150, torch.optim.Adam(model.parameters(), 1e-2), batch_size=50, progress=False)
    return model, X, y


def test_uncertainty_map_shows_the_computed_grid(moons_bbb):
    model, X, y = moons_bbb
    torch.manual_seed(3)
    fig = viz.plot_uncertainty_map(model, X, y, "epistemic", num_samples=20, grid=30)
    torch.manual_seed(3)
    xs, ys, values = viz.uncertainty_grid(model, X, "epistemic", num_samples=20, grid=30)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), values.numpy())
    assert ax.images[0].get_extent() == pytest.approx([float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1])])
    assert fig.axes[1].get_ylabel() == "epistemic uncertainty (nats)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]
    with pytest.raises(ValueError, match="2-D inputs"):
        viz.uncertainty_grid(model, torch.zeros(5, 3))


def test_two_moons_epistemic_uncertainty_is_higher_away_from_the_data(moons_bbb):
    """Lecture 1's map: on average the model knows less away from the training points (most of all where
    the classes' boundary runs on beyond the data; a ReLU network stays confident far out on either side)."""
    model, X, _ = moons_bbb
    torch.manual_seed(4)
    xs, ys, values = viz.uncertainty_grid(model, X, "epistemic", num_samples=50, grid=40, margin=2.0)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    distance = torch.cdist(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), X).min(1).values.reshape(40, 40)
    near, far = values[distance < 0.2].mean(), values[distance > 1.5].mean()
    assert far > 1.3 * near, (float(far), float(near))


def test_pruning_curve_plots_each_method():
    curves = {"a": [{"removed %": 0.0, "error %": 2.0}, {"removed %": 90.0, "error %": 5.0}],
              "b": [{"removed %": 0.0, "error %": 2.5}, {"removed %": 50.0, "error %": 3.0}]}
    ax = viz.plot_pruning_curve(curves).axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "b"]
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[0.0, 2.0], [90.0, 5.0]])
    assert ax.get_xlabel() == "weights removed (%)" and ax.get_ylabel() == "test error (%)" and ax.get_title()


def test_gradient_estimator_histograms_report_each_mean_and_variance():
    g = torch.Generator().manual_seed(0)
    score = bt.diagnostics.gradient_samples(lambda w: w**2, 1.0, 1.0, 5000, "score", generator=g)
    reparam = bt.diagnostics.gradient_samples(lambda w: w**2, 1.0, 1.0, 5000, "reparam", generator=g)
    fig = bt.viz.plot_gradient_estimators({"score function": score, "reparametrization": reparam}, true_gradient=2.0)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    lo, hi = np.percentile(torch.cat([score, reparam]).numpy(), [1, 99])
    outside = ((score < lo) | (score > hi)).double().mean().item()
    assert labels[0] == (f"score function: mean {score.mean():.3g}, median {np.median(score.numpy()):.3g}, "
                         f"variance {score.var(unbiased=False):.3g} ({100 * outside:.1f} % beyond the axis)")
    assert labels[1].startswith("reparametrization: mean") and labels[2] == "exact gradient 2"
    assert len(ax.patches) == 2 * 80, "one histogram of 80 bins per estimator"
    heights = np.array([p.get_height() for p in ax.patches[:80]])
    width = ax.patches[0].get_width()
    assert heights.sum() * width == pytest.approx(1 - outside, abs=1e-6), "the densities count what is off the axis"
    assert heights[-1] < 2 * heights[-2], "the tail beyond the axis is not piled into the last bin"
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    with pytest.raises(ValueError, match="samples is empty"):
        bt.viz.plot_gradient_estimators({})
    plt.close("all")


def test_gradient_variance_bars_are_grouped_by_parameter_on_a_log_scale():
    variances = {"weight sampling": {"fc1.weight_mu": 1e-2, "fc2.weight_mu": 3e-3},
                 "LRT": {"fc1.weight_mu": 2e-4, "fc2.weight_mu": 1e-3}}
    fig = bt.viz.plot_gradient_variance(variances)
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == [1e-2, 3e-3, 2e-4, 1e-3], "one bar per method and parameter, methods in order"
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fc1.weight_mu", "fc2.weight_mu"]
    assert ax.get_legend_handles_labels()[1] == ["weight sampling", "LRT"]
    plt.close("all")


def test_plot_history_draws_one_axis_per_recorded_key_under_its_title():
    history = History([{"epoch": e, "nll": 1.0 / e, "kl": 2.0 / e, "test_acc": 0.9 + e / 100} for e in (1, 2, 3)])
    fig = bt.viz.plot_history(history, keys=("nll", "kl", "test_acc", "compression"), title="A run")
    assert len(fig.axes) == 3, "compression was not recorded: no axis for it"
    assert [ax.get_title() for ax in fig.axes] == ["nll", "kl", "test_acc"]
    assert list(fig.axes[1].lines[0].get_ydata()) == [2.0, 1.0, 2.0 / 3]
    assert fig.axes[0].get_ylabel() == "NLL per data point (nats)"
    assert fig._suptitle.get_text() == "A run"
    plt.close("all")


def test_dropout_explorer_band_follows_the_rate_and_the_widget_refits():
    """MC dropout's epistemic band on the data widens with p; a slider move refits and redraws."""
    X, y = bt.data.regression_1d(120, seed=0)
    x = torch.linspace(-8, 8, 240)
    on_data = x.abs() < 4
    widths = []
    for p in (0.05, 0.4):
        explorer = viz.DropoutExplorer(X, y, dropout=p, num_epochs=100)
        widths.append(float(explorer.prediction["epistemic"].sqrt()[on_data].mean()))
        assert not any(isinstance(m, bt.nn.BayesLinear) for m in explorer.model.modules())
        assert sum(isinstance(m, bt.nn.MCDropout) and m.p == p for m in explorer.model.modules()) == 2
    assert widths[1] > 1.5 * widths[0], widths
    box = explorer.widget()
    assert set(box.sliders) == {"dropout", "weight_decay", "num_samples"}
    before, updates = box.image.value, explorer.num_updates
    box.sliders["dropout"].value = 0.1
    assert explorer.num_updates == updates + 1 and explorer.values["dropout"] == 0.1
    assert box.image.value != before
    assert explorer.ax.get_title().startswith("MC dropout · p 0.1 · ")
    with pytest.raises(ValueError, match="unknown knob"):
        explorer.update(prior_sigma=1.0)


def test_plot_sweep_draws_each_series_and_refuses_mismatched_lengths():
    fig = viz.plot_sweep([30, 120, 600], {"a": [1.0, 0.5, 0.2], "b": [0.1, 0.1, 0.1]}, xlabel="N", ylabel="sd",
                         title="t", logx=True, logy=True)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "b"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1.0, 0.5, 0.2])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["30", "120", "600"]
    with pytest.raises(ValueError, match="2 values for 3 settings"):
        viz.plot_sweep([1, 2, 3], {"a": [1, 2]}, "x", "y", "t")
    with pytest.raises(ValueError, match="empty"):
        viz.plot_sweep([1], {}, "x", "y", "t")


def test_reliability_title_names_the_model():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = torch.tensor([0, 1, 1])
    fig = viz.plot_reliability(probs, y, title="model A")
    assert fig.axes[0].get_title() == f"model A: ECE = {100 * bt.metrics.ece(probs, y):.2f} %"


def test_recorder_subset_round_trips_through_json(recorded):
    """A masks-only recorder of chosen layers and units survives to_dict -> JSON -> from_dict exactly."""
    import json

    model, full = recorded
    small = viz.SparsityRecorder(max_frames=8, layers=["fc1"], max_units=10, scores=False)
    history = History()
    history.append({"epoch": 1, "test_acc": 0.5})
    small.record(1, model, history)
    small.record(1, model, history)  # the same epoch twice is kept once
    assert len(small.frames) == 1 and small.layer_names() == ["fc1"]
    np.testing.assert_array_equal(small.mask(0, "fc1"), full.mask(-1, "fc1")[:10])
    with pytest.raises(ValueError, match="masks only"):
        small.score(0, "fc1")
    back = viz.SparsityRecorder.from_dict(json.loads(json.dumps(small.to_dict())))
    np.testing.assert_array_equal(back.mask(0, "fc1"), small.mask(0, "fc1"))
    assert back.frames[0]["compression"] == small.frames[0]["compression"] and back.max_units == 10
    scored = viz.SparsityRecorder.from_dict(json.loads(json.dumps(full.to_dict())))
    np.testing.assert_array_equal(scored.score(2, "fc2"), full.score(2, "fc2"))
    with pytest.raises(KeyError, match="no prunable layer 'fc9'"):
        viz.SparsityRecorder(layers=["fc9"]).record(1, model, history)


def test_frame_views_tiles_and_filters_in_one_axes(recorded):
    model, recorder = recorded
    masks_only = viz.SparsityRecorder(layers=["fc1"], max_units=100, scores=False)
    masks_only.record(4, model, History([{"epoch": 4, "test_acc": 0.9}]))
    fig = viz.plot_frame(masks_only, 0, "fc1", view="tiles", num_units=100)
    ax = fig.axes[0]
    shown = np.ma.getdata(ax.images[0].get_array())
    assert shown.shape == (280, 280)  # 10 x 10 tiles of 28 x 28
    tile = shown[28:56, 0:28]  # unit 10
    np.testing.assert_array_equal(np.isnan(tile), ~masks_only.mask(0, "fc1")[10].reshape(28, 28))
    assert ax.get_title().startswith("Epoch 4 · compression ") and ax.get_legend() is not None
    conv = bt.models.lenet5("svdo")
    filters = viz.SparsityRecorder(layers=["conv2"])
    filters.record(1, conv, History())
    ax = viz.plot_frame(filters, 0, "conv2").axes[0]
    assert np.ma.getdata(ax.images[0].get_array()).shape == (50 * 5, 20 * 5)
    assert ax.get_xlabel() == "input channel (20)" and ax.get_ylabel() == "output channel (50)"
    with pytest.raises(ValueError, match="'filters' is for convolutions"):
        viz.plot_frame(recorder, 0, "fc1", view="filters")
    with pytest.raises(ValueError, match="needs 784 inputs"):
        viz.plot_frame(recorder, 0, "fc2", view="tiles")
    box = viz.sparsification_slider(masks_only, "fc1", view="tiles")
    assert box.figure.axes[0].get_xlabel().startswith("hidden units")


def test_plot_input_pixels_counts_what_it_shows():
    kept = np.zeros(784, dtype=bool)
    kept[300:400] = True
    fig = viz.plot_input_pixels(kept)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), kept.reshape(28, 28))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["read (100)", "removed (684)"]
    with pytest.raises(ValueError, match="do not make an image"):
        viz.plot_input_pixels(np.ones(100, dtype=bool))
