"""``bnn-teach grade publish OUT``: the students' repository, built from this one.

A course has two audiences. The students get the lectures, the released assignments, the library, the
syllabus and a README written for them (``course/STUDENT_README.md``); they do not get the solutions, the
verdict files, the tests (their fixtures hold typical mistakes and right answers), the benchmarks or the
instructor guide. What is copied is what git tracks (in a checkout), so nothing local leaks either, and
the result is checked before it is handed back: a forbidden path or a solution marker in any file is an
error, and the half-built folder is removed.
"""
from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from pathlib import Path

__all__ = ["publish", "problems_in", "solution_lines", "PUBLISHED", "FORBIDDEN_MARKERS"]

#: what the students' repository holds: folders and files of the course root
PUBLISHED = ("bnn_teach", "lectures", "assignments", "tools/install_torch.py", "pyproject.toml", "Makefile",
             "environment.yml", ".gitignore", "course/nbgrader_config.py", "course/syllabus.md", "course/figures")
STUDENT_README = Path("course") / "STUDENT_README.md"
#: text that only a solution or a hidden test carries (nbgrader's markers) and the instructor's files
FORBIDDEN_MARKERS = ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS")
FORBIDDEN_NAMES = ("solutions", "tests", "benchmarks", "INSTRUCTORS.md", "_verdicts.py", "gradebook.db",
                   "submitted", "autograded", "feedback", "grading_log", "jupyterlab*.log")


def _tracked(root: Path) -> list[Path] | None:
    """The files git tracks under ``root`` (relative paths), or None when ``root`` is not a git checkout."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return [Path(p) for p in listed.stdout.decode().split("\0") if p]


def _selected(root: Path) -> list[Path]:
    tracked = _tracked(root)
    if tracked is None:
        tracked = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    keep = []
    for path in tracked:
        if any(path == Path(item) or Path(item) in path.parents for item in PUBLISHED):
            if "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts:
                keep.append(path)
    return keep


def solution_lines(root: Path, min_length: int = 40) -> set[str]:
    """The lines that the releases removed from the solution cells of ``solutions/<id>/<id>.ipynb`` (stripped,
    at least ``min_length`` characters, not comments): the answers, which must not reach the students. Lines
    a release keeps (signatures, docstrings, code another assignment provides) are not among them."""
    import nbformat

    # a line one release keeps (another assignment's provided code) is public already
    kept = "".join(p.read_text(errors="replace") for p in sorted((root / "assignments").glob("*/*.ipynb")))
    lines = set()
    for path in sorted((root / "solutions").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                lines |= {line.strip() for line in cell.source.splitlines()
                          if len(line.strip()) >= min_length and not line.strip().startswith("#")
                          and json.dumps(line.strip())[1:-1] not in kept}
    return lines


def problems_in(folder, solutions=frozenset()) -> list[str]:
    """What should not be in a students' repository at ``folder``, one line each (empty: nothing): an
    instructor's file or folder, nbgrader's solution markers outside the grading code that names them, or
    a line of ``solutions`` (see :func:`solution_lines`) in a text file outside the library (which implements
    the same mathematics by design; the grading build withholds it, see ``bnn_teach.grading.verdicts``)."""
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(fnmatch.fnmatch(path.name, name) for name in FORBIDDEN_NAMES):
            found.append(f"{relative}: an instructor's file or folder")
        elif path.is_file() and path.suffix in (".py", ".ipynb", ".md", ".txt", ".json", ".cfg", ".toml"):
            text = path.read_text(errors="replace")
            marker = next((m for m in FORBIDDEN_MARKERS if m in text), None)
            if marker and relative.parts[:2] != ("bnn_teach", "grading"):
                found.append(f"{relative}: holds '{marker}'")
            leaked = None if relative.parts[0] == "bnn_teach" else next((line for line in solutions if line in text),
                                                                            None)
            if leaked:
                found.append(f"{relative}: holds a line of a solution ({leaked[:60]}...)")
    return found


def publish(out, root=None) -> Path:
    """Write the students' repository into ``out`` (a new or empty folder) and return it.

    Raises ``FileExistsError`` when ``out`` holds anything, ``FileNotFoundError`` when the course has no
    students' README or no released assignment, and ``RuntimeError`` (removing ``out``) when the result
    holds an instructor's file or a solution marker."""
    from bnn_teach.grading import course_root

    root = course_root(root)
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder: publish into a new one")
    if root in (out, *out.parents):
        raise ValueError(f"{out} is inside the course {root}: publish outside it")
    if not (root / STUDENT_README).is_file():
        raise FileNotFoundError(f"{root / STUDENT_README} is missing: it becomes the students' README.md")
    if not any((root / "assignments").glob("*/*.ipynb")):
        raise FileNotFoundError(f"no released assignment in {root / 'assignments'}: run `bnn-teach grade release "
                                "ID` first")
    out.mkdir(parents=True, exist_ok=True)
    try:
        for relative in _selected(root):
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, target)
        shutil.copy2(root / STUDENT_README, out / "README.md")
        found = problems_in(out, solution_lines(root))
        if found:
            raise RuntimeError("the students' repository would hold what is not theirs, nothing published: "
                               + "; ".join(found))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out
