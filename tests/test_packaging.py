"""environment.yml and pyproject.toml declare the same dependencies; the CI script runs the README's command."""
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip", "cpuonly"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pip_specs += extra
    conda = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda_specs = [d for d in conda if isinstance(d, str)]
    conda_names = {CONDA_TO_PIP.get(_name(d), _name(d)) for d in conda_specs} - CONDA_ONLY
    assert conda_names == {_name(s) for s in pip_specs}
    # and the same lower bounds
    pip_bounds = {_name(s): s.split(">=")[1] for s in pip_specs if ">=" in s}
    for d in conda_specs:
        if ">=" in d:
            assert pip_bounds[CONDA_TO_PIP.get(_name(d), _name(d))] == d.split(">=")[1], d


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in ci and "BNN_TEACH_FAST=1" in ci
