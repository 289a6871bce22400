"""What loading the MNIST training images costs a new process (a notebook's kernel, a graded submission):
from the ``.gz`` (decompressed and checksummed there) and from the cache's decompressed copy (read and
checksummed), in fresh processes, in turns, so that drifts of the machine fall on both alike:

    python benchmarks/data.py [--rounds 5]      needs full MNIST ($BNN_TEACH_DATA or the cache)

Prints the median CPU and wall seconds of ``load_mnist("train", subset=3000)`` (torch already imported) each
way, and their ratio; exits 1 when the copy is not at least 3 times faster (CPU), or when no full MNIST is found.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import cpu_wall_medians

LOAD = """
import json, time
import torch
from bnn_teach.data import mnist
cpu, wall = time.process_time(), time.perf_counter()
X, y = mnist.load_mnist("train", subset=3000)
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                  "source": mnist.mnist_source(), "images": len(y)}))
"""


def load_once(cache: Path) -> dict:
    env = {**os.environ, "BNN_TEACH_CACHE": str(cache), "BNN_TEACH_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    from bnn_teach.data import mnist

    if mnist._find_split(None, "train") is None:
        print("no full MNIST here: set BNN_TEACH_DATA to the folder that holds MNIST/raw/*.gz")
        return 1
    runs = {"from the .gz": [], "from the copy": []}
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / "kept"
        for number in range(args.rounds):
            empty = Path(tmp) / f"empty-{number}"  # a new cache each time: nothing decompressed yet
            runs["from the .gz"].append(load_once(empty))
            runs["from the copy"].append(load_once(kept))  # the first round makes the copy
            print(f"round {number + 1}/{args.rounds}", file=sys.stderr)
        runs["from the copy"] = runs["from the copy"][1:] or runs["from the copy"]
    median = cpu_wall_medians(f"load_mnist('train', subset=3000) in a new process "
                              f"({runs['from the .gz'][0]['source']}):", runs)
    ratio = median["from the .gz"]["cpu"] / median["from the copy"]["cpu"]
    print(f"the copy is {ratio:.1f} times faster (CPU); target: at least 3")
    return 0 if ratio >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
