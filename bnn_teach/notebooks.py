"""The course's notebooks: generated from jupytext ``py:percent`` sources, and run headless.

Every notebook has one source, ``lectures/LNN_<slug>.py`` or ``solutions/<name>.py``; the ``.ipynb``
beside it is generated (``make notebooks``, i.e. ``bnn-teach notebooks``) without outputs, and
``bnn-teach notebooks --check`` (run by the tests) fails when a committed ``.ipynb`` differs from
what its source gives. ``bnn-teach run`` executes notebooks from their sources with nbclient, so
what runs is always the source, and prints a table of times and status.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["sync", "stale", "run_notebooks"]  # the rest serves the CLI (bnn-teach notebooks / run)

FOLDERS = ("lectures", "solutions")  # the folders whose .py files are notebook sources
KERNEL = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_QUIET = ["--IPKernelApp.log_level=ERROR"]  # no kernel start-up warnings (e.g. "running over TCP") in the report


def _root() -> Path:
    """The course root: the folder holding ``lectures/`` (the repository), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def sources(targets=None, root=None) -> list[Path]:
    """The ``py:percent`` sources named by ``targets``: ``"lectures"``, ``"solutions"``, folders or files
    (a ``.ipynb`` stands for the ``.py`` beside it). No targets: every source of both folders."""
    root = Path(root) if root is not None else _root()
    if not targets:  # the course's folders that exist
        targets = [root / folder for folder in FOLDERS if (root / folder).is_dir()]
    found = []
    for target in targets:
        path = Path(target)
        if not path.exists() and str(target) in FOLDERS:
            path = root / target
        if path.is_dir():
            found += sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.suffix == ".ipynb" and path.with_suffix(".py").exists():
            found.append(path.with_suffix(".py"))
        elif path.suffix == ".py" and path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{target}: not a notebook source (.py), a notebook with its source beside "
                                    f"it, or a folder; the course's folders are {', '.join(FOLDERS)}")
    return found


def generate(source) -> str:
    """The ``.ipynb`` text that ``source`` (jupytext ``py:percent``) gives: no outputs, kernel ``python3``,
    cell metadata (e.g. nbgrader's) kept."""
    import jupytext
    import nbformat

    notebook = jupytext.read(Path(source), fmt="py:percent")
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.pop("id", None)
    notebook.nbformat, notebook.nbformat_minor = 4, 4  # no cell ids: a stable text, the same on every machine
    return nbformat.writes(notebook) + "\n"


def stale(targets=None, root=None) -> list[Path]:
    """The ``.ipynb`` files that are missing or differ from what their sources give."""
    out = []
    for source in sources(targets, root):
        notebook = source.with_suffix(".ipynb")
        if not notebook.exists() or notebook.read_text(encoding="utf-8") != generate(source):
            out.append(notebook)
    return out


def sync(targets=None, root=None) -> list[Path]:
    """Write each stale ``.ipynb`` from its source; returns the files written."""
    written = []
    for source in sources(targets, root):
        notebook, text = source.with_suffix(".ipynb"), generate(source)
        if not notebook.exists() or notebook.read_text(encoding="utf-8") != text:
            notebook.write_text(text, encoding="utf-8")
            written.append(notebook)
    return written


@dataclass
class RunResult:
    """One executed notebook: ``status`` is ``"ok"`` or ``"failed"``; ``error`` the failing cell and its
    traceback (empty when ok)."""

    path: Path
    seconds: float
    status: str
    error: str = ""


@contextlib.contextmanager
def _environment(**values):
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failure(err, notebook) -> str:
    """The failing cell's source and the error's traceback, without terminal colours."""
    from nbclient.exceptions import CellExecutionError

    if isinstance(err, CellExecutionError):
        for number, cell in enumerate(notebook.cells, 1):
            error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
            if cell.cell_type == "code" and error is not None:
                traceback = _ANSI.sub("", "\n".join(error.get("traceback", []))).strip()
                return f"cell {number}:\n{cell.source}\n\n{traceback or f'{error.ename}: {error.evalue}'}"
        return _ANSI.sub("", str(err)).strip()
    return f"{type(err).__name__}: {err}"


def run_notebooks(targets=None, fast: bool = False, timeout: int = 600, progress: bool = True,
                  root=None) -> list[RunResult]:
    """Execute each notebook source of ``targets`` top to bottom in a fresh ``python3`` kernel, in its own
    folder, with ``MPLBACKEND=Agg`` and, when ``fast``, ``BNN_TEACH_FAST=1``. A cell running longer
    than ``timeout`` seconds fails the notebook."""
    import jupytext
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    paths = sources(targets, root)
    results = []
    env = {"MPLBACKEND": "Agg", **({"BNN_TEACH_FAST": "1"} if fast else {})}
    for source in tqdm(paths, desc="notebooks", unit="notebook", disable=not progress or not paths):
        notebook = jupytext.read(source, fmt="py:percent")
        client = NotebookClient(notebook, kernel_name=KERNEL, timeout=timeout, extra_arguments=_QUIET,
                                resources={"metadata": {"path": str(source.parent)}})
        start = time.perf_counter()
        try:
            with _environment(**env):
                client.execute()
            results.append(RunResult(source, time.perf_counter() - start, "ok"))
        except Exception as err:  # noqa: BLE001 - any failure is reported, then the next notebook runs
            results.append(RunResult(source, time.perf_counter() - start, "failed", _failure(err, notebook)))
    return results


def format_results(results: list[RunResult]) -> str:
    """A table of notebook, seconds and status, then each failure's cell and traceback."""
    width = max([len(str(r.path)) for r in results] + [8])
    lines = [f"{'notebook':<{width}}  {'seconds':>8}  status"]
    lines += [f"{str(r.path):<{width}}  {r.seconds:>8.1f}  {r.status}" for r in results]
    for r in results:
        if r.error:
            lines += ["", f"--- {r.path}: " + r.error]
    return "\n".join(lines)
