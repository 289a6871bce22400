"""Start a group of processes on ``torch.distributed`` (gloo) and watch them: a failure is an error, not a hang.

:func:`launch` starts ``world_size`` processes on this machine with ``torch.multiprocessing`` (fork on
Linux, spawn elsewhere), joins them into one gloo group over 127.0.0.1, and runs ``fn(rank, world_size,
report, *args)`` in each. Rank 0's return value comes back. The parent watches every process: the first
one that exits with an error (an exception, a signal such as an out-of-memory kill) stops all the others
and raises :class:`WorkerError` naming it; a run past ``timeout`` seconds stops them and raises
``TimeoutError``; Ctrl-C stops them too. No process is left behind in any case. Each child also dies with
its parent (Linux).

Under ``torchrun`` the group exists already: :func:`run_in_group` runs the same ``fn`` there.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from datetime import timedelta
from multiprocessing.connection import wait
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bnn_teach.nn._shapes import check_int

__all__ = ["launch", "run_in_group", "WorkerError"]


class WorkerError(RuntimeError):
    """A process of a distributed run failed; ``rank``, ``exitcode`` and ``pids`` (all of the run's processes,
    each stopped) say which and how."""

    def __init__(self, message: str, rank: int, exitcode: int | None, pids: list):
        super().__init__(message)
        self.rank, self.exitcode, self.pids = rank, exitcode, pids


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """Linux: the kernel sends SIGKILL to this process when its parent dies (no orphaned workers)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        except OSError:
            pass


def _child(fn, rank, world_size, port, queue, result_path, comm_timeout, args):
    _die_with_parent()
    torch.set_num_threads(1)   # one core per process; also keeps OpenMP safe after fork
    if sys.__stdout__ is not None:   # a notebook's streams live on its kernel's threads, which a fork does not copy
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def report(message):
        queue.put(("progress", rank, message))

    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=comm_timeout))
        result = fn(rank, world_size, report, *args)
        if rank == 0:
            torch.save(result, result_path)
        dist.destroy_process_group()
    except BaseException:   # noqa: BLE001 - anything a worker raises is reported to the parent
        queue.put(("error", rank, traceback.format_exc()[-4000:]))
        os._exit(1)
    os._exit(0)   # skip interpreter teardown (forked children share the parent's atexit handlers)


def _describe_exit(code) -> str:
    if code is None:
        return "was still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _stop(processes, grace: float = 3.0):
    """SIGTERM every live process, SIGKILL what is left after ``grace`` seconds, and reap all of them."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()


_PEER_GONE = ("Connection closed by peer", "Connection reset", "Broken pipe", "Socket Timeout", "Timed out")


def _culprit(failed: dict, errors: dict) -> int:
    """Of the failed ranks, the one that failed first in its own right: killed by a signal, or an error that is
    not a lost connection to a peer (the others fail because it vanished)."""
    def secondary(rank):
        code = failed[rank]
        killed = code is not None and code < 0 and code != -signal.SIGTERM
        return (not killed) and any(s in errors.get(rank, "") for s in _PEER_GONE)

    return min(failed, key=lambda r: (secondary(r), r))


def launch(fn, world_size: int, args: tuple = (), timeout: float = 600.0, on_progress=None, name: str = "worker",
           comm_timeout: float | None = None):
    """Run ``fn(rank, world_size, report, *args)`` in ``world_size`` processes joined by gloo; return rank 0's result.

    ``report(message)`` (any picklable) reaches ``on_progress(rank, message)`` in the parent. ``fn`` and ``args``
    must be picklable where fork is not used (a module-level function, tensors, modules).
    Raises :class:`WorkerError` when a process fails and ``TimeoutError`` after ``timeout`` seconds; both stop
    every process first. ``comm_timeout``: seconds one collective waits for a silent peer (gloo's timeout;
    default ``timeout``): keep it near the longest gap between two messages, so a hung process is found fast.
    """
    check_int("world_size", world_size)
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    comm_timeout = timeout if comm_timeout is None else min(float(comm_timeout), float(timeout))
    if not comm_timeout > 0:
        raise ValueError(f"comm_timeout must be positive, got {comm_timeout!r}")
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.get_context(method)
    queue = ctx.SimpleQueue()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bnn_teach_dist_") as tmp:
        result_path = Path(tmp) / "rank0.pt"
        processes = [ctx.Process(target=_child, name=f"bnn_teach-{name}-{rank}", daemon=True,
                                 args=(fn, rank, world_size, port, queue, str(result_path), comm_timeout, args))
                     for rank in range(world_size)]
        try:
            for p in processes:
                p.start()
            _watch(processes, queue, timeout, on_progress, name)
        finally:
            _stop(processes)
            queue.close()
        return torch.load(result_path, weights_only=False)


def _drain(queue, errors: dict, on_progress):
    """Read every message waiting: errors into ``errors[rank]``, progress to ``on_progress``."""
    while not queue.empty():
        kind, rank, message = queue.get()
        if kind == "error":
            errors[rank] = message
        elif on_progress is not None:
            on_progress(rank, message)


def _watch(processes, queue, timeout, on_progress, name):
    deadline = time.monotonic() + timeout
    running = dict(enumerate(processes))
    failed, errors = {}, {}
    while running:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ranks = ", ".join(map(str, running))
            raise TimeoutError(f"the distributed run took longer than its timeout of {timeout:g} s; rank(s) {ranks} "
                               f"were still running and all {len(processes)} processes were stopped "
                               "(raise timeout= for a longer run)")
        wait([queue._reader] + [p.sentinel for p in running.values()], timeout=min(remaining, 1.0))
        _drain(queue, errors, on_progress)
        for rank, p in list(running.items()):
            if p.exitcode is not None:
                del running[rank]
                if p.exitcode != 0:
                    failed[rank] = p.exitcode
        if failed:
            time.sleep(0.2)   # let the others' errors arrive, to tell the cause from its consequences
            _drain(queue, errors, on_progress)
            for rank, p in running.items():
                if p.exitcode not in (None, 0):
                    failed[rank] = p.exitcode
            rank = _culprit(failed, errors)
            role = "the server" if rank == 0 else f"{name} {rank}"
            detail = errors.get(rank, "").strip()
            message = (f"rank {rank} ({role}) {_describe_exit(failed[rank])}; the run was stopped and all "
                       f"{len(processes)} processes ended")
            if detail:
                message += ":\n" + detail.splitlines()[-1] + "\n\n" + detail
            raise WorkerError(message, rank, failed[rank], [p.pid for p in processes])


def run_in_group(fn, args: tuple = ()):
    """Under ``torchrun`` (the environment names RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): join the gloo group,
    run ``fn(rank, world_size, report, *args)`` (``report`` prints on rank 0) and return its result on every rank."""
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()

    def report(message):
        if rank == 0:
            print(f"rank 0: {message}", flush=True)

    try:
        return fn(rank, world_size, report, *args)
    finally:
        dist.destroy_process_group()
