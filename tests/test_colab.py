"""Every notebook's setup cell, as Colab runs it: detection forced on, the package installed from a wheel
built here into a fresh virtual environment, with no network (pip gets no index; MNIST cannot download).

Colab comes with torch, numpy, matplotlib, ipywidgets and Jupyter preinstalled; here the fresh environment
sees the test environment's third-party packages (everything but bnn_teach) through a ``.pth`` file, so
pip needs nothing from the network and must install bnn_teach itself from the wheel.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from bnn_teach import notebooks

ROOT = Path(__file__).resolve().parent.parent
COLAB_PRELUDE = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "bnn_teach"  # setuptools writes build/ into the source tree
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", "gallery"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "-w", str(out), str(source)], capture_output=True, text=True,
                            env={**os.environ, "PIP_NO_INDEX": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    (found,) = out.glob("bnn_teach-*.whl")
    return found


def _fresh_environment(folder: Path) -> Path:
    """A new venv whose sys.path also holds this environment's third-party packages (pip and setuptools
    included, as on Colab), bnn_teach excepted."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    preinstalled = folder / "preinstalled"
    preinstalled.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        name = entry.name.lower()
        if name.startswith(("bnn_teach", "__editable__", "_bnn_teach")):
            continue
        (preinstalled / entry.name).symlink_to(entry)
    (site / "zz_preinstalled.pth").write_text(str(preinstalled) + "\n")
    return python


def _offline_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BNN_TEACH_", "PIP_", "PYTHON"))}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", BNN_TEACH_OFFLINE="1", HOME=str(tmp_path / "home"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               MPLBACKEND="Agg", **extra)
    return env


def test_setup_cell_installs_the_wheel_on_colab_and_check_passes(wheel, tmp_path):
    python = _fresh_environment(tmp_path / "venv")
    env = _offline_env(tmp_path, BNN_TEACH_INSTALL=wheel.as_uri())
    cell = tmp_path / "setup_cell.py"
    cell.write_text(COLAB_PRELUDE + notebooks.SETUP_CELL + "\n")
    before = subprocess.run([str(python), "-c", "import bnn_teach"], capture_output=True, text=True, env=env,
                            cwd=tmp_path)
    assert before.returncode != 0, "the fresh environment must not see the repository's bnn_teach"
    ran = subprocess.run([str(python), str(cell)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "device       cpu" in ran.stdout and "MNIST        embedded subset" in ran.stdout, ran.stdout
    assert "ready." in ran.stdout, ran.stdout
    where = subprocess.run([str(python), "-c", "import bnn_teach, bnn_teach.reproduce as r; print(bnn_teach.__file__);"
                            "print(len(r.load_recorded('sparsevd-lenet300')['frames'].frames))"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.split()
    assert where[0].startswith(str(tmp_path / "venv")), f"bnn_teach imported from {where[0]}, not the wheel"
    assert int(where[1]) > 10, "the wheel ships the recorded runs the lectures load"
    check = subprocess.run([str(python.parent / "bnn-teach"), "check", "--course"], capture_output=True, text=True,
                           env=env, cwd=tmp_path)
    assert check.returncode == 0 and "ready." in check.stdout, check.stdout + check.stderr


def test_setup_cell_does_nothing_off_colab(tmp_path):
    python = _fresh_environment(tmp_path / "venv")
    env = _offline_env(tmp_path, BNN_TEACH_INSTALL="/nonexistent.whl")
    ran = subprocess.run([str(python), "-c", notebooks.SETUP_CELL], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert ran.returncode == 0 and ran.stdout == "", ran.stdout + ran.stderr
    after = subprocess.run([str(python), "-c", "import bnn_teach"], capture_output=True, env=env, cwd=tmp_path)
    assert after.returncode != 0, "off Colab the cell must not install anything"
