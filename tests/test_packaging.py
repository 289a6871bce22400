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
    def lower(spec):
        return spec.split(">=")[1].split(",")[0].strip()

    pip_bounds = {_name(s): lower(s) for s in pip_specs if ">=" in s}
    for d in env_specs:
        if ">=" in d:
            assert pip_bounds[_name(d)] == lower(d), d
    assert "-e ." in pip_section, "environment.yml must install bnn_teach itself"


def test_conda_route_gets_the_same_torch_as_make():
    """torch from pip in environment.yml: the tested range (on Linux the newest in it, the pinned 2.13.0, which
    the Makefile installs), with PyTorch's CPU index as an extra index; pyproject allows the range's lowest."""
    conda_specs, pip_section = _environment()
    assert not any(_name(d) in ("torch", "pytorch", "cpuonly") for d in conda_specs), "torch must come from pip"
    torch_specs = [d for d in pip_section if _name(d) == "torch"]
    assert torch_specs == [install_torch.RANGE_SPEC]
    assert _makefile_default("TORCH_SPEC") == install_torch.DEFAULT_SPEC == f"torch=={install_torch.PINNED}"
    assert f"--extra-index-url {install_torch.CPU_INDEX}" in pip_section
    assert install_torch.CPU_INDEX in _makefile_default("TORCH_INDEX")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"torch>={install_torch.LOWEST}" in project["dependencies"]


@pytest.mark.parametrize("spec", ["torch", "torch==2.13.0", "torch>=2.2,<=2.13.0", "torch>2.2, <2.13", "torch!=2.5.1"])
def test_the_installer_reads_a_torch_requirement_as_pip_does(spec):
    """Checked against packaging's specifiers (pip's own) on releases around each bound; a local build tag
    (+cpu) does not change the answer."""
    from packaging.requirements import Requirement

    specifier = Requirement(spec).specifier
    for version in ["2.1.2", "2.2", "2.2.0", "2.2.2", "2.5.1", "2.12.9", "2.13", "2.13.0", "2.13.1", "2.14.0", "3.0"]:
        expected = specifier.contains(version, prereleases=True)
        assert install_torch.satisfies(version, spec) is expected, (version, spec)
        assert install_torch.satisfies(version + "+cpu", spec) is expected, (version, spec)
    with pytest.raises(ValueError, match="cannot read"):
        install_torch.satisfies("2.13.0", "torch~=2.13")
    with pytest.raises(ValueError, match="not a torch requirement"):
        install_torch.satisfies("2.13.0", "numpy>=1")


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


def _fake_environment(tmp_path, have: str | None, gets: str):
    """A stand-in Python whose environment holds torch ``have`` (None: no torch); `pip install torch...` puts
    ``gets`` there, `pip uninstall torch` removes it. Each call is logged, one a line."""
    tmp_path.mkdir(exist_ok=True)
    log, version = tmp_path / "calls.txt", tmp_path / "torch-version"
    if have:
        version.write_text(have)
    fake = tmp_path / "python"
    fake.write_text(f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
version = {str(version)!r}
if args[:1] == ["-c"]:
    if not os.path.exists(version):
        sys.exit(1)
    print(open(version).read())
    sys.exit(0)
with open({str(log)!r}, "a") as f:
    f.write(" ".join(args) + "\\n")
if args[:3] == ["-m", "pip", "uninstall"]:
    os.remove(version)
elif args[-1].startswith("torch"):
    open(version, "w").write({gets!r})
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake, log


def _ensure(fake, tmp_path, *args):
    constraints = tmp_path / "constraints.txt"
    status = install_torch.main(["--python", str(fake), "--ensure", "--constraints", str(constraints), *args])
    return status, constraints.read_text().splitlines()[1:] if constraints.exists() else None


def test_ensure_keeps_a_torch_that_satisfies_the_spec_and_pins_it_for_pip(tmp_path):
    fake, log = _fake_environment(tmp_path, have="2.13.0+cpu", gets="2.99")
    assert _ensure(fake, tmp_path) == (0, ["torch==2.13.0"])
    assert not log.exists(), "nothing installed"
    fake, log = _fake_environment(tmp_path / "cuda", have="2.13.0", gets="2.99")  # a CUDA build, as asked
    assert _ensure(fake, tmp_path / "cuda", "--build", "cuda", "--index", "") == (0, ["torch==2.13.0"])
    assert not log.exists()


def test_ensure_installs_a_missing_torch_and_replaces_one_outside_the_spec(tmp_path):
    fake, log = _fake_environment(tmp_path / "new", have=None, gets="2.13.0+cpu")
    assert _ensure(fake, tmp_path / "new") == (0, ["torch==2.13.0"])
    assert log.read_text().splitlines() == [
        "-m pip install --index-url https://download.pytorch.org/whl/cpu --timeout 5 --retries 0 torch==2.13.0"]
    fake, log = _fake_environment(tmp_path / "old", have="2.1.0", gets="2.13.0+cpu")
    assert _ensure(fake, tmp_path / "old", "--spec", install_torch.RANGE_SPEC, "--index", "")[0] == 0
    assert log.read_text().splitlines() == ["-m pip uninstall -y torch", f"-m pip install {install_torch.RANGE_SPEC}"]


def test_ensure_cuda_replaces_a_cpu_build_with_the_registry_build(tmp_path):
    fake, log = _fake_environment(tmp_path, have="2.13.0+cpu", gets="2.13.0")
    assert _ensure(fake, tmp_path, "--build", "cuda", "--index", "") == (0, ["torch==2.13.0"])
    assert log.read_text().splitlines() == ["-m pip uninstall -y torch", "-m pip install torch==2.13.0"]


def test_a_torch_before_2_3_gets_numpy_1_beside_it(tmp_path):
    """torch 2.2 was compiled against NumPy 1: with NumPy 2 its numpy bridge fails."""
    fake, log = _fake_environment(tmp_path, have="2.2.2", gets="2.99")
    assert _ensure(fake, tmp_path, "--spec", install_torch.RANGE_SPEC) == (0, ["torch==2.2.2", "numpy<2"])
    assert log.read_text().splitlines() == ["-m pip install numpy<2"]


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
    assert "--ensure" in line and f"--constraints {tmp_path / 'venv'}/constraints.txt" in line
    pip = next(line for line in result.stdout.splitlines() if "pip install" in line)
    assert f"-c {tmp_path / 'venv'}/constraints.txt" in pip, "what pip installs after torch keeps it"


@pytest.mark.parametrize("make_args, spec, index, build", [
    (("TORCH_BUILD=cuda",), "torch==2.13.0", "", "cuda"),  # the registry's build replaces a +cpu one
    (("UNAME=Darwin",), "torch>=2.2,<=2.13.0", "", "any"),  # a Mac: the newest torch it has in the range
])
def test_make_setup_for_a_cuda_box_and_for_a_mac(tmp_path, make_args, spec, index, build):
    result = subprocess.run(["make", "-n", "setup", f"VENV={tmp_path / 'venv'}", *make_args], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in ("TORCH_SPEC", "TORCH_INDEX")})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "install_torch.py" in line]
    assert len(lines) == 2, "once for a new environment, once (a no-op when satisfied) every time"
    for line in lines:
        assert f'--spec "{spec}" --index "{index}" --build {build}' in line


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in ci and "BNN_TEACH_FAST=1" in ci
