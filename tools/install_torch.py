"""Install PyTorch into an environment: from PyTorch's CPU wheel index first, from the default registry second.

    python tools/install_torch.py --python .venv/bin/python [--spec torch==2.13.0]
                                  [--index https://download.pytorch.org/whl/cpu] [--timeout 5]
                                  [--ensure] [--build any|cuda] [--constraints .venv/constraints.txt]

``make setup`` runs it. On an ordinary Linux laptop ``pip install torch`` from the registry is the
CUDA build (several GB); the CPU index has the CPU build (about 200 MB). The attempts, in order:

1. ``PYTHON -m pip install --index-url INDEX --timeout T --retries 0 SPEC`` (skipped when ``--index ''``),
   so an index that cannot be reached fails within about T seconds instead of pip's default minutes;
2. ``PYTHON -m pip install SPEC`` (the registry pip is configured with).

The first that succeeds wins; the exit status is 0 then, else pip's last status.

``--ensure``: install only when the environment's torch does not satisfy SPEC (or, with ``--build cuda``, is a
``+cpu`` build, which is then replaced by the registry's build). The course is tested from torch 2.2 (the newest
an Intel Mac gets) to 2.13.0; torch before 2.3 was built against NumPy 1, so ``numpy<2`` goes beside it.
``--constraints FILE`` writes the torch that is installed (and ``numpy<2`` where needed) as pip constraints,
so the packages installed after it keep it.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOWEST, PINNED = "2.2", "2.13.0"  # the range CI tests: the lowest and the pinned torch
DEFAULT_SPEC = f"torch=={PINNED}"  # Linux (from the CPU index)
RANGE_SPEC = f"torch>={LOWEST},<={PINNED}"  # elsewhere: the newest wheel in the range the platform has
NUMPY_1_BEFORE = (2, 3)  # torch below this was compiled against NumPy 1


def release(version: str) -> tuple[int, ...]:
    """``"2.13.0+cpu"`` -> ``(2, 13, 0)``: the numeric release, without pre-release or local parts."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", version)
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def satisfies(version: str, spec: str) -> bool:
    """Whether torch ``version`` meets ``spec`` (``torch``, ``torch==2.13.0``, ``torch>=2.2,<=2.13.0``; the
    operators ``== != >= <= > <``, compared on the numeric release)."""
    clauses = spec.strip()[len("torch"):].strip() if spec.strip().lower().startswith("torch") else None
    if clauses is None:
        raise ValueError(f"not a torch requirement: {spec!r}")
    have = release(version)
    for clause in filter(None, (c.strip() for c in clauses.split(","))):
        match = re.fullmatch(r"(==|!=|>=|<=|>|<)\s*([\d.]+)(?:\.\*)?", clause)
        if not match:
            raise ValueError(f"cannot read {clause!r} in {spec!r} (use == != >= <= > <)")
        op, bound = match.group(1), release(match.group(2))
        width = max(len(have), len(bound))
        a, b = have + (0,) * (width - len(have)), bound + (0,) * (width - len(bound))
        if not {"==": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]:
            return False
    return True


def installed(python: str) -> str | None:
    """The version of torch in ``python``'s environment (``"2.13.0+cpu"``), or None."""
    probe = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                           capture_output=True, text=True)
    return probe.stdout.strip() or None if probe.returncode == 0 else None


def attempts(python: str, spec: str, index: str | None, timeout: float) -> list[tuple[str, list[str]]]:
    """``(label, command)`` for each attempt, in order."""
    pip = [python, "-m", "pip", "install"]
    tries = []
    if index:
        tries.append((f"PyTorch's CPU index ({index})",
                      [*pip, "--index-url", index, "--timeout", f"{timeout:g}", "--retries", "0", spec]))
    tries.append(("the default registry", [*pip, spec]))
    return tries


def install(python: str, spec: str = DEFAULT_SPEC, index: str | None = CPU_INDEX, timeout: float = 5.0) -> int:
    status = 1
    tries = attempts(python, spec, index, timeout)
    for number, (label, command) in enumerate(tries, 1):
        print(f"install_torch: {spec} from {label}", flush=True)
        start = time.perf_counter()
        status = subprocess.call(command)
        if status == 0:
            print(f"install_torch: installed {spec} from {label} in {time.perf_counter() - start:.0f} s", flush=True)
            return 0
        if number < len(tries):
            print(f"install_torch: {label} failed (status {status}, {time.perf_counter() - start:.0f} s); "
                  "trying the next source", flush=True)
    print(f"install_torch: could not install {spec}; check the network or pip's configuration, or install torch "
          "yourself (https://pytorch.org/get-started/locally/) and run make again", file=sys.stderr)
    return status


def ensure(python: str, spec: str = DEFAULT_SPEC, index: str | None = CPU_INDEX, timeout: float = 5.0,
           build: str = "any", constraints: str | None = None) -> int:
    """Install torch only when needed (see the module's docstring); then NumPy 1 beside a torch before 2.3 and
    the constraints file."""
    have = installed(python)
    if have and satisfies(have, spec) and not (build == "cuda" and "+cpu" in have):
        print(f"install_torch: torch {have} is installed and satisfies {spec}", flush=True)
    else:
        if have:
            why = "a CPU build, and a CUDA build was asked for" if satisfies(have, spec) else f"not {spec}"
            print(f"install_torch: replacing torch {have} ({why})", flush=True)
            status = subprocess.call([python, "-m", "pip", "uninstall", "-y", "torch"])
            if status:
                return status
        status = install(python, spec, index, timeout)
        if status:
            return status
        have = installed(python)
        if not have:
            print("install_torch: pip reported success but torch is not installed", file=sys.stderr)
            return 1
    pins = [f"torch=={have.split('+')[0]}"]  # the public version: pip reads a local one (+cpu) as not found
    if release(have) < NUMPY_1_BEFORE:
        pins.append("numpy<2")
        status = subprocess.call([python, "-m", "pip", "install", "numpy<2"])
        if status:
            return status
    if constraints:
        with open(constraints, "w") as f:
            f.write("# written by tools/install_torch.py: what `make setup` installs after torch keeps it\n")
            f.write("".join(f"{pin}\n" for pin in pins))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--python", required=True, help="the environment's Python (e.g. .venv/bin/python)")
    parser.add_argument("--spec", default=DEFAULT_SPEC, help=f"what to install (default {DEFAULT_SPEC})")
    parser.add_argument("--index", default=CPU_INDEX, help="the index to try first; '' to skip it")
    parser.add_argument("--timeout", type=float, default=5.0, help="pip's network timeout for the first attempt (s)")
    parser.add_argument("--ensure", action="store_true", help="install only when the installed torch does not do")
    parser.add_argument("--build", choices=("any", "cuda"), default="any",
                        help="with --ensure: 'cuda' replaces an installed +cpu build")
    parser.add_argument("--constraints", help="with --ensure: write the installed torch as pip constraints here")
    args = parser.parse_args(argv)
    if args.ensure:
        return ensure(args.python, args.spec, args.index or None, args.timeout, args.build, args.constraints)
    return install(args.python, args.spec, args.index or None, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
