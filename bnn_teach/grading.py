"""Grading the assignments with nbgrader: ``bnn-teach grade release|autograde|feedback|scores|check``.

The course is the repository: nbgrader's sources are ``solutions/<id>/<id>.ipynb`` (generated from the
jupytext ``<id>.py`` beside them), the student release is ``assignments/<id>/<id>.ipynb`` and
everything grading produces lives under ``course/`` (gitignored); ``course/nbgrader_config.py`` says so.

Each submission is autograded **in isolation**: its own copy of the course folder and of the gradebook,
with a snapshot of the submission taken before any student's code runs. Only that student's scores are
merged into ``course/gradebook.db``, and if a submission's code changed the gradebook or anyone's
submitted files, they are restored and the submission is reported. A cell that loops forever is
stopped after ``Execute.timeout`` seconds (and scores 0); a kernel that dies scores 0 for what it did
not reach.

Test cells use :func:`hidden` so that a student's function cannot pass by calling the library
function it is meant to rebuild.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["hidden", "ReferenceHidden", "release", "autograde", "feedback", "scores", "check_submission",
           "solution_submission", "GradeResult"]

CONFIG = Path("course") / "nbgrader_config.py"


class ReferenceHidden(RuntimeError):
    """Raised by a library function while a test cell checks the student's own version of it."""


@contextlib.contextmanager
def hidden(*names: str):
    """Within the block, each dotted name (``"bnn_teach.kl.normal_normal"``, ``"torch.distributions.kl_divergence"``)
    raises :class:`ReferenceHidden` when called, wherever the student's code reaches it: through its
    module, or through a name the notebook imported it under. Restored on exit::

        with hidden("bnn_teach.kl.normal_normal"):
            assert torch.allclose(kl_gaussian(mu_q, sigma_q, mu_p, sigma_p), expected)
    """
    import importlib

    patched = []  # (namespace dict or object, attribute, original)
    main = sys.modules.get("__main__")
    try:
        for name in names:
            module_name, _, attribute = name.rpartition(".")
            owner = importlib.import_module(module_name)
            original = getattr(owner, attribute)

            def refuse(*args, _name=name, **kwargs):
                raise ReferenceHidden(f"{_name} is hidden while this test runs: the task is to build it yourself")

            patched.append((owner, attribute, original))
            setattr(owner, attribute, refuse)
            if main is not None:  # `from bnn_teach.kl import normal_normal` in the notebook
                for key, value in list(vars(main).items()):
                    if value is original:
                        patched.append((main, key, original))
                        setattr(main, key, refuse)
        yield
    finally:
        for owner, attribute, original in reversed(patched):
            setattr(owner, attribute, original)


# ----------------------------------------------------------------------------------------------------------
# the course folder and nbgrader


def course_root(root=None) -> Path:
    """The course root (the repository): ``root``, else the folder above ``course/nbgrader_config.py``
    found from this package or the working directory."""
    if root is not None:
        root = Path(root).resolve()
        if not (root / CONFIG).exists():
            raise FileNotFoundError(f"{root} is not the course root: {root / CONFIG} is missing")
        return root
    for candidate in (Path(__file__).resolve().parents[1], Path.cwd(), *Path.cwd().parents):
        if (candidate / CONFIG).exists():
            return candidate
    raise FileNotFoundError(f"no course found: run from the repository, which holds {CONFIG}")


def _nbgrader(args: list[str], root: Path, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in ``root/course`` with the course config pointed at ``root``; the interpreter's
    ``bin`` goes first on PATH (nbgrader calls ``alembic`` through the shell)."""
    env = {**os.environ, "BNN_TEACH_COURSE_ROOT": str(root),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root / "course", env=env, text=True,
                          capture_output=True, timeout=timeout)


def _db_url(root: Path) -> str:
    return "sqlite:///" + str(root / "course" / "gradebook.db")


def release(assignment: str, root=None) -> Path:
    """Regenerate ``solutions/<id>/<id>.ipynb`` from its source, then the student release
    ``assignments/<id>/<id>.ipynb`` with ``nbgrader generate_assignment`` (which also records the
    assignment's cells in the gradebook). Returns the released notebook."""
    from bnn_teach import notebooks

    root = course_root(root)
    source = root / "solutions" / assignment / f"{assignment}.py"
    if not source.exists():
        known = sorted(p.name for p in (root / "solutions").iterdir() if p.is_dir())
        raise FileNotFoundError(f"no assignment {assignment!r}: {source} is missing; the assignments are "
                                f"{', '.join(known)}")
    notebooks.sync([source])
    done = _nbgrader(["generate_assignment", assignment, "--force"], root)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{done.stdout}{done.stderr}")
    return root / "assignments" / assignment / f"{assignment}.ipynb"


def solution_submission(assignment: str, root=None):
    """The released notebook with every solution cell filled in from ``solutions/<id>/<id>.ipynb``: what a
    student who got everything right hands in (to check the tests before a release)."""
    import nbformat

    root = course_root(root)
    release_notebook = nbformat.read(root / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)
    solution = nbformat.read(root / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release_notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
    return release_notebook


# ----------------------------------------------------------------------------------------------------------
# autograding, one submission at a time


@dataclass
class GradeResult:
    """One student's autograded assignment: points per graded cell (``grade_id -> (score, max)``), the
    total, and what went wrong (a crash, a timeout, files the submission changed and that were restored)."""

    student: str
    assignment: str
    cells: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(score for score, _ in self.cells.values())

    @property
    def max_score(self) -> float:
        return sum(maximum for _, maximum in self.cells.values())


def _digests(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _restore(before: dict, snapshot: Path, base: Path) -> list[str]:
    """Put back every file of ``before`` that changed or vanished (from ``snapshot``, which mirrors
    ``base``) and remove files that appeared; returns the paths touched."""
    touched = []
    after = _digests(base)
    for path, digest in before.items():
        if after.get(path) != digest:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(snapshot / path.relative_to(base), path)
            touched.append(str(path))
    for path in set(after) - set(before):
        path.unlink()
        touched.append(str(path))
    return touched


def _grade_one(root: Path, assignment: str, student: str, submission: Path, work: Path, timeout: float) -> GradeResult:
    """Autograde ``submission`` (a folder holding the student's notebook) in the private course ``work``."""
    from nbgrader.api import Gradebook, MissingEntry

    result = GradeResult(student, assignment)
    (work / "course").mkdir(parents=True)
    shutil.copy2(root / CONFIG, work / CONFIG)
    shutil.copy2(root / "course" / "gradebook.db", work / "course" / "gradebook.db")
    shutil.copytree(submission, work / "course" / "submitted" / student / assignment)
    try:
        done = _nbgrader(["autograde", assignment, "--student", student, "--force"], work, timeout=timeout)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-3:]
            result.problems.append("autograde failed: " + " / ".join(last))
    except subprocess.TimeoutExpired:
        result.problems.append(f"autograde took longer than {timeout:.0f} s and was stopped")
    with Gradebook(_db_url(work)) as gb:
        try:
            submitted = gb.find_submission(assignment, student)
        except MissingEntry:
            submitted = None
        for notebook in gb.find_assignment(assignment).notebooks:
            for cell in notebook.grade_cells:
                score = 0.0
                if submitted is not None:
                    with contextlib.suppress(MissingEntry):
                        score = gb.find_grade(cell.name, notebook.name, assignment, student).score or 0.0
                result.cells[cell.name] = (float(score), float(cell.max_score))
    graded = work / "course" / "autograded" / student / assignment
    if graded.exists():
        target = root / "course" / "autograded" / student / assignment
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(graded, target)
    return result


def _merge(root: Path, result: GradeResult) -> None:
    """Write one student's autograded scores into the course gradebook (nothing else changes)."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    with Gradebook(_db_url(root)) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own session bookkeeping, harmless here
        gb.update_or_create_student(result.student)
        try:
            gb.find_submission(result.assignment, result.student)
        except MissingEntry:
            gb.add_submission(result.assignment, result.student)
        for notebook in gb.find_assignment(result.assignment).notebooks:
            for cell in notebook.grade_cells:
                grade = gb.find_grade(cell.name, notebook.name, result.assignment, result.student)
                grade.auto_score = result.cells.get(cell.name, (0.0, 0.0))[0]
        gb.db.commit()


def autograde(assignment: str, students=None, root=None, timeout: float = 600,
              progress: bool = True) -> list[GradeResult]:
    """Autograde ``course/submitted/<student>/<assignment>/`` for each student (default: all who
    submitted), each in isolation, and merge each one's scores into ``course/gradebook.db``. Each
    result lists its problems: test cells edited or deleted (nbgrader grades the originals), a crash
    or timeout, files outside its copy that its code changed (restored). ``timeout``: seconds for one
    whole submission."""
    from tqdm.auto import tqdm

    root = course_root(root)
    if not (root / "course" / "gradebook.db").exists():
        raise FileNotFoundError(f"no gradebook: run `bnn-teach grade release {assignment}` first")
    submitted = root / "course" / "submitted"
    if students is None:
        students = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())
    if not students:
        raise FileNotFoundError(f"no submissions of {assignment} in {submitted}/<student>/{assignment}/")
    results = []
    with tempfile.TemporaryDirectory(prefix="bnn-teach-grade-") as tmp:
        tmp = Path(tmp)
        snapshot = tmp / "snapshot"  # every submission and the gradebook, before anyone's code runs
        shutil.copytree(submitted, snapshot / "submitted")
        shutil.copy2(root / "course" / "gradebook.db", snapshot / "gradebook.db")
        before = _digests(submitted)  # the same before every student: each run's changes are undone after it
        for student in tqdm(students, desc=f"autograde {assignment}", unit="student", disable=not progress):
            folder = snapshot / "submitted" / student / assignment
            if not folder.is_dir():
                raise FileNotFoundError(f"{student} has not submitted {assignment} "
                                        f"({submitted / student / assignment})")
            notebook = folder / f"{assignment}.ipynb"
            structure = (check_submission(notebook, root=root, run=False) if notebook.exists()
                         else [f"no {assignment}.ipynb in the submission (the file name must stay {assignment}.ipynb)"])
            result = _grade_one(root, assignment, student, folder, tmp / "work" / student, timeout)
            touched = _restore(before, snapshot / "submitted", submitted)
            gradebook = root / "course" / "gradebook.db"
            if gradebook.read_bytes() != (snapshot / "gradebook.db").read_bytes():
                shutil.copy2(snapshot / "gradebook.db", gradebook)
                touched.append(str(gradebook))
            result.problems[:0] = structure  # edited or deleted test cells: nbgrader graded the originals
            if touched:
                result.problems.append("the submission changed files outside its own copy; restored: "
                                       + ", ".join(touched))
            _merge(root, result)
            shutil.copy2(gradebook, snapshot / "gradebook.db")  # the new good state
            results.append(result)
    return results


def feedback(assignment: str, root=None) -> Path:
    """``nbgrader generate_feedback``: HTML feedback per student under ``course/feedback/``."""
    root = course_root(root)
    done = _nbgrader(["generate_feedback", assignment, "--force"], root)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_feedback {assignment} failed:\n{done.stdout}{done.stderr}")
    return root / "course" / "feedback"


def scores(root=None) -> list[dict]:
    """Every graded submission in the gradebook: ``{"student", "assignment", "score", "max_score"}``."""
    from nbgrader.api import Gradebook

    root = course_root(root)
    rows = []
    with Gradebook(_db_url(root)) as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                rows.append({"student": submission.student.id, "assignment": assignment.name,
                             "score": float(submission.score), "max_score": float(submission.max_score)})
    return sorted(rows, key=lambda r: (r["student"], r["assignment"]))


def format_scores(rows: list[dict]) -> str:
    """A table, one row per student, one column per assignment (``score/max``), and the total."""
    assignments = sorted({r["assignment"] for r in rows})
    students = sorted({r["student"] for r in rows})
    cell = {(r["student"], r["assignment"]): r for r in rows}
    width = max([len(s) for s in students] + [7])
    lines = [f"{'student':<{width}}  " + "  ".join(f"{a:>14}" for a in assignments) + "       total"]
    for student in students:
        got = [cell.get((student, a)) for a in assignments]
        text = [f"{r['score']:g}/{r['max_score']:g}" if r else "-" for r in got]
        total = sum(r["score"] for r in got if r)
        maximum = sum(r["max_score"] for r in got if r)
        lines.append(f"{student:<{width}}  " + "  ".join(f"{t:>14}" for t in text) + f"  {total:g}/{maximum:g}")
    return "\n".join(lines)


def write_scores_csv(rows: list[dict], path) -> Path:
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["student", "assignment", "score", "max_score"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_scores(rows: list[dict], path) -> Path:
    """A histogram of the scores, one panel per assignment, as percent of the maximum."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    assignments = sorted({r["assignment"] for r in rows})
    fig, axes = plt.subplots(1, max(1, len(assignments)), figsize=(3.5 * max(1, len(assignments)), 3), squeeze=False)
    for ax, assignment in zip(axes.flat, assignments):
        values = [100 * r["score"] / r["max_score"] for r in rows if r["assignment"] == assignment and r["max_score"]]
        ax.hist(values, bins=range(0, 105, 5), edgecolor="k", label=f"{len(values)} students")
        ax.set_title(assignment)
        ax.set_xlabel("score (% of the maximum)")
        ax.set_ylabel("students")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------------------------------
# the student's check before handing in


def _grade_ids(notebook) -> list[str]:
    return [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("grade_id")]


def check_submission(path, root=None, timeout: int = 120, run: bool = True) -> list[str]:
    """What would go wrong when ``path`` (a student's ``.ipynb``) is graded, one line each: not one of the
    course's assignments, a graded or test cell deleted, duplicated or edited, and, with ``run``, a cell
    that raises when the notebook runs top to bottom. An empty list: ready to hand in."""
    import nbformat
    from nbgrader.utils import compute_checksum

    path = Path(path)
    root = course_root(root)
    try:
        submitted = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - an unreadable file is the one problem to report
        return [f"{path} is not a readable notebook ({type(err).__name__}: {err})"]
    release_path = root / "assignments" / path.stem / f"{path.stem}.ipynb"
    if not release_path.exists():
        known = sorted(p.name for p in (root / "assignments").iterdir() if p.is_dir())
        return [f"{path.name} is not an assignment of this course (keep the file name; assignments: "
                f"{', '.join(known)})"]
    released = nbformat.read(release_path, as_version=4)
    problems = []
    ids = _grade_ids(submitted)
    for grade_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"cell {grade_id} appears {ids.count(grade_id)} times: keep one (delete the copies)")
    mine = {cell.metadata["nbgrader"]["grade_id"]: cell for cell in submitted.cells
            if cell.metadata.get("nbgrader", {}).get("grade_id")}
    for cell in released.cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if not grade_id:
            continue
        if grade_id not in mine:
            kind = "test cell" if meta.get("grade") and not meta.get("solution") else "cell"
            problems.append(f"{kind} {grade_id} is missing: it was deleted; copy it back from the released notebook")
            continue
        if meta.get("locked") and compute_checksum(mine[grade_id]) != meta.get("checksum"):
            problems.append(f"cell {grade_id} was edited: it is locked (a test or an instruction); "
                            "restore it from the released notebook")
    if run and not problems:
        problems += _run_problems(submitted, path.parent, timeout)
    return problems


def _run_problems(notebook, folder: Path, timeout: int) -> list[str]:
    from nbclient import NotebookClient

    client = NotebookClient(notebook, kernel_name="python3", timeout=timeout, allow_errors=True,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    except Exception as err:  # noqa: BLE001 - a timeout or a dead kernel is reported, not raised
        return [f"the notebook does not run to the end: {type(err).__name__}: {str(err).splitlines()[0]}"]
    problems = []
    for number, cell in enumerate(notebook.cells, 1):
        meta = cell.metadata.get("nbgrader", {})
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            name = meta.get("grade_id") or f"number {number}"
            unfinished = output.ename == "NotImplementedError"
            if meta.get("grade") and not meta.get("solution"):
                what = ("something it calls is not written yet (NotImplementedError)" if unfinished
                        else f"{output.ename}: {output.evalue.splitlines()[0] if output.evalue else ''}")
                problems.append(f"test {name} fails: {what}")
            elif unfinished:
                problems.append(f"cell {name} not done yet (it still raises NotImplementedError)")
            else:
                first = output.evalue.splitlines()[0] if output.evalue else ""
                problems.append(f"cell {name} raises {output.ename}: {first}")
    return problems
