"""Install PyTorch into an environment: from PyTorch's CPU wheel index first, from the default registry second.

    python tools/install_torch.py --python .venv/bin/python [--spec torch==2.13.0]
                                  [--index https://download.pytorch.org/whl/cpu] [--timeout 5]

``make setup`` runs it. On an ordinary Linux laptop ``pip install torch`` from the registry is the
CUDA build (several GB); the CPU index has the CPU build (about 200 MB). The attempts, in order:

1. ``PYTHON -m pip install --index-url INDEX --timeout T --retries 0 SPEC`` (skipped when ``--index ''``),
   so an index that cannot be reached fails within about T seconds instead of pip's default minutes;
2. ``PYTHON -m pip install SPEC`` (the registry pip is configured with).

The first that succeeds wins; the exit status is 0 then, else pip's last status. To get a CUDA build,
pass another spec and no index: ``make setup TORCH_SPEC=torch`` does (the Makefile drops the CPU index
when ``TORCH_SPEC`` is given).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
DEFAULT_SPEC = "torch==2.13.0"


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--python", required=True, help="the environment's Python (e.g. .venv/bin/python)")
    parser.add_argument("--spec", default=DEFAULT_SPEC, help=f"what to install (default {DEFAULT_SPEC})")
    parser.add_argument("--index", default=CPU_INDEX, help="the index to try first; '' to skip it")
    parser.add_argument("--timeout", type=float, default=5.0, help="pip's network timeout for the first attempt (s)")
    args = parser.parse_args(argv)
    return install(args.python, args.spec, args.index or None, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
