"""Dishonest submissions graded beside honest students, in the sandbox (bnn_teach/grading/sandbox.py): none
can read the instructor's files, change another grade or file, leave a startup file or a process behind, or
stop the grading of the students after it; none gains a point by silencing or forging the asserts in its own
kernel (verdicts are reached outside it, bnn_teach/grading/verdicts.py) or by reaching the library's reference
(absent from the grading build, or flagged)."""
import hashlib
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from test_grading import A1_SLOW, make_course, solution_submission, submit, with_cell

from bnn_teach import grading
from bnn_teach.grading.sandbox import unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
NAME = "A1_reparam_kl"
CORRECT = ("import torch.nn.functional as F\n\ndef sample_weights(mu, rho, eps):\n"
           "    return mu + F.softplus(rho) * eps\n")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hostile_submissions_in_the_sandbox_leave_everyone_else_intact(tmp_path):
    root = make_course(tmp_path, [NAME], timeout=10, grace=3, without=A1_SLOW)
    grading.release(NAME, root=root)
    alice = submit(root, "alice", NAME, solution_submission(root, NAME))
    [first] = grading.autograde(NAME, students=["alice"], root=root, progress=False)
    assert first.score == first.max_score == 20 and "unsandboxed" not in first.status

    import bnn_teach

    package = Path(bnn_teach.__file__).resolve().parent
    guarded = {p: digest(p) for p in (root / "course" / "gradebook.db", alice,
                                      root / "solutions" / NAME / f"{NAME}.py", package / "grading" / "__init__.py")}
    writes = "".join(f"try:\n    open({str(p)!r}, 'a').write('# forged')\n    print('wrote', {p.name!r})\n"
                     f"except OSError:\n    pass\n" for p in guarded)
    hostile = {
        "reader": ("import bnn_teach\nfrom pathlib import Path\n"
                   "mine = Path(bnn_teach.__file__).parents[1] / 'solutions' / 'A1_reparam_kl' / 'A1_reparam_kl.py'\n"
                   f"for p in (mine, Path({str(root / 'solutions' / NAME / f'{NAME}.py')!r})):\n"
                   "    print(p.read_text() if p.exists() else 'absent')\n"),
        "writer": writes,
        "starter": ("from pathlib import Path\nfor home in (Path.home(), Path('/root')):\n"
                    "    p = home / '.ipython/profile_default/startup/00-all-pass.py'\n"
                    "    try:\n        p.parent.mkdir(parents=True, exist_ok=True)\n"
                    "        p.write_text('raise SystemExit')\n    except OSError:\n        pass\n"),
        "killer": ("import os, signal, psutil\nfor p in psutil.process_iter():\n    if p.pid != os.getpid():\n"
                   "        try:\n            p.kill()\n        except psutil.Error:\n            pass\n"
                   "try:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n"),
        "detacher": "import subprocess\nsubprocess.Popen(['sleep', '777.25'], start_new_session=True)\n",
        "forker": ("import os, time\nfor _ in range(2000):\n    try:\n        if os.fork() == 0:\n"
                   "            time.sleep(30)\n            os._exit(0)\n    except OSError:\n        break\n"),
    }
    for student, code in hostile.items():
        submit(root, student, NAME, with_cell(root, NAME, "sample_weights", code + CORRECT))
    submit(root, "zoe", NAME, solution_submission(root, NAME))  # graded after all of them
    order = [*hostile, "zoe", "alice"]
    results = {r.student: r for r in grading.autograde(NAME, students=order, root=root, progress=False, jobs=1)}

    assert results["zoe"].score == 20 and results["alice"].score == 20, "honest students after them: full marks"
    gradebook = root / "course" / "gradebook.db"  # changed by the grader itself: its grades are checked below
    changed = [str(p) for p, d in guarded.items() if p != gradebook and digest(p) != d]
    assert not changed, f"no instructor's or classmate's file changed: {changed}"
    written = nbformat.read(root / "course" / "autograded" / "writer" / NAME / f"{NAME}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in written.cells if c.cell_type == "code" for o in c.outputs)
    assert "wrote" not in printed, f"a write outside its folder succeeded: {printed}"
    assert all("restored" not in " ".join(r.problems) for r in results.values()), "nothing had to be put back"
    graded = root / "course" / "autograded" / "reader" / NAME / f"{NAME}.ipynb"
    text = "".join(o.get("text", "") for c in nbformat.read(graded, as_version=4).cells if c.cell_type == "code"
                   for o in c.outputs)
    assert "BEGIN SOLUTION" not in text and text.count("absent") == 2, "the solutions were not there to read"
    assert not (Path.home() / ".ipython/profile_default/startup/00-all-pass.py").exists()
    time.sleep(1)
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[:2] == ["sleep", "777.25"]]
    assert not left, "a detached process did not outlive its kernel"
    for student in ("killer", "forker"):
        assert results[student].cells["test_sample_weights"][0] == 3, f"{student}: graded to the end of its cell"
    rows = {r["student"]: r["score"] for r in grading.scores(root)}
    assert rows["alice"] == rows["zoe"] == 20


def blank_with(root, cells: dict):
    """The blank release (every answer `raise NotImplementedError()`) with some answer cells replaced."""
    notebook = nbformat.read(root / "assignments" / NAME / f"{NAME}.ipynb", as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in cells:
            cell.source = cells[grade_id]
    return notebook


#: One pasted cell that makes every visible assert pass or vanish; the answers stay unanswered or wrong.
FORGERS = {
    "transformer": ("get_ipython().input_transformers_post.append(\n"  # every later test cell becomes `pass`
                    "    lambda lines: ['pass\\n'] if lines and lines[0].startswith('\"\"\"') else lines)\n"),
    "swallower": ("def swallow(lines):\n"
                  "    return (['try:\\n'] + ['    ' + l for l in lines]\n"
                  "            + ['\\n    pass\\nexcept BaseException:\\n    pass\\n'])\n"
                  "get_ipython().input_transformers_post.append(swallow)\n"),
    "handler": "get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)\n",
    "patcher": ("import math, numpy, torch\n"
                "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: False\n"
                "torch.testing.assert_close = lambda *a, **k: None\nmath.isclose = lambda *a, **k: True\n"
                "numpy.allclose = lambda *a, **k: True\ntorch.Tensor.all = lambda self, *a, **k: torch.tensor(True)\n"
                "class Anything(float):\n    shape = (4, 3)\n"
                "    def __getattr__(self, name):\n        return lambda *a, **k: self\n"
                "    def __eq__(self, other):\n        return True\n"
                "def sample_weights(mu, rho, eps):\n    return Anything()\n"),
}
#: Ways to keep or reach the library's reference while the task asks for one's own: each must score 0 there.
KL = "def kl_gaussian(mu_q, sigma_q, mu_p, sigma_p{extra}):\n    {body}\n"
REFERENCE_THIEVES = {
    "default_argument": KL.format(extra=", _ref=bt.kl.normal_normal", body="return _ref(mu_q, sigma_q, mu_p, sigma_p)"),
    "reload": "import importlib\n" + KL.format(
        extra="", body="return importlib.reload(bt.kl).normal_normal(mu_q, sigma_q, mu_p, sigma_p)"),
    "import_by_path": ("import importlib.util\n"
                       "spec = importlib.util.spec_from_file_location('copy_of_kl', bt.kl.__file__)\n"
                       "copy = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(copy)\n"
                       + KL.format(extra="", body="return copy.normal_normal(mu_q, sigma_q, mu_p, sigma_p)")),
    "gc_search": ("import gc\nfound = [f for f in gc.get_objects() if callable(f) and getattr(f, '__name__', '') == "
                  "'normal_normal' and 'absent' not in str(getattr(f, '__code__', None) and f.__code__.co_consts)]\n"
                  + KL.format(extra="", body="return found[0](mu_q, sigma_q, mu_p, sigma_p)")),
    "code_object": ("import types\nkl_gaussian = types.FunctionType(bt.kl.normal_normal.__code__, "
                    "bt.kl.normal_normal.__globals__)\n"
                    "kl_gaussian.__kwdefaults__ = bt.kl.normal_normal.__kwdefaults__\n"),
    "torch_private": KL.format(extra="", body="return torch.distributions.kl._kl_normal_normal("
                                            "torch.distributions.Normal(mu_q, sigma_q), "
                                            "torch.distributions.Normal(mu_p, sigma_p))"),
    "hidden_disarmed": ("import contextlib\nhidden = lambda *names: contextlib.nullcontext()\n"
                        + KL.format(extra="", body="return bt.kl.normal_normal(mu_q, sigma_q, mu_p, sigma_p)")),
}


def test_forged_verdicts_score_nothing_and_honest_students_keep_theirs(tmp_path):
    """Deleting or swallowing asserts, a custom exception handler and patched comparisons pass every visible
    assert but no verdict (the grade is decided outside the kernel); every way around the reference finds it
    absent or is flagged; the honest students graded among them keep full marks."""
    root = make_course(tmp_path, [NAME], without=A1_SLOW)
    grading.release(NAME, root=root)
    for student, code in FORGERS.items():
        submit(root, student, NAME, blank_with(root, {"sample_weights": code + "\nraise NotImplementedError()\n"
                                                      if "def sample_weights" not in code else code}))
    for student, code in REFERENCE_THIEVES.items():
        notebook = solution_submission(root, NAME)
        [cell] = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "kl_gaussian"]
        cell.source = code
        submit(root, student, NAME, notebook)
    submit(root, "alice", NAME, solution_submission(root, NAME))
    submit(root, "zoe", NAME, solution_submission(root, NAME))
    order = ["alice", *FORGERS, *REFERENCE_THIEVES, "zoe"]
    results = {r.student: r for r in grading.autograde(NAME, students=order, root=root, progress=False)}

    assert results["alice"].score == results["zoe"].score == 20, (results["alice"].verdicts, results["zoe"].verdicts)
    for student in FORGERS:
        graded = nbformat.read(root / "course" / "autograded" / student / NAME / f"{NAME}.ipynb", as_version=4)
        visible_errors = sum(o.get("output_type") == "error" for c in graded.cells
                             if c.metadata.get("nbgrader", {}).get("grade") for o in c.get("outputs", []))
        if student in ("transformer", "swallower"):  # the forgery worked inside the kernel: no visible test failed ...
            assert visible_errors == 0, f"{student}: the forgery should have silenced the visible asserts"
        assert results[student].score == 0, (student, results[student].cells)  # ... and it gained nothing
    kl_cells = ("test_kl_gaussian_basic", "test_kl_gaussian_values", "test_bayes_linear_kl")
    for student in REFERENCE_THIEVES:
        result = results[student]
        for cell in kl_cells:
            assert result.cells[cell][0] == 0, (student, cell, result.verdicts[cell])
        said = " ".join(result.verdicts[c] for c in kl_cells)
        assert "absent" in said or "torch.distributions' KL" in said or "IndexError" in said, (student, said)
        assert result.cells["test_sample_weights"] == (3.0, 3.0), f"{student}: its other answers keep their points"
