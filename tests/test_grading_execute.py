"""GuardedExecute, the graded kernel's runner: one thread, CPU and wall limits per cell, a dead or silent kernel
costing only the cells it did not reach (bnn_teach/grading/execute.py). Tiny notebooks, no nbgrader round trip."""
import json

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from bnn_teach.grading.execute import LOG_ENV, GuardedExecute


def run(sources, tmp_path, **limits):
    notebook = new_notebook(cells=[new_code_cell(s) for s in sources])
    executor = GuardedExecute(**{"cpu_limit": 3, "wall_limit": 8, "interrupt_grace": 3, **limits})
    executor.preprocess(notebook, {"metadata": {"path": str(tmp_path)}})
    return notebook, {r["cell"]: r for r in executor.cell_log}


def errors(cell):
    return [(o.ename, o.evalue) for o in cell.outputs if o.output_type == "error"]


def texts(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_one_thread_cpu_and_wall_limits_and_the_notebook_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "log.json"))
    notebook, log = run([
        "import os, torch\nprint(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], "
        "os.environ['MKL_NUM_THREADS'])",
        "while True:\n    pass",                                  # a runaway loop: stopped by its CPU time
        "import time\ntime.sleep(4)\nprint('slept')",             # 4 s of wall, no CPU: below the wall limit
        "time.sleep(1000)",                                       # blocks: stopped by the wall limit
        "print('still here')",
    ], tmp_path)
    cells = notebook.cells
    assert texts(cells[0]).split() == ["1", "1", "1"], "the graded kernel runs torch and BLAS on one thread"
    assert log["cell 2"]["event"] == "cpu limit" and 3 <= log["cell 2"]["cpu"] < 6, log["cell 2"]
    assert errors(cells[1])[-1][0] == "CellTimeoutError" and "3 s of CPU time" in errors(cells[1])[-1][1]
    assert "event" not in log["cell 3"] and texts(cells[2]) == "slept\n", "sleeping is not CPU time"
    assert log["cell 4"]["event"] == "wall limit" and log["cell 4"]["cpu"] < 1, log["cell 4"]
    assert texts(cells[4]) == "still here\n" and not errors(cells[4]), "the notebook goes on after a limit"
    assert [r["cell"] for r in json.loads((tmp_path / "log.json").read_text())] == [f"cell {i}" for i in range(1, 6)]


def test_a_cell_is_charged_the_cpu_of_the_processes_it_starts(tmp_path):
    """A cell that sleeps while a grandchild spins is stopped at its CPU limit: the watchdog counts the CPU of
    every live process below the kernel (walked from /proc/PID/task/TID/children on Linux, as psutil finds them)."""
    spin = "import time\\nwhile time.process_time() < 6: pass"  # ends by itself after 6 s of its own CPU
    notebook, log = run([
        f"import subprocess, sys, time\nsubprocess.Popen(['sh', '-c', sys.executable + ' -c \"{spin}\"'])\n"
        "time.sleep(60)",
    ], tmp_path, wall_limit=40)
    assert log["cell 1"]["event"] == "cpu limit" and log["cell 1"]["cpu"] >= 3, log["cell 1"]


def test_descendants_are_those_psutil_finds(monkeypatch):
    import subprocess
    import sys
    import time

    import psutil

    from bnn_teach.grading import execute

    tree = subprocess.Popen(["sh", "-c", f"sh -c 'sleep 5' & {sys.executable} -c 'import time; time.sleep(5)' & wait"])
    try:
        time.sleep(1)
        root = psutil.Process(tree.pid)
        expected = sorted(p.pid for p in root.children(recursive=True))
        assert len(expected) >= 3, expected  # a shell, the sleep it started and a python
        assert sorted(p.pid for p in execute._descendants(root)) == expected
        monkeypatch.setattr(execute, "_PROC_CHILDREN", False)  # where Linux does not list children
        assert sorted(p.pid for p in execute._descendants(root)) == expected
    finally:
        for p in psutil.Process(tree.pid).children(recursive=True):
            p.kill()
        tree.kill()
        tree.wait()


@pytest.mark.parametrize("fault, event", [
    ("import os\nos._exit(3)", "kernel died"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "kernel died"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)", "kernel stopped answering"),  # a silent kernel
])
def test_a_lost_kernel_costs_the_cells_it_did_not_reach(tmp_path, fault, event):
    notebook, log = run(["x = 41\nprint(x + 1)", fault, "print(x)", "print('never')"], tmp_path, wall_limit=5)
    cells = notebook.cells
    assert texts(cells[0]) == "42\n" and not errors(cells[0]), "the cell before keeps its output"
    assert log["cell 2"]["event"] == event, log
    assert errors(cells[1])[-1][0] in ("KernelDied", "CellTimeoutError")
    for cell in cells[2:]:
        [(name, message)] = errors(cell)
        assert name == "NotRun" and "cell 2" in message, "a cell after the lost kernel is an error naming where"
    if fault.startswith("import os\nos._exit"):
        assert log["cell 2"]["detail"] == "exit code 3"


def test_nbgrader_error_names_the_error_not_see_above():
    import subprocess

    from bnn_teach.grading import _nbgrader_error

    stderr = ("[AutogradeApp | INFO] Autograding A1\n"
              "[AutogradeApp | ERROR] There was an error processing assignment: /x/A1\n"
              "Traceback (most recent call last):\n  File \"x.py\", line 3, in run\n    go()\n"
              "sqlite3.OperationalError: database is locked\n"
              "[AutogradeApp | ERROR] Please see the error log (see the above traceback) for details\n")
    message = _nbgrader_error(subprocess.CompletedProcess(["nbgrader"], 1, "", stderr))
    assert message == ("There was an error processing assignment: /x/A1; "
                       "sqlite3.OperationalError: database is locked")
    assert _nbgrader_error(subprocess.CompletedProcess(["nbgrader"], 3, "", "")) == "exit code 3"
