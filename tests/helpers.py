"""Helpers the tests share: a smoke-sized training config (and evaluation left out), records
built as train.py builds them, writable copies of read-only files, scratch git repositories of
this project, and processes forked from this one."""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import train
from mnist_gate import key, profiles, runfolder, runtime, settings
from mnist_gate.data import mnist_test_labels
from mnist_gate.paths import ROOT
from mnist_gate.record import Epoch, Record
from mnist_gate.runfolder import PREDICTIONS


def smoke(tmp_path: Path, **overrides) -> train.Config:
    """A run small enough for the fast tier: 1,024 training images, one augmented epoch."""
    settings = dict(
        epochs=1, clean_epochs=0, limit=1024, out=tmp_path / "run", progress=False, reports=False
    )
    return train.Config(**{**settings, **overrides})


def unevaluated(net, images, labels, size) -> tuple[float, float, torch.Tensor]:
    """train.evaluate for a test that is not about evaluation: it draws no random numbers and
    trains nothing, so the run trains as it would; loss and accuracy 0, every guess a 0."""
    return 0.0, 0.0, torch.zeros_like(labels)


def record(
    accuracy: float = 0.995, *, seed: int = 0, profile: str | None = "8k", **overrides
) -> Record:
    """A record of a 3-epoch run of a profile's recipe (train.py's defaults for none or one
    pyproject.toml lacks), ending at `accuracy` (to the image)."""
    gate = profiles.load()
    if profile in gate.profiles:
        cfg = gate.profile(profile).settings(train.Config, seed=seed, progress=False)
    else:
        cfg = train.Config(seed=seed, progress=False)
    config = runtime.jsonable(cfg)
    history = tuple(
        Epoch(epoch=e, train_loss=0.6, train_acc=0.98, test_loss=0.12,
              test_acc=round(accuracy * 10_000) / 10_000 - (3 - e) * 0.001, lr=0.1,
              augmented=e < 3, size=28, train_seconds=3.0, seconds=3.4)
        for e in (1, 2, 3)
    )  # fmt: skip
    fields = dict(
        model="Net", profile=profile, seed=seed, parameters=7_162, epochs=3, test_images=10_000,
        test_correct=round(accuracy * 10_000), wall_seconds=12.0, device="Test CPU",
        device_type="cpu", threads=2, torch="2.14.1", python="3.11.7", git_commit=None,
        config={**config, "profile": profile}, recipe_settings=tuple(settings.recipe_names(cfg)),
        history=history,
    )  # fmt: skip
    return Record(**{**fields, **overrides})


def passing_record(profile: profiles.Profile, seed: int, accuracy: float, **overrides) -> Record:
    """A record of a profile's network, within its budget but for the accuracy given."""
    return record(accuracy, seed=seed, profile=profile.name, model=profile.model,
                  parameters=profile.max_params - 1, **overrides)  # fmt: skip


TEST_LABELS = np.frombuffer(mnist_test_labels(), dtype=np.uint8)


def predictions(wrong: list[int], n: int = 10_000) -> np.ndarray:
    """The shipped test labels (the first n) and predictions, the images in `wrong`
    misclassified."""
    labels = TEST_LABELS[:n].copy()
    guesses = labels.copy()
    guesses[wrong] = (guesses[wrong] + 1) % 10
    return np.stack([labels, guesses])


def save(folder: Path, run: Record, pairs: np.ndarray | None = None, kept: bool = True) -> Record:
    """A run's folder as train.py leaves it: the record and the test predictions (those given,
    else the first images wrong, as many as the record says; none if not kept)."""
    folder.mkdir(parents=True)
    runfolder.write_record(folder, run)
    if pairs is None:
        pairs = predictions(list(range(run.test_images - run.test_correct)), run.test_images)
    if kept:
        np.save(folder / PREDICTIONS, pairs, allow_pickle=False)
    return dataclasses.replace(run, folder=folder)


def writable_copy(source: Path, target: Path) -> None:
    """Copy a tree's contents without its permission bits: a read-only checkout's files become
    writable copies that a test may damage."""
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)


def git(root: Path, *args: str) -> str:
    """A git command in root, as a scratch committer; its output."""
    command = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def project_repo(root: Path) -> Path:
    """This checkout's files (tracked, or new and not ignored) as a git repository of its own,
    committed once on main."""
    for name in key.files(ROOT):
        source = ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


@dataclasses.dataclass
class Forked:
    """A child of this process, its stdout and stderr piped back: a process of its own to signal
    and to end, without the seconds a new interpreter spends importing torch."""

    pid: int
    stdout: object
    stderr: object

    status: int | None = None

    def wait(self) -> int:
        """Its exit status as subprocess gives it: the code, or minus the signal that ended it."""
        if self.status is None:
            self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.status

    def __enter__(self) -> "Forked":
        return self

    def __exit__(self, *exc) -> None:
        """Ended, whatever the test found: a child left behind would train on unseen."""
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()
        self.stdout.close()
        self.stderr.close()


def forked(target: Callable[[], object]) -> Forked:
    """target() in a forked child, as a command would run it: its own one thread, Ctrl-C
    raising KeyboardInterrupt, sys.exit's code its exit status."""
    import torch._dynamo  # noqa: F401  (a child's first optimizer imports it: once, here)

    pipes = [os.pipe(), os.pipe()]
    pid = os.fork()
    if pid:
        for _, write in pipes:
            os.close(write)
        out, err = (os.fdopen(read, buffering=1) for read, _ in pipes)
        return Forked(pid, out, err)
    status = 1
    try:
        for fd, (read, write) in zip((1, 2), pipes, strict=True):
            os.close(read)
            os.dup2(write, fd)
        sys.stdout, sys.stderr = (open(fd, "w", buffering=1, closefd=False) for fd in (1, 2))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        torch.set_num_threads(1)
        target()
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
