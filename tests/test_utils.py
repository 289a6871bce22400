"""bnn_teach.utils: device, seeds, Colab detection, FAST mode, argument checks."""
import random

import numpy as np
import pytest
import torch

import bnn_teach as bt
from bnn_teach._checks import check_positive


def test_get_device_is_cpu_without_cuda(monkeypatch):
    monkeypatch.delenv("BNN_TEACH_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert bt.utils.get_device().type == expected
    assert bt.utils.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("BNN_TEACH_DEVICE", "cpu")
    assert bt.utils.get_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            bt.utils.get_device("cuda")


def test_set_seed_seeds_python_numpy_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    bt.utils.set_seed(123)
    first = draw()
    bt.utils.set_seed(123)
    assert draw() == first
    bt.utils.set_seed(124)
    assert draw() != first
    with pytest.raises(TypeError, match="seed"):
        bt.utils.set_seed(1.5)


def test_fast_mode_and_colab(monkeypatch):
    monkeypatch.setenv("BNN_TEACH_FAST", "1")
    assert bt.utils.fast_mode()
    monkeypatch.setenv("BNN_TEACH_FAST", "0")
    assert not bt.utils.fast_mode()
    monkeypatch.delenv("BNN_TEACH_FAST")
    assert not bt.utils.fast_mode()
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert not bt.utils.in_colab()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-2026")
    assert bt.utils.in_colab()


def test_set_threads_uses_the_idle_cores_or_what_it_is_told(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("BNN_TEACH_THREADS", raising=False)
    monkeypatch.setattr(bt.utils.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    try:
        for load, expected in [(0.0, 4), (1.2, 3), (2.6, 1), (9.0, 1)]:
            monkeypatch.setattr(bt.utils.os, "getloadavg", lambda load=load: (load, load, load))
            assert bt.utils.set_threads() == expected and torch.get_num_threads() == expected
        monkeypatch.setenv("BNN_TEACH_THREADS", "2")
        assert bt.utils.set_threads() == 2 and torch.get_num_threads() == 2
        assert bt.utils.set_threads(3) == 3, "an argument overrides the environment"
        for bad in ("0", "two", "-1"):
            monkeypatch.setenv("BNN_TEACH_THREADS", bad)
            with pytest.raises(ValueError, match="BNN_TEACH_THREADS"):
                bt.utils.set_threads()
        with pytest.raises(ValueError, match="num_threads"):
            bt.utils.set_threads(0)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1.0, ValueError), ("3", TypeError),
                                          (float("nan"), ValueError), (True, TypeError)])
def test_check_positive_names_argument(value, error):
    with pytest.raises(error, match="lr"):
        check_positive("lr", value)
