"""MNIST as whole uint8 tensors, read from the IDX files in data/ and verified byte for byte; the
test labels alone without torch, for the verdict."""

from __future__ import annotations

import functools
import hashlib
import socket
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from . import paths
from .paths import ROOT
from .settings import Refused

if TYPE_CHECKING:
    import torch

DATA_DIR = ROOT / "data"
RAW_DIR = DATA_DIR / "MNIST" / "raw"  # raw_file() below names a file in it
MEAN, STD = 0.1307, 0.3081
SIZE = 28  # image side, pixels
TRAIN_IMAGES = 60_000

# Size and MD5 of the official uncompressed files: the .gz wrappers may differ, the contents not.
MNIST_FILES = {
    "train-images-idx3-ubyte": (47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60_008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7_840_016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10_008, "27ae3e4e09519cfbb04c329615203637"),
}
RESTORE = "restore it with `git checkout -- data/` or `python -m scripts.make_mnist`"
DOWNLOAD_TIMEOUT = 30  # seconds a download may wait for the server before giving up


class DataError(Refused):
    """A data problem the user can fix; the message is one line that says how."""


def read_verified(path: Path) -> bytes:
    """The uncompressed bytes of one .gz file, refused unless they match the official MD5; read
    once a process while the file stays as it was (the slow tier's seeds, trained one after
    another in one process, verify each file once)."""
    try:
        found = path.stat()
    except OSError:
        return _unpacked(path)  # which says what is wrong
    return _kept(path, (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns))


@functools.lru_cache(maxsize=len(MNIST_FILES))
def _kept(path: Path, identity: tuple[int, ...]) -> bytes:
    """_unpacked(path) while stat gives the file this identity (a refusal is never kept)."""
    return _unpacked(path)


def _unpacked(path: Path) -> bytes:
    name = path.name.removesuffix(".gz")
    size, md5 = MNIST_FILES[name]
    try:
        # Bounded: a regular file no larger than its contents, unpacked to one byte past them.
        unpack = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        data = unpack.decompress(paths.read_bounded(path, size + size // 100 + 1024), size + 1)
    except (OSError, ValueError, zlib.error) as err:
        raise DataError(f"{path} is unreadable ({err}); {RESTORE}") from None
    if not unpack.eof and len(data) <= size:
        raise DataError(f"{path} is unreadable (it ends inside its gzip stream); {RESTORE}")
    if len(data) != size or hashlib.md5(data).hexdigest() != md5:
        raise DataError(f"{path} does not match the official {name} (MD5 {md5}); {RESTORE}")
    return data


def raw_file(data_dir: Path, name: str) -> Path:
    """Where a data folder keeps one of the MNIST_FILES, gzipped: MNIST/raw/<name>.gz."""
    return Path(data_dir) / "MNIST" / "raw" / f"{name}.gz"


def mnist_test_labels(data_dir: Path = DATA_DIR) -> bytes:
    """The 10,000 test labels, a byte each in the test set's order, verified; no torch needed."""
    return read_verified(raw_file(data_dir, "t10k-labels-idx1-ubyte"))[8:]


def download(data_dir: Path, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """No shipped files at all: let torchvision fetch the official ones into the same layout.

    A server that stops answering ends the download after `timeout` seconds, not never.
    """
    from torchvision.datasets import MNIST

    print(f"no MNIST files in {data_dir}: downloading them with torchvision", flush=True)
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        for train in (True, False):
            MNIST(data_dir, train=train, download=True)
    except Exception as err:  # torchvision raises many kinds; all mean the same thing here
        raise DataError(f"no MNIST files in {data_dir} and the download failed ({err})") from None
    finally:
        socket.setdefaulttimeout(before)


def load_mnist(
    data_dir: Path = DATA_DIR, splits: tuple[str, ...] = ("train", "test")
) -> dict[str, torch.Tensor]:
    """Images as (N, 28, 28) uint8 and labels as (N,) int64, on the CPU: train_x, train_y, test_x
    and test_y, or those of the splits asked for (each verified, so the test split alone is
    quicker)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist")
    paths = {name: raw_file(data_dir, name) for name in MNIST_FILES}
    try:
        missing = [path for path in paths.values() if not path.is_file()]
        others = sorted(p.name for p in data_dir.iterdir() if p.name != "MNIST")
    except OSError as err:
        raise DataError(f"cannot look inside {data_dir} ({err.strerror})") from None
    if len(missing) == len(paths):
        if others:  # a folder of something else, or MNIST/raw itself: no download into it
            raise DataError(
                f"{data_dir} holds no MNIST/raw/*.gz but other files ({others[0]}, ...); give "
                "--data-dir the folder that holds MNIST/ (the repository's data/), or an empty "
                "one to download into"
            )
        download(data_dir)
    elif missing:
        raise DataError(f"{missing[0]} is missing; {RESTORE}")

    import torch

    def tensor(name: str, header: int, shape: tuple[int, ...]) -> torch.Tensor:
        data = bytearray(read_verified(paths[name])[header:])
        return torch.frombuffer(data, dtype=torch.uint8).reshape(shape)

    found = {}
    for split, prefix, n in (("train", "train", TRAIN_IMAGES), ("test", "t10k", 10_000)):
        if split in splits:
            found[f"{split}_x"] = tensor(f"{prefix}-images-idx3-ubyte", 16, (n, SIZE, SIZE))
            found[f"{split}_y"] = tensor(f"{prefix}-labels-idx1-ubyte", 8, (n,)).long()
    return found
