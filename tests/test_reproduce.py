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
