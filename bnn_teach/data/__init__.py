"""Data: MNIST (full, cached or embedded) and the course's toy sets. See :mod:`bnn_teach.data.mnist`."""
from bnn_teach.data.mnist import MNISTFileError, cache_dir, load_mnist, mnist_source, read_idx
from bnn_teach.data.toy import large_p_small_n, random_labels, regression_1d, regression_1d_truth, two_moons

__all__ = [
    "load_mnist", "mnist_source", "read_idx", "cache_dir", "MNISTFileError",
    "regression_1d", "regression_1d_truth", "two_moons", "large_p_small_n", "random_labels",
]
