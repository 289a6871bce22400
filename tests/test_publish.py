"""``bnn-teach grade publish``: the students' repository holds the lectures, the releases, the library, the
syllabus and their README, and none of the solutions, verdicts, tests, benchmarks or the instructor guide."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnn_teach import cli
from bnn_teach.grading import publish as pub

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = tmp_path_factory.mktemp("students") / "course"
    assert cli.main(["grade", "publish", str(out), "--root", str(ROOT)]) == 0
    return out


def test_the_students_get_what_is_theirs(published):
    names = {p.relative_to(published).as_posix() for p in published.rglob("*") if p.is_file()}
    for lecture in sorted((ROOT / "lectures").glob("L*.ipynb")):
        assert f"lectures/{lecture.name}" in names
    for release in sorted((ROOT / "assignments").glob("*/*.ipynb")):
        assert release.relative_to(ROOT).as_posix() in names
        assert (published / release.relative_to(ROOT)).read_bytes() == release.read_bytes()
    assert {"bnn_teach/__init__.py", "pyproject.toml", "Makefile", "course/syllabus.md",
            "course/nbgrader_config.py", "README.md"} <= names
    assert (published / "README.md").read_text() == (ROOT / "course" / "STUDENT_README.md").read_text()


def test_nothing_of_the_instructors_is_published(published):
    names = {p.relative_to(published).as_posix() for p in published.rglob("*")}
    for forbidden in ("solutions", "tests", "benchmarks", "course/INSTRUCTORS.md", ".ci"):
        assert not any(n == forbidden or n.startswith(forbidden + "/") for n in names), forbidden
    assert not any(n.endswith("_verdicts.py") for n in names)
    secrets = pub.solution_lines(ROOT)
    assert len(secrets) > 50, "the answers the releases removed are known, so their absence means something"
    for path in published.rglob("*"):
        outside_library = path.parts[len(published.parts)] != "bnn_teach"
        if path.is_file() and path.suffix in (".ipynb", ".py", ".md") and outside_library:
            text = path.read_text(errors="replace")
            assert not [line for line in secrets if line in text], path


def test_the_students_repository_imports_and_checks_a_submission(published):
    """The library imports from the published tree, and the students' check finds its course there."""
    env = {"PYTHONPATH": str(published), "PATH": str(Path(sys.executable).parent), "BNN_TEACH_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", "import bnn_teach, sys; print(bnn_teach.__file__)"],
                            cwd=published, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and str(published) in result.stdout, result.stderr
    release = next((published / "assignments").glob("*/*.ipynb"))
    result = subprocess.run([sys.executable, "-m", "bnn_teach.cli", "grade", "check", str(release), "--no-run"],
                            cwd=published, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not done yet: it still has the stub" in result.stdout, "a blank release is checked as a blank release"


def test_a_leak_is_refused_and_nothing_is_left(tmp_path):
    """A lecture that pasted an answer: publishing fails, names the file, and leaves no half-built folder."""
    course = tmp_path / "course"   # a copy of the course (not a git checkout: every file there is published)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for item in ("bnn_teach", "lectures", "assignments", "solutions"):
        shutil.copytree(ROOT / item, course / item, ignore=ignore)
    for item in ("pyproject.toml", "course/nbgrader_config.py", "course/syllabus.md", "course/STUDENT_README.md"):
        (course / item).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / item, course / item)
    answer = sorted(pub.solution_lines(ROOT))[0]
    lecture = course / "lectures" / "L00_setup_and_tour.py"
    lecture.write_text(lecture.read_text() + f"\n# %%\n{answer}\n")
    out = tmp_path / "students"
    with pytest.raises(RuntimeError, match=r"lectures/L00_setup_and_tour.py: holds a line of a solution"):
        pub.publish(out, root=course)
    assert not out.exists()
    assert cli.main(["grade", "publish", str(tmp_path), "--root", str(ROOT)]) == 2, "a folder with files in it"


def test_solution_lines_are_the_answers_not_the_signatures():
    lines = pub.solution_lines(ROOT)
    assert not any(line.startswith("def ") for line in lines), "signatures stay in the release"
    release = (ROOT / "assignments" / "A1_reparam_kl" / "A1_reparam_kl.ipynb").read_text()
    assert all(json.dumps(line)[1:-1] not in release for line in lines)


def test_problems_name_an_instructors_file_a_lab_log_and_a_marker(tmp_path):
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "gradebook.db").write_bytes(b"")
    (tmp_path / "course" / "jupyterlab-2.log").write_text("a second lab's log")
    (tmp_path / "notes.md").write_text("### BEGIN SOLUTION\n")
    (tmp_path / "jupyterlab.md").write_text("how to open JupyterLab")
    assert pub.problems_in(tmp_path) == ["course/gradebook.db: an instructor's file or folder",
                                         "course/jupyterlab-2.log: an instructor's file or folder",
                                         "notes.md: holds 'BEGIN SOLUTION'"]
