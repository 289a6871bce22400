"""Autograding costs, measured the way `bnn-teach grade autograde` grades (a private course per submission,
nbgrader in a subprocess, kernels on one thread under GuardedExecute's limits):

    python benchmarks/grading.py cells             CPU and wall seconds of every test cell and every assignment
                                                   (target: each test cell <= 10 s of one core)
    python benchmarks/grading.py loaded            4 correct submissions of every assignment graded while
                                                   6 CPU-bound processes run beside them (target: all full marks)
    python benchmarks/grading.py class [-n 20]     a class of N correct submissions of one assignment with
                                                   --jobs (default: the cores); the rate, and 200 projected
                                                   (target: 200 within an hour on 2 cores)
    python benchmarks/grading.py sandbox [-n 3]    what the sandbox and the verdicts cost one submission: the
                                                   same submission graded with and without the sandbox, in
                                                   turns, on one job; the probes' CPU beside the test cells'
    python benchmarks/grading.py nbgrader [-n 10]  what starting nbgrader costs one run (`nbgrader db student
                                                   list` on a course): forked by the grader's nbgrader server
                                                   and as a new process, in turns (target: forked at least
                                                   3 times cheaper in CPU)

Each prints a table and exits 1 when its target is missed. Tests never time anything; this is where the
numbers come from (benchmarks/README.md).
"""
import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from bnn_teach import grading

from timing import cpu_wall_medians

ROOT = Path(__file__).resolve().parents[1]
CELL_BUDGET = 10.0  # CPU seconds of one core, each test cell


def make_course(folder: Path, names) -> Path:
    (folder / "course").mkdir(parents=True)
    shutil.copy2(ROOT / "course" / "nbgrader_config.py", folder / "course")
    for name in names:
        shutil.copytree(ROOT / "solutions" / name, folder / "solutions" / name)
        shutil.copytree(ROOT / "assignments" / name, folder / "assignments" / name)
        grading.release(name, root=folder)
    return folder


def submit(root: Path, name: str, students) -> None:
    notebook = grading.solution_submission(name, root=root)
    for student in students:
        folder = root / "course" / "submitted" / student / name
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, folder / f"{name}.ipynb")


def test_cells(notebook_path: Path) -> set:
    notebook = nbformat.read(notebook_path, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}


def cells(names) -> int:
    print(f"{'assignment':<16} {'test cell':<28} {'CPU s':>7} {'wall s':>7}")
    worst, totals = (0.0, ""), []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_course(Path(tmp), names)
        for name in names:
            submit(root, name, ["student"])
            [result] = grading.autograde(name, root=root, progress=False, jobs=1)
            tests = test_cells(root / "assignments" / name / f"{name}.ipynb")
            for record in result.timings:
                if record["cell"] in tests or record["cell"].endswith("(grader's check)"):
                    print(f"{name:<16} {record['cell']:<28} {record['cpu']:>7.2f} {record['wall']:>7.2f}")
                    worst = max(worst, (record["cpu"], f"{name} {record['cell']}"))
            cpu = sum(r["cpu"] for r in result.timings)
            totals.append((name, cpu, result.seconds, result.score, result.max_score, result.status))
    print(f"\n{'assignment':<16} {'kernel CPU s':>12} {'autograde wall s':>17} {'score':>8}  status")
    for name, cpu, wall, score, maximum, status in totals:
        print(f"{name:<16} {cpu:>12.1f} {wall:>17.1f} {score:>4g}/{maximum:<3g}  {status}")
    print(f"\nslowest test cell: {worst[0]:.2f} s of CPU ({worst[1]}); budget {CELL_BUDGET:g} s of one core")
    full = all(score == maximum for _, _, _, score, maximum, _ in totals)
    return 0 if worst[0] <= CELL_BUDGET and full else 1


def _burn(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def loaded(names, hogs: int, per_assignment: int, jobs) -> int:
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True) for _ in range(hogs)]
    for process in burners:
        process.start()
    print(f"{hogs} CPU-bound processes beside the grader on {os.cpu_count()} cores; load: "
          f"{os.getloadavg()[0]:.1f}")
    rows, ok = [], True
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = make_course(Path(tmp), names)
            for name in names:
                students = [f"s{i}" for i in range(per_assignment)]
                submit(root, name, students)
                start = time.perf_counter()
                results = grading.autograde(name, root=root, progress=False, jobs=jobs)
                wall = time.perf_counter() - start
                full = sum(r.score == r.max_score for r in results)
                ok &= full == len(results)
                statuses = sorted({r.status for r in results})
                rows.append((name, len(results), full, wall, max(r.timings and max(t["cpu"] for t in r.timings)
                                                                 for r in results), statuses, os.getloadavg()[0]))
    finally:
        stop.set()
        for process in burners:
            process.join(5)
    print(f"{'assignment':<16} {'graded':>6} {'full marks':>10} {'wall s':>7} {'max cell CPU s':>15} "
          f"{'load':>5}  statuses")
    for name, graded, full, wall, worst, statuses, load in rows:
        print(f"{name:<16} {graded:>6} {full:>10} {wall:>7.0f} {worst:>15.2f} {load:>5.1f}  {', '.join(statuses)}")
    print("every correct submission got full marks" if ok else "SOME CORRECT SUBMISSIONS LOST POINTS")
    return 0 if ok else 1


def a_class(name: str, size: int, jobs) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_course(Path(tmp), [name])
        submit(root, name, [f"student{i:03d}" for i in range(size)])
        start = time.perf_counter()
        results = grading.autograde(name, root=root, progress=True, jobs=jobs)
        wall = time.perf_counter() - start
    full = sum(r.score == r.max_score for r in results)
    per_hour = 3600 * size / wall
    projected = 200 * wall / size
    print(f"{name}: {size} submissions with --jobs {jobs or os.cpu_count()} on {os.cpu_count()} cores in "
          f"{wall:.0f} s ({wall / size:.1f} s each): {per_hour:.0f} submissions an hour; 200 in "
          f"{projected / 60:.0f} min (target 60 min); {full}/{size} full marks")
    return 0 if projected <= 3600 and full == size else 1


def sandbox_cost(names, rounds: int) -> int:
    """Median autograde wall seconds of one submission with and without the sandbox (alternating, one job),
    and the kernel CPU seconds of the verdicts' probes against the notebook's own cells."""
    from bnn_teach.grading.sandbox import unavailable

    if unavailable():
        print(unavailable())
        return 1
    print(f"{'assignment':<16} {'sandboxed s':>11} {'unsandboxed s':>13} {'ratio':>6} {'+ s':>6} "
          f"{'probe CPU s':>11} {'cells CPU s':>11}  scores")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = make_course(Path(tmp), names)
        for name in names:
            submit(root, name, ["student"])
            walls = {True: [], False: []}
            probes = cells_cpu = 0.0
            scores = set()
            for turn in range(2 * rounds):
                sandboxed = turn % 4 in (0, 3)  # ABBA: neither side always goes first
                start = time.perf_counter()
                [result] = grading.autograde(name, root=root, progress=False, jobs=1, sandbox=sandboxed)
                walls[sandboxed].append(time.perf_counter() - start)
                scores.add((result.score, result.max_score, sandboxed))
                if sandboxed:
                    probes += sum(r["cpu"] for r in result.timings if r["cell"].endswith("(grader's check)"))
                    cells_cpu += sum(r["cpu"] for r in result.timings if not r["cell"].endswith("(grader's check)"))
            on, off = sorted(walls[True])[rounds // 2], sorted(walls[False])[rounds // 2]
            ok &= all(score == maximum for score, maximum, _ in scores)
            print(f"{name:<16} {on:>11.1f} {off:>13.1f} {on / off:>6.2f} {on - off:>6.1f} {probes / rounds:>11.1f} "
                  f"{cells_cpu / rounds:>11.1f}  {sorted({f'{s:g}/{m:g}' for s, m, _ in scores})}")
    return 0 if ok else 1


def nbgrader_start(rounds: int) -> int:
    """CPU and wall seconds of one short nbgrader run, forked by the server and started as a new process."""
    import contextlib
    from unittest import mock

    import psutil

    from bnn_teach.grading import nbgrader_main

    def cpu(process) -> float:  # of its children that ended: the nbgrader runs
        times = process.cpu_times()
        return times.children_user + times.children_system

    with tempfile.TemporaryDirectory() as tmp:
        root = make_course(Path(tmp), [])
        server = nbgrader_main.server()
        assert grading._nbgrader(["db", "student", "list"], root).returncode == 0  # the gradebook, made once
        ways = {"forked": (psutil.Process(server.process.pid), contextlib.nullcontext),
                "new process": (psutil.Process(), lambda: mock.patch.object(nbgrader_main, "server", lambda: None))}
        runs = {way: [] for way in ways}
        for _ in range(rounds):
            for way, (parent, context) in ways.items():
                start_cpu, wall = cpu(parent), time.perf_counter()
                with context():
                    done = grading._nbgrader(["db", "student", "list"], root)
                assert done.returncode == 0, done.stderr
                runs[way].append({"wall": time.perf_counter() - wall, "cpu": cpu(parent) - start_cpu})
        server_start = sum(psutil.Process(server.process.pid).cpu_times()[:2])
    median = cpu_wall_medians(f"`nbgrader db student list`, {rounds} rounds in turns (medians):", runs)
    ratio = median["new process"]["cpu"] / median["forked"]["cpu"]
    print(f"forked: {ratio:.1f}x less CPU a run; the server's own imports, once per grading process: "
          f"{server_start:.2f} s of CPU")
    return 0 if ratio >= 3 else 1


def main(argv=None) -> int:
    names = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cells", "loaded", "class", "sandbox", "nbgrader"], nargs="?", default="cells")
    parser.add_argument("-n", type=int, default=None, help="class: submissions (default 20); sandbox, nbgrader: "
                                                           "rounds (default 3, 10)")
    parser.add_argument("--assignment", default=None, help="class: which assignment (default A1_reparam_kl); "
                                                         "sandbox: one assignment (default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="autograde --jobs (default: the cores)")
    parser.add_argument("--hogs", type=int, default=6, help="loaded: CPU-bound processes beside the grader")
    parser.add_argument("--per-assignment", type=int, default=4, help="loaded: correct submissions of each")
    args = parser.parse_args(argv)
    if args.what == "cells":
        return cells(names)
    if args.what == "loaded":
        return loaded(names, args.hogs, args.per_assignment, args.jobs)
    if args.what == "nbgrader":
        return nbgrader_start(args.n or 10)
    if args.what == "sandbox":
        return sandbox_cost([args.assignment] if args.assignment else names, args.n or 3)
    return a_class(args.assignment or "A1_reparam_kl", args.n or 20, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
