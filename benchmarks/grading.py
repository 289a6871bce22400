"""Seconds to autograde one submission (the solution) of each assignment, as `bnn-teach grade autograde` does it:
a private copy of the course, nbgrader in a subprocess, the scores merged into the gradebook.

    python benchmarks/grading.py            (target: <= 60 s per student on 2 CPU cores)
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from bnn_teach import grading

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    names = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    print(f"{'assignment':<16} {'seconds':>8} {'score':>8}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "course").mkdir()
        shutil.copy2(ROOT / "course" / "nbgrader_config.py", root / "course")
        for name in names:
            shutil.copytree(ROOT / "solutions" / name, root / "solutions" / name)
            shutil.copytree(ROOT / "assignments" / name, root / "assignments" / name)
            grading.release(name, root=root)
            folder = root / "course" / "submitted" / "student" / name
            folder.mkdir(parents=True)
            nbformat.write(grading.solution_submission(name, root=root), folder / f"{name}.ipynb")
            start = time.perf_counter()
            [result] = grading.autograde(name, root=root, progress=False)
            seconds = time.perf_counter() - start
            worst = max(worst, seconds)
            print(f"{name:<16} {seconds:>8.1f} {result.score:>4g}/{result.max_score:g}", flush=True)
    print(f"slowest: {worst:.1f} s (target 60 s)")
    return 0 if worst <= 60 else 1


if __name__ == "__main__":
    sys.exit(main())
