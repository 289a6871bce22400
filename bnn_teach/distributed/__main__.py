"""The posterior server on MNIST under ``torchrun``: one process per rank, on one machine or several.

    torchrun --standalone --nproc-per-node 5 -m bnn_teach.distributed --rounds 20 --local-steps 100

runs the server (rank 0) and 4 workers (``WORLD_SIZE - 1``) with the same code as
:func:`bnn_teach.distributed.posterior_server`, which starts its processes itself. On several machines,
give torchrun ``--nnodes``, ``--node-rank`` and ``--rdzv-endpoint`` instead of ``--standalone``; every
machine needs the data (``BNN_TEACH_DATA``). Rank 0 prints each round and then the result's row.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="torchrun ... -m bnn_teach.distributed",
                                     description="The posterior server on MNIST, one torchrun process per rank "
                                                 "(rank 0 the server).")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local-steps", type=int, default=100)
    parser.add_argument("--method", choices=["vi", "sgld"], default="vi")
    parser.add_argument("--compression", default=None, help="topk:FRACTION or BITSbit (default: none)")
    parser.add_argument("--train-size", type=int, default=None, help="the first N training images (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write rank 0's row as JSON to this file")
    args = parser.parse_args(argv)
    if "WORLD_SIZE" not in os.environ:
        parser.error("run it under torchrun (WORLD_SIZE is not set); from Python use "
                     "bnn_teach.distributed.posterior_server, which starts its own processes")
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size < 2:
        parser.error("give torchrun at least 2 processes: the server and one worker")

    import torch

    from bnn_teach import data, models
    from bnn_teach.distributed import algorithms
    from bnn_teach.distributed.launch import run_in_group

    torch.set_num_threads(1)
    X, y = data.load_mnist("train")
    if args.train_size is not None:
        X, y = X[:args.train_size], y[:args.train_size]
    test = data.load_mnist("test")
    torch.manual_seed(args.seed)
    model = models.mlp(100, "bbb", init_rho=-3.0)
    spec, start = algorithms.prepare("ep", model, (X, y), world_size - 1, seed=args.seed, test_data=test,
                                     rounds=args.rounds, local_steps=args.local_steps, batch_size=100,
                                     method=args.method, damping=1.0 / (world_size - 1), lr=1e-3, sgld_lr=1e-4,
                                     burn_in=args.local_steps // 2, compression=args.compression)
    began = time.perf_counter()
    out = run_in_group(algorithms.run_process, (spec, start))
    if out is None:   # a worker
        return 0
    run = algorithms.finish(spec, out, world_size - 1, time.perf_counter() - began, "random")
    row = run.evaluate(model, test)
    print(json.dumps(row))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(row, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
