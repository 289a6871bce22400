"""The graded path: release, autograde, feedback, scores and the student's check, on a private copy of the course.

For every assignment, in one release and one grading run: the release regenerated from solutions/ matches the
committed one; the solution gets full marks on every test cell, runs without an error and shows each figure
(its only run in the test suite), the blank release zero; each typical mistake of
tests/grading_fixtures/mistakes.py loses exactly the cells it names (that a second grading gives the same
scores is checked once, on A1, in test_grade_commands_release_autograde_feedback_scores). Hostile submissions
are graded without stopping the run or changing anyone else's grade.
"""
import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from grading_fixtures.mistakes import MISTAKES

from bnn_teach import cli, grading, notebooks
from bnn_teach.grading.sandbox import unavailable

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))


#: A1's slow test cell: it trains a network, twice (the test and the grader's probe), two thirds of the time a
#: solution takes to grade. The tests of the grader itself (hostile, failing, concurrent submissions) grade A1
#: without it (``make_course(..., without=A1_SLOW)``); the per-assignment test grades every cell.
A1_SLOW = ("test_bbb_regression",)


def make_course(tmp_path, assignments, timeout=None, grace=None, wall=None, without=()):
    """A private course: the assignments' sources and releases and the nbgrader config; ``timeout`` sets a
    cell's CPU limit and its wall limit unless ``wall`` does (seconds), ``grace`` the seconds an interrupted
    kernel has to answer. A spinning loop on a loaded machine gets less than a core: to see it stopped at its
    CPU limit, give it a wall limit well above. ``without``: grade ids of cells removed from the solution and
    the release (a smaller assignment, for tests of the grader rather than of the assignment)."""
    root = tmp_path / "course_root"
    (root / "course").mkdir(parents=True)
    config = (ROOT / "course" / "nbgrader_config.py").read_text()
    limits = {"cpu_limit": timeout, "wall_limit": wall or timeout, "interrupt_grace": grace}
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
        source = root / "solutions" / name / f"{name}.py"
        for grade_id in without:  # the cell's block in the source; the solution notebook is made from it ...
            lines = source.read_text().splitlines(keepends=True)
            [start] = [i for i, line in enumerate(lines)
                       if line.startswith("# %%") and f'"grade_id": "{grade_id}"' in line]
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# %%")), len(lines))
            source.write_text("".join(lines[:start] + lines[end:]))
        if without:  # ... as release() makes it; the committed release loses the same cells
            notebooks.sync([source])
            path = root / "assignments" / name / f"{name}.ipynb"
            release = nbformat.read(path, as_version=4)
            kept = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in without]
            assert len(release.cells) - len(kept) == len(without), f"the release of {name} lacks a cell of {without}"
            release.cells = kept
            nbformat.write(release, path)
    return root


def graded_cells(notebook):
    """The autograded cells (a written answer, graded by hand, is a graded solution cell)."""
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("points")
            and not c.metadata["nbgrader"].get("solution")]


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


def squash(text):
    return " ".join(text.split())


def page_text(path):
    """The text a reader of an HTML page (or any file) sees: tags removed, entities decoded, spaces squashed."""
    import html

    return squash(html.unescape(re.sub(r"<[^>]+>", "", Path(path).read_text(errors="replace"))))


def probe_lines(root, name):
    """The code lines of the grader's probes (solutions/<name>/_verdicts.py) that appear nowhere in the
    release or the solution, long enough to mean something, space-squashed: what feedback must never show."""
    from bnn_teach.grading import verdicts

    spec = verdicts.load(name, root)
    release = "\n".join(c.source for c in nbformat.read(root / "assignments" / name / f"{name}.ipynb",
                                                         as_version=4).cells)
    release += (root / "solutions" / name / f"{name}.py").read_text()  # what a student could write
    lines = {squash(line) for v in spec.verdicts.values() for line in v.probe.splitlines()}
    return sorted(line for line in lines if len(line) >= 15 and line not in squash(release))


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_from_solutions_then_solution_full_blank_zero_and_each_mistake_loses_its_cells(tmp_path, name):
    root = make_course(tmp_path, [name])
    committed = (root / "assignments" / name / f"{name}.ipynb").read_text()
    (root / "assignments" / name / f"{name}.ipynb").unlink()
    released = grading.release(name, root=root)
    assert released.read_text() == committed, f"run `bnn-teach grade release {name}` and commit assignments/{name}"
    assert sorted(p.name for p in released.parent.iterdir()) == [f"{name}.ipynb"], "only the notebook is released"
    assert "### BEGIN SOLUTION" not in committed and "### BEGIN HIDDEN TESTS" not in committed
    release = nbformat.read(released, as_version=4)
    cells = graded_cells(release)
    [written] = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade")
                 and c.metadata["nbgrader"].get("solution")]  # one written answer, graded by hand
    assert written.cell_type == "markdown" and written.source == "YOUR ANSWER HERE"
    assert written.metadata["nbgrader"]["points"] == 2 and written.metadata["nbgrader"]["grade_id"] not in cells
    assert "Model answer" not in committed and "Rubric" not in committed, "the rubric stays with the solution"
    mistakes = MISTAKES[name]
    assert len(mistakes) >= 3, "at least three mistake fixtures per assignment"
    submit(root, "solution", name, solution_submission(root, name))
    submit(root, "blank", name, release)
    for mistake, (cell, old, new, _) in mistakes.items():
        submit(root, mistake, name, solution_submission(root, name, (cell, old, new)))
    results = {r.student: r for r in grading.autograde(name, root=root, progress=False)}

    full = results["solution"]
    assert set(full.cells) == set(cells)
    assert full.manual == {written.metadata["nbgrader"]["grade_id"]: 2.0}, "left to the instructor, not scored"
    assert all(score == maximum > 0 for score, maximum in full.cells.values()), (full.cells, full.problems)
    assert all(score == 0 for score, _ in results["blank"].cells.values()), results["blank"].cells
    # the solution as a student meets it (this is where it is run: tests/test_notebooks.py runs the lectures)
    ran = nbformat.read(root / "course" / "autograded" / "solution" / name / f"{name}.ipynb", as_version=4)
    errors = [n for n, c in enumerate(ran.cells, 1) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert full.status == "ok" and not errors, f"the solution's cells {errors} raise: {full.problems}"
    missing = notebooks.cells_without_figures(ran)
    assert not missing, f"cells {missing} of the solution draw a figure that does not reach the notebook"
    stray = notebooks.cells_showing_a_repr(ran)
    assert not stray, f"cells {stray} of the solution show a matplotlib object's repr as their value"
    for mistake, (_, _, _, loses) in mistakes.items():
        lost = {cell for cell, (score, maximum) in results[mistake].cells.items() if score < maximum}
        assert lost == loses, f"{mistake}: lost {sorted(lost)}, expected {sorted(loses)}"

    grading.feedback(name, root=root)
    secret = probe_lines(root, name)
    assert secret, "the assignment's verdicts have probes"
    pages = sorted((root / "course" / "feedback").glob(f"*/{name}/*"))
    assert len(pages) >= len(results), "every graded submission has its feedback"
    for page in pages:
        text = page_text(page)
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{page.relative_to(root)} shows hidden-test code: {leaked[:3]}"
    assert "Grader's check:" in page_text(root / "course" / "feedback" / "solution" / name / f"{name}.html")

    rows = {(r["student"], r["assignment"]): r for r in grading.scores(root)}
    assert rows[("solution", name)]["score"] == full.max_score
    assert rows[("solution", name)]["max_score"] == full.max_score + 2 and rows[("solution", name)]["to_grade"] == 2
    assert rows[("blank", name)]["score"] == 0


def test_hostile_submissions_are_graded_without_touching_anyone_else(tmp_path):
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name], timeout=5, wall=15, without=A1_SLOW)  # the looper: 5 s of CPU
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
    if unavailable() is None:  # in the sandbox the course's files are not there to write
        assert not any("restored" in p for p in results["vandal"].problems), results["vandal"].problems
        assert results["vandal"].cells["test_sample_weights"][0] == 0, "its writes failed, so its cell did"
    else:
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
    root = make_course(tmp_path, [name], without=A1_SLOW)
    release = nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4)
    good = submit(root, "me", name, solution_submission(root, name))
    assert grading.check_submission(good, root=root) == []
    blank = submit(root, "blank", name, release)
    problems = grading.check_submission(blank, root=root)
    assert "cell sample_weights not done yet: it still has the stub `raise NotImplementedError()`" in problems
    assert "cell elbo_and_training not done yet: it still has the stub `raise NotImplementedError()`" in problems
    doubled = solution_submission(root, name)  # answered, so the one problem is the copied cell
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
    root = make_course(tmp_path, [name], without=A1_SLOW)
    assert cli.main(["grade", "release", name, "--root", str(root)]) == 0
    submit(root, "ada", name, solution_submission(root, name))
    submit(root, "bob", name, nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4))
    assert cli.main(["grade", "autograde", name, "--root", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ada" in out and "20/20" in out and "0/20" in out
    assert "and 2 points a student of written answers (written_reparam) to grade by hand" in out
    assert cli.main(["grade", "feedback", name, "--root", str(root)]) == 0
    assert (root / "course" / "feedback" / "ada" / name / f"{name}.html").exists()
    assert capsys.readouterr().out.startswith("feedback in ")
    csv_path, png_path = tmp_path / "scores.csv", tmp_path / "scores.png"
    assert cli.main(["grade", "scores", "--root", str(root), "--csv", str(csv_path), "--plot", str(png_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["student", name, "total"]
    assert table[1].split() == ["ada", "20/22", "20/22"] and table[2].split() == ["bob", "0/22", "0/22"]
    assert f"+ ada {name}: 2 points of written answers to grade by hand (Formgrader)" in table
    assert csv_path.read_text().splitlines()[0] == "student,assignment,score,max_score,status,to_grade"
    assert csv_path.read_text().splitlines()[1] == f"ada,{name},20.0,22.0,ok,2.0"
    assert png_path.stat().st_size > 1000

    # the instructor grades ada's written answer (as the Formgrader does); autograding her again keeps it
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'course' / 'gradebook.db'}") as gb:
        grade = gb.find_grade("written_reparam", name, name, "ada")
        assert grade.auto_score is None and grade.manual_score is None, "a written answer is never autograded"
        grade.manual_score = 1.5
        gb.db.commit()
    log = root / "course" / "grading_log" / name / "ada.json"
    first = json.loads(log.read_text())
    assert cli.main(["grade", "autograde", name, "--student", "ada", "--root", str(root), "--no-progress"]) == 0
    assert json.loads(log.read_text())["cells"] == first["cells"], "grading a submission twice gives the same scores"
    rows = {r["student"]: r for r in grading.scores(root)}
    assert (rows["ada"]["score"], rows["ada"]["max_score"], rows["ada"]["to_grade"]) == (21.5, 22.0, 0.0)
    assert (rows["bob"]["score"], rows["bob"]["to_grade"]) == (0.0, 2.0)
    assert cli.main(["grade", "release", "A9_missing", "--root", str(root)]) == 2
    assert "no assignment 'A9_missing'" in capsys.readouterr().err


def with_cell(root, name, grade_id, source):
    """The solution with one cell's source replaced."""
    notebook = solution_submission(root, name)
    [cell] = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    cell.source = source
    return notebook


def test_a_failure_costs_only_the_cells_it_touches_and_is_named(tmp_path, capsys):
    """A test cell past its CPU or wall limit, a silent kernel, a killed kernel, os._exit: the cells before keep
    their points, the cells not reached score 0, each event is recorded with its cell and seconds, every
    submission gets a feedback page and `scores` shows a status."""
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name], timeout=6, wall=15, grace=3, without=A1_SLOW)  # a spinner: 6 s CPU in 15 s
    grading.release(name, root=root)
    submit(root, "honest", name, solution_submission(root, name))
    spin = "def kl_monte_carlo(mu_q, sigma_q, log_prior, num_samples, generator=None):\n    while True:\n        pass\n"
    sleep = ("import time\n\ndef kl_monte_carlo(mu_q, sigma_q, log_prior, num_samples, generator=None):\n"
             "    time.sleep(10**6)\n")
    submit(root, "spinner", name, with_cell(root, name, "kl_monte_carlo", spin))
    submit(root, "sleeper", name, with_cell(root, name, "kl_monte_carlo", sleep))
    faults = {"silent": "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)",
              "killed": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
              "exiter": "import os\nos._exit(0)"}
    for student, source in faults.items():
        submit(root, student, name, with_cell(root, name, "kl_gaussian", source))
    assert cli.main(["grade", "autograde", name, "--root", str(root), "--no-progress", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    logs = (root / "course" / "grading_log" / name).glob("*.json")
    results = {r["student"]: r for r in (json.loads(p.read_text()) for p in logs)}
    full = {cell: maximum for cell, (_, maximum) in results["honest"]["cells"].items()}
    assert results["honest"]["status"] == "ok" and results["honest"]["score"] == sum(full.values())
    after_kl = [c for c in full if c not in ("test_sample_weights",)]
    for student, kind in (("spinner", "CPU"), ("sleeper", "wall")):
        cells = results[student]["cells"]
        assert cells["test_kl_monte_carlo"][0] == 0, f"{student}: the cell past its limit scores 0"
        assert all(cells[c][0] == full[c] for c in full if c != "test_kl_monte_carlo"), "the notebook went on"
        assert results[student]["status"] == "timed out in cell test_kl_monte_carlo"
        [line] = [p for p in results[student]["problems"] if "stopped at its" in p]
        assert line.startswith(f"cell test_kl_monte_carlo stopped at its {kind} limit (")
        assert f"{student}" in out and "timed out in cell test_kl_monte_carlo" in out
    for student in faults:
        cells = results[student]["cells"]
        assert cells["test_sample_weights"] == [full["test_sample_weights"]] * 2, f"{student}: earlier points kept"
        assert all(cells[c][0] == 0 for c in after_kl), f"{student}: the cells not reached score 0"
        verb = "stopped" if student == "silent" else "died"
        assert results[student]["status"] == f"kernel {verb} in cell kl_gaussian", results[student]
        assert any(p.startswith("not run: test_kl_gaussian_basic") for p in results[student]["problems"])
    assert "see the above traceback" not in out and "see above" not in out

    assert cli.main(["grade", "feedback", name, "--root", str(root)]) == 0
    for student in results:
        page = root / "course" / "feedback" / student / name / f"{name}.html"
        assert page.exists(), f"{student} gets a feedback page"
    assert "NotRun" in (root / "course" / "feedback" / "killed" / name / f"{name}.html").read_text()
    capsys.readouterr()
    assert cli.main(["grade", "scores", "--root", str(root)]) == 0
    table = capsys.readouterr().out
    assert "* killed A1_reparam_kl: kernel died in cell kl_gaussian" in table
    assert "* spinner A1_reparam_kl: timed out in cell test_kl_monte_carlo" in table


def test_wrong_assignment_and_not_run_have_a_status_and_a_feedback_page(tmp_path, capsys):
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name], without=A1_SLOW)
    grading.release(name, root=root)
    folder = root / "course" / "submitted" / "renamed" / name
    folder.mkdir(parents=True)
    nbformat.write(solution_submission(root, name), folder / "my_homework.ipynb")
    submit(root, "late", name, solution_submission(root, name))
    [result] = grading.autograde(name, students=["renamed"], root=root, progress=False)
    assert result.status == "wrong assignment" and result.score == 0
    assert f"no {name}.ipynb in the submission" in result.problems[0]
    rows = {r["student"]: r for r in grading.scores(root)}
    assert rows["renamed"]["status"] == "wrong assignment"
    assert rows["late"]["status"] == "not run" and rows["late"]["score"] is None
    grading.feedback(name, root=root)
    page = (root / "course" / "feedback" / "renamed" / name / f"{name}.html").read_text()
    assert "could not be graded" in page and f"no {name}.ipynb in the submission" in page


def test_two_autograde_commands_at_once_do_not_undo_each_other(tmp_path):
    """Two `bnn-teach grade autograde` processes on one course at the same time (a different student each):
    both grades land, neither is reverted, and no student is told that files changed."""
    import subprocess

    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name], without=A1_SLOW)
    grading.release(name, root=root)
    for student in ("ann", "ben", "cat", "dan"):
        submit(root, student, name, solution_submission(root, name))
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    command = [sys.executable, "-m", "bnn_teach.cli", "grade", "autograde", name, "--root", str(root),
               "--no-progress", "--jobs", "1"]
    first = subprocess.Popen(command + ["--student", "ann", "--student", "ben"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    second = subprocess.Popen(command + ["--student", "cat", "--student", "dan"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    outputs = [first.communicate(timeout=900)[0], second.communicate(timeout=900)[0]]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert all("changed" not in out and "restored" not in out for out in outputs), outputs
    rows = {r["student"]: r for r in grading.scores(root)}
    assert {s: (rows[s]["score"], rows[s]["status"]) for s in rows} == {s: (20.0, "ok") for s in
                                                                         ("ann", "ben", "cat", "dan")}


def test_nbgrader_as_the_course_starts_it_records_the_schema_version_alembic_reports(tmp_path, monkeypatch):
    """nbgrader_main reads the gradebook's schema version in-process; nbgrader asks `alembic heads` for it."""
    import sqlite3

    from nbgrader.api import get_alembic_version

    from bnn_teach.grading import nbgrader_main

    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    head = get_alembic_version()  # nbgrader's own way: the alembic command in a second process
    assert re.fullmatch(r"[0-9a-f]{12}", head) and nbgrader_main.schema_head() == head
    root = make_course(tmp_path, ["A1_reparam_kl"])
    grading.release("A1_reparam_kl", root=root)  # a new gradebook, made by nbgrader started as the course does
    with contextlib.closing(sqlite3.connect(root / "course" / "gradebook.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


def test_gradebook_guard_tells_a_grader_write_from_a_tampering_one(tmp_path):
    """Writes under the lock are the grader's; a change outside it while grading runs is put back."""
    root = tmp_path
    (root / "course").mkdir()
    gradebook = root / "course" / "gradebook.db"
    gradebook.write_bytes(b"state 0")
    grading_a, grading_b = grading.GradebookGuard(root), grading.GradebookGuard(root)
    with grading_a.locked():
        assert grading_a.begin() is False
    with grading_b.writing():  # another command merges a grade, under the lock
        gradebook.write_bytes(b"state 1")
    with grading_a.locked():
        assert grading_a.verify() is False, "a locked write is not tampering"
    gradebook.write_bytes(b"tampered")  # a submission's code, outside the lock
    with grading_a.locked():
        assert grading_a.verify() is True and gradebook.read_bytes() == b"state 1", "put back"
        grading_a.end()
    gradebook.write_bytes(b"manual grades")  # the instructor, while no autograde runs
    with grading_b.locked():
        assert grading_b.begin() is False and gradebook.read_bytes() == b"manual grades", "accepted"
        grading_b.end()


def test_grade_commands_act_on_the_course_that_holds_the_working_directory(tmp_path, monkeypatch, capsys):
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name])
    released = ROOT / "assignments" / name / f"{name}.ipynb"
    before = (released.stat().st_mtime_ns, (ROOT / "course" / "gradebook.db").exists())
    monkeypatch.chdir(root / "solutions")  # inside the copy, below its root
    assert cli.main(["grade", "release", name]) == 0
    assert (root / "course" / "gradebook.db").exists(), "the copy got its gradebook"
    assert capsys.readouterr().out.strip() == f"released {root / 'assignments' / name / f'{name}.ipynb'}"
    assert (released.stat().st_mtime_ns, (ROOT / "course" / "gradebook.db").exists()) == before, \
        "the package's own checkout is untouched"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["grade", "scores"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no course here" in err
    monkeypatch.chdir(root)
    assert cli.main(["grade", "autograde", "A9_nothing"]) == 2
    assert f"no assignment 'A9_nothing' in this course; the assignments are {name}" in capsys.readouterr().err
    assert cli.main(["grade", "feedback", name]) == 2
    assert "autograde" in capsys.readouterr().err


def test_check_flags_stubs_a_moved_answer_and_names_a_cell_past_its_limit(tmp_path):
    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name], timeout=5, wall=15, grace=3, without=A1_SLOW)
    release = nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4)
    blank = submit(root, "blank", name, release)
    stubs = [p for p in grading.check_submission(blank, root=root, run=False) if "raise NotImplementedError()" in p]
    solution_cells = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")
                      and c.cell_type == "code"]
    assert len(stubs) == len(solution_cells) >= 5, stubs
    assert stubs[0] == (f"cell {solution_cells[0].metadata['nbgrader']['grade_id']} not done yet: it still has "
                        "the stub `raise NotImplementedError()`")
    moved = solution_submission(root, name)
    index = next(i for i, c in enumerate(moved.cells)
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "kl_gaussian")
    moved.cells.append(moved.cells.pop(index))
    path = submit(root, "moved", name, moved)
    problems = grading.check_submission(path, root=root, run=False)
    assert problems == ["cell kl_gaussian is below the test test_kl_gaussian_basic that checks it: move it back "
                        "above (tests run top to bottom)"]
    spin = "def sample_weights(mu, rho, eps):\n    while True:\n        pass\n"
    path = submit(root, "spinner", name, with_cell(root, name, "sample_weights", spin))
    problems = grading.check_submission(path, root=root)
    [line] = [p for p in problems if "test_sample_weights" in p]
    assert line.startswith("cell test_sample_weights stopped at its CPU limit (5 s of CPU") or \
        line.startswith("cell test_sample_weights stopped at its CPU limit (6 s of CPU"), problems


def test_a_terminated_autograde_leaves_no_file_process_or_grade(tmp_path):
    """SIGTERM (a scheduler, `kill`) in the middle of grading: the command stops with status 130, its nbgrader and
    sandboxed kernels end, every temporary file goes, and no half-done grade reaches the gradebook."""
    import signal
    import subprocess
    import time

    import psutil

    def command(process):
        try:
            return process.cmdline()
        except psutil.Error:
            return []

    name = "A1_reparam_kl"
    root = make_course(tmp_path, [name], without=A1_SLOW)
    grading.release(name, root=root)
    for student in ("ann", "bob", "cid"):
        submit(root, student, name, solution_submission(root, name))
    scratch = tmp_path / "scratch"  # the grader's TMPDIR; its kernels' short-path folders are /tmp/bnnt-*
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    grader = subprocess.Popen([sys.executable, "-m", "bnn_teach.cli", "grade", "autograde", name, "--jobs", "1"],
                              cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, deadline = [], time.monotonic() + 180
    while time.monotonic() < deadline and grader.poll() is None:
        seen = psutil.Process(grader.pid).children(recursive=True)
        if any("ipykernel" in " ".join(command(p)) for p in seen):
            break
        time.sleep(0.2)
    assert grader.poll() is None, f"the grader ended before a kernel started: {grader.communicate()}"
    time.sleep(1)  # well inside the first submission
    seen = psutil.Process(grader.pid).children(recursive=True)

    # this grader's short-path folder, named in its kernels' command lines (other test workers make their own;
    # a forked nbgrader's /proc environ is its fork server's, so its TMPDIR is not read there)
    short = {Path(found) for p in seen for found in re.findall(r"/tmp/bnnt-[^/\s]+", " ".join(command(p)))}
    assert short, f"no child names a /tmp/bnnt-* folder: {[command(p) for p in seen]}"
    grader.send_signal(signal.SIGTERM)
    _, err = grader.communicate(timeout=120)
    assert grader.returncode == 130, err
    _, alive = psutil.wait_procs(seen, timeout=10)
    assert not alive, f"left running: {[command(p) for p in alive]}"
    left = list(scratch.iterdir()) + sorted(p for p in short if p.exists())
    assert not left, f"temporary files left: {left}"
    rows = {r["student"]: r for r in grading.scores(root)}
    assert all(rows[s]["status"] == "not run" and rows[s]["score"] is None for s in ("ann", "bob", "cid")), rows


#: appended to a course's nbgrader config: nbgrader reports, in the file $REPORT, what its process is
REPORT_CONFIG = '''
import json as _json, os as _os, sys as _sys, tempfile as _tempfile, time as _time
if _os.environ.get("REPORT"):
    with open(_os.environ["REPORT"], "w") as _f:
        _json.dump({"cwd": _os.getcwd(), "group": _os.getpgid(0) == _os.getpid(), "session": _os.getsid(0),
                    "tmp": _tempfile.gettempdir(), "path0": _sys.path[0], "marker": _os.environ.get("MARKER"),
                    "stdin": _sys.stdin.read(), "argv": _sys.argv,
                    "unloaded": [_m for _m in __import__("bnn_teach.grading.nbgrader_main", fromlist=["_"]).PRELOAD
                                 if _m not in _sys.modules],
                    "validators": len(__import__("nbformat.validator", fromlist=["_"]).validators)}, _f)
    print("to stdout"); print("to stderr", file=_sys.stderr)
    import atexit as _atexit
    _atexit.register(lambda: open(_os.environ["REPORT"] + ".atexit", "w").close())
if _os.environ.get("HANG"):
    _time.sleep(120)
'''


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "new-process"])
def test_nbgrader_forked_by_the_server_is_what_a_new_process_would_be(tmp_path, monkeypatch, forked):
    """The fork server's nbgrader (and, where there is no fork, a new process): the course folder as working
    folder and first import path, the caller's environment (TMPDIR, the variables it adds), its own process
    group and session, no stdin, its exit status and both streams, its atexit hooks run; past its timeout it and its
    group end."""
    import time

    import psutil

    from bnn_teach.grading import nbgrader_main

    if forked:
        assert nbgrader_main.server() is not None, "started here, before TMPDIR changes"
    else:
        monkeypatch.setattr(nbgrader_main, "server", lambda: None)
    root = make_course(tmp_path, [])
    config = root / "course" / "nbgrader_config.py"
    config.write_text(config.read_text() + REPORT_CONFIG)
    (tmp_path / "tmp").mkdir()
    report = tmp_path / "report.json"
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    done = grading._nbgrader(["db", "student", "list"], root, env={"REPORT": str(report), "MARKER": "m"})
    seen = json.loads(report.read_text())
    unloaded, validators = seen.pop("unloaded"), seen.pop("validators")
    if forked:  # what a run needs later was imported and compiled once, in the server
        assert unloaded == [] and validators >= 4, (unloaded, validators)
    assert done.returncode == 0 and "to stdout" in done.stdout and "to stderr" in done.stderr, done
    assert seen == {"cwd": str(root / "course"), "group": True, "session": seen["session"],
                    "tmp": str(tmp_path / "tmp"), "path0": str(root / "course"), "marker": "m", "stdin": "",
                    "argv": ["nbgrader", "db", "student", "list"]}
    assert seen["session"] != os.getsid(0), "a session of its own"
    assert Path(f"{report}.atexit").exists(), "its atexit hooks ran as it exited"
    failed = grading._nbgrader(["db", "student", "remove", "nobody"], root)
    assert failed.returncode != 0 and "nobody" in failed.stdout + failed.stderr, failed

    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        grading._nbgrader(["db", "student", "list"], root, timeout=3, env={"HANG": "1", "REPORT": str(report)})
    assert time.monotonic() - start < 30, "ended at its timeout, not when it finished"
    hung = json.loads(report.read_text())
    assert not psutil.pid_exists(hung["session"]) or psutil.Process(hung["session"]).status() == "zombie"
    assert not grading._RUNNING, "nothing is left in the grader's list of running nbgraders"


@pytest.mark.parametrize("killed", ["grader", "server"])
def test_a_killed_grader_takes_its_nbgrader_server_and_their_runs_with_it(tmp_path, killed):
    """A grading process killed outright (SIGKILL, no clean-up of its own): its nbgrader server sees its input
    close and ends, and so does the nbgrader run it had forked (which otherwise would run on, orphaned). A server
    sent SIGTERM ends its runs too, and the grader waiting on one goes on."""
    import signal
    import time

    import psutil

    from bnn_teach.grading import nbgrader_main

    if nbgrader_main.server() is None:
        pytest.skip("nbgrader runs as a new process here (no fork server off Linux)")
    root = make_course(tmp_path, [])
    config = root / "course" / "nbgrader_config.py"
    config.write_text(config.read_text() + REPORT_CONFIG)
    report = tmp_path / "report.json"
    script = ("from pathlib import Path\nfrom bnn_teach import grading\n"
              f"grading._nbgrader(['db', 'student', 'list'], Path({str(root)!r}), "
              f"env={{'HANG': '1', 'REPORT': {str(report)!r}}})\n")
    grader = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while not report.exists() and time.monotonic() < deadline and grader.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)  # the report is written whole
    run = psutil.Process(json.loads(report.read_text())["session"])
    server = [p for p in psutil.Process(grader.pid).children() if "serve()" in " ".join(p.cmdline())]
    assert len(server) == 1 and run.ppid() == server[0].pid, "nbgrader was forked by the grader's server"
    if killed == "grader":
        grader.send_signal(signal.SIGKILL)
    else:
        server[0].send_signal(signal.SIGTERM)
    assert grader.wait(timeout=30) == (-signal.SIGKILL if killed == "grader" else 0)
    _, alive = psutil.wait_procs([*server, run], timeout=15)
    assert not alive, f"left running after the {killed} was killed: {[p.cmdline() for p in alive]}"


def test_an_nbgrader_that_cannot_start_says_why(tmp_path, monkeypatch):
    """A broken installation stops the nbgrader server as it imports; the run is then tried as a new process,
    whose error names what is broken (not "the server stopped")."""
    from bnn_teach.grading import nbgrader_main

    broken = tmp_path / "site" / "nbclient"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("nbclient is broken in this test")\n')
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))
    monkeypatch.setattr(nbgrader_main, "_SERVER", None)  # a new server, started with the broken path
    root = make_course(tmp_path, [])
    done = grading._nbgrader(["db", "student", "list"], root)
    assert done.returncode != 0 and "nbclient is broken in this test" in done.stderr, done
