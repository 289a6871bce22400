"""MNIST from the standard IDX files, with a cache, checked downloads and an embedded fallback.

Look-up order (first hit wins), each place in the torchvision layout ``<place>/MNIST/raw/``
or flat ``<place>/``, gzip-compressed (``*.gz``) or not:

1. the ``root`` argument,
2. ``$BNN_TEACH_DATA``,
3. the user cache (``$BNN_TEACH_CACHE``, else ``$XDG_CACHE_HOME/bnn_teach``, else ``~/.cache/bnn_teach``).

When nothing is found it downloads into the cache (into a temporary file renamed into place only
after the MD5 of its content matches), and when offline it serves an embedded stratified subset of
real MNIST shipped inside the package (10,000 training and 2,000 test images) and says so.
Lecture 1 (data and the ELBO) uses it.

Decompressing and checksumming the training images takes about half a second of CPU in every process that
loads them (each notebook's kernel, each graded submission). So the first load of a ``.gz`` also keeps its
decompressed content in the cache (``decompressed/``, 55 MB for the four files), named by the ``.gz`` file's
path, size and modification time; later loads read that copy, and check its MD5 against the official one as
they would the ``.gz`` (a copy that fails is not used). A ``.gz`` that changes is read again.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from bnn_teach._cache import cache_dir  # noqa: F401 - part of this module's API
from bnn_teach._checks import env_flag

__all__ = [
    "load_mnist",
    "mnist_source",
    "read_idx",
    "cache_dir",
    "MNISTFileError",
    "FILES",
    "EMBEDDED_PATH",
]

# name -> (md5 of the uncompressed file, its size in bytes)
FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47040016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7840016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10008),
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
EMBEDDED_PATH = Path(__file__).with_name("embedded") / "mnist_subset.npz"
_FIX = (
    "Delete it and run `bnn-teach check --download` to fetch a fresh copy (in Python: "
    "bt.data.load_mnist(download=True)), or copy the four MNIST .gz files again (see README, 'Data')."
)


class MNISTFileError(ValueError):
    """A local MNIST file is corrupt, truncated or not an IDX file. The message names the file."""


def _candidate_roots(root) -> list[Path]:
    roots = []
    if root is not None:
        roots.append(Path(root).expanduser())
    if os.environ.get("BNN_TEACH_DATA"):
        roots.append(Path(os.environ["BNN_TEACH_DATA"]).expanduser())
    roots.append(cache_dir())
    return roots


def _find_file(place: Path, name: str) -> Path | None:
    for folder in (place / "MNIST" / "raw", place):
        for candidate in (folder / (name + ".gz"), folder / name):
            if candidate.is_file():
                return candidate
    return None


def _find_split(root, split: str) -> tuple[Path, Path] | None:
    """Both files of a split from the first place that holds both, else None."""
    for place in _candidate_roots(root):
        found = [_find_file(place, name) for name in SPLIT_FILES[split]]
        if all(found):
            return found[0], found[1]
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise MNISTFileError(f"{path} is corrupt or truncated ({err}). {_FIX}") from err


def read_idx(path, *, verify: bool = True) -> np.ndarray:
    """Parse one IDX file (optionally ``.gz``) into a ``uint8`` array.

    Images come back as shape ``(N, 28, 28)``, labels as ``(N,)``. With ``verify`` the MD5 of
    the content is compared with the official one when the file name is a known MNIST file.
    Raises :class:`MNISTFileError` naming the file when it is corrupt or truncated.
    """
    path = Path(path)
    return _read_idx_cached(str(path), path.stat().st_mtime_ns, path.stat().st_size, verify).copy()


def _copy_path(path: Path, size: int, mtime_ns: int) -> Path | None:
    """Where the decompressed content of ``path`` is kept in the cache, when it is an official MNIST ``.gz``
    (else None): named by the file's name, path, size and modification time."""
    name = path.name[:-3]
    if path.suffix != ".gz" or name not in FILES:
        return None
    key = hashlib.sha1(f"{path.resolve()}|{size}|{mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "decompressed" / f"{name}.{key}"


def _read_copy(copy: Path, name: str) -> bytes | None:
    """The content kept in ``copy`` when it is the official file ``name`` (its size and MD5), else None."""
    try:
        data = copy.read_bytes()
    except OSError:
        return None
    return data if len(data) == FILES[name][1] and hashlib.md5(data).hexdigest() == FILES[name][0] else None


def _keep_copy(copy: Path, data: bytes) -> None:
    """Write ``data`` to ``copy`` (a temporary file renamed into place: a reader never sees half of it) and
    remove the copies of the same file made from older versions; a cache that cannot be written is left."""
    temporary = None
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=copy.parent, prefix=f".{copy.name}.", delete=False) as f:
            temporary = f.name
            f.write(data)
        os.chmod(temporary, 0o644)  # public data, as the .gz it comes from (a temporary file is private)
        os.replace(temporary, copy)
        temporary = None
        for older in copy.parent.glob(copy.name.rsplit(".", 1)[0] + ".*"):
            if older != copy:
                with contextlib.suppress(OSError):
                    older.unlink()
    except OSError:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


@lru_cache(maxsize=8)
def _read_idx_cached(path_str: str, mtime_ns: int, size: int, verify: bool) -> np.ndarray:
    path = Path(path_str)
    name = path.name[:-3] if path.suffix == ".gz" else path.name
    copy = _copy_path(path, size, mtime_ns) if verify else None  # an official .gz: its content may be kept
    data = _read_copy(copy, name) if copy else None
    from_copy = data is not None
    if data is None:
        data = _read_bytes(path)
    if len(data) < 8:
        raise MNISTFileError(f"{path} is truncated: {len(data)} bytes, not an IDX file. {_FIX}")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise MNISTFileError(f"{path} is not an MNIST IDX file (bad magic number {data[:4].hex()}). {_FIX}")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(dims))
    if len(data) != expected:
        raise MNISTFileError(
            f"{path} is truncated or padded: {len(data)} bytes where its header promises {expected}. {_FIX}"
        )
    if verify and name in FILES and not from_copy:  # a copy's MD5 was checked as it was read
        digest = hashlib.md5(data).hexdigest()
        if digest != FILES[name][0]:
            raise MNISTFileError(f"{path} fails its checksum (md5 {digest}, expected {FILES[name][0]}). {_FIX}")
        if copy:
            _keep_copy(copy, data)
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _download_file(name: str, target_dir: Path, mirrors=None, timeout: float = 20.0) -> Path:
    """Download ``name.gz`` into ``target_dir`` atomically: temp file, MD5 check, rename."""
    from tqdm.auto import tqdm

    mirrors = mirrors or _mirrors()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / (name + ".gz")
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name + ".gz"
        fd, tmp_name = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=target_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
            try:
                content = gzip.decompress(tmp.read_bytes())
            except (OSError, EOFError, zlib.error) as err:
                raise MNISTFileError(f"download of {url} is not a valid gzip file ({err})") from err
            digest = hashlib.md5(content).hexdigest()
            if digest != FILES[name][0]:
                raise MNISTFileError(f"download of {url} fails its checksum (md5 {digest}, expected {FILES[name][0]})")
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, MNISTFileError) as err:
            errors.append(f"{url}: {err}")
        finally:
            if tmp.exists():
                tmp.unlink()
    raise ConnectionError("could not download MNIST file " + name + ":\n  " + "\n  ".join(errors))


def _mirrors():
    env = os.environ.get("BNN_TEACH_MNIST_MIRROR")
    return (env,) if env else MIRRORS


def _offline() -> bool:
    return env_flag("BNN_TEACH_OFFLINE")


def _download_split(split: str, root) -> tuple[Path, Path]:
    target = (Path(root).expanduser() if root is not None else cache_dir()) / "MNIST" / "raw"
    paths = []
    for name in SPLIT_FILES[split]:
        existing = _find_file(target.parent.parent, name)
        paths.append(existing if existing is not None else _download_file(name, target))
    return paths[0], paths[1]


def data_problems(root=None) -> list[str]:
    """What is wrong with the places full MNIST is looked for, one line each (empty when nothing is):
    ``$BNN_TEACH_DATA`` naming a folder that does not exist or holds no MNIST file, and a place holding
    some of the four files but not all (loading would fall back to the embedded subset for a split)."""
    problems = []
    env = os.environ.get("BNN_TEACH_DATA")
    places = _candidate_roots(root)
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            problems.append(f"BNN_TEACH_DATA={env} is not a folder: no full MNIST is read from it")
        elif not any(_find_file(folder, name) for names in SPLIT_FILES.values() for name in names):
            problems.append(f"BNN_TEACH_DATA={env} holds no MNIST file (expected MNIST/raw/*-ubyte.gz in it)")
    for place in places:
        present = {name: _find_file(place, name) for names in SPLIT_FILES.values() for name in names}
        missing = [name + ".gz" for name, path in present.items() if path is None]
        if 0 < len(missing) < len(present):
            problems.append(f"{place} holds only {len(present) - len(missing)} of the 4 MNIST files; missing: "
                            f"{', '.join(missing)}")
    return problems


def mnist_source(root=None, split: str = "train") -> str:
    """Where :func:`load_mnist` would take ``split`` from, without loading: a folder or ``"embedded"``."""
    found = _find_split(root, split)
    if found is not None:
        return str(found[0].parent)
    return "embedded"


@lru_cache(maxsize=1)
def _embedded() -> dict:
    with np.load(EMBEDDED_PATH) as archive:
        return {key: archive[key] for key in archive.files}


def _stratified_order(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded order in which every prefix holds the classes in (nearly) equal numbers."""
    perm = np.random.default_rng(seed).permutation(len(labels))
    shuffled = labels[perm]
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(shuffled == c)
        rank[idx] = np.arange(len(idx))
    return perm[np.argsort(rank, kind="stable")]


def _to_tensors(images: np.ndarray, labels: np.ndarray):
    X = torch.from_numpy(images.astype(np.float32)).div_(255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return X, y


def load_mnist(split: str = "train", root=None, download: bool | None = None, subset: int | None = None):
    """Load MNIST as tensors.

    Parameters
    ----------
    split : ``"train"`` (60,000 images) or ``"test"`` (10,000).
    root : folder to look in first (torchvision layout ``root/MNIST/raw/*.gz`` or flat).
    download : ``True`` download when not found (error if that fails); ``False`` never download;
        ``None`` (default) download when online, else fall back to the embedded subset.
    subset : if given, a seeded stratified subset of that many examples (equal class counts).

    Returns
    -------
    X : float32 tensor of shape (N, 1, 28, 28), values in [0, 1]
    y : int64 tensor of shape (N,), labels 0..9
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset <= 0):
        raise ValueError(f"subset must be a positive int or None, got {subset!r}")
    if download not in (None, True, False):
        raise TypeError(f"download must be True, False or None, got {download!r}")

    found = _find_split(root, split)
    if found is None and (download is True or (download is None and not _offline())):
        try:
            found = _download_split(split, root)
        except ConnectionError:
            if download is True:
                raise
    if found is not None:
        images, labels = read_idx(found[0]), read_idx(found[1])
        if len(images) != len(labels):
            raise MNISTFileError(
                f"{found[0]} holds {len(images)} images but {found[1]} holds {len(labels)} labels. {_FIX}"
            )
    else:
        data = _embedded()
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        print(
            f"bnn_teach: full MNIST not found; using the embedded subset ({len(labels)} {split} images). "
            "For the full set, go online or set BNN_TEACH_DATA to a folder holding MNIST/raw/*.gz."
        )
    if subset is not None:
        if subset > len(labels):
            raise ValueError(f"subset={subset} is larger than the {len(labels)} {split} images available")
        keep = np.sort(_stratified_order(labels)[:subset])
        images, labels = images[keep], labels[keep]
    return _to_tensors(images, labels)


def build_embedded_subset(root, out_path=EMBEDDED_PATH, num_train: int = 10_000, num_test: int = 2_000, seed: int = 0):
    """Write the embedded stratified subset from the full MNIST found at ``root`` (run once, by a maintainer)."""
    arrays = {}
    for split, count in (("train", num_train), ("test", num_test)):
        found = _find_split(root, split)
        if found is None:
            raise FileNotFoundError(f"no full MNIST {split} split under {root}")
        images, labels = read_idx(found[0]), read_idx(found[1])
        keep = np.sort(_stratified_order(labels, seed)[:count])
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[keep], labels[keep]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".part.npz")
    np.savez_compressed(tmp, **arrays)
    shutil.move(tmp, out_path)
    return out_path


def keep_decompressed(root=None) -> list[Path]:
    """Make the cache's decompressed copy of each full MNIST ``.gz`` file found (see the module's docstring)
    that has none yet, and return the copies. The grader calls it before a submission's kernel starts: in
    the sandbox the cache is read-only, and each kernel would otherwise decompress the files again."""
    copies = []
    for split in SPLIT_FILES:
        for path in _find_split(root, split) or ():
            stat = path.stat()
            copy = _copy_path(path, stat.st_size, stat.st_mtime_ns)
            if copy is None:
                continue
            if not copy.exists():
                with contextlib.suppress(MNISTFileError):  # a broken file is reported where it is loaded
                    read_idx(path)
            copies.append(copy)
    return [copy for copy in copies if copy.exists()]
