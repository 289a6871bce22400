"""One training step of LeNet-300-100 in each flavour, as a ratio to the deterministic network's step.

    python benchmarks/train_step.py [--threads 2] [--repeats 20]

A step is what ``bt.train.fit`` does per mini-batch (batch 100): forward, KL, ELBO, backward, Adam.
Flavours are timed in interleaved rounds (``benchmarks/timing.py``), so drifts of the machine cancel.
The SparseVD step sets the epoch time of ``bnn-teach reproduce sparsevd-lenet300`` (600 steps an epoch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import bnn_teach as bt

from timing import interleaved, parse_args


def make_step(model, num_data=60_000):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(100, 1, 28, 28)
    y = torch.randint(0, 10, (100,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = bt.objectives.elbo_loss(F.cross_entropy(model(x), y), bt.nn.kl_divergence(model), num_data)
        loss.backward()
        optimizer.step()

    return step


def main(argv=None):
    args = parse_args(__doc__, argv, repeats=20, inner=20)
    flavours = {
        "deterministic": bt.models.lenet300(),
        "svdo": bt.models.lenet300("svdo"),
        "svdo, train_clip": bt.models.lenet300("svdo", train_clip=True),
        "ard": bt.models.lenet300("ard"),
        "bbb (LRT)": bt.models.lenet300("bbb"),
    }
    timings = interleaved({name: make_step(model) for name, model in flavours.items()}, args.repeats, args.inner)
    print(f"torch {torch.__version__}, {args.threads} threads, LeNet-300-100, batch 100, "
          f"median of {args.repeats}×{args.inner} steps")
    for name, (seconds, ratio) in timings.items():
        print(f"  {name:<20}{seconds * 1e3:8.2f} ms/step {ratio:6.2f}×   {seconds * 600:6.2f} s per 600 steps")


if __name__ == "__main__":
    main()
