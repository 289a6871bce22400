"""A class on the course's JupyterHub (course/jupyterhub/, bnn_teach/hub.py), end to end, as root.

Creates an instructor (with a copy of the course) and three students in their own Unix group, starts the hub on
127.0.0.1 with JupyterHub's test authenticator (a shared password) in place of PAM, and runs a class: the
instructor releases A1 and hands it out through nbgrader's exchange; two students fetch, fill (one right, one
with a typical mistake) and submit through their servers' nbgrader API (what the Assignments tab calls), the
third fetches and submits the blank notebook in a real browser (Chromium: log in, Nbgrader > Assignment List,
Fetch, Submit); the instructor collects, autogrades (sandboxed), writes feedback and hands it back; each student
fetches their feedback and finds their score. No student can list the exchange's submissions or feedback, or
read another's home, the instructor's course or the hub's database. Stopping the hub leaves no process of the
class; the accounts and folders are removed at the end.

Skipped, with the reason, unless run as root with JupyterHub, configurable-http-proxy (`make hub-setup`),
Chromium and Playwright (``.ci/run`` installs them).
"""
import html
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
from grading_fixtures.mistakes import MISTAKES
from test_browser import CHROMIUM, _alive, _kill_group, browser  # noqa: F401 - browser is a fixture

from bnn_teach import grading, hub, lab

NAME = "A1_reparam_kl"
MISTAKE = "kl_not_divided_by_num_data"
PASSWORD = secrets.token_hex(8)


def _why_not() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "creating the class's Unix accounts needs root"
    if shutil.which("useradd") is None:
        return "useradd is missing"
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "JupyterHub is not installed (make hub-setup)"
    try:
        hub.proxy_command()
    except hub.HubError as err:
        return str(err)
    if CHROMIUM is None:
        return "Chromium is not installed (Debian: apt-get install chromium)"
    return None


needs_a_class = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def _as(user: str, command: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """``command`` in a shell as the Unix account ``user``, with only ``env`` (what the hub gives its servers)."""
    home = pwd.getpwnam(user).pw_dir
    return subprocess.run(["runuser", "-u", user, "--", "env", "-i", f"HOME={home}", f"USER={user}",
                           *[f"{k}={v}" for k, v in env.items()], "sh", "-c", command],
                          capture_output=True, text=True, timeout=timeout, cwd="/")


class Hub:
    """The hub's REST API with an admin token, and each user's server through the proxy."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def call(self, method: str, path: str, token: str | None = None, body=None, form: dict | None = None):
        data = urllib.parse.urlencode(form).encode() if form is not None else (
            None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {token or self.token}"})
        with urllib.request.urlopen(request, timeout=300) as response:
            text = response.read()
        return json.loads(text) if text else None

    def start(self, users, timeout: float = 240):
        for user in users:
            self.call("POST", f"/hub/api/users/{user}/server", body={})
        deadline = time.monotonic() + timeout
        waiting = set(users)
        while waiting and time.monotonic() < deadline:
            for user in sorted(waiting):
                if self.call("GET", f"/hub/api/users/{user}")["servers"].get("", {}).get("ready"):
                    waiting.discard(user)
            time.sleep(1)
        assert not waiting, f"servers of {sorted(waiting)} did not start in {timeout:.0f} s"

    def user_token(self, user: str) -> str:
        return self.call("POST", f"/hub/api/users/{user}/tokens", body={"note": "test"})["token"]

    def assignments(self, user: str, token: str, action: str) -> list[dict]:
        done = self.call("POST", f"/user/{user}/assignments/{action}", token,
                         form={"course_id": "bnn_teach", "assignment_id": NAME})
        assert done["success"], f"{action} as {user}: {done}"
        return done["value"]


def _feedback_score(home: Path) -> tuple[float, float]:
    """The (score, maximum) on the feedback page a student fetched into ``~/A1.../feedback/<time>/``."""
    [page] = (home / NAME / "feedback").glob(f"*/{NAME}.html")
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())).split())
    found = re.search(rf"{NAME} \(Score: ([0-9.]+) / ([0-9.]+)\)", text)
    assert found, f"no score on the feedback page {page}"
    return float(found.group(1)), float(found.group(2))


@pytest.fixture
def accounts():
    """An instructor and three students (group of their own), removed with their homes at the end."""
    tag = secrets.token_hex(3)
    group, instructor = f"bnnt{tag}", f"bnnt{tag}_i"
    students = [f"bnnt{tag}_s{n}" for n in (1, 2, 3)]
    try:
        hub.add_students(students, group=group)
        course = hub.add_instructor(instructor)
        yield {"group": group, "instructor": instructor, "students": students, "course": course}
    finally:
        for user in [instructor, *students]:
            subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
            subprocess.run(["userdel", "--remove", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture
def running_hub(accounts):
    """The course's hub for ``accounts`` on 127.0.0.1 (test authenticator), its state in a fresh folder; the
    folders on the way to the course's Python opened to other users (o+x) for the test and closed again."""
    state = Path(tempfile.mkdtemp(prefix="bnnt-hub-", dir="/tmp"))
    closed = hub.closed_folders(Path(sys.prefix), state)
    for folder in closed:
        folder.chmod(folder.stat().st_mode | 0o001)
    hub.prepare(state)
    port = lab.free_port(0)
    env = hub.environment(state, accounts["instructor"], accounts["group"], "127.0.0.1", port)
    command = hub.hub_command(["--JupyterHub.authenticator_class=dummy", f"--DummyAuthenticator.password={PASSWORD}"])
    log = open(state / "hub" / "jupyterhub.log", "w")
    process = subprocess.Popen(command, env=env, cwd=state / "hub", stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        assert hub.wait_until_answering(url, process), (state / "hub" / "jupyterhub.log").read_text()[-3000:]
        made = subprocess.run([sys.executable, "-m", "jupyterhub", "token", "-f", str(hub.CONFIG),
                               accounts["instructor"]], env=env, cwd=state / "hub", capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        token = made.stdout.split()[-1]
        yield {"hub": Hub(url, token), "process": process, "state": state, "env": env, **accounts}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # as Ctrl-C or a service manager stops it
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        _kill_group(process)
        log.close()
        for folder in closed:
            folder.chmod(folder.stat().st_mode & ~0o001)
        shutil.rmtree(state, ignore_errors=True)


def _fetch_and_submit_in_browser(browser, url: str, student: str, screenshots: Path):  # noqa: F811
    page = browser.contexts[0].new_page()
    page.set_default_timeout(180_000)
    page.goto(f"{url}/hub/login")
    page.fill("input[name=username]", student)
    page.fill("input[name=password]", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_url(f"**/user/{student}/lab**")
    page.wait_for_selector(".lm-MenuBar-itemLabel >> text=Nbgrader")
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    menu = [label.inner_text() for label in page.locator(".lm-Menu-itemLabel").all() if label.inner_text()]
    assert menu == ["Assignment List"], f"a student's Nbgrader menu shows {menu}: the Formgrader is for instructors"
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    page.locator("#released_assignments_list .list_item", has_text=NAME).get_by_role("button", name="Fetch").click()
    page.locator("#fetched_assignments_list .list_item", has_text=NAME).get_by_role("button", name="Submit").click()
    page.wait_for_selector(f"#submitted_assignments_list .list_item >> text={NAME}")
    page.screenshot(path=str(screenshots / "hub_student_submitted.png"))
    return page


@needs_a_class
def test_a_class_on_the_hub_fetches_submits_is_graded_and_gets_its_feedback(running_hub, browser, tmp_path):  # noqa: F811
    h, state, env = running_hub["hub"], running_hub["state"], running_hub["env"]
    instructor, (right, wrong, blank) = running_hub["instructor"], running_hub["students"]
    course = running_hub["course"]
    shell_env = {"PATH": env["PATH"], "BNN_TEACH_EXCHANGE": str(state / "exchange"),
                 **{k: os.environ[k] for k in ("BNN_TEACH_FAST", "BNN_TEACH_DATA") if k in os.environ}}
    screenshots = Path(os.environ.get("BNN_TEACH_SCREENSHOTS") or tmp_path)
    screenshots.mkdir(parents=True, exist_ok=True)

    # the instructor releases A1 in their copy of the course and hands it out
    done = _as(instructor, f"cd ~/bnn_teach && bnn-teach grade release {NAME} && bnn-teach grade hand-out {NAME}",
               shell_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "students fetch it" in done.stdout

    # two students through their servers' nbgrader API: fetch, fill, submit
    started = time.monotonic()
    h.start([right, wrong])
    print(f"hub: two students' servers ready in {time.monotonic() - started:.1f} s")
    answers = {right: grading.solution_submission(NAME, root=course)}
    mistaken = grading.solution_submission(NAME, root=course)
    cell_id, old, new, loses = MISTAKES[NAME][MISTAKE]
    [cell] = [c for c in mistaken.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id]
    cell.source = cell.source.replace(old, new)
    answers[wrong] = mistaken
    for student, notebook in answers.items():
        token = h.user_token(student)
        released = [a for a in h.call("GET", f"/user/{student}/assignments?course_id=bnn_teach", token)["value"]]
        assert [(a["assignment_id"], a["status"]) for a in released] == [(NAME, "released")]
        fetched = h.assignments(student, token, "fetch")
        assert any(a["status"] == "fetched" for a in fetched)
        h.call("PUT", f"/user/{student}/api/contents/{NAME}/{NAME}.ipynb", token,
               body={"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(notebook))})
        submitted = h.assignments(student, token, "submit")
        assert any(a["status"] == "submitted" for a in submitted)

    # the third in the browser: fetch and submit the blank notebook from the Assignments tab
    page = _fetch_and_submit_in_browser(browser, h.url, blank, screenshots)

    # the instructor collects, grades in the sandbox, writes the feedback and hands it back
    started = time.monotonic()
    done = _as(instructor, f"cd ~/bnn_teach && bnn-teach grade collect {NAME} && "
                           f"bnn-teach grade autograde {NAME} --no-progress && bnn-teach grade feedback {NAME} && "
                           f"bnn-teach grade hand-back {NAME}", shell_env)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"hub: collect, autograde, feedback and hand-back of 3 submissions in {time.monotonic() - started:.1f} s")
    assert f"3 submissions of {NAME}" in done.stdout and "3 graded, all ok" in done.stdout, done.stdout
    assert "unsandboxed" not in done.stdout + done.stderr, "grading on the hub runs each kernel in the sandbox"
    release = nbformat.read(course / "assignments" / NAME / f"{NAME}.ipynb", as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in release.cells
              if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}
    full, maximum = sum(points.values()), sum(points.values()) + 2  # + the written answer, graded by hand
    expected = {right: full, wrong: full - sum(points[c] for c in loses), blank: 0.0}

    # each student fetches their own feedback: two through the API, the third in the browser
    for student in (right, wrong):
        h.assignments(student, h.user_token(student), "fetch_feedback")
    page.get_by_title("Refresh assignments list").click()
    page.get_by_role("button", name="Fetch Feedback").click()
    home = {s: Path(pwd.getpwnam(s).pw_dir) for s in (right, wrong, blank)}
    deadline = time.monotonic() + 60
    while not list((home[blank] / NAME / "feedback").glob(f"*/{NAME}.html")) and time.monotonic() < deadline:
        time.sleep(0.5)
    page.screenshot(path=str(screenshots / "hub_student_feedback.png"))
    for student, score in expected.items():
        assert _feedback_score(home[student]) == (score, maximum), student

    # each student has the lectures, their own copy
    lectures = sorted(p.name for p in (home[blank] / "lectures").iterdir())
    assert lectures == sorted(p.name for p in (hub.REPO / "lectures").glob("*.ipynb")) and lectures
    assert (home[blank] / "lectures" / lectures[0]).stat().st_uid == pwd.getpwnam(blank).pw_uid

    # nobody reads what is not theirs
    exchange = state / "exchange" / "bnn_teach"
    for command in (f"ls {exchange / 'inbound'}", f"ls {exchange / 'feedback'}",
                    f"cat {home[right] / NAME / f'{NAME}.ipynb'}", f"ls {course / 'course'}",
                    f"cat {course / 'course' / 'gradebook.db'}", f"ls {state / 'hub'}"):
        denied = _as(wrong, command, shell_env)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, f"{wrong} could run: {command}"
    own = _as(wrong, f"cat {home[wrong] / NAME / f'{NAME}.ipynb'} > /dev/null && ls {exchange / 'outbound'}",
              shell_env)
    assert own.returncode == 0, own.stderr  # the checks above fail on permissions, not on a wrong path

    # stopping the hub stops every user's server and the proxy
    page.close()
    users = [instructor, right, wrong, blank]
    running = subprocess.run(["pgrep", "-u", ",".join(users)], capture_output=True, text=True).stdout.split()
    assert running, "the students' servers run while the hub runs"
    proxy_pid = int((state / "hub" / "proxy.pid").read_text())
    running_hub["process"].send_signal(signal.SIGTERM)
    running_hub["process"].wait(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-u", ",".join(users)],
                                                         capture_output=True).returncode == 0:
        time.sleep(0.5)
    left = subprocess.run(["pgrep", "-a", "-u", ",".join(users)], capture_output=True, text=True).stdout
    assert not left, f"processes of the class left after the hub stopped:\n{left}"
    assert not _alive(running_hub["process"].pid, grace=5), "the hub's process group is still running"
    try:
        os.kill(proxy_pid, 0)
        proxy_alive = True
    except ProcessLookupError:
        proxy_alive = False
    assert not proxy_alive, "configurable-http-proxy is still running"


def test_closed_folders_names_each_folder_other_accounts_cannot_enter(tmp_path):
    private = tmp_path / "private"
    inner = private / "course" / "lectures"
    inner.mkdir(parents=True)
    tmp_path.chmod(0o755)
    private.chmod(0o700)
    try:
        assert private in hub.closed_folders(inner)
        assert inner not in hub.closed_folders(inner) and private / "course" not in hub.closed_folders(inner)
        private.chmod(0o711)
        assert private not in hub.closed_folders(inner)
    finally:
        private.chmod(0o755)


def test_exchange_commands_say_what_to_do_first(tmp_path, capsys):
    from bnn_teach import cli

    root = tmp_path / "course_root"
    for folder in ("course", "solutions/" + NAME, "assignments/" + NAME):
        (root / folder).mkdir(parents=True)
    shutil.copy(hub.REPO / "course" / "nbgrader_config.py", root / "course" / "nbgrader_config.py")
    assert cli.main(["grade", "hand-out", NAME, "--root", str(root)]) == 2
    assert f"run `bnn-teach grade release {NAME}` first" in capsys.readouterr().err
    (root / "course" / "gradebook.db").touch()
    assert cli.main(["grade", "hand-back", NAME, "--root", str(root)]) == 2
    assert f"run `bnn-teach grade feedback {NAME}` first" in capsys.readouterr().err
    page = root / "course" / "feedback" / "ada" / NAME / f"{NAME}.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    assert cli.main(["grade", "hand-back", NAME, "--root", str(root)]) == 2
    assert "ada cannot go back through the exchange" in capsys.readouterr().err
    assert cli.main(["grade", "collect", "A9_nothing", "--root", str(root)]) == 2
    assert f"the assignments are {NAME}" in capsys.readouterr().err
