"""Dishonest submissions graded beside an honest student, in the sandbox (bnn_teach/grading/sandbox.py): none
can read the instructor's files, change another grade or file, leave a startup file or a process behind, or
stop the grading of the students after it. (Verdicts that a submission's own code could still sway from
inside its kernel, such as swallowed asserts, are the next step of the grader and not claimed here.)"""
import hashlib
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from test_grading import make_course, solution_submission, submit, with_cell

from bnn_teach import grading
from bnn_teach.grading.sandbox import unavailable

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
NAME = "A1_reparam_kl"
CORRECT = ("import torch.nn.functional as F\n\ndef sample_weights(mu, rho, eps):\n"
           "    return mu + F.softplus(rho) * eps\n")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hostile_submissions_in_the_sandbox_leave_everyone_else_intact(tmp_path):
    root = make_course(tmp_path, [NAME], timeout=10, grace=3)
    grading.release(NAME, root=root)
    alice = submit(root, "alice", NAME, solution_submission(root, NAME))
    [first] = grading.autograde(NAME, students=["alice"], root=root, progress=False)
    assert first.score == first.max_score == 24 and "unsandboxed" not in first.status

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

    assert results["zoe"].score == 24 and results["alice"].score == 24, "honest students after them: full marks"
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
    assert rows["alice"] == rows["zoe"] == 24
