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


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_lab_serves_the_printed_url_and_stops_with_its_server(stop_signal):
    env = {**os.environ, "BNN_TEACH_FAST": "1"}
    process = subprocess.Popen([sys.executable, "-m", "bnn_teach.cli", "lab", "--no-browser"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:\d+/lab\?token=[0-9a-f]{32}", line)
            url = found.group(0) if found else None
        assert url, "bnn-teach lab printed no URL"
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
