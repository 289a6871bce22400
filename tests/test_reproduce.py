"""``bnn-teach reproduce``: every experiment's code path at its smallest setting on the embedded data,
resuming from a checkpoint, and the CLI. Full runs are benchmarks (benchmarks/README.md)."""
import json
import os
import subprocess
import sys

import pytest

from bnn_teach import reproduce


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
            assert rows[f"{label}, matched compression"]["compression"] == pytest.approx(rows["svdo"]["compression"], rel=0.02)
    if name == "sgld-sa":
        methods = {row["method"] for row in result["ours"]["rows"]}
        assert methods == {"sgld", "sghmc", "sgld-sa"}


def test_resumes_from_checkpoint(fast_embedded, tmp_path):
    out = tmp_path / "run"
    reproduce.run("sparsevd-lenet300", epochs=1, out=out, progress=False)
    first = json.loads((out / "history.json").read_text())
    assert len(first) == 1
    reproduce.run("sparsevd-lenet300", epochs=2, out=out, progress=False)
    resumed = json.loads((out / "history.json").read_text())
    assert len(resumed) == 2 and resumed[0] == first[0], "epoch 1 was not re-trained"
    reproduce.run("sparsevd-lenet300", epochs=1, out=out, progress=False, restart=True)
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown experiment"):
        reproduce.run("sparsevd-resnet")
    with pytest.raises(ValueError, match="epochs"):
        reproduce.run("sgld-sa", epochs=0)


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

    paths = render_all(tmp_path / "gallery", epochs=1)
    names = {p.name for p in paths}
    expected = {"history", "weights_patch", "input_tiles", "conv_filters", "mu_sigma", "log_alpha_hist",
                "sparsity_bars", "experiment", "reliability", "in_vs_out", "certainty_grid", "regression_explorer",
                "sgld_mixture", "traces", "autocorrelation"}
    assert names == {n + ".png" for n in expected} | {"sparsification.gif"}
    assert all(p.stat().st_size > 1000 for p in paths)


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
