"""Where things live, and the run folder: claimed by one run alone, never left half-written.

A run claims its folder before any training: it creates the folder (or takes an empty one) and an
INCOMPLETE marker in it with O_EXCL, so a second run can never take the same folder, and an
unwritable place fails at once. Files are written under a temporary name and renamed into place;
the marker goes when the run has saved everything. A folder therefore holds a complete run, or
says plainly that it does not.
"""

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs"
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
INCOMPLETE = "INCOMPLETE"
PREDICTIONS = "test_predictions.npy"  # 2 x 10,000 uint8: true digit, predicted digit


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


def gate_folder(profile: str, seed: int, runs: Path = RUNS) -> Path:
    """Where the gate keeps a profile's run of a seed: runs/gate-<profile>-seed<N>/."""
    return runs / f"gate-{profile}-seed{seed}"


class RunFolderError(Exception):
    """The run cannot have the folder it asked for; the message is one line that says why."""


class SaveError(Exception):
    """A run's file could not be written (a full disk, say); the run stays marked INCOMPLETE."""


@contextlib.contextmanager
def saving(out: Path) -> Iterator[None]:
    """Turn a failed write into one line that says the run is not complete. torch.save reports a
    full disk as a RuntimeError from its stream writer, so that counts too."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        why = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise SaveError(f"cannot save the run in {out} ({why}); it stays {INCOMPLETE}") from None


def claim(out: Path | None, name: str) -> Path:
    """Take `out` (new or empty), or a new runs/<name>-<time>/, for this run alone."""
    if out is None:
        out = new_folder(name)
    else:
        out = Path(out)
        make_folder(out, f"--out {out}")
    marker = out / INCOMPLETE
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise RunFolderError(
            f"{out} is taken by another run, or holds one that never finished ({INCOMPLETE}); "
            "delete it or choose another folder"
        ) from None
    except OSError as err:
        raise RunFolderError(f"cannot write to {out} ({err.strerror})") from None
    with os.fdopen(fd, "w") as file:
        file.write(f"run started {time.strftime('%Y-%m-%d %H:%M:%S')} by process {os.getpid()}\n")
    others = sorted(p.name for p in out.iterdir() if p.name != INCOMPLETE)
    if others:
        marker.unlink()
        raise RunFolderError(
            f"{out} is not an empty folder (it holds {others[0]}); nothing is overwritten"
        )
    return out


def make_folder(path: Path, label: str) -> None:
    """The folder and its parents, or one line: a file or a broken link in the way, or why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(f"cannot create {label}: it is a file or a broken link") from None
    except OSError as err:
        raise RunFolderError(f"cannot create {label} ({err.strerror})") from None


def new_folder(name: str) -> Path:
    """runs/<name>-<time>/, made exclusively: a second run in the same second gets -2, -3, ..."""
    make_folder(RUNS, str(RUNS))
    base = RUNS / f"{name.lower()}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        out = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue  # taken by a run in the same second
        except OSError as err:
            raise RunFolderError(f"cannot create {out} ({err.strerror})") from None
    raise RunFolderError(f"{base.name}-2 to -999 are all taken in {RUNS}")


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


def write_text(path: Path, text: str) -> None:
    with atomic(path) as tmp:
        tmp.write_text(text)


def finish(out: Path) -> None:
    """Everything is saved: the folder holds a complete run."""
    (out / INCOMPLETE).unlink()
