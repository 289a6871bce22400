"""The course's notebooks: generated from jupytext ``py:percent`` sources, and run headless.

Every notebook has one source, ``lectures/LNN_<slug>.py`` or ``solutions/<name>.py``; the ``.ipynb``
beside it is generated (``make notebooks``, i.e. ``bnn-teach notebooks``) without outputs, and
``bnn-teach notebooks --check`` (run by the tests) fails when a committed ``.ipynb`` differs from
what its source gives. ``bnn-teach run`` executes notebooks from their sources with nbclient, so
what runs is always the source, and prints a table of times and status.
"""
from __future__ import annotations

import ast
import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["sync", "stale", "run_notebooks", "skeleton_problems"]  # the rest serves the CLI (notebooks / run)

FOLDERS = ("lectures", "solutions")  # the folders whose .py files are notebook sources
KERNEL = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_QUIET = ["--IPKernelApp.log_level=ERROR"]  # no kernel start-up warnings (e.g. "running over TCP") in the report


# The repository students install from on Colab and the badges open: the one place that names it.
REPOSITORY = "bnn-teach/bnn_teach"
BRANCH = "main"

# Every notebook's first code cell, word for word (skeleton_problems checks it).
SETUP_CELL = f"""\
# Setup: on Colab (detected, not assumed) install the course's library from its repository, then
# `bnn-teach check --download` shows the device (Colab's GPU when the runtime has one) and fetches
# MNIST; on your own machine `make lab` has installed everything and this cell does nothing.
import os
import sys

if "google.colab" in sys.modules:
    import subprocess

    source = os.environ.get("BNN_TEACH_INSTALL", "git+https://github.com/{REPOSITORY}@{BRANCH}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"bnn_teach[course] @ {{source}}"], check=True)
    subprocess.run([sys.executable, "-m", "bnn_teach.cli", "check", "--download"], check=False)"""

PARAMETERS = ("SEED = ", "DEVICE = bt.utils.get_device()", "FAST = bt.utils.fast_mode()")
SELF_CHECK = re.compile(r"\bbt\.selfcheck\.(number|choice)\(")


def colab_badge(notebook: str) -> str:
    """The markdown of the "Open in Colab" badge of ``notebook`` (a path from the repository root)."""
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{notebook}"
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def skeleton_problems(source, root=None) -> list[str]:
    """What ``source`` lacks of the course's notebook skeleton (README.md, "Lectures"), one line each:
    a title with its Colab badge, :data:`SETUP_CELL` as the first code cell, a parameters cell
    (``SEED``, ``DEVICE``, ``FAST``) and, for a lecture, two or more check-yourself cells, a summary and
    references. An assignment's badge (``solutions/<id>/<id>.py``) opens its student release
    ``assignments/<id>/<id>.ipynb``; it is graded, so it has no check-yourself cells."""
    import jupytext

    source = Path(source).resolve()
    root = Path(root).resolve() if root is not None else _root()
    cells = jupytext.read(source, fmt="py:percent").cells
    problems = []
    first = cells[0] if cells else None
    if first is None or first.cell_type != "markdown" or not first.source.startswith("# "):
        problems.append("the first cell is not a markdown title ('# ...')")
    relative = source.with_suffix(".ipynb").relative_to(root).as_posix()
    assignment = relative.startswith("solutions/")
    if assignment:
        relative = "assignments/" + relative.removeprefix("solutions/")
    if first is None or colab_badge(relative) not in first.source:
        problems.append(f"the title cell lacks the Colab badge: {colab_badge(relative)}")
    code = [cell.source for cell in cells if cell.cell_type == "code"]
    if not code or code[0] != SETUP_CELL:
        problems.append("the first code cell is not notebooks.SETUP_CELL word for word")
    if not any(all(part in text for part in PARAMETERS) for text in code):
        problems.append("no parameters cell with " + ", ".join(PARAMETERS))
    if assignment:
        return problems
    checks = [text for text in code if SELF_CHECK.search(text)]
    if len(checks) < 2:
        problems.append(f"{len(checks)} check-yourself cell(s) (bt.selfcheck); a lecture has two or three")
    for text in checks:
        if not re.search(r"^answer = None\b", text, re.M):
            problems.append("a check-yourself cell does not start its answer as `answer = None`")
    headings = [line for cell in cells if cell.cell_type == "markdown" for line in cell.source.splitlines()]
    for title in ("## Summary", "## References"):
        if title not in headings:
            problems.append(f"no '{title}' section")
    return problems


def _root() -> Path:
    """The course root: the folder holding ``lectures/`` (the repository), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def sources(targets=None, root=None, notebooks: bool = False) -> list[Path]:
    """The ``py:percent`` sources named by ``targets``: ``"lectures"``, ``"solutions"``, folders or files
    (a ``.ipynb`` stands for the ``.py`` beside it). No targets: every source of both folders.
    ``notebooks=True`` (what ``bnn-teach run`` executes): a ``.ipynb`` without a source beside it, such as an
    assignment's student release, is taken as it is."""
    root = Path(root) if root is not None else _root()
    if not targets:  # the course's folders that exist
        targets = [root / folder for folder in FOLDERS if (root / folder).is_dir()]
    found = []
    for target in targets:
        path = Path(target)
        if not path.exists() and str(target) in FOLDERS:
            path = root / target
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.py")
                            if not p.name.startswith("_") and ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.with_suffix(".py").exists():
            found.append(path.with_suffix(".py"))
        elif path.suffix == ".py" and path.exists():
            found.append(path)
        elif notebooks and path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        elif not path.exists():
            raise FileNotFoundError(f"{target}: no such file or folder; the course's folders are {', '.join(FOLDERS)}")
        else:
            kinds = "a notebook (.ipynb), " if notebooks else ""
            raise FileNotFoundError(f"{target}: not {kinds}a notebook source (.py), a notebook with its source "
                                    f"beside it, or a folder; the course's folders are {', '.join(FOLDERS)}")
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
    """One executed notebook: ``status`` is ``"ok"``, ``"failed"`` or ``"corrupt"`` (an unreadable ``.ipynb``);
    ``error`` the failing cell and its
    traceback (empty when ok); ``notebook`` the executed notebook with its outputs, figures included."""

    path: Path
    seconds: float
    status: str
    error: str = ""
    notebook: object = None  # the executed notebook (without the answer probes)


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


def answer_probes(cell_source: str) -> list[str]:
    """For a check-yourself cell (``answer = None`` then ``bt.selfcheck.number(answer, expected, ...)``
    or ``bt.selfcheck.choice(answer, expected, options)``): code that runs the cell's check with the right
    answer and with each typical mistake it names (``mistakes`` keys; for a choice, every option) and
    asserts the verdict: right for the expected answer, "not yet" for each mistake."""
    tree = ast.parse(cell_source)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and ast.unparse(node.func) in ("bt.selfcheck.number", "bt.selfcheck.choice")]
    if len(calls) != 1:
        raise ValueError(f"a check-yourself cell calls bt.selfcheck once, found {len(calls)} calls")
    call = calls[0]
    named = {k.arg: k.value for k in call.keywords}
    positional = dict(zip(("answer", "expected", "options"), call.args))
    argument = {**positional, **named}
    if "expected" not in argument:
        raise ValueError("the check-yourself call has no expected value")
    call_text = ast.unparse(call)
    lines = cell_source.splitlines()
    setup = "\n".join(line for line in lines[:call.lineno - 1] if not re.match(r"^answer = None\b", line))
    expected = ast.unparse(argument["expected"])
    if ast.unparse(call.func).endswith("choice"):  # every option: right only for the expected one
        return [(f"{setup}\n__expected = ({expected})\nfor answer in ({ast.unparse(argument['options'])}):\n"
                 f"    __feedback = {call_text}\n"
                 f"    assert __feedback.right == (answer == __expected), f'wrong verdict on answer = {{answer!r}}'")]
    mistakes = argument.get("mistakes")
    wrong = [ast.unparse(key) for key in mistakes.keys] if isinstance(mistakes, ast.Dict) else []
    if not wrong:
        raise ValueError("the check-yourself call names no typical mistake (mistakes={value: meaning})")
    return [f"{setup}\nanswer = ({value})\n__feedback = {call_text}\n"
            f"assert {'' if right else 'not '}__feedback.right, 'the check gave the wrong verdict on answer = {value}'"
            for value, right in [(expected, True)] + [(w, False) for w in wrong]]


#: matplotlib's backend in an executed notebook: the inline one, as in JupyterLab, so every figure a cell
#: draws lands in its outputs as a PNG
INLINE = "module://matplotlib_inline.backend_inline"
#: a cell that draws: a plotting call of bt.viz or of pyplot
DRAWS = re.compile(r"\bbt\.viz\.(?:\w+\.)?(?:plot|show|draw)\w*\("
                   r"|\bplt\.(?:subplots|figure|plot|imshow|hist|scatter)\(")


def cells_without_figures(notebook) -> list[int]:
    """The 1-based numbers of the code cells that draw (:data:`DRAWS`) but show no image."""
    missing = []
    for number, cell in enumerate(notebook.cells, 1):
        if cell.cell_type != "code" or not DRAWS.search(cell.source) or "plt.close(" in cell.source:
            continue
        if not any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            missing.append(number)
    return missing


def cells_showing_a_repr(notebook) -> list[int]:
    """The 1-based numbers of the code cells whose value is a matplotlib object's repr (``Text(...)``,
    ``<matplotlib...>``): a drawing call left as the cell's last line, noise a student should not see."""
    return [number for number, cell in enumerate(notebook.cells, 1) if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "execute_result"
            and output["data"].get("text/plain", "").lstrip("[").startswith(("Text(", "<matplotlib"))]


def run_notebooks(targets=None, fast: bool = False, timeout: int = 600, progress: bool = True,
                  root=None, check_answers: bool = False, save=None) -> list[RunResult]:
    """Execute each notebook of ``targets`` (sources, or ``.ipynb`` files) top to bottom in a fresh ``python3``
    kernel, in its own
    folder, with matplotlib's inline backend (figures land in the outputs), the interpreter's ``bin`` first
    on ``PATH`` (for ``!bnn-teach``) and, when ``fast``, ``BNN_TEACH_FAST=1``. A cell running longer than
    ``timeout`` seconds fails the notebook. ``check_answers``: then run every check-yourself cell with its
    right answer and with each typical mistake (:func:`answer_probes`); a wrong verdict fails the notebook.
    ``save``: a folder that receives each executed notebook (``<name>.ipynb``, outputs and figures kept)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    paths = sources(targets, root, notebooks=True)
    results = []
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {"MPLBACKEND": INLINE, "PATH": path, **({"BNN_TEACH_FAST": "1"} if fast else {})}
    if save is not None:
        save = Path(save)
        save.mkdir(parents=True, exist_ok=True)
    for source in tqdm(paths, desc="notebooks", unit="notebook", disable=not progress or not paths):
        if source.suffix == ".ipynb":
            try:
                notebook = nbformat.read(source, as_version=4)
            except Exception as err:  # noqa: BLE001 - not JSON, not a notebook, an unknown format: all corrupt
                results.append(RunResult(source, 0.0, "corrupt", f"not a readable notebook, the file is corrupt "
                                         f"({type(err).__name__}: {' '.join(str(err).split())[:200]})"))
                continue
        else:
            notebook = jupytext.read(source, fmt="py:percent")
        client = NotebookClient(notebook, kernel_name=KERNEL, timeout=timeout, extra_arguments=_QUIET,
                                resources={"metadata": {"path": str(source.parent)}})
        start, own = time.perf_counter(), len(notebook.cells)
        try:
            with _environment(**env), client.setup_kernel():
                probes = [code for cell in notebook.cells if cell.cell_type == "code" and check_answers
                          and SELF_CHECK.search(cell.source) for code in answer_probes(cell.source)]
                for code in probes:
                    notebook.cells.append(nbformat.v4.new_code_cell(code))
                for index, cell in enumerate(notebook.cells):
                    client.execute_cell(cell, index)
            del notebook.cells[own:]
            results.append(RunResult(source, time.perf_counter() - start, "ok", notebook=notebook))
        except Exception as err:  # noqa: BLE001 - any failure is reported, then the next notebook runs
            failure = _failure(err, notebook)
            del notebook.cells[own:]
            results.append(RunResult(source, time.perf_counter() - start, "failed", failure, notebook=notebook))
        if save is not None:
            nbformat.write(notebook, save / f"{source.stem}.ipynb")
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
