"""Grading the assignments with nbgrader: ``bnn-teach grade release|autograde|feedback|scores|check``.

A course is a folder holding ``course/nbgrader_config.py``; the grade commands act on the course that
holds the working directory (or ``--root``). nbgrader's sources are ``solutions/<id>/<id>.ipynb``
(generated from the jupytext ``<id>.py`` beside them), the student release is
``assignments/<id>/<id>.ipynb`` and everything grading produces lives under ``course/`` (gitignored).

Grading an honest student can rely on:

- **Load does not change a grade.** Graded kernels run torch and BLAS on one thread and each cell is
  limited in CPU seconds (and, as a backstop, wall seconds): see :mod:`bnn_teach.grading.execute`.
- **A failure costs only what it touches.** A cell past its limit scores 0 and the notebook goes on; when
  the kernel dies or stops answering, the cells after it are not run (0), the cells before keep their points.
- **Failures are visible.** Each submission gets a status and its problems, one line each, kept in
  ``course/grading_log/<id>/<student>.json`` and shown by ``autograde``, ``scores`` and the feedback.
- **In parallel, safely.** Each submission is autograded in isolation (its own copy of the course and of
  the gradebook, a snapshot of the submission taken before any student's code runs), ``jobs`` at a time;
  only its scores are merged into ``course/gradebook.db``, under a lock (:class:`GradebookGuard`), so two
  commands at once never undo each other. Files a submission's code changed are restored and reported.
- **The student's code decides no verdict.** Each test cell scores by its verdict
  (``solutions/<id>/_verdicts.py``, :mod:`bnn_teach.grading.verdicts`): a probe run right after the cell
  sends back the student's functions' outputs on the grader's inputs, as numbers; this process, which
  never runs student code, judges them against references computed before any submission ran. The
  library functions an assignment rebuilds are absent from the kernel (a grading build of bnn_teach).
- **The checks stay with the instructor.** Probes never enter the notebook; feedback is made from the
  autograded notebooks with each cell's verdict and message.

The trust boundary: :mod:`bnn_teach.grading.sandbox` makes what runs inside (the student's kernel, the
probes); :mod:`bnn_teach.grading.execute` (the kernel driver, in nbgrader's process), ``verdicts`` and this
module run outside; nbgrader still releases, keeps the gradebook, writes feedback and serves the Formgrader.

Test cells use :func:`hidden` so that, on the student's own machine, a function cannot pass its visible
test by calling the library function it is meant to rebuild.
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
           "solution_submission", "GradeResult", "GradebookGuard", "course_root", "format_scores",
           "write_scores_csv", "plot_scores", "hand_out", "collect", "hand_back"]

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

    import bnn_teach

    for submodule in bnn_teach.SUBMODULES:  # each loaded first, so none binds a stand-in by importing it here
        importlib.import_module(f"bnn_teach.{submodule}")
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
    """The course root: ``root``, else the working directory or the nearest folder above it that holds
    ``course/nbgrader_config.py``. Never the package's own checkout unless you are in it."""
    if root is not None:
        root = Path(root).resolve()
        if not (root / CONFIG).exists():
            raise FileNotFoundError(f"{root} is not a course root: {root / CONFIG} is missing")
        return root
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG).exists():
            return candidate
    raise FileNotFoundError(f"no course here: {here} is not inside a course (a folder holding {CONFIG}); "
                            "cd into the course or give --root")


def assignments_of(root: Path) -> list[str]:
    """The assignments of the course: the folders of ``solutions/`` (the instructor's) or ``assignments/``."""
    folder = root / "solutions" if (root / "solutions").is_dir() else root / "assignments"
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _nbgrader(args: list[str], root: Path, timeout: float | None = None,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in ``root/course`` with the course config pointed at ``root``, in its own process
    group; the interpreter's ``bin`` goes first on PATH (nbgrader upgrades an old gradebook with ``alembic``, a
    command); torch and BLAS on one thread. nbgrader runs as :mod:`bnn_teach.grading.nbgrader_main` starts it
    (the same, sooner: forked by this process's nbgrader server where there is one)."""
    from bnn_teach.grading import nbgrader_main
    from bnn_teach.grading.execute import ONE_THREAD

    env = {**os.environ, **ONE_THREAD, **(env or {}), "BNN_TEACH_COURSE_ROOT": str(root),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    command = [sys.executable, "-m", "bnn_teach.grading.nbgrader_main", *args]
    server = nbgrader_main.server()
    if server is not None:
        with tempfile.TemporaryDirectory(prefix="bnn-teach-nbgrader-") as streams:
            out, err = Path(streams) / "stdout", Path(streams) / "stderr"
            try:
                child = server.start(args, root / "course", env, out, err)
            except (RuntimeError, OSError):  # the server died (its error is on stderr): a new process says why
                child = None
            if child is not None:
                _RUNNING.add(child)
                try:
                    if not child.wait(timeout):
                        _end_group(child)
                        child.wait()
                        raise subprocess.TimeoutExpired(command, timeout)
                finally:
                    _RUNNING.discard(child)
                read = [path.read_text(errors="replace") if path.exists() else "" for path in (out, err)]
                return subprocess.CompletedProcess(command, child.returncode, *read)
    with subprocess.Popen(command, cwd=root / "course", env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True) as process:
        _RUNNING.add(process)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_group(process)
            process.communicate()
            raise
        finally:
            _RUNNING.discard(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


_RUNNING: set = set()  # the nbgrader processes running now (each leads a process group)


def _end_group(process, grace: float = 5.0) -> None:
    """End ``process``'s whole process group (nbgrader, its kernels' sandboxes): SIGTERM, then SIGKILL."""
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:  # a forked nbgrader that has not yet made its own group
                os.kill(process.pid, sig)
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is not None:
            return


@contextlib.contextmanager
def _removed(folder: Path):
    """Remove ``folder`` when the block ends, however it ends."""
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Within the block, SIGTERM (a job scheduler, ``kill``) ends the main thread as Ctrl-C does, so that
    every ``finally`` runs: children ended, temporary files removed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("terminated")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _nbgrader_error(done: subprocess.CompletedProcess) -> str:
    """What went wrong in an nbgrader run, in its own words: its ERROR lines and the last line of each
    traceback, never "see the above traceback"."""
    lines = (done.stderr + "\n" + done.stdout).splitlines()
    found = []
    for number, line in enumerate(lines):
        text = line.strip()
        if "| ERROR]" in text:
            text = text.split("| ERROR]", 1)[1].strip()
            if text and "see the above traceback" not in text and "Please see" not in text:
                found.append(text)
        elif text.startswith("Traceback (most recent call last)"):
            tail = next((rest.strip() for rest in lines[number + 1:] if rest and not rest.startswith((" ", "\t"))), "")
            if tail:
                found.append(tail)
    found = list(dict.fromkeys(found))  # in order, once each
    if found:
        return "; ".join(found[-3:])
    words = [line.strip() for line in lines if line.strip()]
    return words[-1] if words else f"exit code {done.returncode}"


def _db_url(root: Path) -> str:
    return "sqlite:///" + str(root / "course" / "gradebook.db")


class GradebookGuard:
    """The course gradebook, written by the grade commands only under a lock (``course/.gradebook.lock``), so
    that two commands at once (the same or different assignments) never undo each other.

    After each locked write the guard keeps a copy (``course/.gradebook.good``) and its digest. While an
    autograde command runs, a gradebook whose digest differs from the last locked write was changed by
    something other than the grader (a submission's code): it is restored from the copy. When no autograde
    is running, the gradebook as found is accepted (an instructor's own nbgrader commands or manual grades).
    """

    def __init__(self, root: Path):
        course = root / "course"
        self.path = course / "gradebook.db"
        self.lock_path = course / ".gradebook.lock"
        self.good = course / ".gradebook.good"
        self.digest_path = course / ".gradebook.sha256"
        self.active = course / ".grading"
        self._mine = None

    @contextlib.contextmanager
    def locked(self):
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _others_running(self) -> bool:
        if not self.active.is_dir():
            return False
        for marker in self.active.iterdir():
            pid = int(marker.name) if marker.name.isdigit() else None
            if pid is None or pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                return True
            except ProcessLookupError:
                marker.unlink(missing_ok=True)  # a command that died
            except PermissionError:
                return True
        return False

    def _digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest() if self.path.exists() else ""

    def verify(self) -> bool:
        """Under the lock: put back the last locked write if something else changed the gradebook; True if so."""
        if not self.digest_path.exists() or self._digest() == self.digest_path.read_text().strip():
            return False
        if self.good.exists():
            shutil.copy2(self.good, self.path)
        return True

    def accept(self) -> None:
        """Under the lock: the gradebook as it is now is the last good state."""
        if self.path.exists():
            shutil.copy2(self.path, self.good)
        self.digest_path.write_text(self._digest())

    @contextlib.contextmanager
    def writing(self):
        """Lock, put back a tampered gradebook while grading runs, let the block write, accept the result."""
        with self.locked():
            if self._others_running():
                self.verify()
            yield self
            self.accept()

    def begin(self) -> bool:
        """Under the lock, at the start of an autograde command: verify when another command is grading
        (its students' code may be running), else accept; then mark this command as running."""
        tampered = self.verify() if self._others_running() else False
        self.accept()
        self.active.mkdir(exist_ok=True)
        self._mine = self.active / str(os.getpid())
        self._mine.write_text("")
        return tampered

    def end(self) -> None:
        if self._mine is not None:
            self._mine.unlink(missing_ok=True)
            self._mine = None


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
    guard = GradebookGuard(root)
    with guard.writing():
        done = _nbgrader(["generate_assignment", assignment, "--force"], root)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{done.stdout}{done.stderr}")
    return root / "assignments" / assignment / f"{assignment}.ipynb"


def _exchange(action: list[str], assignment: str, root, what: str) -> str:
    """``nbgrader ACTION ASSIGNMENT`` on the course's exchange (``c.Exchange.root``: ``$BNN_TEACH_EXCHANGE`` on
    the course's hub, else ``course/exchange``), under the gradebook's guard; returns nbgrader's log."""
    root = course_root(root)
    _require_assignment(root, assignment)
    with GradebookGuard(root).writing():
        done = _nbgrader([*action, assignment], root)
    if done.returncode != 0:
        raise RuntimeError(f"{what} {assignment} failed: {_nbgrader_error(done)}")
    return done.stdout + done.stderr


def hand_out(assignment: str, root=None) -> str:
    """Put the release ``assignments/<id>/`` into the exchange, where students fetch it (nbgrader's
    ``release_assignment``; again after a new release: ``--force`` replaces the one there)."""
    return _exchange(["release_assignment", "--force"], assignment, root, "handing out")


def collect(assignment: str, root=None) -> list[str]:
    """Copy each student's latest submission from the exchange into ``course/submitted/<student>/<id>/``
    (nbgrader's ``collect``, which keeps ``timestamp.txt`` beside it); returns the students collected."""
    root = course_root(root)
    _exchange(["collect", "--update"], assignment, root, "collecting")
    return sorted(p.parent.name for p in (root / "course" / "submitted").glob(f"*/{assignment}")
                  if (p / f"{assignment}.ipynb").exists())


def hand_back(assignment: str, root=None) -> list[str]:
    """Put each feedback page of ``course/feedback/<student>/<id>/`` into the exchange, where only that student
    fetches it (nbgrader's ``release_feedback``; run ``feedback`` first); returns the students handed back."""
    root = course_root(root)
    pages = sorted((root / "course" / "feedback").glob(f"*/{assignment}/{assignment}.html"))
    if not pages:
        raise FileNotFoundError(f"no feedback for {assignment} yet: run `bnn-teach grade feedback {assignment}` "
                                "first")
    missing = [p.parent.parent.name for p in pages
               if not all((p.parent / name).exists() for name in ("timestamp.txt", "submission_secret.txt"))]
    if missing:
        raise FileNotFoundError(f"feedback for {', '.join(missing)} cannot go back through the exchange: their "
                                "submissions were not collected from it (no submission_secret.txt); send those "
                                "pages by hand")
    _exchange(["release_feedback"], assignment, root, "handing back feedback for")
    return [p.parent.parent.name for p in pages]


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
    total, what went wrong (a cell past its limit, a dead kernel, edited test cells, files the submission
    changed and that were restored) and each cell's CPU and wall seconds (``timings``). ``manual``: the
    cells graded by hand (written answers) and their points, ``grade_id -> max``; they are not in ``cells``
    nor in the score: the instructor grades them in the Formgrader."""

    student: str
    assignment: str
    cells: dict = field(default_factory=dict)
    manual: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    status: str = "ok"
    timings: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(score for score, _ in self.cells.values())

    @property
    def max_score(self) -> float:
        return sum(maximum for _, maximum in self.cells.values())

    def to_dict(self) -> dict:
        return {"student": self.student, "assignment": self.assignment, "status": self.status,
                "score": self.score, "max_score": self.max_score, "problems": self.problems,
                "cells": {k: list(v) for k, v in self.cells.items()}, "manual": self.manual,
                "verdicts": self.verdicts,
                "timings": self.timings,
                "seconds": round(self.seconds, 2)}


def _digests(folders) -> dict:
    found = {}
    for folder in folders:
        if folder.exists():
            found.update({p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
                          if p.is_file()})
    return found


def _restore(before: dict, snapshot: Path, base: Path, folders) -> list[str]:
    """Put back every file of ``before`` that changed or vanished (from ``snapshot``, which mirrors
    ``base``) and remove files that appeared inside ``folders``; returns the paths touched."""
    touched = []
    after = _digests(folders)
    for path, digest in before.items():
        if after.get(path) != digest:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(snapshot / path.relative_to(base), path)
            touched.append(str(path))
    for path in set(after) - set(before):
        path.unlink()
        touched.append(str(path))
    return touched


def _events(log: list[dict]) -> tuple[list[str], list[str]]:
    """Problems (one line each) and status words from the executor's cell log."""
    problems, status, timed_out = [], [], []
    for record in log:
        event, cell = record.get("event"), record["cell"]
        if event in ("cpu limit", "wall limit"):
            kind = "CPU" if event == "cpu limit" else "wall"
            problems.append(f"cell {cell} stopped at its {kind} limit ({record['cpu']:.0f} s of CPU, "
                            f"{record['wall']:.0f} s of wall time); it scores 0 and the notebook went on")
            timed_out.append(cell)
        elif event == "kernel stopped answering":
            problems.append(f"the kernel stopped answering in cell {cell} ({record['cpu']:.0f} s of CPU, "
                            f"{record['wall']:.0f} s) and was stopped; the cells after it did not run")
            status.append(f"kernel stopped in cell {cell}")
        elif event == "kernel died":
            detail = f" ({record['detail']})" if record.get("detail") else ""
            problems.append(f"the kernel died in cell {cell}{detail} after {record['wall']:.0f} s; "
                            "the cells after it did not run")
            status.append(f"kernel died in cell {cell}")
    if timed_out:
        status.insert(0, f"timed out in cell{'s' if len(timed_out) > 1 else ''} {', '.join(timed_out)}")
    not_run = [r["cell"] for r in log if r.get("event") == "not run"]
    if not_run:
        problems.append(f"not run: {', '.join(not_run)}")
    return problems, status


def _grade_one(root: Path, assignment: str, student: str, submission: Path, work: Path, timeout: float,
               gradebook: Path, prepared, library: Path, scratch: Path, sandbox: bool = True) -> GradeResult:
    """Autograde ``submission`` (a folder holding the student's notebook) in the private course ``work``,
    starting from the gradebook copy ``gradebook`` (which holds no earlier grade of this student): nbgrader
    runs the notebook (in the sandbox, with the grading build ``library`` of bnn_teach and each verdict's
    probe after its test cell); the scores are the verdicts of ``prepared``, judged here. ``scratch``: a short
    folder for nbgrader's and its kernels' temporary files (removed with the grader's own)."""
    import json
    import time

    import nbformat
    from nbgrader.api import Gradebook

    from bnn_teach.grading import verdicts
    from bnn_teach.grading.execute import LOG_ENV

    result = GradeResult(student, assignment)
    (work / "course").mkdir(parents=True)
    shutil.copy2(root / CONFIG, work / CONFIG)
    shutil.copy2(gradebook, work / "course" / "gradebook.db")
    shutil.copytree(submission, work / "course" / "submitted" / student / assignment)
    log_path = work / "cells.json"
    checks = work / "verdicts"
    checks.mkdir()
    (checks / "probes.json").write_text(json.dumps(prepared.probes))
    start = time.perf_counter()
    graded = False
    try:
        done = _nbgrader(["autograde", assignment, "--student", student, "--force",
                          f"--GuardedExecute.sandbox={sandbox}", f"--GuardedExecute.verdict_dir={checks}",
                          f"--GuardedExecute.library={library}"], work, timeout=timeout,
                         env={LOG_ENV: str(log_path), "TMPDIR": str(scratch)})
        graded = done.returncode == 0
        if not graded:
            result.problems.append(f"nbgrader could not grade it: {_nbgrader_error(done)}")
            result.status = "grader failed"
    except subprocess.TimeoutExpired:
        result.problems.append(f"grading took longer than {timeout:.0f} s and was stopped")
        result.status = "stopped"
    result.seconds = time.perf_counter() - start
    if log_path.exists():
        result.timings = json.loads(log_path.read_text())
        problems, status = _events(result.timings)
        result.problems += problems
        if status and result.status == "ok":
            result.status = "; ".join(status)
    observed_path = checks / "observed.json"
    observed = json.loads(observed_path.read_text()) if graded and observed_path.exists() else {}
    notebook_path = submission / f"{assignment}.ipynb"
    code = verdicts.student_code(nbformat.read(notebook_path, as_version=4)) if notebook_path.exists() else ""
    with Gradebook(_db_url(work)) as gb:
        for notebook in gb.find_assignment(assignment).notebooks:
            answers = {cell.name for cell in notebook.solution_cells}
            for cell in notebook.grade_cells:
                maximum = float(cell.max_score)
                if cell.name in answers:  # a written answer, graded by hand
                    result.manual[cell.name] = maximum
                    continue
                if cell.name not in prepared.spec.verdicts:
                    passed, message = False, "the grader has no verdict for this cell: tell the instructor"
                    result.problems.append(f"{cell.name}: no verdict in solutions/{assignment}/_verdicts.py")
                elif not graded:  # never a score beside a failure of the grader
                    passed, message = False, "not graded: see the problems above"
                else:
                    passed, message = verdicts.judge(prepared, cell.name, observed.get(cell.name))
                    shortcuts = verdicts.forbidden_uses(prepared.spec.verdicts[cell.name], code)
                    if passed and shortcuts:
                        passed, message = False, (f"uses {', '.join(shortcuts)}, which this task asks you to "
                                                   "write yourself")
                result.cells[cell.name] = (maximum if passed else 0.0, maximum)
                result.verdicts[cell.name] = message
    graded_folder = work / "course" / "autograded" / student / assignment
    target = root / "course" / "autograded" / student / assignment
    shutil.rmtree(target, ignore_errors=True)
    if graded_folder.exists():
        for path in graded_folder.glob("*.ipynb"):
            _show_verdicts(path, result)
        shutil.copytree(graded_folder, target)
    return result


def _show_verdicts(path: Path, result: GradeResult) -> None:
    """Each test cell of the autograded notebook ``path`` gets one more output: the grader's verdict."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in result.cells:
            score, maximum = result.cells[grade_id]
            verdict = "passed" if score == maximum else result.verdicts.get(grade_id, "failed")
            cell.setdefault("outputs", []).append(nbformat.v4.new_output(
                "stream", name="stdout", text=f"Grader's check: {score:g} / {maximum:g} points. {verdict}\n"))
    _rewrite(path, notebook)


def _rewrite(path: Path, notebook) -> None:
    """Write ``notebook`` over ``path``, which nbgrader leaves read-only (0444) for anyone but root; the mode stays."""
    import nbformat

    mode = path.stat().st_mode
    path.chmod(mode | 0o200)
    try:
        nbformat.write(notebook, path)
    finally:
        path.chmod(mode)


def _without_student(gradebook: Path, assignment: str, student: str) -> None:
    """Remove ``student``'s submission of ``assignment`` from a gradebook copy (so nothing stale is read)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook("sqlite:///" + str(gradebook)) as gb, gb.db.no_autoflush, contextlib.suppress(MissingEntry):
        gb.remove_submission(assignment, student)


def _merge(root: Path, result: GradeResult) -> None:
    """Write one student's autograded scores into the course gradebook (nothing else changes); the caller
    holds the gradebook lock."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(_db_url(root)) as gb:
        gb.update_or_create_student(result.student)
        try:
            gb.find_submission(result.assignment, result.student)
        except MissingEntry:
            # nbgrader builds the submission's rows before adding them: with autoflush on, SQLAlchemy warns that
            # they are not in the session yet (SAWarning). Not flushing until they are avoids the warning
            # itself; a warnings filter would not: the filters are the process's, and the other grading thread
            # sets and restores them too (the warning then reached the grader's output now and then).
            with gb.db.no_autoflush:
                gb.add_submission(result.assignment, result.student)
        for notebook in gb.find_assignment(result.assignment).notebooks:
            answers = {cell.name for cell in notebook.solution_cells}
            for cell in notebook.grade_cells:
                if cell.name in answers:  # graded by hand: its manual score, if any, stays
                    continue
                grade = gb.find_grade(cell.name, notebook.name, result.assignment, result.student)
                grade.auto_score = result.cells.get(cell.name, (0.0, 0.0))[0]
        gb.db.commit()


def _log_path(root: Path, assignment: str, student: str) -> Path:
    """Where a graded submission's status, problems and cell times are kept (``course/grading_log/``)."""
    return root / "course" / "grading_log" / assignment / f"{student}.json"


def _require_assignment(root: Path, assignment: str) -> None:
    known = assignments_of(root)
    if assignment not in known:
        raise FileNotFoundError(f"no assignment {assignment!r} in this course; the assignments are "
                                f"{', '.join(known)}")
    if not (root / "course" / "gradebook.db").exists():
        raise FileNotFoundError(f"no gradebook: run `bnn-teach grade release {assignment}` first")


def autograde(assignment: str, students=None, root=None, timeout: float = 3600, progress: bool = True,
              jobs: int | None = None, sandbox: bool | None = None) -> list[GradeResult]:
    """Autograde ``course/submitted/<student>/<assignment>/`` for each student (default: all who
    submitted), each in isolation, ``jobs`` at a time (default: the CPU cores), and merge each one's scores
    into ``course/gradebook.db`` under its lock. Each result has a status (``ok``, ``timed out in cell X``,
    ``kernel died in cell X``, ``test cells edited``, ``wrong assignment``, ``grader failed``) and its
    problems, one line each; both are kept in ``course/grading_log/<assignment>/<student>.json``.
    ``timeout``: seconds for one whole submission (a backstop: each cell has its own CPU and wall limits,
    ``GuardedExecute`` in ``course/nbgrader_config.py``). ``sandbox``: run each kernel in the sandbox of
    :mod:`bnn_teach.grading.sandbox` (default: when one can be made here; without one, every result's
    status says ``unsandboxed`` and a problem line says why)."""
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from bnn_teach.data.mnist import keep_decompressed
    from bnn_teach.grading import verdicts
    from bnn_teach.grading.sandbox import unavailable

    root = course_root(root)
    _require_assignment(root, assignment)
    submitted = root / "course" / "submitted"
    if students is None:
        students = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())
    if not students:
        raise FileNotFoundError(f"no submissions of {assignment} in {submitted}/<student>/{assignment}/")
    missing = [s for s in students if not (submitted / s / assignment).is_dir()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} has not submitted {assignment} "
                                f"({submitted / missing[0] / assignment})")
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(students)))
    no_sandbox = unavailable() if sandbox is not False else "graded without a sandbox, as asked"
    if sandbox and no_sandbox:
        raise RuntimeError(no_sandbox)
    guard = GradebookGuard(root)
    # every submission (of every assignment) as it is before anyone's code runs: what a submission's code
    # changes there is put back; new files are removed only inside these folders (a collect may add others)
    folders = sorted(p for p in submitted.glob("*/*") if p.is_dir())
    results = {}
    spec = verdicts.load(assignment, root)
    stop = threading.Event()
    # nbgrader's and its kernels' temporary files (their sockets need a short path), removed at the end
    scratch = Path(tempfile.mkdtemp(prefix="bnnt-", dir="/tmp" if os.path.isdir("/tmp") else None))
    with _terminate_as_interrupt(), tempfile.TemporaryDirectory(prefix="bnn-teach-grade-") as tmp, \
            _removed(scratch):
        tmp = Path(tmp)
        # the references, inputs and probes, and the library without the functions the students rebuild,
        # all made here before any student's code runs
        prepared = verdicts.prepare(spec)
        keep_decompressed()  # full MNIST decompressed once, here: the kernels cannot write the cache in the sandbox
        library = verdicts.grading_build(spec.absent, tmp / "library")
        snapshot = tmp / "snapshot"
        for folder in folders:
            shutil.copytree(folder, snapshot / folder.relative_to(submitted))
        before = _digests(folders)
        with guard.locked():
            tampered_before = guard.begin()
            shutil.copy2(guard.path, tmp / "gradebook.db")  # the start of every private course
        try:
            def grade(student: str) -> GradeResult | None:
                if stop.is_set():
                    return None
                folder = snapshot / student / assignment  # graded from the snapshot
                notebook = folder / f"{assignment}.ipynb"
                start_db = tmp / f"gradebook-{student}.db"
                shutil.copy2(tmp / "gradebook.db", start_db)
                _without_student(start_db, assignment, student)
                if notebook.exists():
                    structure = _structure_problems(notebook, root)
                else:
                    structure = [f"no {assignment}.ipynb in the submission (the file name must stay "
                                 f"{assignment}.ipynb)"]
                result = _grade_one(root, assignment, student, folder, tmp / "work" / student, timeout, start_db,
                                    prepared, library, scratch, sandbox=no_sandbox is None)
                if stop.is_set():  # interrupted: what the grader was doing is not a grade
                    return None
                if no_sandbox:
                    result.status += "; unsandboxed"
                    result.problems.append(f"unsandboxed: {no_sandbox}")
                result.problems[:0] = structure  # edited or deleted test cells: nbgrader graded the originals
                if not notebook.exists():
                    result.status = "wrong assignment"
                elif structure and result.status == "ok":
                    result.status = "test cells edited"
                with guard.locked():
                    touched = _restore(before, snapshot, submitted, folders)
                    if guard.verify():
                        touched.append(str(guard.path))
                    if touched:
                        result.problems.append("files outside the submission's own copy changed while it was "
                                               "graded; restored: " + ", ".join(touched))
                    _merge(root, result)
                    guard.accept()
                    log = _log_path(root, assignment, student)
                    log.parent.mkdir(parents=True, exist_ok=True)
                    log.write_text(json.dumps(result.to_dict(), indent=1))
                return result

            bar = tqdm(total=len(students), desc=f"autograde {assignment}", unit="student", disable=not progress)
            pool = ThreadPoolExecutor(max_workers=jobs)
            try:
                for result in pool.map(grade, students):
                    results[result.student] = result
                    bar.update()
            except BaseException:  # Ctrl-C or SIGTERM: end every nbgrader and its kernels, merge nothing more
                stop.set()
                for process in list(_RUNNING):
                    _end_group(process)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                bar.close()
        finally:
            with guard.locked():
                guard.end()
    ordered = [results[s] for s in students]
    if tampered_before and ordered:
        ordered[0].problems.append(f"the gradebook had been changed outside the grader; restored {guard.path}")
    return ordered


def _strip_hidden(notebook) -> int:
    """Remove every hidden test from ``notebook`` in place: the code between the hidden-test markers (one
    comment line says tests were removed) and tracebacks of test cells (their message stays); returns the
    number of cells changed."""
    changed = 0
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("grade") and not meta.get("solution")) or cell.cell_type != "code":
            continue
        lines, kept, inside = cell.source.splitlines(), [], False
        for line in lines:
            if "### BEGIN HIDDEN TESTS" in line:
                inside = True
                kept.append(line[: len(line) - len(line.lstrip())] + "# (hidden tests: not shown)")
            elif "### END HIDDEN TESTS" in line:
                inside = False
            elif not inside:
                kept.append(line)
        cell.source = "\n".join(kept)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = f"{output.ename}: {output.evalue}" if output.evalue else output.ename
                output.traceback = [message]
        changed += kept != lines
    return changed


def _failure_page(result: dict) -> str:
    import html

    rows = "".join(f"<tr><td>{html.escape(cell)}</td><td>{score:g} / {maximum:g}</td></tr>"
                   for cell, (score, maximum) in result["cells"].items())
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in result["problems"])
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(result['assignment'])}: "
            f"feedback</title></head><body><h1>{html.escape(result['assignment'])}: feedback for "
            f"{html.escape(result['student'])}</h1><p>Score: {result['score']:g} / {result['max_score']:g} "
            f"({html.escape(result['status'])})</p><p>Your notebook could not be graded as a whole:</p>"
            f"<ul>{problems}</ul><table><tr><th>test</th><th>points</th></tr>{rows}</table></body></html>")


def feedback(assignment: str, root=None) -> Path:
    """HTML feedback per graded student under ``course/feedback/<student>/<assignment>/``: nbgrader's page
    made from the autograded notebook **with every hidden test removed** (each test cell shows its name,
    verdict and message, never a hidden test's code), and, for a submission that could not be graded, a
    page that says why."""
    import json

    import nbformat

    root = course_root(root)
    _require_assignment(root, assignment)
    logs = sorted((root / "course" / "grading_log" / assignment).glob("*.json"))
    graded = sorted(p.parent.name for p in (root / "course" / "autograded").glob(f"*/{assignment}") if p.is_dir())
    if not logs and not graded:
        raise FileNotFoundError(f"nothing graded yet for {assignment}: run `bnn-teach grade autograde "
                                f"{assignment}` first")
    guard = GradebookGuard(root)
    with tempfile.TemporaryDirectory(prefix="bnn-teach-feedback-") as tmp:
        work = Path(tmp)
        (work / "course").mkdir()
        shutil.copy2(root / CONFIG, work / CONFIG)
        with guard.locked():
            shutil.copy2(guard.path, work / "course" / "gradebook.db")
        for student in graded:
            source = root / "course" / "autograded" / student / assignment
            target = work / "course" / "autograded" / student / assignment
            shutil.copytree(source, target)
            for path in target.glob("*.ipynb"):
                notebook = nbformat.read(path, as_version=4)
                _strip_hidden(notebook)
                _rewrite(path, notebook)
        if graded:
            done = _nbgrader(["generate_feedback", assignment, "--force"], work)
            if done.returncode != 0:
                raise RuntimeError(f"nbgrader generate_feedback {assignment} failed: {_nbgrader_error(done)}")
        for student in graded:
            made = work / "course" / "feedback" / student / assignment
            if made.exists():
                target = root / "course" / "feedback" / student / assignment
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(made, target)
    for log in logs:
        result = json.loads(log.read_text())
        page = root / "course" / "feedback" / result["student"] / assignment / f"{assignment}.html"
        if not page.exists():
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(_failure_page(result))
    for page in (root / "course" / "feedback").glob(f"*/{assignment}/{assignment}.html"):
        # what nbgrader's release_feedback needs to hand the page to this submission's student alone
        for name in ("timestamp.txt", "submission_secret.txt"):
            source = root / "course" / "submitted" / page.parent.parent.name / assignment / name
            if source.exists() and not (page.parent / name).exists():
                shutil.copy2(source, page.parent / name)
    return root / "course" / "feedback"


def scores(root=None) -> list[dict]:
    """Every submission: ``{"student", "assignment", "score", "max_score", "status", "to_grade"}``; ``status``
    is the grader's (``ok``, ``timed out in cell X``, ...) or ``not run`` for a submission not yet autograded
    (its score is then None); ``to_grade``: the points of written answers not yet graded by hand (in the
    Formgrader), part of ``max_score`` and not yet of ``score``."""
    import json

    from nbgrader.api import Gradebook

    root = course_root(root)
    rows = {}
    if (root / "course" / "gradebook.db").exists():
        with Gradebook(_db_url(root)) as gb:
            for assignment in gb.assignments:
                for submission in assignment.submissions:
                    log = _log_path(root, assignment.name, submission.student.id)
                    status = json.loads(log.read_text())["status"] if log.exists() else "ok"
                    pending = sum(float(grade.max_score) for notebook in submission.notebooks
                                  for grade in notebook.grades
                                  if grade.auto_score is None and grade.manual_score is None)
                    rows[(submission.student.id, assignment.name)] = {
                        "student": submission.student.id, "assignment": assignment.name,
                        "score": float(submission.score), "max_score": float(submission.max_score),
                        "status": status, "to_grade": pending}
    for folder in sorted((root / "course" / "submitted").glob("*/*")):
        key = (folder.parent.name, folder.name)
        if folder.is_dir() and key not in rows:
            rows[key] = {"student": key[0], "assignment": key[1], "score": None, "max_score": None,
                         "status": "not run", "to_grade": None}
    return sorted(rows.values(), key=lambda r: (r["student"], r["assignment"]))


def format_scores(rows: list[dict]) -> str:
    """A table, one row per student, one column per assignment (``score/max``, ``*`` when the grader's
    status is not ``ok``), the total, and below it one line per submission whose status is not ``ok`` and one
    (``+``) per submission with written answers still to grade by hand."""
    assignments = sorted({r["assignment"] for r in rows})
    students = sorted({r["student"] for r in rows})
    cell = {(r["student"], r["assignment"]): r for r in rows}
    width = max([len(s) for s in students] + [7])
    lines = [f"{'student':<{width}}  " + "  ".join(f"{a:>14}" for a in assignments) + "       total"]
    flagged, pending = [], []
    for student in students:
        got = [cell.get((student, a)) for a in assignments]
        text = []
        for r in got:
            if r is None:
                text.append("-")
            elif r["score"] is None:
                text.append("not run")
            else:
                text.append(f"{r['score']:g}/{r['max_score']:g}" + ("*" if r["status"] != "ok" else ""))
            if r is not None and r["status"] != "ok":
                flagged.append(f"* {student} {r['assignment']}: {r['status']}")
            if r is not None and r.get("to_grade"):
                pending.append(f"+ {student} {r['assignment']}: {r['to_grade']:g} points of written answers to "
                               "grade by hand (Formgrader)")
        total = sum(r["score"] for r in got if r and r["score"] is not None)
        maximum = sum(r["max_score"] for r in got if r and r["max_score"] is not None)
        lines.append(f"{student:<{width}}  " + "  ".join(f"{t:>14}" for t in text) + f"  {total:g}/{maximum:g}")
    return "\n".join(lines + ([""] + flagged if flagged else []) + ([""] + pending if pending else []))


def write_scores_csv(rows: list[dict], path) -> Path:
    """One row per submission: student, assignment, score, max_score, status, to_grade (empty scores: not
    run; to_grade: points of written answers not yet graded by hand)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["student", "assignment", "score", "max_score", "status",
                                                    "to_grade"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_scores(rows: list[dict], path) -> Path:
    """A histogram of the scores, one panel per assignment, as percent of the maximum."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    assignments = sorted({r["assignment"] for r in rows})
    fig, axes = plt.subplots(1, max(1, len(assignments)), figsize=(3.5 * max(1, len(assignments)), 3), squeeze=False)
    for ax, assignment in zip(axes.flat, assignments):
        values = [100 * r["score"] / r["max_score"] for r in rows
                  if r["assignment"] == assignment and r["max_score"] and r["score"] is not None]
        ax.hist(values, bins=range(0, 105, 5), edgecolor="k", label=f"{len(values)} students")
        ax.set_title(assignment)
        ax.set_xlabel("score (% of the maximum)")
        ax.set_ylabel("students")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # whole students
        ax.legend(fontsize=8)
    fig.suptitle("Scores per assignment")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------------------------------
# the student's check before handing in


def _grade_ids(notebook) -> list[str]:
    return [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("grade_id")]


def _structure_problems(path: Path, root: Path) -> list[str]:
    """Problems nbgrader grades around (a test cell deleted, duplicated or edited), one line each."""
    problems, _, _ = _compare_with_release(path, root)
    return problems


def _compare_with_release(path: Path, root: Path):
    """(structural problems, the submitted notebook, the released notebook); either notebook is None when
    it cannot be read or found."""
    import nbformat
    from nbgrader.utils import compute_checksum

    try:
        submitted = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - an unreadable file is the one problem to report
        return [f"{path} is not a readable notebook ({type(err).__name__}: {err})"], None, None
    release_path = root / "assignments" / path.stem / f"{path.stem}.ipynb"
    if not release_path.exists():
        known = sorted(p.name for p in (root / "assignments").iterdir() if p.is_dir())
        return [f"{path.name} is not an assignment of this course (keep the file name; assignments: "
                f"{', '.join(known)})"], submitted, None
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
    return problems, submitted, released


def _unfinished(submitted, released) -> list[str]:
    """Answers not written yet (the release's stub still there) and answer cells moved below a test that
    follows them in the release, one line each."""
    from bnn_teach.grading.execute import cell_label

    problems = []
    for number, cell in enumerate(submitted.cells):
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            continue
        if cell.cell_type == "code" and "raise NotImplementedError()" in cell.source:
            problems.append(f"cell {cell_label(cell, number)} not done yet: it still has the stub "
                            "`raise NotImplementedError()`")
        elif cell.cell_type == "markdown" and "YOUR ANSWER HERE" in cell.source:
            problems.append(f"answer {cell_label(cell, number)} not written yet (it still says YOUR ANSWER HERE)")
    order = {grade_id: n for n, grade_id in enumerate(_grade_ids(submitted))}
    released_cells = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade_id")]
    for n, cell in enumerate(released_cells):
        meta = cell.metadata["nbgrader"]
        if not meta.get("solution") or meta["grade_id"] not in order:
            continue
        for later in released_cells[n + 1:]:
            test = later.metadata["nbgrader"]
            is_test = test.get("grade") and not test.get("solution")
            if is_test and order.get(test["grade_id"], 1e9) < order[meta["grade_id"]]:
                problems.append(f"cell {meta['grade_id']} is below the test {test['grade_id']} that checks it: "
                                "move it back above (tests run top to bottom)")
                break
    return problems


def check_submission(path, root=None, timeout: int | None = None, run: bool = True) -> list[str]:
    """What would go wrong when ``path`` (a student's ``.ipynb``) is graded, one line each: not one of the
    course's assignments, a graded or test cell deleted, duplicated or edited, an answer not written yet
    or moved below its test, and, with ``run``, a cell that raises, passes its limit or loses the kernel
    when the notebook runs top to bottom the way the grader runs it (one thread, the same limits).
    ``timeout`` overrides the wall limit of a cell. An empty list: ready to hand in."""
    path = Path(path)
    root = course_root(root)
    problems, submitted, released = _compare_with_release(path, root)
    if submitted is None or released is None:
        return problems
    problems += _unfinished(submitted, released)
    if run and not problems:
        problems += _run_problems(submitted, path.parent, root, timeout)
    return problems


def _course_config(root: Path):
    """The course's nbgrader config (its GuardedExecute limits), read as nbgrader reads it."""
    from traitlets.config.loader import PyFileConfigLoader

    previous = os.environ.get("BNN_TEACH_COURSE_ROOT")
    os.environ["BNN_TEACH_COURSE_ROOT"] = str(root)
    try:
        return PyFileConfigLoader(CONFIG.name, path=str(root / CONFIG.parent)).load_config()
    finally:
        if previous is None:
            os.environ.pop("BNN_TEACH_COURSE_ROOT", None)
        else:
            os.environ["BNN_TEACH_COURSE_ROOT"] = previous


def _run_problems(notebook, folder: Path, root: Path, timeout: float | None) -> list[str]:
    from bnn_teach.grading.execute import ONE_THREAD, GuardedExecute, cell_label

    executor = GuardedExecute(config=_course_config(root), kernel_name="python3",
                              extra_arguments=["--IPKernelApp.log_level=ERROR"])
    executor.sandbox = False  # the student's own code on the student's own machine
    if timeout is not None:
        executor.wall_limit = float(timeout)
    saved = {key: os.environ.get(key) for key in ONE_THREAD}
    try:
        executor.preprocess(notebook, {"metadata": {"path": str(folder)}})
    except Exception as err:  # noqa: BLE001 - a kernel that cannot start is reported, not raised
        return [f"the notebook could not be run: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"]
    finally:
        for key, value in saved.items():  # the executor set the grader's environment for its kernel
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    problems, _ = _events(executor.cell_log)
    stopped = {r["cell"] for r in executor.cell_log if r.get("event")}
    for number, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader", {})
        name = cell_label(cell, number)
        if name in stopped:
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            unfinished = output.ename == "NotImplementedError"
            first = output.evalue.splitlines()[0] if output.evalue else ""
            if meta.get("grade") and not meta.get("solution"):
                what = ("something it calls is not written yet (NotImplementedError)" if unfinished
                        else f"{output.ename}: {first}")
                problems.append(f"test {name} fails: {what}")
            elif unfinished:
                problems.append(f"cell {name} not done yet (it still raises NotImplementedError)")
            else:
                problems.append(f"cell {name} raises {output.ename}: {first}")
            break
    return problems
