"""environment.yml, pyproject.toml and the Makefile ask for the same dependencies and the same torch; the
torch installer tries PyTorch's CPU index first and the default registry second; the CI script runs the
README's command."""
import os
import re
import stat
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import install_torch  # noqa: E402

CONDA_ONLY = {"python", "pip"}
ENV_EXTRAS = ("course", "dev")  # what environment.yml and `make setup` install (".[course,dev]")


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _environment():
    conda = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda_specs = [d for d in conda if isinstance(d, str)]
    pip_section = next(d["pip"] for d in conda if isinstance(d, dict))
    return conda_specs, pip_section


def _makefile_default(variable: str) -> str:
    match = re.search(rf"^{variable}\s*\?=\s*(.*)$", (REPO / "Makefile").read_text(), re.M)
    return match.group(1).strip()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_specs = list(project["dependencies"])
    for extra in ENV_EXTRAS:
        pip_specs += project["optional-dependencies"][extra]
    conda_specs, pip_section = _environment()
    pip_packages = [d for d in pip_section if not d.startswith("-")]
    env_specs = conda_specs + pip_packages
    env_names = {_name(d) for d in env_specs} - CONDA_ONLY
    assert env_names == {_name(s) for s in pip_specs}
    # the same lower bounds
    pip_bounds = {_name(s): s.split(">=")[1] for s in pip_specs if ">=" in s}
    for d in env_specs:
        if ">=" in d:
            assert pip_bounds[_name(d)] == d.split(">=")[1], d
    assert "-e ." in pip_section, "environment.yml must install bnn_teach itself"


def test_conda_route_gets_the_same_torch_as_make():
    """torch from pip in environment.yml: the Makefile's TORCH_SPEC, with PyTorch's CPU index as an extra index."""
    conda_specs, pip_section = _environment()
    assert not any(_name(d) in ("torch", "pytorch", "cpuonly") for d in conda_specs), "torch must come from pip"
    torch_specs = [d for d in pip_section if _name(d) == "torch"]
    assert torch_specs == [_makefile_default("TORCH_SPEC")] == [install_torch.DEFAULT_SPEC]
    assert f"--extra-index-url {install_torch.CPU_INDEX}" in pip_section
    assert install_torch.CPU_INDEX in _makefile_default("TORCH_INDEX")


def _fake_python(tmp_path, fail_when: str):
    """An executable standing in for the environment's Python: it records its arguments (one call a line)
    and fails when they contain ``fail_when`` (``"always"``: every call)."""
    log = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text(f"""#!{sys.executable}
import sys
with open({str(log)!r}, "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
sys.exit(1 if {fail_when!r} == "always" or {fail_when!r} in sys.argv[1:] else 0)
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake, log


def test_torch_install_tries_the_cpu_index_first_then_the_registry(tmp_path):
    fake, log = _fake_python(tmp_path, fail_when="--index-url")  # the CPU index cannot be reached
    assert install_torch.main(["--python", str(fake)]) == 0
    calls = log.read_text().splitlines()
    assert calls == [
        "-m pip install --index-url https://download.pytorch.org/whl/cpu --timeout 5 --retries 0 torch==2.13.0",
        "-m pip install torch==2.13.0",
    ]


def test_torch_install_stops_at_the_cpu_index_when_it_works(tmp_path):
    fake, log = _fake_python(tmp_path, fail_when="never")
    assert install_torch.main(["--python", str(fake)]) == 0
    assert log.read_text().splitlines() == [
        "-m pip install --index-url https://download.pytorch.org/whl/cpu --timeout 5 --retries 0 torch==2.13.0"]


def test_torch_install_reports_failure_of_every_source(tmp_path, capsys):
    fake, log = _fake_python(tmp_path, fail_when="always")
    assert install_torch.main(["--python", str(fake)]) != 0
    assert len(log.read_text().splitlines()) == 2
    assert "could not install torch==2.13.0" in capsys.readouterr().err


def test_a_gpu_spec_skips_the_cpu_index(tmp_path):
    fake, log = _fake_python(tmp_path, fail_when="never")
    assert install_torch.main(["--python", str(fake), "--spec", "torch", "--index", ""]) == 0
    assert log.read_text().splitlines() == ["-m pip install torch"]


@pytest.mark.parametrize("make_args, index", [((), "https://download.pytorch.org/whl/cpu"),
                                              (("TORCH_SPEC=torch",), "")])
def test_make_setup_passes_the_cpu_index_unless_torch_spec_is_given(tmp_path, make_args, index):
    """``make -n`` prints the setup commands for a fresh environment without running them."""
    result = subprocess.run(["make", "-n", "setup", f"VENV={tmp_path / 'venv'}", *make_args], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in ("TORCH_SPEC", "TORCH_INDEX")})
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "install_torch.py" in line)
    assert f'--index "{index}"' in line
    assert ('--spec "torch"' if make_args else '--spec "torch==2.13.0"') in line


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in ci and "BNN_TEACH_FAST=1" in ci
