"""The notebook pipeline: .ipynb generated from py:percent sources, and notebooks run headless."""
import json

import pytest

from bnn_teach import cli, notebooks

PASSING = '''# %% [markdown]
# # A notebook that passes

# %%
import bnn_teach as bt

FAST = bt.utils.fast_mode()
assert FAST, "bnn-teach run --fast sets BNN_TEACH_FAST=1 in the kernel"

# %% tags=["check"]
print("done", 1 + 1)
'''

FAILING = '''# %%
x = 1

# %%
y = x / 0  # the failing cell
'''


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_generated_notebook_has_no_outputs_and_keeps_cell_metadata(tmp_path):
    source = write(tmp_path, "L99_demo.py", PASSING)
    notebook = json.loads(notebooks.generate(source))
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    kinds = [cell["cell_type"] for cell in notebook["cells"]]
    assert kinds == ["markdown", "code", "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None
               for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert notebook["cells"][2]["metadata"]["tags"] == ["check"]
    assert notebooks.generate(source) == notebooks.generate(source), "the same source gives the same text"


def test_stale_finds_missing_hand_edited_and_outdated_notebooks(tmp_path):
    source = write(tmp_path, "L99_demo.py", PASSING)
    assert notebooks.stale([tmp_path]) == [source.with_suffix(".ipynb")], "missing"
    assert notebooks.sync([tmp_path]) == [source.with_suffix(".ipynb")]
    assert notebooks.stale([tmp_path]) == [] and notebooks.sync([tmp_path]) == []
    ipynb = source.with_suffix(".ipynb")
    ipynb.write_text(ipynb.read_text().replace("A notebook that passes", "Edited by hand"))
    assert notebooks.stale([tmp_path]) == [ipynb], "hand-edited"
    notebooks.sync([tmp_path])
    source.write_text(PASSING + "\n# %%\nz = 3\n")
    assert notebooks.stale([tmp_path]) == [ipynb], "source edited, notebook not regenerated"
    assert cli.main(["notebooks", "--check", str(tmp_path)]) == 1
    assert cli.main(["notebooks", str(tmp_path)]) == 0
    assert cli.main(["notebooks", "--check", str(tmp_path)]) == 0


def test_unknown_target_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.py")]) == 2
    assert "not a notebook source" in capsys.readouterr().err


def test_run_reports_each_notebook_and_the_failing_cell(tmp_path, capsys):
    """The passing notebook imports bnn_teach in the kernel and sees FAST; the failing one is named with its cell."""
    write(tmp_path, "a_passes.py", PASSING)
    write(tmp_path, "b_fails.py", FAILING)
    status = cli.main(["run", str(tmp_path), "--fast", "--no-progress", "--timeout", "120"])
    out = capsys.readouterr().out
    assert status == 1, "a failing notebook makes the command fail"
    table = out.split("\n\n")[0].splitlines()
    assert table[0].split() == ["notebook", "seconds", "status"]
    assert table[1].endswith("ok") and "a_passes.py" in table[1]
    assert table[2].endswith("failed") and "b_fails.py" in table[2]
    assert "cell 2:" in out and "y = x / 0" in out and "ZeroDivisionError" in out
    assert "An error occurred while executing" not in out, "the failing cell once, then its traceback"
    assert "\x1b[" not in out, "no terminal colour codes in the report"


COURSE_SOURCES = notebooks.sources()  # every lectures/*.py and solutions/*.py


@pytest.mark.parametrize("source", COURSE_SOURCES, ids=[p.name for p in COURSE_SOURCES])
def test_committed_notebook_matches_its_source(source):
    assert notebooks.stale([source]) == [], f"run `make notebooks`: {source.with_suffix('.ipynb')} is out of date"


@pytest.mark.parametrize("source", COURSE_SOURCES, ids=[p.name for p in COURSE_SOURCES])
def test_course_notebook_runs_in_fast_mode(source):
    [result] = notebooks.run_notebooks([source], fast=True, progress=False)
    assert result.status == "ok", result.error

