"""The ``bnn-teach`` command. ``bnn-teach check`` tells whether this machine is ready for the course."""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import tempfile
from pathlib import Path

__all__ = ["main"]

REQUIRED = ("torch", "numpy", "matplotlib", "tqdm", "ipywidgets")
COURSE = ("jupyterlab", "nbgrader", "jupytext", "nbstripout")


def _version(module_name: str):
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - any import failure means "missing"
        return None
    return getattr(module, "__version__", "installed")


def _cache_writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def _online(timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    from bnn_teach.data.mnist import _mirrors, _offline

    if _offline():
        return False
    for url in _mirrors():
        parsed = urlparse(url)
        try:
            with socket.create_connection((parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def check(course: bool = False) -> int:
    """Print versions, device and data source; return 0 when ready, 1 when a required piece is missing."""
    missing = []
    print(f"python       {platform.python_version()} ({sys.executable})")
    for name in REQUIRED + COURSE:
        version = _version(name)
        required = name in REQUIRED or course
        if version is None and required:
            missing.append(name)
        label = version or ("MISSING" if required else "not installed (pip install 'bnn_teach[course]')")
        print(f"{name:<12} {label}")
    if "torch" in missing:
        print("\nbnn-teach check: torch is missing. Install it first, e.g. pip install torch", file=sys.stderr)
        return 1
    from bnn_teach.data.mnist import cache_dir, mnist_source
    from bnn_teach.utils import get_device

    device = get_device()
    import torch

    detail = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"
    print(f"device       {device}{detail}")
    source = mnist_source()
    if source != "embedded":
        print(f"MNIST        full set at {source}")
    elif _online():
        print(f"MNIST        not found locally; downloads to {cache_dir()} on first use")
    else:
        print("MNIST        embedded subset (10,000 train / 2,000 test images); offline and no full set found. "
              "Set BNN_TEACH_DATA to a folder with MNIST/raw/*.gz for the full set.")
    writable = _cache_writable(cache_dir())
    print(f"cache        {cache_dir()} ({'writable' if writable else 'NOT writable'})")
    if missing:
        extra = " 'bnn_teach[course]'" if set(missing) & set(COURSE) else ""
        print(f"\nbnn-teach check: missing {', '.join(missing)}. Run `make setup` or pip install -e .{extra}",
              file=sys.stderr)
        return 1
    print("\nready.")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bnn-teach", description="Bayesian deep learning, taught.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="print versions, device and data source; fail if something is missing")
    p_check.add_argument("--course", action="store_true", help="also require JupyterLab, nbgrader, jupytext, nbstripout")
    from bnn_teach import reproduce

    reproduce.add_parser(sub)
    p_gallery = sub.add_parser("gallery", help="render every bnn_teach.viz figure to PNG files in a folder")
    p_gallery.add_argument("out_dir")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(course=args.course)
    if args.command == "reproduce":
        return reproduce.main_from_args(args)
    if args.command == "gallery":
        from bnn_teach.viz.gallery import main as gallery_main

        return gallery_main([args.out_dir])
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
