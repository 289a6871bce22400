"""``bnn-teach lab``: JupyterLab at the course's root, on this machine only (127.0.0.1).

It picks a free port (8888 when free), makes a token, prints the URL to open, and runs JupyterLab
until Ctrl-C. ``--allow-root`` is passed only when running as root (containers, Colab-like machines);
JupyterLab refuses root without it.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

__all__ = ["free_port", "course_root", "lab_command", "lab_url", "main", "stop"]

HOST = "127.0.0.1"


def free_port(preferred: int = 8888) -> int:
    """``preferred`` if nothing listens on it on 127.0.0.1, else a free port the system picks."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")  # pragma: no cover - the system always has one


def course_root() -> Path:
    """The folder holding ``lectures/`` and ``assignments/``: the repository of this package."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "lectures").is_dir():
        raise FileNotFoundError(f"no lectures/ beside the package in {root}: bnn-teach lab runs from a clone of "
                                "the course's repository (on Colab, open the notebooks with their badges instead)")
    return root


def lab_command(root, port: int, token: str, open_browser: bool = True, as_root: bool | None = None,
                extra=()) -> list[str]:
    """The ``jupyter lab`` command line: 127.0.0.1 only, the given port and token, ``root`` as its root."""
    as_root = (os.geteuid() == 0) if as_root is None and hasattr(os, "geteuid") else bool(as_root)
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if not open_browser:
        command.append("--no-browser")
    if as_root:
        command.append("--allow-root")
    return command + list(extra)


def lab_url(port: int, token: str, path: str = "lab") -> str:
    return f"http://{HOST}:{port}/{path}?token={token}"


def main(port: int | None = None, open_browser: bool = True, extra=()) -> int:
    """Run JupyterLab at the course root until Ctrl-C; returns its exit status."""
    root = course_root()
    port = free_port() if port is None else port
    token = secrets.token_hex(16)
    command = lab_command(root, port, token, open_browser=open_browser, extra=extra)
    bin_dir = str(Path(sys.executable).parent)  # nbgrader's `alembic` and friends, for the kernel too
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    print(f"JupyterLab for the course in {root}\n  open {lab_url(port, token)}\n  (Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, _stop)  # a terminated bnn-teach lab stops its server too
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop(server)


def _stop(signum, frame):
    raise KeyboardInterrupt


def stop(process: subprocess.Popen, timeout: float = 10.0):
    """Terminate ``process`` (then kill it after ``timeout`` seconds) if it still runs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
