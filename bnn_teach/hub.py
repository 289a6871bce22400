"""``bnn-teach hub``: the course on a JupyterHub on one server, for a class (INSTRUCTORS.md: "A class on JupyterHub").

Run as root (each user's server runs as that user's Unix account). ``add-instructor NAME`` creates the
instructor's account with a copy of the course in ``~NAME/bnn_teach``; ``add-students NAME ...`` creates the
students' accounts, members of the course's Unix group, each with the lectures in ``~/lectures``; ``start``
prepares the state folder (the hub's database and nbgrader's exchange, writable by all, as nbgrader needs) and
runs JupyterHub with ``course/jupyterhub/jupyterhub_config.py`` until Ctrl-C, printing where to log in once it
answers.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bnn_teach import lab

__all__ = ["CONFIG", "DEFAULT_STATE", "GROUP", "HubError", "add_instructor", "add_students", "closed_folders",
           "environment", "hub_command", "main", "prepare", "proxy_command"]

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "course" / "jupyterhub" / "jupyterhub_config.py"
DEFAULT_STATE = Path("/srv/bnn_teach_hub")
GROUP = "bnn_teach"
COURSE_FOLDER = "bnn_teach"


class HubError(RuntimeError):
    """Something the hub needs is missing; the message says what to do."""


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise HubError(f"{what} needs root (each user's server runs as that user's account): run it with sudo")


def closed_folders(*paths) -> list[Path]:
    """The folders on the way to ``paths`` (and to the environment's real interpreter) that other accounts cannot
    enter (no ``o+x``): each user's server runs the course's Python and reads the course's files from there."""
    closed = []
    for path in (Path(os.path.realpath(sys.executable)), REPO, *map(Path, paths)):
        for folder in [*reversed(Path(os.path.realpath(path)).parents)]:
            if not folder.stat().st_mode & 0o001 and folder not in closed:
                closed.append(folder)
    return closed


def proxy_command() -> str:
    """configurable-http-proxy: ``make hub`` installs it (npm) into the environment, else from PATH."""
    local = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    found = str(local) if local.exists() else shutil.which("configurable-http-proxy")
    if found is None:
        raise HubError("configurable-http-proxy is missing: `make hub` installs it (Node and npm: apt-get install "
                       "nodejs npm)")
    return found


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _new_account(name: str, groups=()) -> Path:
    """A Unix account with a private home (0700); an existing one is kept (and added to ``groups``)."""
    if not _user_exists(name):
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", *(["--groups", ",".join(groups)]
                        if groups else []), name], check=True, capture_output=True, text=True)
    elif groups:
        subprocess.run(["usermod", "--append", "--groups", ",".join(groups), name], check=True, capture_output=True)
    home = Path(pwd.getpwnam(name).pw_dir)
    home.chmod(0o700)
    return home


def add_students(names, group: str = GROUP, root: Path = REPO) -> list[str]:
    """Create each student's account (home 0700) in the course's Unix ``group``, with the lectures' notebooks in
    ``~/lectures`` (their own copy, kept when present); set passwords with ``passwd``."""
    _require_root("adding students")
    try:
        grp.getgrnam(group)
    except KeyError:
        subprocess.run(["groupadd", group], check=True, capture_output=True)
    for name in names:
        home = _new_account(name, groups=[group])
        lectures = home / "lectures"
        if not lectures.exists():
            lectures.mkdir()
            for notebook in sorted((root / "lectures").glob("*.ipynb")):
                shutil.copy2(notebook, lectures / notebook.name)
            account = pwd.getpwnam(name)
            for path in [lectures, *lectures.iterdir()]:
                os.chown(path, account.pw_uid, account.pw_gid)
    return list(names)


def add_instructor(name: str, root: Path = REPO) -> Path:
    """Create the instructor's account and copy the course into ``~name/bnn_teach`` (the repository's tracked
    files, owned by the instructor): where the instructor releases, collects, grades and hands back."""
    _require_root("adding the instructor")
    home = _new_account(name)
    course = home / COURSE_FOLDER
    if not course.exists():
        listed = subprocess.run(["git", "-c", f"safe.directory={root}", "-C", str(root), "ls-files", "-z"],
                                capture_output=True, text=True)
        files = [f for f in listed.stdout.split("\0") if f] if listed.returncode == 0 else None
        if files:
            for relative in files:
                source = root / relative
                if source.is_file():
                    (course / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, course / relative)
        else:  # not a git checkout: the folders a course needs
            for folder in ("solutions", "assignments", "course", "lectures"):
                shutil.copytree(root / folder, course / folder, ignore=shutil.ignore_patterns(
                    "gradebook.db", "submitted", "autograded", "feedback", "grading_log", "exchange", "__pycache__"))
        uid, gid = pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid
        for path in [course, *course.rglob("*")]:
            os.chown(path, uid, gid, follow_symlinks=False)
    return course


def prepare(state: Path) -> Path:
    """The hub's state folder: ``hub/`` (its database and secret, root only) and nbgrader's ``exchange/``
    (writable by every user, as nbgrader's exchange needs; nbgrader makes its inbound folder unlistable)."""
    state = Path(state)
    (state / "hub").mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    (state / "hub").chmod(0o700)
    (state / "exchange").mkdir(exist_ok=True)
    (state / "exchange").chmod(0o777)
    return state


def environment(state: Path, instructor: str, group: str, ip: str, port: int) -> dict:
    """The variables ``jupyterhub_config.py`` reads, with free ports for the hub's API and the proxy's."""
    return {**os.environ, "BNN_TEACH_HUB_STATE": str(state), "BNN_TEACH_HUB_INSTRUCTOR": instructor,
            "BNN_TEACH_HUB_GROUP": group, "BNN_TEACH_HUB_IP": ip, "BNN_TEACH_HUB_PORT": str(port),
            "BNN_TEACH_HUB_API_PORT": str(lab.free_port(8081)),
            "BNN_TEACH_HUB_PROXY_API_PORT": str(lab.free_port(8001)),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def hub_command(extra=()) -> list[str]:
    return [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG), *extra]


def wait_until_answering(url: str, process: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Poll the hub's ``/hub/api`` until it answers (True), the hub exits or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/hub/api", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def main(state=DEFAULT_STATE, instructor: str = "instructor", group: str = GROUP, ip: str = "127.0.0.1",
         port: int = 8000, extra=()) -> int:
    """Run the course's hub until Ctrl-C (or SIGTERM); its log is ``STATE/hub/jupyterhub.log``."""
    _require_root("the hub")
    proxy_command()
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        raise HubError("JupyterHub is not installed: `make hub` installs it (pip install -e '.[hub]')") from None
    if not _user_exists(instructor):
        raise HubError(f"no account {instructor!r}: `bnn-teach hub add-instructor {instructor}` creates it with "
                       "a copy of the course")
    closed = closed_folders(Path(sys.prefix))
    if closed:
        folders = ", ".join(map(str, closed))
        raise HubError(f"the students' accounts cannot reach the course's Python or files: {folders} "
                       "cannot be entered by other users (chmod o+x, or install the course and its Python outside a "
                       "private home, e.g. in /opt)")
    state = prepare(Path(state))
    log_path = state / "hub" / "jupyterhub.log"
    url = f"http://{ip}:{port}"
    print(f"JupyterHub for the course (state in {state}, log {log_path}): starting", flush=True)
    previous = signal.signal(signal.SIGTERM, lab._stop)  # a terminated bnn-teach hub stops its hub too
    with open(log_path, "a") as log:
        process = subprocess.Popen(hub_command(extra), env=environment(state, instructor, group, ip, port),
                                   cwd=state / "hub", stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        if not wait_until_answering(url, process):
            lab.stop(process, timeout=30)
            tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
            print(f"JupyterHub did not start; the end of {log_path}:\n{tail}", file=sys.stderr)
            return process.returncode or 1
        students = sorted(grp.getgrnam(group).gr_mem) if group in {g.gr_name for g in grp.getgrall()} else []
        print(f"  log in at {url}/ : {instructor} (instructor) and {len(students)} students of the group {group}"
              f"\n  (Ctrl-C stops the hub and every user's server)", flush=True)
        process.wait()
        return process.returncode
    except KeyboardInterrupt:
        print("\nstopping the hub and every user's server ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        lab.stop(process, timeout=60)
