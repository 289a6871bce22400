"""Shared by the benchmark scripts: command-line options and timing in interleaved rounds.

Callables are timed in rounds (A, B, C, A, B, C, ...), ``inner`` calls each, after a warm-up; a
ratio is the median over rounds of the per-round ratio to the first callable, so slow drifts of
the machine cancel.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def parse_args(doc: str, argv, repeats: int, inner: int):
    """``--threads`` (default 2, applied), ``--repeats`` and ``--inner``; seeds torch with 0."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--inner", type=int, default=inner)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def interleaved(calls: dict, repeats: int, inner: int, warmup: int = 5) -> dict:
    """name -> (median seconds per call, median ratio to the first callable)."""
    def timed(call, n):
        start = time.perf_counter()
        for _ in range(n):
            call()
        return (time.perf_counter() - start) / n

    for call in calls.values():
        timed(call, warmup)
    rounds = [{name: timed(call, inner) for name, call in calls.items()} for _ in range(repeats)]
    base = next(iter(calls))
    return {name: (statistics.median(r[name] for r in rounds), statistics.median(r[name] / r[base] for r in rounds))
            for name in calls}


def cpu_wall_medians(title: str, runs: dict) -> dict:
    """Print, under ``title``, the median CPU and wall seconds of each way's runs (way -> list of
    ``{"cpu": s, "wall": s}``, measured in turns); returns way -> those medians."""
    median = {way: {key: statistics.median(r[key] for r in rows) for key in ("cpu", "wall")}
              for way, rows in runs.items()}
    width = max(len(way) for way in median)
    print(title)
    print(f"{'':>{width}} {'CPU s':>7} {'wall s':>7}")
    for way, row in median.items():
        print(f"{way:>{width}} {row['cpu']:7.3f} {row['wall']:7.3f}")
    return median
