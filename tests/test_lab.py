"""``bnn-teach lab``: JupyterLab at the course root, 127.0.0.1 only, --allow-root only as root; Ctrl-C or a
terminate stops the server with it."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bnn_teach import lab

ROOT = Path(__file__).resolve().parent.parent


def test_command_listens_on_localhost_with_the_token_at_the_course_root():
    command = lab.lab_command(ROOT, 8899, "abc", open_browser=False, as_root=False)
    assert command[:4] == [sys.executable, "-m", "jupyter", "lab"]
    assert "--ServerApp.ip=127.0.0.1" in command and "--ServerApp.port=8899" in command
    assert "--IdentityProvider.token=abc" in command and f"--ServerApp.root_dir={ROOT}" in command
    assert "--no-browser" in command and "--allow-root" not in command
    assert "--allow-root" in lab.lab_command(ROOT, 8899, "abc", as_root=True)
    assert "--no-browser" not in lab.lab_command(ROOT, 8899, "abc", as_root=False)
    assert lab.course_root() == ROOT
    assert lab.lab_url(8899, "abc") == "http://127.0.0.1:8899/lab?token=abc"


def test_free_port_avoids_a_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        port = lab.free_port(taken)
        assert port != taken and port > 0


def test_bad_port_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "bnn_teach.cli", "lab", "--port", "70000"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "--port must be between 1 and 65535" in result.stderr


#: `bnn-teach lab` when another lab is running: the port it finds free is taken before its server binds it
#: (a socket listens there and never answers), and the other lab writes course/jupyterlab.log
RACING_LAB = """
import socket, sys
from bnn_teach import lab
taken = socket.socket()
taken.bind(("127.0.0.1", 0))
taken.listen()
print("taken port", taken.getsockname()[1], flush=True)
real, calls = lab.free_port, []
def racing_free_port(preferred=8888):
    calls.append(preferred)
    return taken.getsockname()[1] if len(calls) == 1 else real(preferred)
lab.free_port = racing_free_port
sys.exit(lab.main(open_browser=False))
"""


@pytest.mark.parametrize("stop_signal, other_lab", [(signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["sigint", "sigterm-beside-another-lab"])
def test_lab_serves_the_printed_url_and_stops_with_its_server(stop_signal, other_lab):
    import fcntl

    env = {**os.environ, "BNN_TEACH_FAST": "1"}
    command = [sys.executable, "-c", RACING_LAB] if other_lab else [sys.executable, "-m", "bnn_teach.cli", "lab",
                                                                     "--no-browser"]
    other_log = open(ROOT / "course" / "jupyterlab.log", "a")
    deadline = time.monotonic() + 300
    while other_lab:  # the other lab's lock on its log (waits for the lab of another test to end)
        try:
            fcntl.flock(other_log, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            assert time.monotonic() < deadline, "course/jupyterlab.log stays locked: is a bnn-teach lab running?"
            time.sleep(0.5)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url, printed = None, []
        deadline = time.monotonic() + 180  # the URL comes once the server answers: seconds, or minutes under load
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:  # bnn-teach lab ended
                break
            printed.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/lab\?token=[0-9a-f]{32}", line)
            url = found.group(0) if found else None
        assert url, f"bnn-teach lab printed no URL (status {process.poll()}):\n{''.join(printed)}"
        log = Path(re.search(r"its log: (\S+)\)", "".join(printed)).group(1))
        assert log.parent == ROOT / "course" and log.name.startswith("jupyterlab")
        if other_lab:
            taken = re.search(r"taken port (\d+)", "".join(printed)).group(1)
            assert f":{taken}/" not in url, "a port taken before the server bound it is left for another"
            assert log.name != "jupyterlab.log", "the other lab's log is its own"
            assert "is running at" in log.read_text(), "this server's log is in the file named"
        api = url.replace("/lab?", "/api/status?")
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(api, timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"JupyterLab did not answer {api}"
                assert process.poll() is None, "bnn-teach lab exited"
                time.sleep(0.5)
        with pytest.raises(OSError):  # the token is required
            urllib.request.urlopen(api.split("?")[0], timeout=5)
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) in (0, 130, 1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the server went with it: nothing left in the group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            pytest.fail("a process of bnn-teach lab is still running")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
        other_log.close()


def test_in_a_terminal_the_url_answers_when_printed_and_ctrl_c_ends_cleanly():
    """What `make lab` users meet: the URL is printed once the server answers, the server's chatter goes to
    course/jupyterlab.log (nbgrader finds its configuration: the server runs in course/), and Ctrl-C typed in
    the terminal stops everything with status 0 and the terminal's settings restored."""
    import pty
    import termios

    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    env = {**os.environ, "BNN_TEACH_FAST": "1"}
    process = subprocess.Popen([sys.executable, "-m", "bnn_teach.cli", "lab", "--no-browser"], stdin=slave,
                               stdout=slave, stderr=slave, env=env, start_new_session=True)
    output = b""
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline and process.poll() is None:
            output += os.read(master, 4096) if _readable(master) else b""
            found = re.search(rb"open (http://127\.0\.0\.1:\d+/lab\?token=[0-9a-f]{32})", output)
            url = found.group(1).decode() if found else None
        assert url, f"bnn-teach lab printed no URL: {output.decode(errors='replace')}"
        with urllib.request.urlopen(url.replace("/lab?", "/api/status?"), timeout=5) as response:
            assert response.status == 200, "the printed URL answers at once"
        text = output.decode(errors="replace")
        assert "No nbgrader_config.py" not in text and "[I " not in text, "the server's log stays out of sight"
        os.write(master, b"\x03")
        assert process.wait(timeout=30) == 0
        time.sleep(0.2)
        output += os.read(master, 4096) if _readable(master) else b""
        assert b"JupyterLab stopped." in output
        assert termios.tcgetattr(slave) == before, "the terminal's settings are restored"
        log = Path(re.search(rb"its log: (\S+)\)", output).group(1).decode()).read_text()
        assert "No nbgrader_config.py file found" not in log, "nbgrader found the course's configuration"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
        os.close(master)
        os.close(slave)


def _readable(fd, timeout=0.5):
    import select

    return bool(select.select([fd], [], [], timeout)[0])
