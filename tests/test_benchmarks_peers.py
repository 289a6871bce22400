"""benchmarks/peers.py runs in a tiny configuration, with the peer libraries installed or not.

Only that it runs and reports every row: timings are never asserted (benchmarks/README.md).
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "peers.py"

BNN_TEACH_ROWS = {
    "linear": ["nn.Linear", "two products (floor)", "bnn_teach BayesLinear (LRT)", "bnn_teach BayesLinear (LRT), no KL",
               "bnn_teach LinearSVDO", "bnn_teach BayesLinear (local_reparam=False)"],
    "conv": ["nn.Conv2d", "two products (floor)", "bnn_teach BayesConv2d (LRT)", "bnn_teach BayesConv2d (LRT), no KL",
             "bnn_teach Conv2dSVDO", "bnn_teach BayesConv2d (local_reparam=False)"],
}
# import name -> (name on PyPI, its rows per shape)
PEERS = {
    "bayesian_torch": ("bayesian-torch", {
        "linear": ["bayesian-torch LinearFlipout", "bayesian-torch LinearReparameterization"],
        "conv": ["bayesian-torch Conv2dFlipout", "bayesian-torch Conv2dReparameterization"]}),
    "torchbnn": ("torchbnn", {"linear": ["torchbnn BayesLinear"], "conv": ["torchbnn BayesConv2d"]}),
    "blitz": ("blitz-bayesian-pytorch", {"linear": ["blitz BayesianLinear"], "conv": ["blitz BayesianConv2d"]}),
}


def run_peers(tmp_path, *args, env=None):
    """Run the script with --small, one round of one step; return (stdout, the JSON it wrote)."""
    out = tmp_path / "peers.json"
    cmd = [sys.executable, str(SCRIPT), "--small", "--threads", "1", "--repeats", "1", "--inner", "1",
           "--json", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def check_bnn_teach_rows(stdout, report, kinds):
    assert sorted(report["shapes"]) == sorted(kinds)
    for kind in kinds:
        rows = {r["name"]: r for r in report["shapes"][kind]["rows"]}
        for name in BNN_TEACH_ROWS[kind]:
            assert name in rows, f"{name} missing from the {kind} table"
            assert name in stdout
            assert rows[name]["ms"] > 0 and rows[name]["ratio"] > 0
        assert rows[report["shapes"][kind]["reference"]]["ratio"] == pytest.approx(1.0)
        verdicts = " ".join(v["text"] for v in report["shapes"][kind]["verdicts"])
        assert "bnn_teach LRT" in verdicts and "bnn_teach weight sampling" in verdicts
        assert "two-product floor" in verdicts


@pytest.mark.slow
def test_peers_benchmark_runs_with_whatever_peers_are_installed(tmp_path):
    stdout, report = run_peers(tmp_path)
    check_bnn_teach_rows(stdout, report, ["linear", "conv"])
    skipped = {s["library"] for s in report["skipped"]}
    for module, (pypi, rows) in PEERS.items():
        for kind in ("linear", "conv"):
            names = {r["name"] for r in report["shapes"][kind]["rows"]}
            if importlib.util.find_spec(module) is not None:
                assert set(rows[kind]) <= names, f"{pypi} is installed but its {kind} rows are missing"
            else:
                assert pypi in skipped and f"skipped {pypi}" in stdout
                assert not set(rows[kind]) & names
    # the peak-memory column is measured for every row
    for kind in ("linear", "conv"):
        assert report["shapes"][kind]["memory_note"] is None
        assert all(r["peak_mib"] is not None and r["peak_mib"] >= 0 for r in report["shapes"][kind]["rows"])
    assert "peak MiB" in stdout


def test_missing_peers_are_skipped_and_said_so(tmp_path):
    # packages of the same names that fail to import, ahead of site-packages on the path
    hidden = tmp_path / "hidden"
    for module in PEERS:
        (hidden / module).mkdir(parents=True)
        (hidden / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError('hidden by the test', name={module!r})\n")
    env = dict(os.environ, PYTHONPATH=str(hidden))
    stdout, report = run_peers(tmp_path, "--only", "linear", "--no-memory", env=env)
    check_bnn_teach_rows(stdout, report, ["linear"])
    for pypi, _ in PEERS.values():
        assert f"skipped {pypi}: not installed" in stdout
    assert sorted(s["library"] for s in report["skipped"]) == sorted(pypi for pypi, _ in PEERS.values())
    assert {r["library"] for r in report["shapes"]["linear"]["rows"]} == {"torch", "benchmarks", "bnn_teach"}
    assert "no per-example peer installed" in stdout
