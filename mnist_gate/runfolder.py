"""A run's folder, in the one module that reads and writes it: claimed by one run alone, its files
saved whole, each read back with a bound and a one-line error. torch is imported only where a
checkpoint is read or written: the verdict job, with numpy alone, reads records and predictions.

    runs/net-20261203-101500/
        INCOMPLETE             until the run has saved everything below
        model.pt               the checkpoint: {"model": weights, "config": settings}
        test_predictions.npy   2 x 10,000 uint8: the true digit and the predicted one
        metrics.json           the record (mnist_gate.record)
        summary.md, curves.png, errors.png, model.txt   the reports (mnist_gate.report)

A run claims its folder before any training: it creates the folder (or takes an empty one) and the
INCOMPLETE marker in it with O_EXCL, so a second run can never take the same folder, and an
unwritable place fails at once. The marker goes when the run has saved everything: a folder holds
a complete run, or says plainly that it does not.
"""

import contextlib
import dataclasses
import io
import json
import os
import pickle
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import paths
from .paths import RunFolderError, SaveError
from .record import Record, RecordError, from_dict
from .settings import Refused

INCOMPLETE = "INCOMPLETE"
CHECKPOINT = "model.pt"
PREDICTIONS = "test_predictions.npy"
RECORD = "metrics.json"
SUMMARY, CURVES, ERRORS, MODEL_TABLE = "summary.md", "curves.png", "errors.png", "model.txt"

RECORD_BYTES = 1_000_000  # a record of 15 epochs is about 5 kB
PREDICTIONS_BYTES = 1_000_000  # 20 kB: 2 x 10,000 bytes and a header
CHECKPOINT_BYTES = 100_000_000  # a network of a million parameters takes 4 MB


class RunError(Refused):
    """A run's file that cannot be read as one; the message is one line that says which and
    why."""


def gate_folder(profile: str, seed: int, runs: Path) -> Path:
    """Where the gate keeps a profile's run of a seed: runs/gate-<profile>-seed<N>/."""
    return runs / f"gate-{profile}-seed{seed}"


def gate_runs(folder: Path) -> list[Path]:
    """Every gate-*/ run folder holding a record under folder, at any depth (artifacts unpack into
    a directory each), of each CI job's newest attempt (newest())."""
    return newest(folder, sorted(p.parent for p in Path(folder).glob(f"**/gate-*/{RECORD}")))


def unfinished(folder: Path) -> list[Path]:
    """The gate-*/ run folders under folder that never finished, of each job's newest attempt."""
    return newest(folder, sorted(p.parent for p in Path(folder).glob(f"**/gate-*/{INCOMPLETE}")))


# CI names an artifact by job and attempt, gate-gpu-<run>-<side>-a<attempt>-j<job>: "Re-run
# failed jobs" uploads a new attempt of the jobs it re-runs and keeps the others' artifacts.
ATTEMPT = re.compile(r"^(?P<job>.+)-a(?P<attempt>\d+)(?P<index>-j\d+)?$")


def newest(folder: Path, found: list[Path]) -> list[Path]:
    """The run folders of found that lie in the newest attempt of their job's artifact (folders
    outside such an artifact are all kept)."""

    def artifact(path: Path) -> tuple[str, int] | None:
        for part in path.relative_to(folder).parts[:-1]:
            match = ATTEMPT.match(part)
            if match:
                return match["job"] + (match["index"] or ""), int(match["attempt"])
        return None

    latest: dict[str, int] = {}
    for path in found:
        if named := artifact(path):
            latest[named[0]] = max(latest.get(named[0], 0), named[1])
    return [p for p in found if (named := artifact(p)) is None or latest[named[0]] == named[1]]


def claim(out: Path | None, name: str) -> Path:
    """Take `out` (new or empty), or a new runs/<name>-<time>/, for this run alone."""
    if out is None:
        out = new_folder(name)
    else:
        out = Path(out)
        paths.make_folder(out, f"--out {out}")
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


def new_folder(name: str) -> Path:
    """runs/<name>-<time>/, made exclusively: a second run in the same second gets -2, -3, ..."""
    runs = paths.RUNS
    paths.make_folder(runs, str(runs))
    base = runs / f"{name.lower()}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        out = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue  # taken by a run in the same second
        except OSError as err:
            raise RunFolderError(f"cannot create {out} ({err.strerror})") from None
    raise RunFolderError(f"{base.name}-2 to -999 are all taken in {runs}")


@contextlib.contextmanager
def saving(out: Path) -> Iterator[None]:
    """Turn a failed write into one line that says the run is not complete. torch.save reports a
    full disk as a RuntimeError from its stream writer, so that counts too."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        why = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise SaveError(f"cannot save the run in {out} ({why}); it stays {INCOMPLETE}") from None


def finish(out: Path) -> None:
    """Everything is saved: the folder holds a complete run."""
    (out / INCOMPLETE).unlink()


def save(folder: Path, run: Record, weights: dict, predictions) -> None:
    """The checkpoint, the test predictions (row 0 the true digit of each test image, row 1 the
    network's), then the record, each renamed into place whole. The run is not complete until
    its reports are written too (finish())."""
    import torch

    with saving(folder):
        with paths.atomic(folder / CHECKPOINT) as tmp:
            torch.save({"model": weights, "config": run.config}, tmp)
        with paths.atomic(folder / PREDICTIONS) as tmp:
            np.save(tmp, np.asarray(predictions, dtype=np.uint8), allow_pickle=False)
        write_record(folder, run)


def write_record(folder: Path, run: Record) -> None:
    paths.write_text(Path(folder) / RECORD, run.to_json())


def load_record(folder: Path) -> Record:
    """The record of the complete run in folder, or a one-line RecordError."""
    if Path(folder, INCOMPLETE).exists():
        raise RecordError(f"{folder} holds a run that never finished ({INCOMPLETE})")
    path = Path(folder, RECORD)
    try:
        data = json.loads(paths.read_bounded(path, RECORD_BYTES))
    except FileNotFoundError:
        raise RecordError(f"no {RECORD} in {folder}") from None
    except (OSError, ValueError) as err:
        raise RecordError(f"{path} is unreadable ({err})") from None
    except RecursionError:
        raise RecordError(f"{path} is unreadable (nested too deeply for a record)") from None
    return dataclasses.replace(from_dict(data, str(path)), folder=Path(folder))


def load_predictions(folder: Path) -> np.ndarray | None:
    """Row 0 the true digit of each test image, row 1 the run's prediction; None where there are
    none."""
    path = Path(folder, PREDICTIONS)
    if not path.exists():
        return None
    wrong = f"{path} is not 2 rows of uint8 test labels and predictions"
    try:
        raw = paths.read_bounded(path, PREDICTIONS_BYTES)
        file = io.BytesIO(raw)
        version = np.lib.format.read_magic(file)
        header = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
        if header is None:
            raise ValueError(f".npy format version {version}")
        shape, _, dtype = header(file)
        data_bytes = len(raw) - file.tell()
        if len(shape) != 2 or shape[0] != 2 or dtype != np.uint8 or 2 * shape[1] != data_bytes:
            raise RunError(wrong)  # before reading: a header may claim any size
        file.seek(0)
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise RunError(f"{path} is unreadable ({err})") from None


def load_weights(folder: Path) -> dict:
    """The weights of a run's checkpoint, read with a bound, or a one-line RunError."""
    import torch

    path = Path(folder, CHECKPOINT)
    try:
        with warnings.catch_warnings():  # an odd pickle protocol warns before it fails
            warnings.simplefilter("ignore")
            checkpoint = torch.load(io.BytesIO(paths.read_bounded(path, CHECKPOINT_BYTES)),
                                    weights_only=True)  # fmt: skip
    except (OSError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            pickle.UnpicklingError) as err:  # fmt: skip
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunError(f"{path} is unreadable ({why})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise RunError(f"{path} is not a checkpoint train.py saves ({{'model': weights}})")
    return checkpoint["model"]
