"""Where things live, and files written whole: under a temporary name, renamed into place; read
with a bound; locked by one process at a time. A run's folder and its files are
mnist_gate.runfolder's."""

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .settings import Refused

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs"
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
OPERATIONS = ROOT / "docs" / "operations.md"


def read_bounded(path: Path, limit: int) -> bytes:
    """A regular file's bytes, or a one-line ValueError: not a FIFO or a device (reading one never
    ends), nothing over `limit` bytes."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file")
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"over the {limit:,} bytes such a file may have")
    return data


class RunFolderError(Refused):
    """The run cannot have the folder it asked for; the message is one line that says why."""


class SaveError(Refused):
    """A run's file could not be written (a full disk, say); the run stays marked INCOMPLETE."""

    status = 1


def make_folder(path: Path, label: str) -> None:
    """The folder and its parents, or one line: a file or a broken link in the way, or why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(f"cannot create {label}: it is a file or a broken link") from None
    except OSError as err:
        raise RunFolderError(f"cannot create {label} ({err.strerror})") from None


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block completes."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix tells writers the format
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block, or fail at once with `busy`: what another
    process holds, this one leaves alone. The lock goes with the process, however it ends."""
    make_folder(path.parent, str(path.parent))
    try:
        file = path.open("w")
    except OSError as err:
        raise RunFolderError(f"cannot create {path} ({err.strerror or err})") from None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(busy) from None
        yield


def write_bytes(path: Path, data: bytes) -> None:
    """data written whole to path, or a SaveError in one line (a full disk, a read-only folder)."""
    try:
        with atomic(path) as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        raise SaveError(f"cannot write {path} ({err.strerror})") from None


def write_text(path: Path, text: str) -> None:
    with atomic(path) as tmp:
        tmp.write_text(text)
