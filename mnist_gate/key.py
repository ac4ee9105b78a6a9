"""The key of what decides a gate result: a hash of every file in the checkout that can change
what the slow tier trains, so that two trees with one key train the same runs. Standard library
only: CI works it out for a base and a change on a hosted runner without torch.

    python -m mnist_gate.key                      # this checkout's tree key
    python -m mnist_gate.key --kind gpu BASE CHANGE   # CI: lines for GITHUB_OUTPUT

Which key serves what:
- The tree key (tree()) names the files that decide a run: the network, the recipe, the data, the
  requirements, the training code and the slow tier's training path. Every record carries the tree
  key of the checkout that trained it, committed or not.
- The reference key (reference()) adds the device kind and the seed list: main's runs are stored
  under it, and a pull request finds its base's runs by it. It names the kind, not the model:
  GitHub's hosted CPU runners vary in processor, and the records say which one each run had.
Runs are reused as identical only when the tree keys match and the run is of the same kind; a
seed repeats exactly only on the same device model and torch, which the records name.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

from . import paths, profiles, settings
from .settings import Refused

# What never changes what the slow tier trains: the documents and the records behind them, CI, the
# fast tier, the tools beside the gate, and the code that judges runs afresh each time. A change to
# these alone trains nothing.
JUDGES = (
    "*.md",
    "docs/",
    "results/",
    ".github/",
    ".ci/",
    ".gitignore",
    "tests/",
    "scripts/",
    "mnist_gate/checks.py",
    "mnist_gate/judging.py",
    "mnist_gate/key.py",
    "mnist_gate/markdown.py",
    "mnist_gate/rates.py",
    "mnist_gate/stats.py",
    "mnist_gate/tracer.py",
    "mnist_gate/verdict.py",
)
# ...except these, which the slow tier trains with (its session, its path to train.py, the
# environment it runs in).
TRAINS = (
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/gate_runs.py",
    "tests/test_gate_slow.py",
    "scripts/gate-env.sh",
)


class Unkeyed(Refused):
    """The key of a tree cannot be worked out; the message is one line that says why."""


def judges(path: str) -> bool:
    """Whether a file at path (relative, with /) is out of the key."""
    if path in TRAINS:
        return False
    for pattern in JUDGES:
        if pattern.startswith("*"):
            if "/" not in path and path.endswith(pattern[1:]):
                return True
        elif path == pattern or (pattern.endswith("/") and path.startswith(pattern)):
            return True
    return False


def files(root: Path) -> list[str]:
    """The files of a git checkout, tracked or new but not ignored, as git names them."""
    command = [
        "git",
        "-C",
        str(root),
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]
    try:
        listed = subprocess.run(command, capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as err:
        raise Unkeyed(f"{root} is not a git checkout git can list ({err})") from None
    return sorted(set(listed.stdout.decode().split("\0")) - {""})


def tree(root: Path = paths.ROOT) -> str:
    """The sha256 of every deciding file's path and contents under root (a file git lists but the
    tree no longer has counts as deleted)."""
    digest = hashlib.sha256()
    for name in files(root):
        if judges(name):
            continue
        path = root / name
        digest.update(name.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"link\0" + str(path.readlink()).encode())
        elif path.is_file():
            digest.update(b"file\0" + hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(b"deleted\0")
    return digest.hexdigest()


def here() -> str | None:
    """This checkout's tree key for a record, or None when git cannot list it (a copy without
    .git, say)."""
    try:
        return tree(paths.ROOT)
    except (Unkeyed, OSError):
        return None


def reference(kind: str, tree_key: str, seeds: list[int]) -> str:
    """The name main's runs of a device kind are stored under: bounded whatever the seed count."""
    listed = hashlib.sha256(",".join(map(str, seeds)).encode()).hexdigest()
    return f"gate-{kind}-{tree_key[:24]}-seeds{len(seeds)}-{listed[:8]}"


def outputs(kind: str, base: Path, change: Path) -> str:
    """CI's lines: the base's reference key, both tree keys, and whether they are the same."""
    budgets = profiles.load(base / "pyproject.toml")
    ours, theirs = tree(base), tree(change)
    return (
        f"key={reference(kind, ours, budgets.seeds('reference'))}\n"
        f"base-tree={ours}\nchange-tree={theirs}\nsame={str(ours == theirs).lower()}"
    )


def command_line() -> settings.Parser:
    parser = settings.Parser(
        prog="python -m mnist_gate.key", description="The key of what decides a gate result."
    )
    parser.add_argument("--kind", help="the device kind (gpu, cpu): print CI's lines")
    parser.add_argument("base", nargs="?", type=Path, default=paths.ROOT, help="the checkout")
    parser.add_argument("change", nargs="?", type=Path, help="the change's checkout (with --kind)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    if args.kind:
        print(parser.run(lambda: outputs(args.kind, args.base, args.change or args.base)))
    else:
        print(parser.run(lambda: tree(args.base)))


if __name__ == "__main__":
    sys.exit(main())
