"""``nbgrader`` as the course's grading commands run it: ``python -m bnn_teach.grading.nbgrader_main ARGS`` is
``nbgrader ARGS`` with three start-up costs removed and the same results.

* jsonschema's IRI format checker is not loaded: importing ``rfc3987_syntax`` compiles a grammar (0.7 s on an
  idle core, 2 s on a busy one, in every nbgrader process); nbgrader validates no IRI.
* A new gradebook records the version of nbgrader's database schema, which nbgrader asks of a second process
  (``alembic heads``, about 2 s); :func:`schema_head` reads the same version from nbgrader's migration scripts
  in this process (0.06 s).
* nbgrader's own imports (1.5 to 2 s of CPU in every run): the course's grading commands do not start a new
  interpreter for each run but ask a server (one per grading process, :func:`server`) that imported them once
  to fork a child. The child is what a new ``nbgrader`` process would be: its own session (process group), working
  folder, environment, standard streams (files) and exit status. Off Linux, a new process. The server also
  imports what a run imports only once it is under way (:data:`PRELOAD`) and compiles nbformat's notebook
  validators (:func:`compile_validators`), so that no child repeats either.
"""
import json
import os
import subprocess
import sys
import threading

#: the modules every nbgrader run of the course imports (the config imports the course's executor), then those
#: a run imports once under way: IPython (the kernel spec), the course's verdicts and sandbox, psutil (the CPU
#: limits), SQLite's dialect (the gradebook), alembic (a new gradebook's schema version), IPython's lexers (the
#: feedback's highlighting)
PRELOAD = ("nbgrader.api", "nbgrader.apps.nbgraderapp", "nbgrader.preprocessors", "nbgrader.converters",
           "nbconvert.exporters", "nbclient", "jupyter_client", "bnn_teach.grading.execute",
           "IPython.paths", "bnn_teach.grading.verdicts", "bnn_teach.grading.sandbox", "psutil",
           "sqlalchemy.dialects.sqlite", "alembic.script", "IPython.lib.lexers")


def schema_head() -> str:
    """The head revision of nbgrader's gradebook migrations (what ``alembic heads`` prints)."""
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    return ScriptDirectory(ALEMBIC_DIR).get_current_head()


def compile_validators() -> None:
    """Compile nbformat's validators of v4 notebooks that a grading run uses (minor versions 4, as the course's
    notebooks are, and the current one, as nbformat's new cells are; strict and relaxed), each compiled on its
    first use otherwise (a JSON schema turned into Python code, about 0.05 s each)."""
    import nbformat.v4
    from nbformat.validator import get_validator

    for minor in sorted({4, nbformat.v4.nbformat_minor}):
        for relax in (False, True):
            get_validator(4, minor, relax_add_props=relax)


def without_iri_checker() -> None:
    """For a process that validates no IRI (nbgrader; ``bnn-teach check``, which imports jupyterlab for its
    version): jsonschema leaves out its IRI format checker, whose import compiles a grammar (0.7 to 2 s)."""
    sys.modules.setdefault("rfc3987_syntax", None)


def _prepare() -> None:
    without_iri_checker()
    import nbgrader.api

    nbgrader.api.get_alembic_version = schema_head


def main() -> None:
    _prepare()
    from nbgrader.apps.nbgraderapp import main as nbgrader_main

    sys.argv[0] = "nbgrader"
    nbgrader_main()


# ---- the fork server: one line of JSON per message, requests on its stdin, answers on its stdout ----------------
# request {"id": N, "args": [...], "cwd": DIR, "env": {...}, "stdout": FILE, "stderr": FILE}
# answers {"id": N, "pid": PID} once forked, then {"id": N, "exit": CODE} (negative: killed by that signal)


def _child(request: dict) -> None:
    """In the forked child: become a new nbgrader process as ``request`` describes, run it, exit."""
    import signal
    import tempfile
    import traceback

    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        sys.path.insert(0, os.getcwd())  # as `python -m` puts it
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # found again from TMPDIR
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                                (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = ["nbgrader", *request["args"]]
        try:
            main()
            code = 0
        except SystemExit as exit_:
            if exit_.code is None or isinstance(exit_.code, int):
                code = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:  # what the interpreter does at exit: wait for the threads, run the atexit hooks (nbclient's
        try:  # stops a kernel still running), flush; then exit without returning into the server's loop
            import atexit
            import threading

            for thread in threading.enumerate():
                if thread is not threading.current_thread() and not thread.daemon:
                    thread.join()
            atexit._run_exitfuncs()
        except BaseException:
            traceback.print_exc()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or broken stream: nothing more can be said
                pass
        os._exit(code)


def serve() -> None:
    """The fork server (:class:`Server` starts it): import nbgrader once, then fork one child per request.
    When its stdin closes (the grading process ended, however), its answers cannot be written, or it is sent
    SIGTERM, it kills its children's process groups and exits."""
    import select
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grading process's to handle
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # as the end of its input
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # nothing is imported from wherever the server was started
    _prepare()
    for name in PRELOAD:
        __import__(name)
    compile_validators()
    inbox, children, pending = sys.stdin.buffer.fileno(), {}, b""

    def say(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()  # nothing buffered is left for a child to inherit

    try:
        while True:
            if select.select([inbox], [], [], 0.1)[0]:
                chunk = os.read(inbox, 1 << 16)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    request = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        _child(request)
                    children[pid] = request["id"]
                    say({"id": request["id"], "pid": pid})
            while children:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid in children:
                    say({"id": children.pop(pid), "exit": os.waitstatus_to_exitcode(status)})
    except (BrokenPipeError, SystemExit):  # the grading process is gone, or the server is asked to stop
        pass
    finally:
        for pid in children:
            for kill in (os.killpg, os.kill):  # os.kill: a child that has not yet made its own group
                try:
                    kill(pid, signal.SIGKILL)
                    break
                except OSError:
                    pass


class Child:
    """An nbgrader run forked by the server, as :func:`bnn_teach.grading._end_group` needs it: ``pid`` (also
    its process group), ``poll()`` and ``returncode`` (None while it runs)."""

    def __init__(self, request_id: int):
        self.id, self.pid, self.returncode = request_id, None, None
        self.forked, self.ended = threading.Event(), threading.Event()

    def poll(self):
        return self.returncode

    def wait(self, timeout: float | None = None) -> bool:
        return self.ended.wait(timeout)


class Server:
    """The grading process's handle on its fork server (started by :func:`server`)."""

    def __init__(self):
        self.lock, self.children, self.next_id = threading.Lock(), {}, 0
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from bnn_teach.grading.nbgrader_main import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/", env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._read, daemon=True, name="nbgrader fork server").start()

    def alive(self) -> bool:
        return self.process.poll() is None

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            with self.lock:
                child = self.children.get(message["id"])
            if child is None:
                continue
            if "pid" in message:
                child.pid = message["pid"]
                child.forked.set()
            else:
                child.returncode = message["exit"]
                with self.lock:
                    self.children.pop(child.id, None)
                child.forked.set()
                child.ended.set()
        with self.lock:  # the server is gone: nothing it ran will answer
            stranded, self.children = list(self.children.values()), {}
        for child in stranded:
            child.returncode = -9  # as if killed: no exit status came
            child.forked.set()
            child.ended.set()

    def start(self, args: list[str], cwd, env: dict, stdout, stderr) -> Child:
        """Fork ``nbgrader ARGS`` in ``cwd`` with exactly ``env``, its streams written to ``stdout`` and
        ``stderr`` (paths); returns once it is forked."""
        request = {"args": list(args), "cwd": str(cwd), "env": dict(env), "stdout": str(stdout),
                   "stderr": str(stderr)}
        with self.lock:
            self.next_id += 1
            child = Child(self.next_id)
            request["id"] = child.id
            self.children[child.id] = child
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        child.forked.wait()
        if child.pid is None:
            raise RuntimeError("the nbgrader fork server stopped before it could start nbgrader")
        return child


_SERVER: Server | None = None
_SERVER_LOCK = threading.Lock()


def server() -> Server | None:
    """This process's fork server, started on first use (again if it stopped); None off Linux (no fork on
    Windows; on macOS a forked process may not use every system library, so Python itself spawns there)."""
    global _SERVER
    if not sys.platform.startswith("linux"):
        return None
    with _SERVER_LOCK:
        if _SERVER is None or not _SERVER.alive():
            _SERVER = Server()
        return _SERVER


if __name__ == "__main__":
    main()
