"""Forward+backward time of each Bayesian layer against nn.Linear / nn.Conv2d, as ratios in one run.

    python benchmarks/layers.py [--threads 2] [--repeats 30]

Linear: 784 → 300, batch 128 (LeNet-300-100's first layer; the input needs no gradient).
Conv:   20 → 50, 5×5, input 128×20×12×12 (LeNet-5's second convolution; the input needs a gradient).
The layers of a group are timed in interleaved rounds (``benchmarks/timing.py``): a ratio is the
median over ``--repeats`` rounds of the per-round ratio to the first layer of the group.
Targets (the measured ratios are in benchmarks/README.md): LRT BayesLinear ≤ 2.0× nn.Linear,
LRT BayesConv2d ≤ 2.1× nn.Conv2d.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import bnn_teach as bt

from timing import interleaved, parse_args


class TwoGemms(nn.Module):
    """The floor for an LRT layer: the mean and the variance product, nothing else."""

    def __init__(self, op, shape):
        super().__init__()
        self.op = op
        self.w1 = nn.Parameter(torch.randn(shape) * 0.01)
        self.w2 = nn.Parameter(torch.rand(shape) * 1e-4)

    def forward(self, x):
        return self.op(x, self.w1) + self.op(x * x, self.w2)


def time_group(layers: dict, x, repeats: int, inner: int) -> dict:
    """name -> (median seconds per forward+backward step, median ratio to the first layer)."""
    for layer in layers.values():
        layer.train()
    return interleaved({name: (lambda layer=layer: layer(x).sum().backward()) for name, layer in layers.items()},
                       repeats, inner)


def main(argv=None):
    args = parse_args(__doc__, argv, repeats=30, inner=10)

    x_lin = torch.rand(128, 784)
    x_conv = torch.rand(128, 20, 12, 12, requires_grad=True)
    linear = {
        "nn.Linear": nn.Linear(784, 300),
        "two GEMMs (floor)": TwoGemms(F.linear, (300, 784)),
        "BayesLinear (LRT)": bt.nn.BayesLinear(784, 300),
        "BayesLinear (LRT, fused=False)": bt.nn.BayesLinear(784, 300, fused=False),
        "BayesLinear (weight sampling)": bt.nn.BayesLinear(784, 300, local_reparam=False),
        "LinearSVDO": bt.nn.LinearSVDO(784, 300),
        "LinearSVDO (fused=False)": bt.nn.LinearSVDO(784, 300, fused=False),
        "LinearARD": bt.nn.LinearARD(784, 300),
        "LinearGroupSVDO": bt.nn.LinearGroupSVDO(784, 300),
    }
    conv = {
        "nn.Conv2d": nn.Conv2d(20, 50, 5),
        "two convolutions (floor)": TwoGemms(F.conv2d, (50, 20, 5, 5)),
        "BayesConv2d (LRT)": bt.nn.BayesConv2d(20, 50, 5),
        "BayesConv2d (LRT, fused=False)": bt.nn.BayesConv2d(20, 50, 5, fused=False),
        "BayesConv2d (weight sampling)": bt.nn.BayesConv2d(20, 50, 5, local_reparam=False),
        "Conv2dSVDO": bt.nn.Conv2dSVDO(20, 50, 5),
        "Conv2dSVDO (fused=False)": bt.nn.Conv2dSVDO(20, 50, 5, fused=False),
        "Conv2dARD": bt.nn.Conv2dARD(20, 50, 5),
    }
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}×{args.inner} steps")
    for title, layers, x in (
        ("linear 784→300, batch 128", linear, x_lin),
        ("conv 20→50 5×5, 128×20×12×12", conv, x_conv),
    ):
        print(f"\n{title}")
        for name, (seconds, ratio) in time_group(layers, x, args.repeats, args.inner).items():
            print(f"  {name:<32}{seconds * 1e3:8.3f} ms   {ratio:5.2f}×")


if __name__ == "__main__":
    main()
