"""``bnn-teach check``: data source, versions, failure when a piece is missing."""
import os
import subprocess
import sys

import pytest


def run_check(env_updates, *args, drop=("BNN_TEACH_DATA",)):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-m", "bnn_teach.cli", "check", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_reports_full_set(mnist_root, tmp_path):
    result = run_check({"BNN_TEACH_DATA": str(mnist_root), "BNN_TEACH_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert f"full set at {mnist_root}" in result.stdout
    for piece in ("python", "torch", "nbgrader", "jupyterlab", "device", "writable"):
        assert piece in result.stdout


def test_check_reports_embedded_subset_offline(tmp_path):
    result = run_check({"BNN_TEACH_OFFLINE": "1", "BNN_TEACH_CACHE": str(tmp_path / "c")})
    assert result.returncode == 0, result.stderr
    assert "embedded subset" in result.stdout


def test_check_fails_when_a_required_piece_is_missing(tmp_path):
    shim = tmp_path / "shim" / "nbgrader"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('simulated: nbgrader is not installed')\n")
    env = {"PYTHONPATH": str(tmp_path / "shim"), "BNN_TEACH_OFFLINE": "1", "BNN_TEACH_CACHE": str(tmp_path / "c")}
    result = run_check(env, "--course")
    assert result.returncode == 1
    assert "missing nbgrader" in result.stderr
    # without --course the course tools are optional
    assert run_check(env).returncode == 0


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("bnn-teach") or os.path.join(os.path.dirname(sys.executable), "bnn-teach")
    if not os.path.exists(exe):
        pytest.fail("the bnn-teach console script is not installed next to this Python")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "check" in result.stdout
