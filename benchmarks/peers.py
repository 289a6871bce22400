"""One training step with its KL, bnn_teach's Bayesian layers beside the peer libraries', in one run.

    python benchmarks/peers.py [--threads 2] [--repeats 20] [--inner 10] [--only linear|conv]
                               [--json PATH] [--no-memory] [--small]

A step is what a training loop does once per batch, with exactly one KL evaluation:

    zero the gradients (set to None, the input's too)
    out, kl = the layer's forward and its own KL (see below)
    (out.sum() + kl / num_data).backward()        # num_data = 60,000 (MNIST)

The reference rows (``nn.Linear`` / ``nn.Conv2d``), the two-product floor (``TwoGemms`` of
``benchmarks/layers.py``) and the "no KL" row have no KL term. Shapes:

    linear  784 → 300, batch 128 (LeNet-300-100's first layer; the input needs no gradient)
    conv    20 → 50, 5×5, input 128×20×12×12 (LeNet-5's second convolution; the input needs a gradient)

``--small`` shrinks both (for the test suite), the code path is the same. All rows of a shape are
timed in interleaved rounds (``benchmarks/timing.py``): ``ms/step`` is the median time per step and
the ratio is the median over ``--repeats`` rounds of the per-round ratio to ``nn.Linear`` /
``nn.Conv2d``, so drifts of the machine cancel.

Sampling schemes, and who is compared with whom (one verdict line each):

* per-example noise: bnn_teach's LRT layer (``BayesLinear`` / ``BayesConv2d``, the default) against
  bayesian-torch's ``LinearFlipout`` / ``Conv2dFlipout``. ``LinearSVDO`` / ``Conv2dSVDO`` (also the
  LRT) are in this group too, with their ratio to the LRT layer (issue 10 wants ≤ 1.2×); the LRT
  layer without its KL is given against the two-product floor (≤ 1.3×).
* one weight sample per batch: bnn_teach's ``local_reparam=False`` against bayesian-torch's
  ``LinearReparameterization`` / ``Conv2dReparameterization``, torchbnn's ``BayesLinear`` /
  ``BayesConv2d`` and blitz's ``BayesianLinear`` / ``BayesianConv2d``.

Each library's KL, used the way its documentation tells users to, and its prior (N(0, 1) for all):

* bnn_teach: ``layer.kl()``, the closed-form Gaussian KL summed (SparseVD: its approximate KL to the
  log-uniform prior). Prior ``GaussianPrior(1.0)``, the default.
* bayesian-torch: ``out, kl = layer(x)`` (``return_kl=True``, the default; ``get_kl_loss(model)``
  would evaluate it a second time). Its ``kl_div`` returns the *mean* over the elements, not the
  sum, which costs the same. ``prior_mean=0, prior_variance=1`` (used as the prior's sigma);
  default posterior init (rho ~ N(-3, 0.1)).
* torchbnn: ``torchbnn.BKLLoss(reduction="sum")(layer)`` (``functional.bayesian_kl_loss``), the
  closed-form KL. ``prior_mu=0, prior_sigma=1``; its default init sets every log sigma to
  log(prior_sigma) = 0.
* blitz: the layer's forward stores ``log_variational_posterior`` and ``log_prior`` of the weights it
  sampled; the KL is ``blitz.losses.kl_divergence_from_nn(layer)``, their difference (a one-sample
  Monte Carlo estimate), which is what ``sample_elbo`` adds. ``prior_dist=Normal(0, 1)`` (a single
  Gaussian; with ``prior_pi=1`` the default scale mixture would still evaluate its unused second
  component); default posterior init (rho ~ N(-7, 0.1)).

The posterior initialisations differ (each library's default) but do not change the arithmetic.

Peak memory of one step (column ``peak MiB``): in one fresh Python process, run before the
timing, each layer is built, runs two warm-up steps, has its gradients set to None, then runs one
step under ``torch.profiler`` with ``profile_memory=True``. The profiler records every allocation
and free of torch's CPU allocator (tensors, and the scratch buffers PyTorch takes from it); summed
in time order they give the bytes live at each moment, and the column is the highest value: the
activations kept for backward, the temporaries and the new gradients, on top of the parameters
and the input (not counted). It is exact to the byte and does not depend on how glibc reuses
memory, which the resident set does: after the first step a resident-set high-water mark barely
moves, as freed memory stays resident and is reused. Memory a library takes from ``malloc``
directly, bypassing torch's allocator, is not counted.

The peers are optional: ``make peers`` installs them without replacing the CPU torch (see
``benchmarks/README.md``). A peer that is missing, or fails to import, is skipped with a line
saying so.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import bnn_teach as bt

from layers import TwoGemms
from timing import interleaved, parse_args

NUM_DATA = 60_000

# kind -> shape of the layer and of its input
SHAPES = {
    "linear": dict(title="Linear 784→300, batch 128", args=(784, 300), input=(128, 784), input_grad=False),
    "conv": dict(title="Conv2d 20→50 5×5, input 128×20×12×12", args=(20, 50, 5), input=(128, 20, 12, 12),
                 input_grad=True),
}
SMALL_SHAPES = {
    "linear": dict(title="Linear 20→10, batch 8 (--small)", args=(20, 10), input=(8, 20), input_grad=False),
    "conv": dict(title="Conv2d 3→4 3×3, input 8×3×6×6 (--small)", args=(3, 4, 3), input=(8, 3, 6, 6),
                 input_grad=True),
}
REFERENCE = {"linear": "nn.Linear", "conv": "nn.Conv2d"}
SCHEMES = {
    "reference": "reference (no KL)",
    "per-example": "per-example noise (LRT, Flipout)",
    "per-batch": "one weight sample per batch",
}
# import name -> name on PyPI
PEERS = {"bayesian_torch": "bayesian-torch", "torchbnn": "torchbnn", "blitz": "blitz-bayesian-pytorch"}


@dataclass
class Row:
    """One layer of the table. ``make()`` returns ``(module, forward)``: ``forward(x) -> (out, kl or None)``."""

    name: str
    library: str
    scheme: str
    role: str  # "reference", "floor", "lrt", "lrt_nokl", "svdo", "weight_sampling" or "peer"
    make: Callable


def import_peers() -> tuple[dict, list]:
    """Import each peer library's layers: (import name -> namespace of what we use, list of skips)."""
    found, skipped = {}, []
    for module, pypi in PEERS.items():
        try:
            if module == "bayesian_torch":
                from bayesian_torch.layers import (
                    Conv2dFlipout,
                    Conv2dReparameterization,
                    LinearFlipout,
                    LinearReparameterization,
                )
                found[module] = dict(LinearFlipout=LinearFlipout, Conv2dFlipout=Conv2dFlipout,
                                     LinearReparameterization=LinearReparameterization,
                                     Conv2dReparameterization=Conv2dReparameterization)
            elif module == "torchbnn":
                import torchbnn
                found[module] = dict(BayesLinear=torchbnn.BayesLinear, BayesConv2d=torchbnn.BayesConv2d,
                                     BKLLoss=torchbnn.BKLLoss)
            else:
                from blitz.losses import kl_divergence_from_nn
                from blitz.modules import BayesianConv2d, BayesianLinear
                found[module] = dict(BayesianLinear=BayesianLinear, BayesianConv2d=BayesianConv2d,
                                     kl_divergence_from_nn=kl_divergence_from_nn)
        except Exception as err:  # not installed, or broken beside this torch: skip, and say why
            reason = "not installed" if isinstance(err, ModuleNotFoundError) else f"{type(err).__name__}: {err}"
            skipped.append(dict(library=pypi, reason=reason))
    return found, skipped


def build_rows(kind: str, shape: dict, peers: dict) -> list[Row]:
    """Every row of one shape, the reference first."""
    args = shape["args"]
    linear = kind == "linear"
    op = F.linear if linear else F.conv2d
    weight_shape = (args[1], args[0]) if linear else (args[1], args[0], args[2], args[2])
    suffix = "Linear" if linear else "Conv2d"

    def plain(make_module):
        def make():
            m = make_module()
            return m, lambda x: (m(x), None)
        return make

    def with_kl(make_module):
        def make():
            m = make_module()
            return m, lambda x: (m(x), m.kl())
        return make

    bayes = bt.nn.BayesLinear if linear else bt.nn.BayesConv2d
    svdo = bt.nn.LinearSVDO if linear else bt.nn.Conv2dSVDO
    rows = [
        Row(REFERENCE[kind], "torch", "reference", "reference",
            plain(lambda: nn.Linear(*args) if linear else nn.Conv2d(*args))),
        Row("two products (floor)", "benchmarks", "reference", "floor", plain(lambda: TwoGemms(op, weight_shape))),
        Row(f"bnn_teach Bayes{suffix} (LRT)", "bnn_teach", "per-example", "lrt", with_kl(lambda: bayes(*args))),
        Row(f"bnn_teach Bayes{suffix} (LRT), no KL", "bnn_teach", "per-example", "lrt_nokl",
            plain(lambda: bayes(*args))),
        Row(f"bnn_teach {suffix}SVDO", "bnn_teach", "per-example", "svdo", with_kl(lambda: svdo(*args))),
        Row(f"bnn_teach Bayes{suffix} (local_reparam=False)", "bnn_teach", "per-batch", "weight_sampling",
            with_kl(lambda: bayes(*args, local_reparam=False))),
    ]

    if "bayesian_torch" in peers:
        bayesian_torch = peers["bayesian_torch"]

        def bayesian_torch_layer(cls):
            def make():  # forward returns (out, kl): one KL evaluation per step, as the docs train
                m = cls(*args, prior_mean=0.0, prior_variance=1.0)
                return m, lambda x: m(x)
            return make

        rows.append(Row(f"bayesian-torch {suffix}Flipout", "bayesian-torch", "per-example", "peer",
                        bayesian_torch_layer(bayesian_torch[f"{suffix}Flipout"])))
        rows.append(Row(f"bayesian-torch {suffix}Reparameterization", "bayesian-torch", "per-batch", "peer",
                        bayesian_torch_layer(bayesian_torch[f"{suffix}Reparameterization"])))
    if "torchbnn" in peers:
        torchbnn = peers["torchbnn"]

        def make_torchbnn():
            m = torchbnn[f"Bayes{suffix}"](0.0, 1.0, *args)  # prior_mu, prior_sigma, then nn.Linear/Conv2d's
            kl_loss = torchbnn["BKLLoss"](reduction="sum")
            return m, lambda x: (m(x), kl_loss(m))

        rows.append(Row(f"torchbnn Bayes{suffix}", "torchbnn", "per-batch", "peer", make_torchbnn))
    if "blitz" in peers:
        blitz = peers["blitz"]

        def make_blitz():
            prior = torch.distributions.Normal(0.0, 1.0)
            if linear:
                m = blitz["BayesianLinear"](*args, prior_dist=prior)
            else:
                m = blitz["BayesianConv2d"](args[0], args[1], (args[2], args[2]), prior_dist=prior)
            # the forward stores log q(w) and log p(w) of its sample; the KL is their difference
            return m, lambda x: (m(x), blitz["kl_divergence_from_nn"](m))

        rows.append(Row(f"blitz Bayesian{suffix}", "blitz-bayesian-pytorch", "per-batch", "peer", make_blitz))
    return rows


def make_input(shape: dict) -> torch.Tensor:
    return torch.rand(shape["input"], requires_grad=shape["input_grad"])


def make_step(module: nn.Module, forward: Callable, x: torch.Tensor) -> Callable:
    """One training step: zero grads, forward with at most one KL evaluation, backward."""
    module.train()

    def step():
        module.zero_grad(set_to_none=True)
        x.grad = None
        out, kl = forward(x)
        loss = out.sum() if kl is None else out.sum() + kl / NUM_DATA
        loss.backward()
    return step


# -- peak memory of one step -------------------------------------------------------------------

def peak_bytes(step: Callable) -> int:
    """Most bytes of torch's CPU allocator live at once during ``step()``, counted from what it allocates."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                     key=lambda e: e.start_ns())
    live = peak = 0
    for record in records:  # nbytes is negative for a free
        live += record.nbytes()
        peak = max(peak, live)
    return peak


def memory_of_rows(kinds: list, small: bool) -> dict:
    """In this process: kind -> name -> peak bytes of one step (see the module docstring)."""
    peers, _ = import_peers()
    result = {}
    for kind in kinds:
        shape = (SMALL_SHAPES if small else SHAPES)[kind]
        result[kind] = {}
        for row in build_rows(kind, shape, peers):
            module, forward = row.make()
            x = make_input(shape)
            step = make_step(module, forward, x)
            step()
            step()
            module.zero_grad(set_to_none=True)
            x.grad = None
            gc.collect()
            result[kind][row.name] = peak_bytes(step)
    return result


def measure_memory(kinds: list, small: bool, threads: int) -> tuple[dict, str | None]:
    """Run :func:`memory_of_rows` in a fresh process: (kind -> name -> bytes, None) or ({}, why not)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-of", *kinds, "--threads", str(threads)]
    if small:
        cmd.append("--small")
    proc = subprocess.run(cmd, capture_output=True, text=True)  # stderr: the profiler's log lines
    if proc.returncode != 0:
        return {}, "the memory process failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


# -- report --------------------------------------------------------------------------------------

def verdicts(kind: str, rows: list[dict]) -> list[dict]:
    """The comparisons issue 10 asks for, from the rows of one shape."""
    by_role = {r["role"]: r for r in rows if r["role"] != "peer"}
    out = []
    for scheme, role, label in (("per-example", "lrt", "bnn_teach LRT"),
                                ("per-batch", "weight_sampling", "bnn_teach weight sampling")):
        peers = [r for r in rows if r["role"] == "peer" and r["scheme"] == scheme]
        mine = by_role[role]
        if not peers:
            out.append(dict(scheme=scheme, text=f"{label} {mine['ratio']:.2f}×: no {scheme} peer installed"))
            continue
        best = min(peers, key=lambda r: r["ratio"])
        word = "faster" if mine["ratio"] < best["ratio"] else "NOT faster"
        scheme_words = "per-example" if scheme == "per-example" else "one-sample-per-batch"
        out.append(dict(scheme=scheme, bnn_teach=mine["name"], peer=best["name"], bnn_teach_ratio=mine["ratio"],
                        peer_ratio=best["ratio"], faster=mine["ratio"] < best["ratio"],
                        text=f"{label} vs fastest {scheme_words} peer ({best['name']}): "
                             f"{mine['ratio']:.2f}× vs {best['ratio']:.2f}× ({word})"))
    svdo, lrt = by_role["svdo"], by_role["lrt"]
    out.append(dict(scheme="per-example", ratio=svdo["ratio"] / lrt["ratio"],
                    text=f"{svdo['name']} / {lrt['name']}: {svdo['ratio'] / lrt['ratio']:.2f}× (issue 10: ≤ 1.2×)"))
    floor = by_role["lrt_nokl"]["ratio"] / by_role["floor"]["ratio"]
    out.append(dict(scheme="per-example", ratio=floor,
                    text=f"LRT without KL / two-product floor: {floor:.2f}× (issue 10: ≤ 1.3×)"))
    return out


def print_table(kind: str, title: str, rows: list[dict], verdict_lines: list[dict], memory_note):
    reference = REFERENCE[kind]
    print(f"\n{title}")
    print(f"  {'layer':<48}{'ms/step':>9}{'× ' + reference:>14}{'peak MiB':>10}")
    for scheme, scheme_title in SCHEMES.items():
        print(f"  {scheme_title}")
        for r in (r for r in rows if r["scheme"] == scheme):
            mem = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.2f}"
            print(f"    {r['name']:<46}{r['ms']:9.3f}{r['ratio']:13.2f}×{mem:>10}")
    if memory_note:
        print(f"  peak memory not measured: {memory_note}")
    for v in verdict_lines:
        print(f"  {v['text']}")


def parse(argv):
    """This script's own options, then the shared ones (``--threads``, ``--repeats``, ``--inner``)."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--only", choices=sorted(SHAPES), help="time one shape only")
    own.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    own.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    own.add_argument("--small", action="store_true", help="tiny shapes, same code path (for the tests)")
    own.add_argument("--memory-of", nargs="+", choices=sorted(SHAPES), help=argparse.SUPPRESS)  # memory process
    opts, rest = own.parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        own.print_help()
    args = parse_args(__doc__, rest, repeats=20, inner=10)
    for key, value in vars(opts).items():
        setattr(args, key, value)
    return args


def main(argv=None):
    args = parse(argv)
    if args.memory_of:
        print(json.dumps(memory_of_rows(args.memory_of, args.small)))
        return

    shapes = SMALL_SHAPES if args.small else SHAPES
    peers, skipped = import_peers()
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} rounds × {args.inner} "
          f"steps; step = forward + KL + backward, KL / {NUM_DATA:,}")
    for skip in skipped:
        print(f"skipped {skip['library']}: {skip['reason']} (install the peers with `make peers`)")

    kinds = [args.only] if args.only else list(shapes)
    # first, so that its process does not run beside the timing
    if args.no_memory:
        memory, memory_note = {}, "--no-memory"
    else:
        memory, memory_note = measure_memory(kinds, args.small, args.threads)
    report = dict(torch=torch.__version__, threads=args.threads, repeats=args.repeats, inner=args.inner,
                  small=args.small, num_data=NUM_DATA, skipped=skipped, shapes={})
    for kind in kinds:
        shape = shapes[kind]
        rows = build_rows(kind, shape, peers)
        x = make_input(shape)
        steps = {}
        for row in rows:
            module, forward = row.make()
            steps[row.name] = make_step(module, forward, x)
        timed = interleaved(steps, args.repeats, args.inner)
        table = [dict(name=row.name, library=row.library, scheme=row.scheme, role=row.role,
                      ms=timed[row.name][0] * 1e3, ratio=timed[row.name][1],
                      peak_mib=memory[kind][row.name] / 2**20 if row.name in memory.get(kind, {}) else None)
                 for row in rows]
        verdict_lines = verdicts(kind, table)
        print_table(kind, shape["title"], table, verdict_lines, memory_note)
        report["shapes"][kind] = dict(title=shape["title"], reference=REFERENCE[kind], rows=table,
                                      verdicts=verdict_lines, memory_note=memory_note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
