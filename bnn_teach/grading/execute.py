"""Running a graded notebook so that a busy machine cannot change its grade and a failure costs only what it
touches: nbgrader's ``Execute`` step with limits that count CPU time, on one thread.

:class:`GuardedExecute` replaces nbgrader's ``Execute`` in ``course/nbgrader_config.py`` (autograding) and
runs the student's pre-hand-in check (``bnn-teach grade check``). Per code cell:

- the kernel runs torch, BLAS and OpenMP on **one thread**, so a cell's CPU seconds do not depend on what
  else the machine runs; a cell is stopped when it used ``cpu_limit`` seconds of CPU (a runaway loop) or
  ``wall_limit`` seconds of wall time (a cell that sleeps or blocks): the kernel is interrupted, the cell
  gets an error output that says so, and the notebook goes on;
- a kernel that does not answer ``interrupt_grace`` seconds after the interrupt is stopped; a kernel that
  dies (``os._exit``, a crash, out of memory) is recorded; the cells after it are **not run** and each
  test cell among them gets an error output that names the cell where the kernel was lost, so it scores
  0 while the cells already passed keep their points;
- IOPub output that is slow to arrive on a loaded machine is waited for (no "Timeout waiting for IOPub
  output" that would fail the whole notebook).

Every cell's CPU and wall seconds and every event (``cpu limit``, ``wall limit``, ``kernel died``,
``kernel stopped answering``) are kept in :attr:`GuardedExecute.cell_log` and, when the environment names a
file in ``BNN_TEACH_GRADING_LOG``, written there as JSON for ``bnn_teach.grading`` to report.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Float, Unicode, default

__all__ = ["GuardedExecute", "ONE_THREAD", "LOG_ENV", "cell_label", "error_output"]

#: The environment of a graded kernel: every thread pool at one thread, FAST sizes.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "BNN_TEACH_FAST": "1"}
LOG_ENV = "BNN_TEACH_GRADING_LOG"


def cell_label(cell, index: int) -> str:
    """A cell's grade id, else ``cell N`` (1-based, as a student counts)."""
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"


def error_output(ename: str, evalue: str) -> NotebookNode:
    """An error output (what nbgrader reads as a failed test cell) with a one-line traceback."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


#: Linux lists a process's children in /proc/PID/task/TID/children: reading them walks only the kernel's own
#: process tree, where psutil's ``children()`` reads the status of every process on the machine, five times a
#: second while a cell runs (0.4 ms against 1.8 ms with 71 processes; the scan grows with the machine's processes)
_PROC_CHILDREN = Path(f"/proc/self/task/{os.getpid()}/children").exists()


def _descendants(process) -> list:
    """The live processes below ``process`` (psutil processes)."""
    import psutil

    if not _PROC_CHILDREN:
        return process.children(recursive=True)
    found, stack = [], [process.pid]
    while stack:
        pid = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # it ended meanwhile
            continue
        for task in tasks:
            try:
                children = [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                continue
            stack += children
            for child in children:
                with contextlib.suppress(psutil.Error):
                    found.append(psutil.Process(child))
    return found


def _cpu_seconds(process) -> float:
    """CPU seconds (user + system) of ``process``, its live descendants and its reaped children."""
    import psutil

    try:
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in _descendants(process):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total
    except psutil.Error:
        return 0.0


class GuardedExecute(Execute):
    """nbgrader's ``Execute`` with per-cell CPU and wall limits, one thread, and a log of what happened."""

    cpu_limit = Float(30.0, help="CPU seconds one cell may use before it is interrupted (one thread)").tag(config=True)
    wall_limit = Float(300.0, help="wall seconds one cell may take before it is interrupted").tag(config=True)
    interrupt_grace = Float(15.0, help="seconds an interrupted kernel has to answer before it is stopped").tag(
        config=True)
    poll_interval = Float(0.2, help="seconds between two looks at the kernel's CPU time").tag(config=True)
    sandbox = Bool(False, help="run the kernel in bnn_teach.grading.sandbox's sandbox (bubblewrap)").tag(config=True)
    verdict_dir = Unicode("", help="a folder holding probes.json ({grade_id: code}): each probe runs right after "
                                   "its test cell, and what it sends back is written to observed.json there "
                                   "(bnn_teach.grading.verdicts)").tag(config=True)
    library = Unicode("", help="a grading build of the bnn_teach package the kernel imports in place of the real "
                               "one (bnn_teach.grading.verdicts.grading_build)").tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cell_log: list[dict] = []

    @default("shutdown_kernel")
    def _stop_at_once(self) -> str:
        """When every cell has run, the kernel is stopped at once: it has nothing left to do for the grade (a
        graceful shutdown waits for its clean-up: 0.6 s of every submission graded)."""
        return "immediate"

    # nbclient's own limits become backstops: the watchdog below acts first
    def _backstop(self) -> float:
        return self.wall_limit + 2 * self.interrupt_grace + 60

    def preprocess(self, nb, resources=None, km=None):
        os.environ.update(ONE_THREAD)  # the kernel inherits this process's environment
        self.cell_log = []
        self._probes = {}
        self.observed: dict[str, dict] = {}
        if self.verdict_dir:
            self._probes = json.loads((Path(self.verdict_dir) / "probes.json").read_text())
        self._lost = None  # (cell label, what happened) once the kernel is gone
        self._last = None  # (the last code cell run, seconds to watch for its kernel exiting)
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self._write_log()
            if self.verdict_dir:
                (Path(self.verdict_dir) / "observed.json").write_text(json.dumps(self.observed))

    def create_kernel_manager(self):
        """nbclient's kernel manager, or, with ``sandbox``, one whose kernel runs in the sandbox with this
        notebook's folder as its only writable place."""
        if not self.sandbox:
            km = super().create_kernel_manager()
            if self.library:  # unsandboxed: the grading build first on the kernel's path (no protection)
                os.environ["PYTHONPATH"] = os.pathsep.join(
                    [str(Path(self.library).parent), *filter(None, [os.environ.get("PYTHONPATH")])])
            return km
        from bnn_teach._cache import cache_dir
        from bnn_teach.grading.sandbox import SandboxedKernelManager, unavailable

        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self.kernel_manager_class = SandboxedKernelManager
        km = super().create_kernel_manager()
        km.library = self.library or None
        km.workdir = (self.resources or {}).get("metadata", {}).get("path") or os.getcwd()
        # the data and the cache the sandbox binds (read-only), where the kernel looks for them: its HOME is not ours
        km.passed_env = {**ONE_THREAD, "BNN_TEACH_CACHE": str(cache_dir().resolve())}
        if "BNN_TEACH_DATA" in os.environ:
            km.passed_env["BNN_TEACH_DATA"] = os.environ["BNN_TEACH_DATA"]
        return km

    def reset_execution_trackers(self) -> None:
        """Called by ``preprocess`` right after it re-reads the config: slow IOPub output on a loaded machine
        is waited for, not a failure; nbclient's own cell timeout is only a backstop behind the watchdog."""
        super().reset_execution_trackers()
        self.raise_on_iopub_timeout = False
        self.iopub_timeout = max(self.iopub_timeout, 60)
        self.startup_timeout = max(self.startup_timeout, 300)
        self.timeout = int(self._backstop())

    def _write_log(self) -> None:
        path = os.environ.get(LOG_ENV)
        if path:
            with open(path, "w") as handle:
                json.dump(self.cell_log, handle, indent=1)

    def _kernel_process(self):
        import psutil

        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if pid is None:
            process = getattr(getattr(self.km, "provisioner", None), "process", None)
            pid = getattr(process, "pid", None)
        try:
            return psutil.Process(pid) if pid else None
        except psutil.Error:
            return None

    async def _watch(self, process, record: dict) -> None:
        """Interrupt the kernel when the cell passes a limit; stop it when it does not answer."""
        cpu0, wall0 = _cpu_seconds(process) if process else 0.0, time.monotonic()
        while True:
            await asyncio.sleep(self.poll_interval)
            cpu = _cpu_seconds(process) - cpu0 if process else 0.0
            wall = time.monotonic() - wall0
            if cpu > self.cpu_limit or wall > self.wall_limit:
                break
        record["event"] = "cpu limit" if cpu > self.cpu_limit else "wall limit"
        record["cpu"], record["wall"] = round(cpu, 2), round(wall, 2)
        await ensure_async(self.km.interrupt_kernel())
        await asyncio.sleep(self.interrupt_grace)
        record["event"] = "kernel stopped answering"  # still here: the interrupt did not end the cell
        await ensure_async(self.km.shutdown_kernel(now=True))

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        """Run a cell under the limits; after a test cell with a verdict, run its probe (the grader's check,
        not part of the notebook) in the same kernel and keep what it sends back."""
        cell = await self._guarded(cell, cell_index, execution_count, store_history)
        label = cell_label(cell, cell_index)
        if label in self._probes:
            event = self.cell_log[-1].get("event") if self.cell_log else None
            if self._lost is not None or event is not None:
                self.observed[label] = {"missing": "not checked: the test cell did not run to its end "
                                                   f"({event or 'not run'})"}
            else:
                probe = nbformat.v4.new_code_cell(self._probes[label])
                probe.metadata["nbgrader"] = {"grade_id": f"{label} (grader's check)"}
                probe = await self._guarded(probe, cell_index, None, False)
                self.nb.cells[cell_index] = cell  # nbclient stores the cell it ran at that index
                from bnn_teach.grading.verdicts import observed_result

                data, error = observed_result(probe.outputs)
                if self.cell_log and self.cell_log[-1].get("event"):
                    self.observed[label] = {"missing": f"not checked: the grader's check of this cell stopped "
                                                      f"({self.cell_log[-1]['event']})"}
                else:
                    self.observed[label] = {"data": data} if data is not None else {"error": error}
        return cell

    async def _guarded(self, cell, cell_index, execution_count=None, store_history=True):
        label = cell_label(cell, cell_index)
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if self._lost is not None:
            where, what = self._lost
            cell.outputs = [error_output("NotRun", f"not run: the kernel {what} in {where}")]
            self.cell_log.append({"cell": label, "event": "not run", "cpu": 0.0, "wall": 0.0})
            return cell
        if self._last is not None and not await self._alive(wait=self._last[1]):
            # the kernel ended after the previous cell had answered (``sys.exit`` ends ipykernel)
            self._lost = (self._last[0], "exited")
            self.cell_log[-1].update(event="kernel died", detail="it exited after the cell answered")
            return await self._guarded(cell, cell_index, execution_count, store_history)
        process = self._kernel_process()
        record = {"cell": label}
        cpu0, wall0 = (_cpu_seconds(process) if process else 0.0), time.monotonic()
        watch = asyncio.ensure_future(self._watch(process, record))
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError:
            stopped = record.get("event") == "kernel stopped answering"
            if not stopped and self._last is not None and self._last[1] > 0:
                # the previous cell's sys.exit ended the kernel, slowly: blame it, this cell did not run
                self._lost = (self._last[0], "exited")
                self.cell_log[-1].update(event="kernel died", detail="it exited after the cell answered")
                cell.outputs = [error_output("NotRun", f"not run: the kernel exited in {self._last[0]}")]
                record.update(event="not run", cpu=0.0, wall=0.0)
                self._last = None
                return cell
            what = "stopped answering and was stopped" if stopped else "died"
            self._lost = (label, "stopped answering" if stopped else "died")
            record.setdefault("event", "kernel died")
            if not stopped:
                code = await self._exit_code()
                record["detail"] = f"exit code {code}" if code is not None else ""
            cell.outputs.append(error_output("KernelDied" if not stopped else "CellTimeoutError",
                                             f"the kernel {what} while this cell ran"
                                             + (f" (after {record.get('cpu', 0):.0f} s of CPU, "
                                                f"{record.get('wall', 0):.0f} s)" if stopped else "")))
        except ValueError as garbled:  # a message the kernel's session did not sign (e.g. from a forked child)
            if "Signature" not in str(garbled):
                raise
            self._lost = (label, "sent a message the grader could not authenticate")
            record.update(event="kernel died", detail="it sent a message with an invalid signature and was stopped")
            with contextlib.suppress(Exception):
                await ensure_async(self.km.shutdown_kernel(now=True))
            cell.outputs.append(error_output("KernelDied", "the kernel sent a message the grader could not "
                                                           "authenticate while this cell ran, and was stopped"))
        finally:
            watch.cancel()
            record.setdefault("cpu", round(max(0.0, _cpu_seconds(process) - cpu0) if process else 0.0, 2))
            record.setdefault("wall", round(time.monotonic() - wall0, 2))
            self.cell_log.append(record)
        exited = any(o.get("ename") == "SystemExit" for o in cell.outputs if o.get("output_type") == "error")
        self._last = (label, 3.0 if exited else 0.0) if self._lost is None else None
        if record.get("event") in ("cpu limit", "wall limit"):
            kind = "CPU" if record["event"] == "cpu limit" else "wall"
            limit = self.cpu_limit if kind == "CPU" else self.wall_limit
            cell.outputs.append(error_output(
                "CellTimeoutError", f"stopped after {record['cpu']:.0f} s of CPU and {record['wall']:.0f} s of wall "
                                    f"time (the limit is {limit:.0f} s of {kind} time a cell)"))
        return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient binds its own coroutine otherwise

    async def _alive(self, wait: float = 0.0) -> bool:
        """Whether the kernel process still runs (looking for ``wait`` seconds, for one that is exiting)."""
        deadline = time.monotonic() + wait
        while True:
            if not await ensure_async(self.km.is_alive()):
                return False
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(0.1)

    async def _exit_code(self):
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        if process is None:
            return None
        for _ in range(10):
            code = process.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.1)
        return None

