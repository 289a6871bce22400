"""The sandbox a submission's kernel runs in, made with bubblewrap (Debian's ``bubblewrap``, the ``bwrap``
command), every Linux namespace new.

What the kernel sees: the Python environment, the ``bnn_teach`` package and the MNIST files read-only;
its own working folder (the copy of the submission being graded) writable; a private, empty ``/tmp`` and
``HOME`` (no IPython profile or startup file survives from one kernel to the next); ``/proc`` of its own
PID namespace. What it does not see: the course root, ``solutions/``, the gradebook, other submissions,
the grader's temporary files, the network (a new network namespace has no interface up). Limits: memory
(address space), file size, open files, CPU time (a backstop behind the per-cell limits) and, where the
``pids`` cgroup can be written (as root), the number of processes. Everything the kernel starts lives in
its PID namespace and ends with it: a detached process cannot outlive the kernel.

The kernel talks to the grader over ZeroMQ IPC sockets in a folder both see (no TCP), and the grader
interrupts it by signalling the kernel process itself (it runs in a session of its own).

:func:`unavailable` says in one line why no sandbox can be made here (no ``bwrap``, no user namespaces),
or None. The grader never silently grades without one: ``bnn_teach.grading`` marks such results
``unsandboxed``.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

__all__ = ["unavailable", "SandboxedKernelManager", "LIMITS", "bwrap_command"]

#: Per-kernel limits: bytes of address space, bytes a file may grow to, open files, CPU seconds of the
#: whole kernel (a backstop: each cell has its own CPU limit), processes (where a pids cgroup is possible).
LIMITS = {"memory": 6 * 2**30, "file_size": 256 * 2**20, "open_files": 512, "cpu": 1800, "processes": 64}


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when a sandbox can be made here, else one line saying why not."""
    if sys.platform != "linux":
        return f"no sandbox on {sys.platform}: bubblewrap needs Linux"
    if shutil.which("bwrap") is None:
        return "no sandbox: bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = subprocess.run(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
                            "--dev", "/dev", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"no sandbox: bubblewrap cannot create namespaces here ({reason})"
    return None


def _readable_paths(extra=()) -> list[Path]:
    """What the kernel needs to read: system folders, the interpreter and its environment, bnn_teach, data."""
    import bnn_teach
    from bnn_teach._cache import cache_dir

    paths = [Path(p) for p in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc")]
    paths += [Path(sys.base_prefix), Path(sys.prefix), Path(bnn_teach.__file__).resolve().parent]
    for entry in sys.path:  # site-packages and the like; never a folder that holds the course
        path = Path(entry or ".").resolve()
        if path.is_dir() and path.name in ("site-packages", "dist-packages") or path.suffix == ".zip":
            paths.append(path)
    data = os.environ.get("BNN_TEACH_DATA")
    if data and Path(data).is_dir():
        paths.append(Path(data).resolve())
    if cache_dir().is_dir():
        paths.append(cache_dir().resolve())
    paths += [Path(p) for p in extra]
    kept = []
    for path in sorted({p for p in paths if p.exists()}, key=lambda p: len(p.parts)):
        if not any(parent in kept for parent in path.parents):
            kept.append(path)
    return kept


def _pids_cgroup(limit: int) -> Path | None:
    """A fresh cgroup (v1 ``pids`` or v2) limited to ``limit`` processes, when this process may make one."""
    name = f"bnn-teach-{uuid.uuid4().hex[:12]}"
    for base, control in ((Path("/sys/fs/cgroup/pids"), "pids.max"), (Path("/sys/fs/cgroup"), "pids.max")):
        try:
            if not (base / "cgroup.procs").exists():
                continue
            group = base / name
            group.mkdir()
            if not (group / control).exists():
                group.rmdir()
                continue
            (group / control).write_text(str(limit))
            return group
        except OSError:
            continue
    return None


def bwrap_command(command: list[str], workdir: Path, shared: Path, env: dict, library: Path | None = None) -> list[str]:
    """``command`` wrapped in bubblewrap: read-only system and Python, ``workdir`` and ``shared`` writable,
    private /tmp and HOME, no network, its own PID namespace, the limits of :data:`LIMITS`. ``library``: a
    grading build of the ``bnn_teach`` package, mounted where the real one is (which is then not there)."""
    import bnn_teach

    home = "/tmp/home"
    package = Path(bnn_teach.__file__).resolve().parent
    # the private /tmp first: what is bound below may live under the host's /tmp (a course, a virtual
    # environment or the grading build there) and must not be hidden by it
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--tmpfs", "/tmp", "--dir", home]
    for path in _readable_paths():
        source = Path(library).resolve() if library is not None and path == package else path
        args += ["--ro-bind", str(source), str(path)]
    if library is not None and package not in _readable_paths():  # the package inside a bound folder
        args += ["--ro-bind", str(Path(library).resolve()), str(package)]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--bind", str(shared), str(shared), "--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    inside = {"HOME": home, "TMPDIR": "/tmp", "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                                        "/usr/local/bin", "/usr/bin", "/bin"]),
              "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
              "MPLCONFIGDIR": f"{home}/.matplotlib", "IPYTHONDIR": f"{home}/.ipython",
              "BNN_TEACH_OFFLINE": "1", **env}
    for key, value in inside.items():
        args += ["--setenv", key, str(value)]
    limits = ["prlimit", f"--as={LIMITS['memory']}", f"--fsize={LIMITS['file_size']}",
              f"--nofile={LIMITS['open_files']}", f"--cpu={LIMITS['cpu']}", "--core=0"]
    return args + ["--", *limits, "--", *command]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in the sandbox: set :attr:`workdir` (the kernel's working folder,
    writable) before starting it; the connection file and the IPC sockets live in a private folder."""

    workdir: Path | None = None
    library: Path | None = None
    passed_env: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import tempfile

        self._shared = Path(tempfile.mkdtemp(prefix="bnnk-"))  # short: a socket path has ~100 characters
        self.transport = "ipc"
        self.ip = str(self._shared / "k")
        self.connection_file = str(self._shared / "kernel.json")
        self._cgroup = None

    def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        workdir = Path(self.workdir or os.getcwd()).resolve()
        return bwrap_command(command, workdir, self._shared, self.passed_env, self.library)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        self._cgroup = _pids_cgroup(LIMITS["processes"])
        if self._cgroup is not None:  # the child joins the cgroup before it becomes bwrap
            procs = str(self._cgroup / "cgroup.procs")
            kernel_cmd = ["/bin/sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", *kernel_cmd]
        kw.pop("env", None)  # bwrap --clearenv builds the kernel's environment
        kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        kw["stdout"] = subprocess.DEVNULL  # the kernel's own console banner; its outputs travel over ZeroMQ
        return await AsyncKernelManager._launch_kernel(self, kernel_cmd, **kw)

    _launch_kernel = _async_launch_kernel  # AsyncKernelManager binds KernelManager's coroutine otherwise

    def _kernel_pids(self) -> list[int]:
        import psutil

        process = getattr(self.provisioner, "process", None)
        if process is None:
            return []
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.Error:
            return []
        return [c.pid for c in children if "ipykernel" in " ".join(_cmdline(c))]

    async def _async_interrupt_kernel(self) -> None:
        for pid in self._kernel_pids():  # the kernel runs in its own session: signal it, not a group
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    interrupt_kernel = _async_interrupt_kernel

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart)
        if not restart:
            shutil.rmtree(self._shared, ignore_errors=True)
            if self._cgroup is not None:
                try:
                    self._cgroup.rmdir()
                except OSError:
                    pass

    cleanup_resources = _async_cleanup_resources


def _cmdline(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:
        return []
