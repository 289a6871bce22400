"""bnn_teach.data: IDX parsing, look-up order, checked downloads, offline fallback, toy sets."""
import gzip
import hashlib
import http.server
import struct
import threading
from functools import partial

import numpy as np
import pytest
import torch

import bnn_teach as bt
from bnn_teach.data import mnist as mnist_mod

TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def write_idx(path, array, compress=True):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)
    return data


# ---------------------------------------------------------------- the real files

def test_full_mnist_counts_and_label_histogram(mnist_root):
    X, y = bt.data.load_mnist("train", root=mnist_root)
    Xt, yt = bt.data.load_mnist("test", root=mnist_root)
    assert X.shape == (60000, 1, 28, 28) and Xt.shape == (10000, 1, 28, 28)
    assert X.dtype == torch.float32 and y.dtype == torch.int64
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert torch.bincount(yt).tolist() == TEST_LABEL_COUNTS
    assert torch.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_env_variable_is_second_in_lookup(mnist_root, isolated_data, monkeypatch):
    monkeypatch.setenv("BNN_TEACH_DATA", str(mnist_root))
    assert bt.data.mnist_source() == str(mnist_root / "MNIST" / "raw")
    # an explicit root that holds the files wins over the environment (synthetic files: no checksum)
    monkeypatch.setattr(mnist_mod, "FILES", {})
    other = isolated_data / "other" / "MNIST" / "raw"
    other.mkdir(parents=True)
    write_idx(other / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    write_idx(other / "t10k-labels-idx1-ubyte.gz", np.arange(3))
    Xt, yt = bt.data.load_mnist("test", root=isolated_data / "other")
    assert yt.tolist() == [0, 1, 2] and Xt.shape == (3, 1, 28, 28)


# ---------------------------------------------------------------- IDX parsing

@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28))
    path = tmp_path / ("imgs.gz" if compress else "imgs")
    write_idx(path, images, compress)
    np.testing.assert_array_equal(bt.data.read_idx(path), images)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = write_idx(path, np.arange(100) % 10)
    path.write_bytes(gzip.compress(data)[:-20])  # cut the gzip stream short
    with pytest.raises(bt.data.MNISTFileError, match="t10k-labels-idx1-ubyte.gz") as err:
        bt.data.read_idx(path)
    assert "download=True" in str(err.value)


def test_short_payload_and_bad_magic(tmp_path):
    path = tmp_path / "labels"
    data = write_idx(path, np.arange(10), compress=False)
    path.write_bytes(data[:-3])
    with pytest.raises(bt.data.MNISTFileError, match="truncated"):
        bt.data.read_idx(path)
    path.write_bytes(b"\x01\x02\x03\x04" + data[4:])
    with pytest.raises(bt.data.MNISTFileError, match="magic"):
        bt.data.read_idx(path)


def test_checksum_failure_on_known_file(tmp_path):
    # a well-formed IDX file under an official name but with the wrong content
    path = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(path, np.zeros(10000), compress=False)
    with pytest.raises(bt.data.MNISTFileError, match="checksum"):
        bt.data.read_idx(path)
    assert bt.data.read_idx(path, verify=False).shape == (10000,)


def test_corrupt_file_in_lookup_raises_not_falls_back(isolated_data):
    raw = isolated_data / "cache" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(bt.data.MNISTFileError, match="t10k-images-idx3-ubyte.gz"):
        bt.data.load_mnist("test", download=False)


# ---------------------------------------------------------------- downloads (a local server)

@pytest.fixture
def local_mirror(tmp_path, monkeypatch):
    """Serve synthetic MNIST test files over HTTP on 127.0.0.1 with matching checksums."""
    served = tmp_path / "served"
    served.mkdir()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(20, 28, 28))
    labels = np.arange(20) % 10
    files = dict(mnist_mod.FILES)
    for name, array in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        data = write_idx(served / (name + ".gz"), array)
        files[name] = (hashlib.md5(data).hexdigest(), len(data))
    monkeypatch.setattr(mnist_mod, "FILES", files)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("BNN_TEACH_MNIST_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    yield served, images, labels
    server.shutdown()


def test_download_verifies_and_renames_atomically(isolated_data, local_mirror):
    served, images, labels = local_mirror
    Xt, yt = bt.data.load_mnist("test", download=True)
    assert yt.tolist() == labels.tolist()
    np.testing.assert_allclose(Xt[:, 0].numpy() * 255, images, atol=1e-3)
    raw = isolated_data / "cache" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_download_with_bad_checksum_leaves_nothing(isolated_data, local_mirror):
    served, _, _ = local_mirror
    write_idx(served / "t10k-labels-idx1-ubyte.gz", np.zeros(20))  # tampered on the server
    with pytest.raises(ConnectionError, match="checksum"):
        bt.data.load_mnist("test", download=True)
    raw = isolated_data / "cache" / "MNIST" / "raw"
    assert not any(p.name.startswith("t10k-labels") for p in raw.iterdir())
    assert not any(p.suffix == ".part" for p in raw.iterdir())


def test_download_none_falls_back_when_server_unreachable(isolated_data, monkeypatch, capsys):
    monkeypatch.delenv("BNN_TEACH_OFFLINE")
    monkeypatch.setenv("BNN_TEACH_MNIST_MIRROR", "http://127.0.0.1:9/")  # discard port: refused
    Xt, yt = bt.data.load_mnist("test")
    assert Xt.shape == (2000, 1, 28, 28)
    assert "embedded subset" in capsys.readouterr().out
    with pytest.raises(ConnectionError):
        bt.data.load_mnist("test", download=True)


# ---------------------------------------------------------------- offline fallback

def test_offline_fallback_serves_embedded_subset(isolated_data, capsys):
    X, y = bt.data.load_mnist("train")
    out = capsys.readouterr().out
    assert "embedded subset" in out and "BNN_TEACH_DATA" in out
    assert X.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y).tolist() == [1000] * 10
    Xt, yt = bt.data.load_mnist("test", download=False)
    assert Xt.shape == (2000, 1, 28, 28) and torch.bincount(yt).tolist() == [200] * 10
    assert bt.data.mnist_source() == "embedded"


def test_embedded_subset_is_real_mnist(mnist_root, isolated_data):
    X_sub, y_sub = bt.data.load_mnist("test", download=False)
    X_full, y_full = bt.data.load_mnist("test", root=mnist_root)
    # every embedded image is one of the real test images with the same label
    flat_full = (X_full.reshape(len(X_full), -1) * 255).round().to(torch.uint8).numpy()
    index = {row.tobytes(): int(label) for row, label in zip(flat_full, y_full)}
    flat_sub = (X_sub.reshape(len(X_sub), -1) * 255).round().to(torch.uint8).numpy()
    assert all(index.get(row.tobytes()) == int(label) for row, label in zip(flat_sub, y_sub))


def test_subset_is_stratified_and_deterministic(isolated_data):
    X1, y1 = bt.data.load_mnist("train", download=False, subset=500)
    X2, y2 = bt.data.load_mnist("train", download=False, subset=500)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert torch.bincount(y1).tolist() == [50] * 10
    with pytest.raises(ValueError, match="subset"):
        bt.data.load_mnist("train", download=False, subset=10**6)
    with pytest.raises(ValueError, match="subset"):
        bt.data.load_mnist("train", download=False, subset=0)
    with pytest.raises(ValueError, match="split"):
        bt.data.load_mnist("validation")


# ---------------------------------------------------------------- toy sets

def test_regression_1d_shape_gap_seed():
    X, y = bt.data.regression_1d(300, seed=3)
    assert X.shape == (300, 1) and y.shape == (300, 1)
    assert not torch.any((X > -1) & (X < 1)), "no inputs inside the gap"
    assert float(X.min()) >= -4 and float(X.max()) <= 4
    X2, y2 = bt.data.regression_1d(300, seed=3)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert not torch.equal(y, bt.data.regression_1d(300, seed=4)[1])
    # heteroscedastic: residual spread grows with |x|
    mean, std = bt.data.regression_1d_truth(X)
    resid = (y - mean).abs().squeeze()
    inner, outer = X.abs().squeeze() < 2, X.abs().squeeze() > 3
    assert resid[outer].mean() > 1.5 * resid[inner].mean()


def test_two_moons_shape_balance_seed():
    X, y = bt.data.two_moons(201, noise=0.1, seed=0)
    assert X.shape == (201, 2) and y.shape == (201,) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [101, 100]
    X2, y2 = bt.data.two_moons(201, noise=0.1, seed=0)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    # noiseless points lie on the two unit half circles
    X0, y0 = bt.data.two_moons(50, noise=0.0, seed=0)
    centre = torch.where(y0.unsqueeze(1) == 0, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5]))
    torch.testing.assert_close((X0 - centre).norm(dim=1), torch.ones(50))


def test_large_p_small_n_follows_deng():
    X, y, beta = bt.data.large_p_small_n(seed=0)
    assert X.shape == (100, 1000) and y.shape == (100,) and beta.shape == (1000,)
    assert torch.all(beta[3:] == 0)
    assert torch.allclose(beta[:3], torch.tensor([3.0, 2.0, 1.0]), atol=0.8)
    X2, y2, beta2 = bt.data.large_p_small_n(seed=0)
    assert torch.equal(X, X2) and torch.equal(y, y2) and torch.equal(beta, beta2)
    # residual variance is the noise variance 3; neighbouring columns correlate at 0.6
    Xb, yb, bb = bt.data.large_p_small_n(n=20000, p=5, seed=1)
    resid = yb - Xb @ bb
    assert abs(float(resid.var()) - 3.0) < 0.15
    corr = np.corrcoef(Xb.numpy().T)
    assert abs(corr[0, 1] - 0.6) < 0.03 and abs(corr[0, 2] - 0.36) < 0.03
    *_, X_test, y_test = bt.data.large_p_small_n(seed=0, num_test=50)
    assert X_test.shape == (50, 1000) and y_test.shape == (50,)


def test_random_labels_shuffles_but_keeps_counts():
    y = torch.arange(1000) % 10
    shuffled = bt.data.random_labels(y, seed=0)
    assert torch.equal(torch.bincount(shuffled), torch.bincount(y))
    assert (shuffled == y).float().mean() < 0.2
    assert torch.equal(shuffled, bt.data.random_labels(y, seed=0))


def test_check_download_fetches_what_the_mirror_has(isolated_data, local_mirror, monkeypatch, capsys):
    """`bnn-teach check --download` (Colab's setup cell) fetches each split it can and says which failed."""
    from bnn_teach import cli

    monkeypatch.setattr(cli, "_online", lambda timeout=3.0: True)
    cli.check(download=True)
    printed = capsys.readouterr().out
    raw = isolated_data / "cache" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert "MNIST        train download failed" in printed and "test download failed" not in printed


def test_a_gz_file_is_decompressed_once_and_its_copy_is_checked_like_the_file(tmp_path, monkeypatch):
    """The first read keeps the decompressed content in the cache; later reads use that copy while the .gz is
    the same file (path, size, time) and the copy's MD5 is the official one; a damaged copy or a new .gz is
    read from the .gz again."""
    import os

    monkeypatch.setenv("BNN_TEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BNN_TEACH_DATA", raising=False)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels = np.arange(50) % 10
    data = write_idx(path, labels)
    official = {**mnist_mod.FILES, "t10k-labels-idx1-ubyte": (hashlib.md5(data).hexdigest(), len(data))}
    monkeypatch.setattr(mnist_mod, "FILES", official)
    np.testing.assert_array_equal(bt.data.read_idx(path), labels)
    [copy] = (tmp_path / "cache" / "decompressed").iterdir()
    assert copy.read_bytes() == data and mnist_mod.keep_decompressed(tmp_path) == []  # no split complete here

    def read_again():  # as a new process would
        mnist_mod._read_idx_cached.cache_clear()
        return bt.data.read_idx(path)

    stat = path.stat()
    path.write_bytes(b"x" * stat.st_size)  # no longer gzip, with the same size and time: only the copy is read
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    np.testing.assert_array_equal(read_again(), labels)
    copy.write_bytes(data[:-1] + b"\x07")  # a damaged copy is not used: the .gz is read, and names itself
    with pytest.raises(bt.data.MNISTFileError, match="t10k-labels-idx1-ubyte.gz"):
        read_again()
    data = write_idx(path, labels[::-1])  # a new .gz: read, and its copy replaces the old one
    monkeypatch.setitem(official, "t10k-labels-idx1-ubyte", (hashlib.md5(data).hexdigest(), len(data)))
    np.testing.assert_array_equal(read_again(), labels[::-1])
    [new_copy] = (tmp_path / "cache" / "decompressed").iterdir()
    assert new_copy != copy and new_copy.read_bytes() == data
    np.testing.assert_array_equal(bt.data.read_idx(path, verify=False), labels[::-1])


def test_the_full_set_is_read_from_its_copy_as_from_the_gz(mnist_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BNN_TEACH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BNN_TEACH_DATA", str(mnist_root))
    mnist_mod._read_idx_cached.cache_clear()
    X, y = bt.data.load_mnist("test")
    copies = mnist_mod.keep_decompressed()
    assert sorted(c.name.split(".")[0] for c in copies) == sorted(mnist_mod.FILES)
    mnist_mod._read_idx_cached.cache_clear()
    X2, y2 = bt.data.load_mnist("test")
    assert torch.equal(X, X2) and torch.equal(y, y2) and y.bincount().tolist() == TEST_LABEL_COUNTS
