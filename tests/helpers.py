"""Helpers the tests share."""

import shutil
from pathlib import Path

import train


def smoke(tmp_path: Path, **overrides) -> train.Config:
    """A run small enough for the fast tier: 1,024 training images, one augmented epoch."""
    settings = dict(epochs=1, clean_epochs=0, limit=1024, out=tmp_path / "run", progress=False)
    return train.Config(**{**settings, **overrides})


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
