"""``bnn-teach lab``: JupyterLab at the course's root, on this machine only (127.0.0.1).

It picks a free port (8888 when free), makes a token, starts JupyterLab in ``course/`` (nbgrader's
configuration is there) with its log in ``course/jupyterlab.log`` (``jupyterlab-2.log`` and on while another
``bnn-teach lab`` writes that one), prints the URL once the server answers, and runs it until Ctrl-C.
``--allow-root`` is passed only when running as root (containers, Colab-like machines); JupyterLab refuses
root without it.
"""
from __future__ import annotations

import contextlib
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


def open_log(folder: Path):
    """``(file, path)``: ``folder/jupyterlab.log`` opened empty for this server, or ``jupyterlab-2.log``,
    ``-3`` ... when another running ``bnn-teach lab`` holds that one (an advisory lock, where the system has
    them), so that two labs at once never write into one file nor read each other's errors."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock, one log
        fcntl = None
    for number in range(1, 100):
        path = folder / ("jupyterlab.log" if number == 1 else f"jupyterlab-{number}.log")
        log = open(path, "a")
        if fcntl is not None:
            try:
                fcntl.flock(log, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by the server too: it shares the file
            except OSError:
                log.close()
                continue
        log.truncate(0)
        return log, path
    raise OSError(f"99 JupyterLab logs in {folder} are in use")  # pragma: no cover


def wait_until_answering(url: str, server: subprocess.Popen, timeout: float = 180.0) -> bool:
    """Poll JupyterLab's ``/api/status`` until it answers (True), the server exits or ``timeout`` passes (False)."""
    import time
    import urllib.request

    api = url.replace("/lab?", "/api/status?")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(api, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def main(port: int | None = None, open_browser: bool = True, extra=()) -> int:
    """Run JupyterLab at the course root until Ctrl-C; returns 0 when stopped so, else the server's status.

    The server starts in ``course/`` (where nbgrader finds its configuration: the Formgrader works) and
    writes its log to ``course/jupyterlab.log`` (see :func:`open_log`); the URL is printed once the server
    answers. In a terminal, Ctrl-C is read here (the terminal's interrupt key is switched off while the server
    runs and restored after), so ``make lab`` ends cleanly instead of reporting an interrupt."""
    root = course_root()
    chosen = port is None
    token = secrets.token_hex(16)
    bin_dir = str(Path(sys.executable).parent)  # nbgrader's `alembic` and friends, for the kernel too
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    log, log_path = open_log(root / "course")
    print(f"JupyterLab for the course in {root}: starting (its log: {log_path})", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop)  # a terminated bnn-teach lab stops its server too
    server = None
    try:
        for attempt in range(5):
            # a port found free can be taken before the server binds it (two `bnn-teach lab` at once): then another
            port = (free_port() if attempt == 0 else free_port(0)) if chosen else port
            log.truncate(0)  # this attempt's log only (the file is opened to append: writes start at 0 again)
            server = subprocess.Popen(lab_command(root, port, token, open_browser=open_browser, extra=extra),
                                      env=env, cwd=root / "course", stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
            answered = wait_until_answering(lab_url(port, token), server)
            if answered or not chosen or "already in use" not in log_path.read_text(errors="replace"):
                break
            stop(server)
        if not answered:
            stop(server)
            tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
            print(f"JupyterLab did not start; the end of {log_path}:\n{tail}", file=sys.stderr)
            return server.returncode or 1
        with _interrupt_key_read_here() as interrupted:  # before the URL: a Ctrl-C typed at once is read here
            print(f"  open {lab_url(port, token)}\n  (Ctrl-C stops it)", flush=True)
            while server.poll() is None and not interrupted():
                pass
        if server.poll() is None:
            print("\nJupyterLab stopped.", flush=True)
            return 0
        return server.returncode
    except KeyboardInterrupt:
        print("\nJupyterLab stopped.", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            stop(server)
        log.close()


@contextlib.contextmanager
def _interrupt_key_read_here():
    """Yield ``interrupted()``: True once Ctrl-C was pressed, waiting up to half a second for it. In a terminal
    the interrupt key stops sending SIGINT to every process of the foreground group (``make`` among them,
    which would report "Interrupt") and arrives here as a byte instead; elsewhere (no terminal) it only waits,
    and Ctrl-C stays a KeyboardInterrupt."""
    import select
    import time

    try:
        import termios

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    except (ImportError, OSError, ValueError):   # no termios (Windows), no usable stdin
        saved = None
    if saved is None:
        yield lambda: time.sleep(0.5) or False
        return
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ISIG | termios.ICANON | termios.ECHO)
    quiet[6][termios.VMIN], quiet[6][termios.VTIME] = 0, 0
    termios.tcsetattr(fd, termios.TCSANOW, quiet)

    def interrupted() -> bool:
        ready, _, _ = select.select([fd], [], [], 0.5)
        return bool(ready) and b"\x03" in os.read(fd, 64)

    try:
        yield interrupted
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


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
