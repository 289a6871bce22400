"""The course as a student meets it: JupyterLab in a real browser (Debian's Chromium, headless).

Starts JupyterLab (127.0.0.1, a token) on a copy of lecture L05, runs all its cells from the browser,
waits for the kernel to go idle, checks that no cell shows an error and that the sparsification slider
is rendered, moves the slider and checks that the widget's picture changes. Screenshots go to
``$BNN_TEACH_SCREENSHOTS`` (default: the test's temporary folder). The server and the browser are
started here, each in its own process group, and killed by their process ids at the end.

Skipped, with the reason, when Chromium (``apt-get install chromium``) or Playwright's Python package
(``pip install playwright``) is missing; ``.ci/run`` installs both.
"""
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bnn_teach import lab

ROOT = Path(__file__).resolve().parent.parent
LECTURE = "L05_bayesian_sparsification.ipynb"
CHROMIUM = os.environ.get("BNN_TEACH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
]


def _wait_for_http(url: str, timeout: float, process: subprocess.Popen, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{what} did not answer {url} within {timeout:.0f} s")


def _kill_group(process: subprocess.Popen):
    """Kill the process group of ``process`` (started with ``start_new_session``) and reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def _alive(pid: int, grace: float = 10.0) -> bool:
    """Whether any process of the group ``pid`` is still there after ``grace`` seconds (killed children
    take a moment to be reaped)."""
    deadline = time.monotonic() + grace
    while True:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.2)


@pytest.fixture
def server(tmp_path):
    """JupyterLab on a copy of the lecture (autosave must not touch the repository), FAST mode."""
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(ROOT / "lectures" / LECTURE, root / LECTURE)
    port, token = lab.free_port(0), "bnn-teach-browser-test"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # figures inline, as a student sees them
    env.update(BNN_TEACH_FAST="1", JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    command = lab.lab_command(root, port, token, open_browser=False,
                              extra=["--LabApp.expose_app_in_browser=True", "--ServerApp.log_level=WARN"])
    log = open(tmp_path / "jupyterlab.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", 120, process, "JupyterLab")
        yield {"port": port, "token": token, "root": root, "pid": process.pid}
    finally:
        _kill_group(process)
        log.close()
    assert not _alive(process.pid), "JupyterLab is still running"


@pytest.fixture
def browser(tmp_path):
    """Debian's Chromium, headless, driven by Playwright over the DevTools protocol on 127.0.0.1."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    port = lab.free_port(0)
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1000", "about:blank"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    playwright = sync_api.sync_playwright().start()
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/json/version", 60, process, "Chromium")
        yield playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
    finally:
        playwright.stop()
        _kill_group(process)
    assert not _alive(process.pid), "Chromium is still running"


def _png_pixels(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


NOTEBOOK_STATE = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!widget || !widget.context || !widget.sessionContext) return null;
    const kernel = widget.sessionContext.session && widget.sessionContext.session.kernel;
    return {kernel: kernel ? kernel.status : null, notebook: widget.context.model.toJSON()};
}"""


def test_lecture_runs_in_jupyterlab_and_its_slider_redraws_the_picture(server, browser, tmp_path):
    shots = Path(os.environ.get("BNN_TEACH_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.contexts[0] if browser.contexts else browser.new_context()
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"http://127.0.0.1:{server['port']}/lab/tree/{LECTURE}?token={server['token']}")
    page.wait_for_function(f"() => {{ const s = ({NOTEBOOK_STATE})(); return s && s.kernel === 'idle'; }}",
                           timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(f"""() => {{
        const s = ({NOTEBOOK_STATE})();
        if (!s || s.kernel !== 'idle') return false;
        const code = s.notebook.cells.filter(c => c.cell_type === 'code');
        return code.every(c => c.execution_count !== null);
    }}""", timeout=600_000, polling=1000)
    notebook = page.evaluate(f"() => ({NOTEBOOK_STATE})().notebook")
    (shots / "notebook_as_run.ipynb").write_text(json.dumps(notebook))
    errors = [(i, o.get("ename"), o.get("evalue")) for i, cell in enumerate(notebook["cells"])
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"cells with errors: {errors}"
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code_cells), "not every cell ran"

    slider = page.locator(".widget-slider").first
    slider.wait_for(state="visible", timeout=60_000)
    slider.scroll_into_view_if_needed()
    box = page.locator(".widget-vbox", has=slider).first
    picture = box.locator("img").first
    picture.wait_for(state="visible", timeout=60_000)
    no_news = page.get_by_role("button", name="No")  # JupyterLab asks once about news; answer it
    if no_news.count():
        no_news.first.click()
    picture.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "1_executed_lecture_widget_before.png"))
    before_src, before = picture.get_attribute("src"), _png_pixels(picture.screenshot())
    readout = box.locator(".widget-readout").first
    before_value = readout.inner_text().strip()

    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0")
    page.keyboard.press("Enter")
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src", arg=[picture.element_handle(),
                                                                                    before_src], timeout=60_000)
    picture.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "2_executed_lecture_widget_after.png"))
    after = _png_pixels(picture.screenshot())
    assert readout.inner_text().strip() == "0" != before_value, "the slider did not move to frame 0"
    assert before.shape == after.shape
    changed = (np.abs(before - after).max(axis=-1) > 20).mean()
    assert changed > 0.01, f"moving the slider changed only {changed:.2%} of the picture's pixels"


def test_the_course_site_lists_every_lecture_and_shows_a_lecture_with_its_figures(browser, tmp_path,
                                                                                    executed_lecture):
    """`bnn-teach site` from executed notebooks (here L01 run in FAST mode, once for this and the notebook
    test, the others as committed), opened in the browser: the front page links L00–L08 by title, and L01's
    page shows its figures, loaded."""
    pytest.importorskip("myst_nb", reason="the site needs myst-nb (pip install 'bnn_teach[site]')")
    from bnn_teach.site import build_site

    executed = tmp_path / "executed"
    executed.mkdir()
    status, error, l01 = executed_lecture(ROOT / "lectures" / "L01_why_bayesian.py")
    assert status == "ok", error
    shutil.copy(l01, executed / l01.name)
    for path in (ROOT / "lectures").glob("L0*.ipynb"):
        if not (executed / path.name).exists():
            shutil.copy(path, executed / path.name)
    index = build_site(tmp_path / "site", executed=executed, progress=False)
    page = browser.contexts[0].new_page() if browser.contexts else browser.new_page()
    page.goto(index.as_uri())
    links = page.locator("a").all_inner_texts()
    for number in range(9):
        assert any(text.startswith(f"L0{number} ·") for text in links), f"L0{number} is not listed: {links}"
    page.get_by_text("L01 · Why Bayesian?").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("L01_why_bayesian.html"), page.url
    widths = page.locator("img").evaluate_all("images => images.map(i => i.complete ? i.naturalWidth : 0)")
    figures = [w for w in widths if w > 200]
    assert len(figures) >= 3, f"L01's page shows {len(figures)} figures (image widths {widths})"
    page.screenshot(path=str(Path(os.environ.get("BNN_TEACH_SCREENSHOTS", tmp_path)) / "site_L01.png"), full_page=False)
