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
    assert "nope.py: no such file or folder" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert cli.main(["run", str(tmp_path / "notes.txt")]) == 2
    assert "not a notebook (.ipynb), a notebook source (.py)" in capsys.readouterr().err


def test_run_takes_a_plain_notebook_and_names_a_corrupt_one(tmp_path, capsys):
    """An assignment's release is an .ipynb with no source beside it: it runs. A corrupt one is called corrupt."""
    import nbformat

    plain = tmp_path / "release.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7\nassert x == 42")]), plain)
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [ {"cell_type": "code", "sour')
    status = cli.main(["run", str(plain), str(broken), "--no-progress", "--timeout", "120"])
    out = capsys.readouterr().out
    assert status == 1, "a corrupt notebook makes the command fail"
    table = out.split("\n\n")[0].splitlines()
    assert "release.ipynb" in table[1] and table[1].endswith("ok")
    assert "broken.ipynb" in table[2] and table[2].endswith("corrupt")
    assert "the file is corrupt" in out
    assert cli.main(["notebooks", str(plain)]) == 2, "only a source can be converted"


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


DRAWING = '''# %%
import matplotlib.pyplot as plt
import bnn_teach as bt

# %%
fig, ax = plt.subplots()
ax.plot([0, 1], [1, 0])

# %%
import torch

fig = bt.viz.plot_reliability(torch.tensor([[0.8, 0.2], [0.3, 0.7]]), torch.tensor([0, 1]))

# %%
plt.close("all")
'''


def test_run_keeps_every_figure_and_saves_the_executed_notebooks(tmp_path, capsys):
    """Figures reach the outputs (the inline backend, not Agg), `--save DIR` writes the executed notebooks,
    and a cell that draws without showing an image is named."""
    import nbformat

    write(tmp_path / "src", "drawing.py", DRAWING)
    status = cli.main(["run", str(tmp_path / "src"), "--fast", "--no-progress", "--save", str(tmp_path / "out")])
    assert status == 0, capsys.readouterr().out
    executed = nbformat.read(tmp_path / "out" / "drawing.ipynb", as_version=4)
    images = [any("image/png" in o.get("data", {}) for o in c.outputs) for c in executed.cells]
    assert images == [False, True, True, False], images
    assert notebooks.cells_without_figures(executed) == []
    executed.cells[1].outputs = []
    assert notebooks.cells_without_figures(executed) == [2], "a drawing cell without its image is named"


COURSE_SOURCES = notebooks.sources()  # every lectures/*.py and solutions/*.py
#: The lectures, run here. An assignment's solution is run where it is graded (tests/test_grading.py: full
#: marks, every figure shown, no stray repr), in the sandbox a student's submission meets.
LECTURES = [p for p in COURSE_SOURCES if p.parent.name == "lectures"]


@pytest.mark.parametrize("source", COURSE_SOURCES, ids=[p.name for p in COURSE_SOURCES])
def test_committed_notebook_matches_its_source(source):
    assert notebooks.stale([source]) == [], f"run `make notebooks`: {source.with_suffix('.ipynb')} is out of date"


@pytest.mark.parametrize("source", COURSE_SOURCES, ids=[p.name for p in COURSE_SOURCES])
def test_notebook_follows_the_skeleton(source):
    assert notebooks.skeleton_problems(source) == []


@pytest.mark.parametrize("source", LECTURES, ids=[p.name for p in LECTURES])
def test_course_notebook_runs_in_fast_mode_and_its_checks_tell_right_from_wrong(source, executed_lecture):
    """Top to bottom in FAST mode; then each check-yourself cell accepts its right answer and refuses
    each typical mistake it names (notebooks.answer_probes). One run per test run (conftest.executed_lecture:
    the course site's test reads the same executed L01)."""
    import nbformat

    status, error, executed = executed_lecture(source)
    assert status == "ok", error
    notebook = nbformat.read(executed, as_version=4)
    missing = notebooks.cells_without_figures(notebook)
    assert not missing, f"cells {missing} draw a figure that does not reach the notebook"
    stray = notebooks.cells_showing_a_repr(notebook)
    assert not stray, f"cells {stray} show a matplotlib object's repr (Text(...), <matplotlib...>) as their value"


CHECK_CELL = """answer = None
values = [1.0, 3.0]
bt.selfcheck.number(answer, expected=sum(values) / len(values), mistakes={sum(values): "divide by the count"})
"""


def test_answer_probes_run_the_right_answer_and_each_mistake():
    probes = notebooks.answer_probes(CHECK_CELL)
    assert len(probes) == 2
    right, wrong = probes
    assert "answer = None" not in right and "values = [1.0, 3.0]" in right
    assert "answer = (sum(values) / len(values))" in right and "assert __feedback.right" in right
    assert "answer = (sum(values))" in wrong and "assert not __feedback.right" in wrong
    import bnn_teach as bt

    for code in probes:
        exec(code, {"bt": bt})  # noqa: S102 - the probes are what the notebook test runs in the kernel
    broken = CHECK_CELL.replace("expected=sum(values) / len(values)", "expected=sum(values)")
    with pytest.raises(AssertionError, match="wrong verdict on answer = sum"):
        for code in notebooks.answer_probes(broken):
            exec(code, {"bt": bt})  # noqa: S102
    with pytest.raises(ValueError, match="names no typical mistake"):
        notebooks.answer_probes("answer = None\nbt.selfcheck.number(answer, expected=1.0)\n")


def test_choice_probe_checks_every_option_and_catches_a_check_that_cannot_fail():
    import types

    import bnn_teach as bt
    from bnn_teach.selfcheck import Feedback

    cell = 'answer = None\nbt.selfcheck.choice(answer, expected="b", options=["a", "b", "c"])\n'
    [probe] = notebooks.answer_probes(cell)
    exec(probe, {"bt": bt})  # noqa: S102
    always_right = types.SimpleNamespace(selfcheck=types.SimpleNamespace(
        choice=lambda *args, **kwargs: Feedback(True, "right"), number=lambda *args, **kwargs: Feedback(True, "right")))
    with pytest.raises(AssertionError, match="wrong verdict on answer = 'a'"):
        exec(probe, {"bt": always_right})  # noqa: S102
    with pytest.raises(AssertionError, match="wrong verdict on answer = sum"):
        for code in notebooks.answer_probes(CHECK_CELL):
            exec(code, {"bt": always_right})  # noqa: S102


def test_skeleton_problems_name_what_is_missing(tmp_path):
    lectures = tmp_path / "lectures"
    source = write(lectures, "L99_demo.py", PASSING)
    problems = notebooks.skeleton_problems(source, root=tmp_path)
    assert any("Colab badge" in p and "lectures/L99_demo.ipynb" in p for p in problems)
    assert any("SETUP_CELL" in p for p in problems)
    assert any("parameters cell" in p for p in problems)
    assert any("check-yourself" in p for p in problems)
    assert any("## Summary" in p for p in problems) and any("## References" in p for p in problems)



BAD_CHECK = '''# %%
import bnn_teach as bt

# %%
answer = None
bt.selfcheck.number(answer, expected=2.0, rtol=10.0, mistakes={1.0: "a mistake the loose tolerance accepts"})
'''


def test_run_check_answers_fails_a_check_that_accepts_its_named_mistake(tmp_path, capsys):
    write(tmp_path, "loose.py", BAD_CHECK)
    assert cli.main(["run", str(tmp_path), "--no-progress", "--timeout", "120"]) == 0, "runs top to bottom"
    capsys.readouterr()
    assert cli.main(["run", str(tmp_path), "--no-progress", "--timeout", "120", "--check-answers"]) == 1
    assert "the check gave the wrong verdict on answer = 1.0" in capsys.readouterr().out
