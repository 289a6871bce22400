"""The sandbox a submission's kernel runs in (bnn_teach/grading/sandbox.py), tried the way a dishonest or
careless submission would: it must not see the course, keep files between kernels, reach the network,
outlive its kernel, or take the machine's memory, processes or disk."""
import socket
import time
from pathlib import Path

import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from bnn_teach._cache import cache_dir
from bnn_teach.grading.execute import GuardedExecute
from bnn_teach.grading.sandbox import LIMITS, unavailable

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


def run(sources, workdir):
    notebook = new_notebook(cells=[new_code_cell(s) for s in sources])
    executor = GuardedExecute(sandbox=True, cpu_limit=20, wall_limit=60, interrupt_grace=5)
    executor.preprocess(notebook, {"metadata": {"path": str(workdir)}})
    return notebook.cells, executor.cell_log


def out(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream").strip()


def errors(cell):
    return [o.ename for o in cell.outputs if o.output_type == "error"]


def test_the_kernel_sees_only_its_folder_and_what_it_needs_to_run(tmp_path):
    (tmp_path / "given.txt").write_text("data for the student")
    cells, _ = run([
        "import os, torch, bnn_teach as bt\nfrom pathlib import Path\n"
        "print(torch.get_num_threads(), Path('given.txt').read_text())",
        f"print([p for p in ({str(ROOT / 'solutions')!r}, {str(ROOT / 'course')!r}, {str(ROOT)!r} + '/tests',"
        f" {str(tmp_path.parent)!r} + '/other') if os.path.exists(p)])",
        "print(Path(bt.__file__).parents[1].joinpath('solutions').exists())",
        f"Path('answer.txt').write_text('42'); print(sorted(os.listdir({str(tmp_path.parent)!r})))",
        "import subprocess\nprint(subprocess.run(['id', '-u'], capture_output=True, text=True).returncode)",
        "from bnn_teach._cache import cache_dir\nprint(cache_dir(), os.access(cache_dir(), os.W_OK))",
    ], tmp_path)
    assert out(cells[0]) == "1 data for the student", [c.outputs for c in cells]
    assert out(cells[1]) == "[]", "the course, solutions, tests and other folders are not visible"
    assert out(cells[2]) == "False", "the package's checkout shows no solutions/"
    assert (tmp_path / "answer.txt").read_text() == "42", "its own folder is writable"
    assert out(cells[3]) == str([tmp_path.name]), "beside its own folder, nothing of the grader's /tmp"
    assert out(cells[5]) == f"{cache_dir().resolve()} False", "the grader's cache (full MNIST), read-only"


def test_no_startup_file_or_home_survives_between_kernels(tmp_path):
    startup = "~/.ipython/profile_default/startup/00-cheat.py"
    cells, _ = run([f"from pathlib import Path\np = Path({startup!r}).expanduser()\n"
                    "p.parent.mkdir(parents=True, exist_ok=True)\np.write_text('CHEATED = True')\nprint(p)"], tmp_path)
    assert out(cells[0]).startswith("/tmp/home/"), out(cells[0])
    cells, _ = run(["print('CHEATED' in globals())"], tmp_path)
    assert out(cells[0]) == "False", "the next kernel starts with an empty HOME"


def test_no_network(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        cells, _ = run([f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                        "    print('connected')\nexcept OSError as err:\n    print('refused', type(err).__name__)"],
                       tmp_path)
    finally:
        server.close()
    assert out(cells[0]).startswith("refused"), out(cells[0])


def test_a_detached_process_ends_with_its_kernel(tmp_path):
    marker = "4321.5"
    cells, _ = run([f"import subprocess\np = subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
                    "print(p.pid > 0)"], tmp_path)
    assert out(cells[0]) == "True"
    time.sleep(1)
    alive = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]
    assert not alive, "the sandbox's PID namespace ended everything the kernel started"


def test_memory_file_size_and_process_limits_cost_only_the_cell(tmp_path):
    gib = LIMITS["memory"] // 2**30 + 2
    cells, log = run([
        f"import numpy as np\ntry:\n    np.ones({gib} * 2**30, dtype=np.uint8)\n"
        "except MemoryError:\n    print('memory')",
        f"try:\n    open('big', 'wb').write(b'0' * {LIMITS['file_size'] + 2**20})\nexcept OSError as err:\n"
        "    print('file size', err.errno)",
        "import os, time\nn = 0\ntry:\n    for _ in range(300):\n        if os.fork() == 0:\n"
        "            time.sleep(2)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)",
        "print('still here')",
    ], tmp_path)
    assert out(cells[0]) == "memory"
    assert out(cells[1]) == "file size 27", "EFBIG: the file size limit"
    forks = int(out(cells[2]))
    if Path("/sys/fs/cgroup/pids/cgroup.procs").exists() or Path("/sys/fs/cgroup/cgroup.procs").exists():
        assert forks < LIMITS["processes"], f"{forks} processes: the pids limit did not hold"
    assert out(cells[3]) == "still here"
