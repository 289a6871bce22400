"""The graded path: release, autograde, feedback, scores and the student's check, on a private copy of the course.

For every assignment: the release regenerated from solutions/ matches the committed one; the solution gets
full marks on every test cell, the blank release zero; each typical mistake of tests/grading_fixtures/mistakes.py
loses exactly the cells it names. Hostile submissions are graded without stopping the run or changing
anyone else's grade.
"""
import copy
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from grading_fixtures.mistakes import MISTAKES

from bnn_teach import cli, grading

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))


def make_course(tmp_path, assignments, timeout=None, grace=None):
    """A private course: the assignments' sources and releases and the nbgrader config; ``timeout`` sets a
    cell's CPU and wall limits (seconds), ``grace`` the seconds an interrupted kernel has to answer."""
    root = tmp_path / "course_root"
    (root / "course").mkdir(parents=True)
    config = (ROOT / "course" / "nbgrader_config.py").read_text()
    limits = {"cpu_limit": timeout, "wall_limit": timeout, "interrupt_grace": grace}
    for name, value in limits.items():
        if value is not None:
            config, count = re.subn(rf"c\.GuardedExecute\.{name} = [0-9.]+", f"c.GuardedExecute.{name} = {value}",
                                    config)
            assert count == 1, f"course/nbgrader_config.py sets c.GuardedExecute.{name} once"
    (root / "course" / "nbgrader_config.py").write_text(config)
    for name in assignments:
        shutil.copytree(ROOT / "solutions" / name, root / "solutions" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        shutil.copytree(ROOT / "assignments" / name, root / "assignments" / name)
    return root


def graded_cells(notebook):
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("points")]


def solution_submission(root, name, edit=None):
    """grading.solution_submission; ``edit`` = (grade_id, old, new) changes one solution cell (a mistake)."""
    submission = grading.solution_submission(name, root=root)
    for cell in submission.cells:
        if edit and cell.metadata.get("nbgrader", {}).get("grade_id") == edit[0]:
            assert edit[1] in cell.source, f"the mistake's text is not in the solution of {edit[0]}"
            cell.source = cell.source.replace(edit[1], edit[2])
    return submission


def submit(root, student, name, notebook):
    folder = root / "course" / "submitted" / student / name
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_regenerated_from_solutions_matches_the_committed_one(tmp_path, name):
    root = make_course(tmp_path, [name])
    committed = (root / "assignments" / name / f"{name}.ipynb").read_text()
    (root / "assignments" / name / f"{name}.ipynb").unlink()
    released = grading.release(name, root=root)
    assert released.read_text() == committed, f"run `bnn-teach grade release {name}` and commit assignments/{name}"
    assert sorted(p.name for p in released.parent.iterdir()) == [f"{name}.ipynb"], "only the notebook is released"
    text = released.read_text()
    assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_full_blank_zero_and_each_mistake_loses_its_cells(tmp_path, name):
    root = make_course(tmp_path, [name])
    grading.release(name, root=root)
    release = nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4)
    cells = graded_cells(release)
    mistakes = MISTAKES[name]
    assert len(mistakes) >= 3, "at least three mistake fixtures per assignment"
    submit(root, "solution", name, solution_submission(root, name))
    submit(root, "blank", name, release)
    for mistake, (cell, old, new, _) in mistakes.items():
        submit(root, mistake, name, solution_submission(root, name, (cell, old, new)))
    results = {r.student: r for r in grading.autograde(name, root=root, progress=False)}

    full = results["solution"]
    assert set(full.cells) == set(cells)
    assert all(score == maximum > 0 for score, maximum in full.cells.values()), (full.cells, full.problems)
    assert all(score == 0 for score, _ in results["blank"].cells.values()), results["blank"].cells
    for mistake, (_, _, _, loses) in mistakes.items():
        lost = {cell for cell, (score, maximum) in results[mistake].cells.items() if score < maximum}
        assert lost == loses, f"{mistake}: lost {sorted(lost)}, expected {sorted(loses)}"

    rows = {(r["student"], r["assignment"]): r for r in grading.scores(root)}
    assert rows[("solution", name)]["score"] == full.max_score
    assert rows[("blank", name)]["score"] == 0
    again = grading.autograde(name, students=["solution"], root=root, progress=False)[0]
    assert again.cells == full.cells, "grading the same submission twice gives the same scores"


def test_hostile_submissions_are_graded_without_touching_anyone_else(tmp_path):
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name], timeout=10)
    grading.release(name, root=root)
    honest = submit(root, "alice", name, solution_submission(root, name))
    grading.autograde(name, students=["alice"], root=root, progress=False)
    alice_before = {r["student"]: r["score"] for r in grading.scores(root)}["alice"]
    honest_text = honest.read_text()

    def with_cell(grade_id, source):
        notebook = solution_submission(root, name)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                cell.source = source
        return notebook

    loop = with_cell("sample_weights", "def sample_weights(mu, rho, eps):\n    while True:\n        pass\n")
    submit(root, "looper", name, loop)
    leaver = with_cell("kl_gaussian", "import sys\nsys.exit()\n")
    submit(root, "leaver", name, leaver)
    vandal_code = (f"open({str(root / 'course' / 'gradebook.db')!r}, 'wb').write(b'not a database')\n"
                   f"open({str(honest)!r}, 'w').write('{{}}')\n"
                   f"def sample_weights(mu, rho, eps):\n    return mu + torch.nn.functional.softplus(rho) * eps\n")
    submit(root, "vandal", name, with_cell("sample_weights", vandal_code))
    editor = solution_submission(root, name, ("kl_gaussian", "- 0.5", "+ 0.5"))  # a wrong KL ...
    for cell in editor.cells:  # ... and a test cell edited to pass anything
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_kl_gaussian_basic":
            cell.source = '"""kl_gaussian"""\n'
    submit(root, "editor", name, editor)
    deleter = solution_submission(root, name, ("kl_gaussian", "- 0.5", "+ 0.5"))
    deleter.cells = [c for c in deleter.cells
                     if c.metadata.get("nbgrader", {}).get("grade_id") != "test_kl_gaussian_values"]
    submit(root, "deleter", name, deleter)

    results = {r.student: r for r in grading.autograde(name, students=["looper", "leaver", "vandal", "editor",
                                                                        "deleter"], root=root, progress=False,
                                                       jobs=1)}
    assert results["looper"].cells["test_sample_weights"][0] == 0, "the looping cell timed out and scored 0"
    assert results["looper"].cells["test_kl_gaussian_values"][0] == 4, "the rest of the notebook was still graded"
    assert results["leaver"].cells["test_kl_gaussian_values"][0] == 0
    assert results["leaver"].cells["test_sample_weights"][0] == 3
    assert any("restored" in p for p in results["vandal"].problems), results["vandal"].problems
    assert results["editor"].cells["test_kl_gaussian_basic"][0] == 0, "the edited test cell was put back"
    assert any("test_kl_gaussian_basic was edited" in p for p in results["editor"].problems), "and reported"
    assert any("test_kl_gaussian_values is missing" in p for p in results["deleter"].problems)
    assert results["deleter"].cells["test_kl_gaussian_values"][0] == 0, "the deleted test cell still counts"

    assert honest.read_text() == honest_text, "alice's submission was restored"
    scores = {r["student"]: r["score"] for r in grading.scores(root) if r["assignment"] == name}
    assert scores["alice"] == alice_before, "alice's grade is intact"
    assert set(scores) == {"alice", "looper", "leaver", "vandal", "editor", "deleter"}

    problems = grading.check_submission(root / "course" / "submitted" / "editor" / name / f"{name}.ipynb",
                                        root=root, run=False)
    assert problems == ["cell test_kl_gaussian_basic was edited: it is locked (a test or an instruction); "
                        "restore it from the released notebook"]
    problems = grading.check_submission(root / "course" / "submitted" / "deleter" / name / f"{name}.ipynb",
                                        root=root, run=False)
    assert problems == ["test cell test_kl_gaussian_values is missing: it was deleted; copy it back from the "
                        "released notebook"]


def test_student_check_names_each_problem_in_one_line(tmp_path, capsys):
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name])
    release = nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4)
    good = submit(root, "me", name, solution_submission(root, name))
    assert grading.check_submission(good, root=root) == []
    blank = submit(root, "blank", name, release)
    problems = grading.check_submission(blank, root=root)
    assert "test test_sample_weights fails: something it calls is not written yet (NotImplementedError)" in problems
    assert "test test_elbo_loss fails: something it calls is not written yet (NotImplementedError)" in problems
    doubled = copy.deepcopy(release)
    doubled.cells.append(copy.deepcopy(next(c for c in release.cells
                                            if c.metadata.get("nbgrader", {}).get("grade_id") == "test_elbo_loss")))
    path = submit(root, "twice", name, doubled)
    assert grading.check_submission(path, root=root, run=False) == [
        "cell test_elbo_loss appears 2 times: keep one (delete the copies)"]
    other = tmp_path / "homework.ipynb"
    nbformat.write(release, other)
    [problem] = grading.check_submission(other, root=root)
    assert problem.startswith("homework.ipynb is not an assignment of this course")
    assert cli.main(["grade", "check", str(path), "--root", str(root), "--no-run"]) == 1
    assert "appears 2 times" in capsys.readouterr().out
    assert cli.main(["grade", "check", str(good), "--root", str(root)]) == 0
    assert "ready to hand in" in capsys.readouterr().out


def test_grade_commands_release_autograde_feedback_scores(tmp_path, capsys):
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name])
    assert cli.main(["grade", "release", name, "--root", str(root)]) == 0
    submit(root, "ada", name, solution_submission(root, name))
    submit(root, "bob", name, nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4))
    assert cli.main(["grade", "autograde", name, "--root", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ada" in out and "24/24" in out and "0/24" in out
    assert cli.main(["grade", "feedback", name, "--root", str(root)]) == 0
    assert (root / "course" / "feedback" / "ada" / name / f"{name}.html").exists()
    assert capsys.readouterr().out.startswith("feedback in ")
    csv_path, png_path = tmp_path / "scores.csv", tmp_path / "scores.png"
    assert cli.main(["grade", "scores", "--root", str(root), "--csv", str(csv_path), "--plot", str(png_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["student", name, "total"]
    assert table[1].split() == ["ada", "24/24", "24/24"] and table[2].split() == ["bob", "0/24", "0/24"]
    assert csv_path.read_text().splitlines()[0] == "student,assignment,score,max_score,status"
    assert csv_path.read_text().splitlines()[1] == f"ada,{name},24.0,24.0,ok"
    assert png_path.stat().st_size > 1000
    assert cli.main(["grade", "release", "A9_missing", "--root", str(root)]) == 2
    assert "no assignment 'A9_missing'" in capsys.readouterr().err
