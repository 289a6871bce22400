"""Recorded full runs: the lectures load them from the package, checked against their checksums."""
import json

import pytest

from bnn_teach import reproduce
from bnn_teach.train import History


def finished_run(folder, name="bbb-mnist", fast=False):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"experiment": name, "fast": fast, "ours": {"error %": 1.5}}))
    History([{"epoch": 1, "nll": 0.3}, {"epoch": 2, "nll": 0.2}]).to_json(folder / "history.json")
    return folder


def test_record_then_load_gives_the_run_back(tmp_path):
    out = finished_run(tmp_path / "runs" / "bbb-mnist")
    shipped = tmp_path / "recorded"
    assert reproduce.record("bbb-mnist", out, folder=shipped) == shipped / "bbb-mnist"
    run = reproduce.load_recorded("bbb-mnist", folder=shipped)
    assert run["results"]["ours"] == {"error %": 1.5}
    assert run["history"]["nll"] == [0.3, 0.2]
    lines = (shipped / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["bbb-mnist/history.json", "bbb-mnist/results.json"]


def test_a_changed_or_missing_file_is_named_with_the_command_that_records_it(tmp_path):
    shipped = tmp_path / "recorded"
    reproduce.record("bbb-mnist", finished_run(tmp_path / "run"), folder=shipped)
    results = shipped / "bbb-mnist" / "results.json"
    results.write_text(results.read_text().replace("1.5", "0.5"))
    with pytest.raises(reproduce.RecordedRunError, match=r"results.json does not match its checksum.*--record"):
        reproduce.load_recorded("bbb-mnist", folder=shipped)
    with pytest.raises(reproduce.RecordedRunError, match="no recorded run of 'random-labels'"):
        reproduce.load_recorded("random-labels", folder=shipped)


def test_smoke_runs_and_unfinished_runs_are_not_recorded(tmp_path):
    with pytest.raises(reproduce.UsageError, match="smoke run"):
        reproduce.record("bbb-mnist", finished_run(tmp_path / "smoke", fast=True), folder=tmp_path / "rec")
    (tmp_path / "empty").mkdir()
    with pytest.raises(reproduce.UsageError, match="missing results.json"):
        reproduce.record("bbb-mnist", tmp_path / "empty", folder=tmp_path / "rec")
    with pytest.raises(reproduce.UsageError, match="not 'random-labels'"):
        reproduce.record("random-labels", finished_run(tmp_path / "other"), folder=tmp_path / "rec")
    assert not (tmp_path / "rec").exists(), "nothing is written for a refused run"


def test_the_shipped_runs_match_their_checksums_and_stay_small():
    names = sorted(p.name for p in reproduce.RECORDED.iterdir() if p.is_dir())
    assert names, "the package ships the lectures' recorded runs"
    for name in names:
        run = reproduce.load_recorded(name)
        assert run["results"]["experiment"] == name and not run["results"]["fast"]
    size = sum(p.stat().st_size for p in reproduce.RECORDED.rglob("*") if p.is_file())
    assert size < 3_000_000, f"recorded runs take {size / 1e6:.1f} MB; the package ships a few MB at most"


def test_frames_are_recorded_checksummed_and_loaded_as_a_recorder(tmp_path):
    from bnn_teach.viz import SparsityRecorder

    out = finished_run(tmp_path / "run", name="sparsevd-lenet300")
    recorder = SparsityRecorder(layers=["fc1"], scores=False)
    recorder.frames = [{"epoch": 1, "compression": 2.0, "accuracy": 0.9,
                        "layers": {"fc1": {"score": None, "mask_bits": __import__("numpy").packbits([1, 0, 1]),
                                           "shape": (1, 3)}}}]
    (out / "frames.json").write_text(json.dumps(recorder.to_dict()))
    shipped = tmp_path / "recorded"
    reproduce.record("sparsevd-lenet300", out, folder=shipped)
    run = reproduce.load_recorded("sparsevd-lenet300", folder=shipped)
    assert run["frames"].mask(0, "fc1").tolist() == [[True, False, True]]
    assert "sparsevd-lenet300/frames.json" in (shipped / "SHA256SUMS").read_text()
    frames = shipped / "sparsevd-lenet300" / "frames.json"
    frames.write_text(frames.read_text().replace('"compression": 2.0', '"compression": 3.0'))
    with pytest.raises(reproduce.RecordedRunError, match="frames.json does not match its checksum"):
        reproduce.load_recorded("sparsevd-lenet300", folder=shipped)
    (out / "frames.json").unlink()  # a new run without frames leaves none behind
    reproduce.record("sparsevd-lenet300", out, folder=shipped)
    assert not frames.exists() and reproduce.load_recorded("sparsevd-lenet300", folder=shipped)["frames"] is None


def test_only_compare_pruning_is_recorded_without_a_history(tmp_path):
    out = finished_run(tmp_path / "cmp", name="compare-pruning")
    (out / "history.json").unlink()
    reproduce.record("compare-pruning", out, folder=tmp_path / "rec")
    assert reproduce.load_recorded("compare-pruning", folder=tmp_path / "rec")["history"] is None
    out = finished_run(tmp_path / "svd", name="sparsevd-lenet300")
    (out / "history.json").unlink()
    with pytest.raises(reproduce.UsageError, match="missing history.json"):
        reproduce.record("sparsevd-lenet300", out, folder=tmp_path / "rec")
