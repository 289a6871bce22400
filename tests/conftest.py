"""Shared test set-up: offline by default, Agg backend, a fixture for the full MNIST when present."""
import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("BNN_TEACH_OFFLINE", "1")
# one torch thread per pytest-xdist worker (the workers already share the cores), else at most two
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(1 if WORKERS > 1 else min(2, torch.get_num_threads()))
if WORKERS > 1:  # and in every process a test starts (kernels, servers): with more runnable threads than cores,
    # OpenMP's threads spin at each barrier waiting for one another, and a notebook's run took 135 s instead of 11
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

REPO = Path(__file__).resolve().parents[1]


def full_mnist_root():
    """The folder holding full MNIST (``$BNN_TEACH_DATA`` or ``../shared/data``), or None."""
    for candidate in (os.environ.get("BNN_TEACH_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def executed_lecture(tmp_path_factory):
    """``executed_lecture(source)``: the lecture run once per test run in FAST mode with its check-yourself
    answers probed (notebooks.run_notebooks), whichever test asks first; the pytest-xdist workers share the
    result (a folder beside theirs, a lock per lecture). Returns ``(status, error, path of the executed
    notebook)``."""
    import fcntl
    import json

    from bnn_teach import notebooks

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above every worker's own
    shared = shared / "executed_lectures"
    shared.mkdir(exist_ok=True)

    def run(source: Path):
        record = shared / f"{source.stem}.json"
        with open(shared / f"{source.stem}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not record.exists():
                [result] = notebooks.run_notebooks([source], fast=True, progress=False, check_answers=True,
                                                   save=shared)
                record.write_text(json.dumps({"status": result.status, "error": result.error}))
            done = json.loads(record.read_text())
        return done["status"], done["error"], shared / f"{source.stem}.ipynb"

    return run


@pytest.fixture
def mnist_root():
    root = full_mnist_root()
    if root is None:
        pytest.skip("full MNIST not available (set BNN_TEACH_DATA)")
    return root


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No BNN_TEACH_DATA, an empty private cache, offline."""
    monkeypatch.delenv("BNN_TEACH_DATA", raising=False)
    monkeypatch.setenv("BNN_TEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BNN_TEACH_OFFLINE", "1")
    return tmp_path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Scheduling (make test: pytest-xdist, --dist load): idle workers take the next test in collection order, so the
# long tests go first, in this order, and the short ones fill in at the end: the run ends soon after its last
# long test instead of waiting on one started late. Within a group, and for everything else, pytest's order.
LONG_FIRST = (
    "tests/test_hub.py::test_a_class",
    "tests/test_notebooks.py::test_course_notebook_runs_in_fast_mode_and_its_checks_tell_right_from_wrong[L08",
    "tests/test_grading.py::test_release_from_solutions",
    "tests/test_grading_hostile.py",
    "tests/test_grading.py::test_hostile",
    "tests/test_sparsity.py::test_sparsevd_on_random_labels",
    "tests/test_grading.py::test_a_failure_costs",
    "tests/test_sparsity.py::test_sparsevd_lenet300",
    "tests/test_notebooks.py::test_course_notebook_runs_in_fast_mode",
    "tests/test_grading.py",
    "tests/test_grading_sandbox.py",
    "tests/test_reproduce.py::test_gallery",
    "tests/test_browser.py",
)


def pytest_configure(config):
    try:  # the course's extra (nbgrader, so SQLAlchemy) is not in the library-only environment CI also tests
        import sqlalchemy  # noqa: F401
    except ImportError:
        return
    # the grader writes the gradebook without SQLAlchemy warnings: any is an error
    config.addinivalue_line("filterwarnings", "error::sqlalchemy.exc.SAWarning")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        return next((i for i, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: pytest's order within each rank
