"""Regenerate bnn_teach/data/embedded/mnist_subset.npz from a full MNIST folder.

    python tools/make_embedded_mnist.py ../shared/data
"""
import sys

from bnn_teach.data.mnist import build_embedded_subset

if __name__ == "__main__":
    print(build_embedded_subset(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
