"""Helpers the tests share."""

import shutil
from pathlib import Path


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
