"""The recorded full runs the lectures load: :func:`record` copies a finished run into the package and
checksums it (``SHA256SUMS``); :func:`load_recorded` reads one back after checking it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bnn_teach.reproduce.experiments import EXPERIMENTS
from bnn_teach.reproduce.runs import UsageError, _write_atomic
from bnn_teach.train import History

__all__ = ["RECORDED", "record", "load_recorded", "RecordedRunError"]

# The full runs the lectures show (too long to train live), shipped in the package: one folder per
# experiment with its results.json and history.json (and frames.json where the run records its
# sparsification), and SHA256SUMS over all of them.
RECORDED = Path(__file__).resolve().parent.parent / "recorded"   # bnn_teach/recorded
RECORDED_FILES = ("results.json",)
OPTIONAL_FILES = ("history.json", "frames.json")
WITHOUT_HISTORY = ("compare-pruning", "distributed")  # several runs each: no one training history to show
MANIFEST = "SHA256SUMS"


class RecordedRunError(RuntimeError):
    """A recorded run that is missing, or whose files do not match their checksums."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    return {name: digest for digest, name in (line.split("  ", 1) for line in path.read_text().splitlines() if line)}


def record(name: str, out, folder=None) -> Path:
    """Copy the full run in ``out`` (``results.json``, and ``history.json`` and ``frames.json`` where the run
    wrote them) into the package's recorded runs
    (``folder``, default ``bnn_teach/recorded``) as ``<folder>/<name>/`` and update ``SHA256SUMS``.
    ``bnn-teach reproduce NAME --record`` runs the experiment and then this. A smoke run is refused."""
    if name not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)}")
    out, folder = Path(out), Path(folder) if folder is not None else RECORDED
    needed = RECORDED_FILES + (() if name in WITHOUT_HISTORY else ("history.json",))
    missing = [f for f in needed if not (out / f).exists()]
    if missing:
        raise UsageError(f"{out} holds no finished run of {name} (missing {', '.join(missing)})")
    results = json.loads((out / "results.json").read_text())
    if results.get("experiment") != name:
        raise UsageError(f"{out}/results.json is a run of {results.get('experiment')!r}, not {name!r}")
    if results.get("fast"):
        raise UsageError(f"{out} holds a smoke run (BNN_TEACH_FAST=1); the lectures show full runs only")
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    sums = _manifest(folder)
    for file in OPTIONAL_FILES:  # a file the new run lacks must not stay behind from an older one
        (target / file).unlink(missing_ok=True)
        sums.pop(f"{name}/{file}", None)
    for file in RECORDED_FILES + tuple(f for f in OPTIONAL_FILES if (out / f).exists()):
        text = (out / file).read_text()
        _write_atomic(target / file, text)
        sums[f"{name}/{file}"] = _sha256(target / file)
    _write_atomic(folder / MANIFEST, "".join(f"{digest}  {path}\n" for path, digest in sorted(sums.items())))
    return target


def load_recorded(name: str, folder=None) -> dict:
    """The recorded full run of experiment ``name``: ``{"results": dict, "history": History or None,
    "frames": SparsityRecorder or None}`` (``history`` and ``frames`` for the runs that write them).

    Its files are checked against ``SHA256SUMS``; a missing or changed file raises
    :class:`RecordedRunError` naming the file and the command that records it again."""
    folder = Path(folder) if folder is not None else RECORDED
    again = f"record it again with: bnn-teach reproduce {name} --record"
    sums = _manifest(folder)
    optional = tuple(f for f in OPTIONAL_FILES if f"{name}/{f}" in sums)
    for file in RECORDED_FILES + optional:
        path = folder / name / file
        if f"{name}/{file}" not in sums or not path.exists():
            raise RecordedRunError(f"no recorded run of {name!r}: {path} or its checksum is missing; {again}")
        if _sha256(path) != sums[f"{name}/{file}"]:
            raise RecordedRunError(f"{path} does not match its checksum in {folder / MANIFEST} "
                                   f"(edited or damaged); {again}")
    frames = None
    if "frames.json" in optional:
        from bnn_teach.viz import SparsityRecorder

        frames = SparsityRecorder.from_dict(json.loads((folder / name / "frames.json").read_text()))
    history = History.from_json(folder / name / "history.json") if "history.json" in optional else None
    return {"results": json.loads((folder / name / "results.json").read_text()), "history": history,
            "frames": frames}
