"""``bnn-teach reproduce``: every experiment's code path at its smallest setting on the embedded data,
resuming from a checkpoint, and the CLI. Full runs are benchmarks (benchmarks/README.md)."""
import json
import os
import subprocess
import sys

import pytest

from bnn_teach import reproduce, train


@pytest.fixture
def fast_embedded(isolated_data, monkeypatch):
    monkeypatch.setenv("BNN_TEACH_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return isolated_data


@pytest.mark.parametrize("name", sorted(reproduce.EXPERIMENTS))
def test_every_experiment_runs_at_its_smallest_setting(name, fast_embedded, tmp_path, capsys):
    result = reproduce.run(name, epochs=1, out=tmp_path / name, progress=False)
    written = json.loads((tmp_path / name / "results.json").read_text())
    assert written["experiment"] == name and written["paper"] == reproduce.PAPER[name]
    assert written["ours"] == json.loads(json.dumps(result["ours"]))
    assert (tmp_path / name / "figure.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert name in printed and reproduce.PAPER[name]["source"] in printed
    if name.startswith("sparsevd"):
        ours = result["ours"]
        assert 0 <= ours["error %"] <= 100 and ours["compression"] >= 1
        assert len(ours["sparsity % per layer"]) == len(reproduce.PAPER[name]["sparsity % per layer"])
        history = json.loads((tmp_path / name / "history.json").read_text())
        assert history[-1]["compression"] == pytest.approx(ours["compression"], abs=0.05)
    if name == "compare-pruning":
        rows = result["ours"]
        for label in ("magnitude", "bbb snr"):
            matched = rows[f"{label}, matched accuracy"]
            assert matched["error %"] <= rows["svdo"]["error %"] or matched["fraction removed"] == 0.0
            assert rows[f"{label}, matched compression"]["compression"] == pytest.approx(
                rows["svdo"]["compression"], rel=0.02
            )
    if name == "sgld-sa":
        methods = {row["method"] for row in result["ours"]["rows"]}
        assert methods == {"sgld", "sghmc", "sgld-sa"}
    if name == "distributed":
        rows = result["ours"]["rows"]
        assert [row["label"] for row in rows] == [
            "posterior server, 1 worker", "posterior server, 2 workers", "federated averaging, 2 workers",
            "consensus MC, 2 workers", "posterior server, 2 workers, top-10%", "posterior server, 2 workers, 8-bit"]
        assert all(0 <= row["accuracy %"] <= 100 and row["MB up"] > 0 for row in rows)
        assert rows[4]["MB up"] == pytest.approx(rows[1]["MB up"] * 12 / 80, rel=0.01)   # 12 bytes per kept 10 %
        assert set(result["ours"]["curves"]) == {row["label"] for row in rows}
        assert "posterior server, 2 workers, 8-bit" in printed


def _folder_state(folder):
    """Every file in ``folder`` with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _interrupt_after_epoch(monkeypatch, epoch):
    """Make ``fit`` inside ``reproduce.runs`` (where ``train_resumable`` looks it up) raise KeyboardInterrupt (as
    Ctrl-C does) after ``epoch`` is checkpointed."""
    real_fit = reproduce.runs.fit

    def ctrl_c(done, model, history):
        if done == epoch:
            raise KeyboardInterrupt

    def fit(*args, callbacks=(), **kwargs):
        return real_fit(*args, callbacks=[*callbacks, ctrl_c], **kwargs)

    monkeypatch.setattr(reproduce.runs, "fit", fit)


def test_resumes_after_an_interruption_and_counts_the_whole_run(fast_embedded, tmp_path, monkeypatch):
    import torch

    out = tmp_path / "run"
    _interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(reproduce.RunInterrupted, match="stopped after epoch 1 .*run the same command to resume"):
        reproduce.run("sparsevd-lenet300", epochs=2, out=out, progress=False)
    assert not (out / "results.json").exists()
    state = torch.load(out / "sparsevd-lenet300.ckpt", weights_only=False)
    first, elapsed = state["history"], state["elapsed"]
    assert len(first) == 1 and elapsed > 0
    assert state["settings"]["epochs"] == 2 and state["settings"]["data"]["train images"] == 2000
    monkeypatch.setattr(reproduce.runs, "fit", train.fit)  # no more Ctrl-C
    result = reproduce.run("sparsevd-lenet300", epochs=2, out=out, progress=False)
    resumed = json.loads((out / "history.json").read_text())
    assert len(resumed) == 2 and resumed[0] == first[0], "epoch 1 was not re-trained"
    from bnn_teach.viz import SparsityRecorder

    frames = SparsityRecorder.from_dict(json.loads((out / "frames.json").read_text()))
    assert [f["epoch"] for f in frames.frames] == [1, 2], "the resumed run keeps the frame of epoch 1"
    assert frames.layer_names() == ["fc1"] and frames.mask(0, "fc1").shape == (100, 784)
    assert frames.frames[-1]["compression"] == pytest.approx(result["ours"]["compression"], abs=0.05)
    kept_pixels = torch.tensor(result["ours"]["input pixels kept"], dtype=torch.bool)
    assert kept_pixels.shape == (784,)
    assert not (torch.from_numpy(frames.mask(-1, "fc1").any(0)) & ~kept_pixels).any(), \
        "a pixel read by one of the first 100 units is read by the layer"
    # the training time of the whole run, not only the resumed epoch
    assert result["ours"]["seconds"] >= round(elapsed + resumed[1]["seconds"], 1) - 0.1
    assert result["wall seconds"] >= elapsed
    reproduce.run("sparsevd-lenet300", epochs=1, out=out, progress=False, restart=True)
    assert len(json.loads((out / "history.json").read_text())) == 1
    assert json.loads((out / "settings.json").read_text())["epochs"] == 1


def test_a_resume_with_other_settings_is_refused_and_changes_nothing(fast_embedded, tmp_path, monkeypatch):
    out = tmp_path / "run"
    reproduce.run("sparsevd-lenet300", epochs=1, out=out, progress=False)
    before = _folder_state(out)
    assert {"sparsevd-lenet300.ckpt", "settings.json", "results.json", "history.json", "figure.png"} <= set(before)
    asks = [  # (keyword arguments, the difference the message must name)
        (dict(epochs=3), "epochs 1 there, 3 asked"),
        (dict(epochs=1, seed=5, lr=0.01), "seed 0 there, 5 asked; lr 0.001 there, 0.01 asked"),
        (dict(epochs=1, train_size=500), "train_size not set there, 500 asked"),
        (dict(epochs=1, lr_floor=0.1), "lr_floor 0.0 there, 0.1 asked"),
    ]
    for kwargs, difference in asks:
        with pytest.raises(reproduce.SettingsMismatch) as refused:
            reproduce.run("sparsevd-lenet300", out=out, progress=False, **kwargs)
        message = str(refused.value)
        assert difference in message and "--restart" in message and "another --out" in message
        assert "\n" not in message
        assert _folder_state(out) == before, f"{kwargs} changed the run folder"
    monkeypatch.delenv("BNN_TEACH_FAST")  # a full run into a FAST run's folder
    with pytest.raises(reproduce.SettingsMismatch, match="fast on there, off asked"):
        reproduce.run("sparsevd-lenet300", out=out, progress=False)
    assert _folder_state(out) == before


def test_a_checkpoint_of_other_data_is_refused(fast_embedded, tmp_path, mnist_root, monkeypatch):
    out = tmp_path / "run"
    reproduce.run("sparsevd-lenet300", epochs=1, out=out, progress=False)  # the embedded subset
    before = _folder_state(out)
    monkeypatch.setenv("BNN_TEACH_DATA", str(mnist_root))  # same settings, other images
    with pytest.raises(reproduce.SettingsMismatch, match="data fingerprint [0-9a-f]{16} there, [0-9a-f]{16} asked"):
        reproduce.run("sparsevd-lenet300", epochs=1, out=out, progress=False)
    assert _folder_state(out) == before


def test_a_checkpoint_without_settings_is_refused(fast_embedded, tmp_path):
    import torch

    out = tmp_path / "old"
    out.mkdir()
    torch.save({"model": {}, "history": []}, out / "sparsevd-lenet300.ckpt")  # as an older bnn_teach wrote
    with pytest.raises(reproduce.SettingsMismatch, match="records no settings.*--restart"):
        reproduce.run("sparsevd-lenet300", epochs=1, out=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["sparsevd-lenet300.ckpt"]


def test_smoke_runs_say_so(fast_embedded, tmp_path, capsys):
    result = reproduce.run("sgld-sa", epochs=1, out=tmp_path / "s", progress=False)
    assert result["fast"] and "SMOKE RUN" in result["smoke run"]
    assert "SMOKE RUN" in json.loads((tmp_path / "s" / "results.json").read_text())["smoke run"]
    table = capsys.readouterr().out
    assert "SMOKE RUN" in table and "ours (smoke run)" in table


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        reproduce.run("sparsevd-resnet")
    bad = [
        (dict(epochs=0), "epochs"), (dict(epochs=-3), "epochs"), (dict(epochs=2.5), "epochs"),
        (dict(lr=5.0), "sgld-sa does not use --lr"), (dict(train_size=100), "does not use --train-size"),
        (dict(lr_floor=0.5), "does not use --lr-floor"), (dict(seed=-1), "seed"),
        (dict(device="gpu"), "not a device"), (dict(device="meta"), "not supported"),
        (dict(workers=4), "sgld-sa does not use --workers"),
    ]
    for kwargs, match in bad:
        with pytest.raises(reproduce.UsageError, match=match):
            reproduce.run("sgld-sa", out=tmp_path / "never", **kwargs)
    with pytest.raises(reproduce.UsageError, match="--workers must be an integer from 1 to 64"):
        reproduce.run("distributed", out=tmp_path / "never", workers=0)
    for kwargs, match in [(dict(train_size=-5), "train-size"), (dict(lr=float("nan")), "--lr"),
                          (dict(lr_floor=1.0), "lr-floor")]:
        with pytest.raises(reproduce.UsageError, match=match):
            reproduce.run("sparsevd-lenet300", out=tmp_path / "never", **kwargs)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(reproduce.UsageError, match="is a file"):
        reproduce.run("sgld-sa", out=tmp_path / "a_file")
    assert not (tmp_path / "never").exists(), "a refused run created its folder"


def test_train_size_larger_than_the_data_creates_nothing(fast_embedded, tmp_path):
    with pytest.raises(reproduce.UsageError, match="--train-size 5000 is more than the 2000 training images"):
        reproduce.run("sparsevd-lenet300", epochs=1, out=tmp_path / "big", train_size=5000, progress=False)
    assert not (tmp_path / "big").exists()


def test_cli_reproduce(fast_embedded, tmp_path):
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "bnn_teach.cli", "reproduce", "sgld-sa", "--epochs", "1",
                             "--out", str(tmp_path / "cli"), "--no-progress"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Deng et al. 2019" in result.stdout and (tmp_path / "cli" / "results.json").exists()
    bad = subprocess.run([sys.executable, "-m", "bnn_teach.cli", "reproduce", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_gallery_renders_every_figure(fast_embedded, tmp_path):
    from bnn_teach.viz.gallery import render_all

    paths = render_all(tmp_path / "gallery", epochs=8)   # the CLI default: SparseVD has time to prune
    names = {p.name for p in paths}
    expected = {"history", "weights_patch", "input_tiles", "conv_filters", "mu_sigma", "log_alpha_hist",
                "sparsity_bars", "experiment", "reliability", "in_vs_out", "certainty_grid", "regression_explorer",
                "gaussian_fits", "moons_epistemic", "pruning_curve", "sgld_mixture", "traces", "autocorrelation",
                "gradient_estimators", "gradient_variance"}
    assert names == {n + ".png" for n in expected} | {"sparsification.gif", "summary.json"}
    assert all(p.stat().st_size > 1000 for p in paths if p.suffix != ".json")
    summary = json.loads((tmp_path / "gallery" / "summary.json").read_text())
    # the figures show a working SparseVD network, not one its KL pruned into a broken one
    assert summary["test accuracy"] > 0.85, summary
    assert summary["compression"] > 10, summary
    assert summary["auroc, test digits against uniform noise by predictive entropy"] > 0.8, summary


def test_sparsevd_recipe_schedules_and_inputs():
    """The paper code's recipe: lr held for half of training then linearly to 0 (``lr_linear``), inputs
    minus the mean training image, fully connected means ~ N(0, 0.01^2) and zero biases."""
    import torch

    from bnn_teach import models

    layer = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    sched = reproduce._linear_decay(opt, 200, hold=0.5)
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    paper = [1e-3 * min(2 - e / 100, 1) for e in range(200)]  # optpolicy.lr_linear(epoch, 1e-3)
    assert lrs == pytest.approx(paper, rel=1e-9, abs=1e-15)
    floor = reproduce._linear_decay(torch.optim.Adam(layer.parameters(), lr=1.0), 10, floor=0.1)
    assert floor.lr_lambdas[0](10) == pytest.approx(0.1) and floor.lr_lambdas[0](5) == pytest.approx(0.55)

    X = torch.rand(50, 1, 28, 28)
    (Xc, _), (Xtc, _) = reproduce._center((X, None), (X[:5], None))
    assert Xc.mean(0).abs().max() < 1e-6
    torch.testing.assert_close(Xtc, Xc[:5])

    torch.manual_seed(0)
    model = models.lenet300("svdo", train_clip=True)
    with torch.no_grad():
        reproduce._paper_init_(model)
    first = model[1]
    assert first.train_clip and float(first.bias.abs().max()) == 0.0
    assert float(first.weight.std()) == pytest.approx(0.01, rel=0.02)
