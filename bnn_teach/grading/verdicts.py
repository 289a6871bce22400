"""Verdicts: how a test cell's points are decided without trusting the student's code (the trusted side).

Every graded cell of an assignment has a :class:`Verdict` in ``solutions/<id>/_verdicts.py`` (instructor-only:
never released, never visible to a graded kernel). Grading a submission goes:

1. **Before any student code runs**, in the grader's own process: each verdict's ``inputs`` are drawn from a
   seeded generator and its ``reference`` values computed from them with the real library and
   ``torch.distributions`` (:func:`prepare`).
2. **Inside the sandbox** (:mod:`bnn_teach.grading.execute`): right after the test cell ran, the verdict's
   ``probe`` runs in the student's kernel on those inputs: it calls the student's functions and leaves
   ``result = {name: tensor | array | number}``, which travels back as an ``.npz`` archive (numbers only:
   no pickled object is ever read, :func:`decode`). The library functions the assignment asks students to
   rebuild are absent from that kernel's ``bnn_teach`` (:func:`grading_build`).
3. **Outside the sandbox**, in the grader's process: ``judge(observed, reference, inputs)`` compares, and
   the student's code is scanned for library shortcuts the task forbids (:func:`forbidden_uses`). The cell
   scores its points when the judge passes, else 0, with the judge's message for the feedback.

The notebook's own asserts stay for the student's feedback while they work; a grade never depends on
them, so deleting or swallowing them, patching comparison functions or writing to a gradebook gains nothing.

A verdict file defines ``VERDICTS`` (a list of :class:`Verdict`), ``ABSENT`` (dotted names of library
functions and classes absent while a submission runs) and optionally ``SEED``::

    VERDICTS = [Verdict("test_kl_gaussian_values",
                        inputs=lambda g: {"mu_q": torch.randn(200, generator=g, dtype=torch.float64), ...},
                        probe="result = {'kl': kl_gaussian(mu_q, sigma_q, mu_p, sigma_p)}",
                        reference=lambda x: {"kl": bt.kl.normal_normal(x["mu_q"], ...)},
                        judge=judge_kl, forbid={r"kl_divergence": "torch.distributions' KL"})]
"""
from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import io
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Verdict", "Failed", "check", "close", "load", "prepare", "probe_source", "decode", "judge",
           "forbidden_uses", "grading_build", "MARK"]

#: The line prefix the probe prints its result after (base64 of an ``.npz`` archive).
MARK = "bnn-teach-verdict:"
MAX_RESULT_CHARS = 32 * 2**20


class Failed(Exception):
    """A verdict's judge rejects the result; the message is what the student reads."""


def check(condition, message: str) -> None:
    """Fail the verdict with ``message`` unless ``condition`` (never stripped, unlike ``assert`` under -O)."""
    if not bool(condition):
        raise Failed(message)


def close(observed, expected, rtol: float = 1e-6, atol: float = 1e-8) -> bool:
    """``observed`` has ``expected``'s shape and values (float64, NaN never close)."""
    import torch

    observed, expected = torch.as_tensor(observed, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    return observed.shape == expected.shape and bool(torch.allclose(observed, expected, rtol=rtol, atol=atol))


@dataclass
class Verdict:
    """How one graded cell (``grade_id``) is decided. ``inputs(generator) -> {name: tensor | number}`` (drawn
    by the grader, bound as names in the probe); ``probe``: Python run in the student's kernel after the test
    cell, which sets ``result`` to a dict of tensors, arrays or numbers; ``reference(inputs) -> dict``
    (computed by the grader before any student code runs); ``judge(observed, reference, inputs)`` raises
    :class:`Failed` with the student's message (``observed``: float64 tensors); ``forbid``: regular
    expressions over the student's code -> what the shortcut is (its use scores 0)."""

    grade_id: str
    probe: str
    judge: Callable
    inputs: Callable | None = None
    reference: Callable | None = None
    forbid: dict = field(default_factory=dict)


@dataclass
class Spec:
    """An assignment's verdicts (by grade id), the library names absent while it is graded, its seed."""

    assignment: str
    verdicts: dict
    absent: tuple
    seed: int = 0
    digest: str = ""  # sha256 of the _verdicts.py it was loaded from


@dataclass
class Prepared:
    """What the grader holds for one assignment before any submission runs: inputs, references, probes."""

    spec: Spec
    inputs: dict
    references: dict
    probes: dict


def load(assignment: str, root: Path) -> Spec:
    """``root/solutions/<assignment>/_verdicts.py`` as a :class:`Spec`; refuses a missing file in one line."""
    path = Path(root) / "solutions" / assignment / "_verdicts.py"
    if not path.exists():
        raise FileNotFoundError(f"no verdicts for {assignment}: {path} is missing (every graded cell needs one)")
    spec = importlib.util.spec_from_file_location(f"bnn_teach_verdicts_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verdicts = {}
    for verdict in module.VERDICTS:
        if verdict.grade_id in verdicts:
            raise ValueError(f"{path}: two verdicts for {verdict.grade_id}")
        verdicts[verdict.grade_id] = verdict
    return Spec(assignment, verdicts, tuple(getattr(module, "ABSENT", ())), int(getattr(module, "SEED", 0)),
                hashlib.sha256(path.read_bytes()).hexdigest())


def _generator(seed: int, grade_id: str):
    import torch

    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(grade_id.encode()))


def encode(values: dict) -> str:
    """A dict of tensors, arrays and numbers as base64 of an ``.npz`` archive (numbers only)."""
    import numpy as np
    import torch

    arrays = {}
    for key, value in values.items():
        if torch.is_tensor(value):
            value = value.detach().cpu().numpy()
        arrays[key] = np.asarray(value)
        if arrays[key].dtype == object:
            raise TypeError(f"{key}: only tensors, arrays and numbers can be sent")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def decode(text: str) -> dict:
    """The probe's result from its base64 ``.npz`` archive as float64 tensors; never unpickles anything."""
    import numpy as np
    import torch

    if len(text) > MAX_RESULT_CHARS:
        raise ValueError(f"the result is larger than {MAX_RESULT_CHARS // 2**20} MiB")
    with np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False) as archive:
        return {key: torch.from_numpy(np.asarray(archive[key], dtype=np.float64)) for key in archive.files}


# What runs in the student's kernel: decode the inputs, run the probe in a copy of the notebook's names (it
# changes none of them), send ``result`` back as numbers. Nothing the student's code returns is unpickled.
_HARNESS = '''\
def __bnn_teach_probe(namespace):
    import base64, io, sys
    import numpy, torch
    with numpy.load(io.BytesIO(base64.b64decode({inputs!r})), allow_pickle=False) as archive:
        inputs = {{key: torch.from_numpy(archive[key]) for key in archive.files}}
    scope = dict(namespace)
    scope.update(inputs)
    exec(compile({code!r}, "<the grader's check of {grade_id}>", "exec"), scope)
    arrays = {{}}
    for key, value in dict(scope["result"]).items():
        if torch.is_tensor(value):
            value = value.detach().cpu().double() if value.is_floating_point() else value.detach().cpu()
            value = value.numpy()
        arrays[str(key)] = numpy.asarray(value, dtype=numpy.float64)
    buffer = io.BytesIO()
    numpy.savez(buffer, **arrays)
    sys.stdout.write("\\n{mark}" + base64.b64encode(buffer.getvalue()).decode() + "\\n")
    sys.stdout.flush()
__bnn_teach_probe(globals())
del __bnn_teach_probe
'''


def probe_source(verdict: Verdict, inputs: dict) -> str:
    """The code run in the student's kernel for ``verdict`` on ``inputs`` (which it carries as data)."""
    return _HARNESS.format(inputs=encode(inputs), code=verdict.probe, grade_id=verdict.grade_id, mark=MARK)


_PREPARED: dict = {}  # (assignment, digest of its _verdicts.py) -> Prepared, for this process


def prepare(spec: Spec, cached: bool = True) -> Prepared:
    """Inputs, references and probe sources of every verdict, computed here before any student code runs;
    once per process for a given ``_verdicts.py`` (a reference may train a network) unless ``cached=False``."""
    key = (spec.assignment, spec.digest)
    if cached and spec.digest and key in _PREPARED:
        return _PREPARED[key]
    inputs, references, probes = {}, {}, {}
    for grade_id, verdict in spec.verdicts.items():
        x = verdict.inputs(_generator(spec.seed, grade_id)) if verdict.inputs else {}
        inputs[grade_id] = x
        references[grade_id] = verdict.reference(x) if verdict.reference else {}
        probes[grade_id] = probe_source(verdict, x)
    prepared = Prepared(spec, inputs, references, probes)
    if spec.digest:
        _PREPARED[key] = prepared
    return prepared


def observed_result(outputs: list) -> tuple[str | None, str | None]:
    """(the base64 result, None) from a probe cell's outputs, or (None, what went wrong)."""
    for output in outputs:
        if output.get("output_type") == "error":
            return None, f"{output.get('ename', 'error')}: {output.get('evalue', '')}".strip()
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")
    found = [line[len(MARK):] for line in text.splitlines() if line.startswith(MARK)]
    if not found:
        return None, "the check's result never arrived (was the output redirected?)"
    return found[-1].strip(), None


def judge(prepared: Prepared, grade_id: str, record: dict | None) -> tuple[bool, str]:
    """(passed, message) for one cell from the probe's ``record``: ``{"data": base64}``, ``{"error": what the
    student's code raised}`` or ``{"missing": why no check ran}``."""
    verdict = prepared.spec.verdicts[grade_id]
    if not record:
        return False, "not checked: the cell did not run to its end"
    if record.get("missing"):
        return False, record["missing"]
    if record.get("error", "").startswith("NotImplementedError"):
        return False, "not answered yet: replace `raise NotImplementedError()` with your code"
    if record.get("error"):
        return False, f"your code raised an error when the grader called it: {record['error']}"
    try:
        observed = decode(record["data"])
    except Exception as error:  # a result that is not an npz of numbers
        return False, f"the check's result could not be read ({type(error).__name__})"
    try:
        verdict.judge(observed, prepared.references[grade_id], prepared.inputs[grade_id])
    except Failed as failure:
        return False, str(failure)
    except KeyError as missing:
        return False, f"the check could not compute {missing} from your code's results"
    except (RuntimeError, ValueError, TypeError, IndexError) as error:  # shapes or values the judge cannot use
        return False, f"your results could not be compared with the expected ones ({type(error).__name__}: {error})"
    return True, "passed"


def _code_without_comments(source: str) -> str:
    import tokenize

    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        return " ".join(t.string for t in tokens if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source


def student_code(notebook) -> str:
    """The code a student wrote: every cell nbgrader lets them edit (``solution``) and every unmarked code cell."""
    parts = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("solution") or not meta):
            parts.append(cell.source)
    return "\n".join(parts)


def forbidden_uses(verdict: Verdict, code: str) -> list[str]:
    """What ``code`` uses of the shortcuts ``verdict`` forbids (comments ignored)."""
    text = _code_without_comments(code)
    return [what for pattern, what in verdict.forbid.items() if re.search(pattern, text)]


# ----------------------------------------------------------------------------------------------------------
# the grading build of bnn_teach: the library with the functions an assignment rebuilds taken out


def _refusal(name: str) -> list[ast.stmt]:
    message = f"{name} is absent while this assignment is graded: the task is to build it yourself"
    return ast.parse(f"raise RuntimeError({message!r})").body


def _strip_definition(source: str, attribute: str, name: str) -> str:
    """``source`` with the top-level function or class ``attribute`` emptied: every body refuses."""
    tree = ast.parse(source)
    found = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attribute:
            node.body, found = _refusal(name), True
        elif isinstance(node, ast.ClassDef) and node.name == attribute:
            kept = []
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    item.body = _refusal(name)
                    kept.append(item)
                elif not (isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)):
                    kept.append(item)
            node.body, found = kept or [ast.Pass()], True
    if not found:
        raise LookupError(f"{name}: no top-level def or class {attribute} in its module")
    return ast.unparse(tree) + "\n"


def grading_build(absent, folder: Path) -> Path:
    """A copy of the ``bnn_teach`` package under ``folder`` in which each dotted name of ``absent`` (a function
    or class, given where the course names it, e.g. ``bnn_teach.nn.BayesLinear``) keeps its signature but
    refuses when called, in the module that defines it; returns the copy's package folder. The sandbox
    mounts it in place of the real package, so no saved reference, reload, import by path or ``gc`` finds
    the original code."""
    import importlib
    import inspect

    import bnn_teach

    package = Path(bnn_teach.__file__).resolve().parent
    target = Path(folder) / "bnn_teach"
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in absent:
        module_name, _, attribute = name.rpartition(".")
        obj = getattr(importlib.import_module(module_name), attribute)
        defining = inspect.getmodule(obj)
        path = Path(inspect.getsourcefile(defining)).resolve()
        if package not in path.parents:
            raise ValueError(f"{name} is not defined in bnn_teach ({path}): forbid it in the verdict instead")
        copy = target / path.relative_to(package)
        copy.write_text(_strip_definition(copy.read_text(), obj.__name__, name))
    return target
