"""The trusted side of grading (bnn_teach/grading/verdicts.py): every test cell has a verdict, results travel as
numbers only, the grading build of bnn_teach refuses exactly what an assignment rebuilds, and the forbidden
shortcuts are found in code (not in comments)."""
import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from bnn_teach.grading import verdicts
from bnn_teach.grading.execute import GuardedExecute

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))


def graded_cells(name):
    notebook = nbformat.read(ROOT / "assignments" / name / f"{name}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("points")
            and not c.metadata["nbgrader"].get("solution")}  # not the written answer, graded by hand


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_test_cell_has_one_verdict_and_its_inputs_are_fixed(name):
    spec = verdicts.load(name, ROOT)
    assert set(spec.verdicts) == graded_cells(name), "one verdict per graded cell, none for a cell that is not there"
    first, again = verdicts.prepare(spec, cached=False), verdicts.prepare(spec, cached=False)
    assert first is not again and first.probes == again.probes, \
        "the same inputs every time: the same submission gets the same score"
    for grade_id, verdict in spec.verdicts.items():
        compile(verdict.probe, grade_id, "exec")  # a probe is valid Python
        assert "result" in verdict.probe, f"{grade_id}: a probe sets `result`"
    source = (ROOT / "solutions" / name / f"{name}.py").read_text()
    assert "### BEGIN HIDDEN TESTS" not in source, "the checks live in _verdicts.py, not in the notebook"


def test_references_are_made_once_per_process_for_one_verdict_file(tmp_path):
    import shutil

    spec = verdicts.load("A1_reparam_kl", ROOT)
    first = verdicts.prepare(spec)
    assert verdicts.prepare(verdicts.load("A1_reparam_kl", ROOT)) is first, "the same file: made once"
    copy = tmp_path / "solutions" / "A1_reparam_kl"
    shutil.copytree(ROOT / "solutions" / "A1_reparam_kl", copy)
    (copy / "_verdicts.py").write_text((copy / "_verdicts.py").read_text() + "\nSEED = 11\n")
    changed = verdicts.load("A1_reparam_kl", tmp_path)
    assert changed.digest != spec.digest and changed.seed == 11
    other = verdicts.prepare(changed)
    assert other is not first and other.probes != first.probes, "a changed file: made again, with its own inputs"


def test_results_travel_as_numbers_only():
    values = {"a": torch.arange(6.0).reshape(2, 3), "b": 3, "c": [1.5, 2.5]}
    decoded = verdicts.decode(verdicts.encode(values))
    assert torch.equal(decoded["a"], values["a"].double()) and decoded["b"].item() == 3
    assert decoded["c"].tolist() == [1.5, 2.5]
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([object()], dtype=object))  # what a pickled object would look like
    forged = base64.b64encode(buffer.getvalue()).decode()
    with pytest.raises(ValueError):
        verdicts.decode(forged)
    spec = verdicts.load("A1_reparam_kl", ROOT)
    prepared = verdicts.prepare(spec)
    passed, message = verdicts.judge(prepared, "test_elbo_loss", {"data": forged})
    assert not passed and "could not be read" in message
    assert verdicts.judge(prepared, "test_elbo_loss", {"data": "not base64!"})[0] is False
    assert verdicts.judge(prepared, "test_elbo_loss", None) == (False, "not checked: the cell did not run to its end")


def test_a_probe_reports_its_result_its_error_or_nothing():
    spec = verdicts.load("A1_reparam_kl", ROOT)
    prepared = verdicts.prepare(spec)
    cells = [nbformat.v4.new_code_cell(
        "import torch\nimport torch.nn.functional as F\n"
        "def sample_weights(mu, rho, eps):\n    return mu + F.softplus(rho) * eps\n"),
        nbformat.v4.new_code_cell(prepared.probes["test_sample_weights"]),
        nbformat.v4.new_code_cell("def sample_weights(mu, rho, eps):\n    raise NotImplementedError()\n"),
        nbformat.v4.new_code_cell(prepared.probes["test_sample_weights"]),
        nbformat.v4.new_code_cell("import sys, io\nsys.stdout = io.StringIO()\n"
                                  "def sample_weights(mu, rho, eps):\n    return mu + F.softplus(rho) * eps\n"),
        nbformat.v4.new_code_cell(prepared.probes["test_sample_weights"])]
    notebook = nbformat.v4.new_notebook(cells=cells)
    GuardedExecute(cpu_limit=20, wall_limit=60, interrupt_grace=5).preprocess(notebook, {"metadata": {"path": "."}})
    right, stub, hidden_output = (verdicts.observed_result(notebook.cells[i].outputs) for i in (1, 3, 5))
    assert right[1] is None and verdicts.judge(prepared, "test_sample_weights", {"data": right[0]}) == (True, "passed")
    assert stub[0] is None and stub[1].startswith("NotImplementedError")
    assert "not answered yet" in verdicts.judge(prepared, "test_sample_weights", {"error": stub[1]})[1]
    assert hidden_output[0] is None and "never arrived" in hidden_output[1]


def test_the_grading_build_refuses_what_the_assignment_rebuilds_and_nothing_else(tmp_path):
    absent = ("bnn_teach.kl.normal_normal", "bnn_teach.nn.BayesLinear")
    package = verdicts.grading_build(absent, tmp_path / "build")
    assert package == tmp_path / "build" / "bnn_teach" and (package / "kl.py").exists()
    assert "mu_q" in (package / "kl.py").read_text(), "the signature stays"
    script = (
        "import torch, bnn_teach as bt, importlib\n"
        f"assert bt.__file__.startswith({str(package)!r}), bt.__file__\n"
        "for call in (lambda: bt.kl.normal_normal(torch.zeros(1), torch.ones(1), torch.zeros(1), torch.ones(1)),\n"
        "             lambda: importlib.reload(bt.kl).normal_normal(0, 1, 0, 1), lambda: bt.nn.BayesLinear(3, 2)):\n"
        "    try:\n        call()\n    except RuntimeError as error:\n"
        "        assert 'absent while this assignment is graded' in str(error)\n"
        "    else:\n        raise SystemExit('a reference answered')\n"
        "assert torch.isfinite(bt.kl.sparsevd(torch.tensor([0.5, -2.0]))).all()  # the rest of the library works\n"
        "assert bt.nn.LinearSVDO(3, 2)(torch.zeros(4, 3)).shape == (4, 2)\n")
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    with pytest.raises(LookupError):
        verdicts._strip_definition("def other():\n    pass\n", "missing", "bnn_teach.missing")
    with pytest.raises(ValueError, match="not defined in bnn_teach"):
        verdicts.grading_build(("torch.distributions.kl_divergence",), tmp_path / "again")


def test_forbidden_shortcuts_are_found_in_code_not_in_comments():
    verdict = verdicts.Verdict("t", probe="result = {}", judge=lambda *a: None,
                               forbid={r"kl_divergence": "torch.distributions' KL"})
    assert verdicts.forbidden_uses(verdict, "# unlike torch.distributions.kl_divergence\nx = 1\n") == []
    assert verdicts.forbidden_uses(verdict, "f = getattr(torch.distributions, 'kl_divergence')\n") == \
        ["torch.distributions' KL"]
    assert verdicts.forbidden_uses(verdict, "from torch.distributions import kl_divergence as k\n") == \
        ["torch.distributions' KL"]
