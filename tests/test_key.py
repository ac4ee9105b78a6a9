"""The key of what decides a gate result: a change to any file that can change what the slow tier
trains changes it; a change to what only judges or documents runs does not."""

import shutil
import subprocess

import pytest

from mnist_gate import key

from .helpers import project_repo


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return project_repo(tmp_path_factory.mktemp("checkout"))


def deciding(root) -> list[str]:
    return [name for name in key.files(root) if not key.judges(name)]


def test_the_key_of_a_tree_is_its_deciding_files_and_nothing_else(checkout):
    names = deciding(checkout)
    for must in (
        "model.py",
        "train.py",
        "pyproject.toml",
        "requirements.txt",
        "data/MNIST/raw/train-images-idx3-ubyte.gz",
        "mnist_gate/runtime.py",
        "tests/conftest.py",
        "tests/gate_runs.py",
        "tests/test_gate_slow.py",
    ):
        assert must in names, f"{must} decides what the slow tier trains but is out of the key"
    for out in (
        "README.md",
        "mnist_gate/verdict.py",
        "mnist_gate/judging.py",
        "tests/test_key.py",
        ".github/workflows/gate.yml",
        "scripts/required_gate.py",
        "results/amd-epyc/8k-500/metrics.json",
    ):
        assert out not in names, f"{out} only judges or documents runs but is in the key"


@pytest.mark.parametrize(
    "path",
    [
        "model.py",
        "train.py",
        "mnist_gate/runtime.py",
        "requirements.txt",
        "tests/gate_runs.py",
        "pyproject.toml",
    ],
)
def test_a_change_to_a_deciding_file_changes_the_key(checkout, path):
    before = key.tree(checkout)
    original = (checkout / path).read_bytes()
    try:
        (checkout / path).write_bytes(original + b"\n# changed\n")
        assert key.tree(checkout) != before, f"{path} changed and the key did not"
    finally:
        (checkout / path).write_bytes(original)
    assert key.tree(checkout) == before


@pytest.mark.parametrize(
    "path",
    [
        *(
            p.rstrip("/") + ("/x.txt" if p.endswith("/") else "")
            for p in key.JUDGES
            if not p.startswith("*")
        ),
        "NOTES.md",
    ],
)
def test_a_change_to_a_listed_file_alone_leaves_the_key(checkout, path):
    before = key.tree(checkout)
    target = checkout / path
    original = target.read_bytes() if target.exists() else None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((original or b"") + b"\n# changed\n")
        assert key.tree(checkout) == before, f"{path} only judges or documents, yet moved the key"
    finally:
        target.unlink()
        if original is not None:
            target.write_bytes(original)


def test_a_new_file_a_run_could_import_changes_the_key_committed_or_not(checkout):
    before = key.tree(checkout)
    (checkout / "blocks.py").write_text("WIDTH = 8\n")
    try:
        assert key.tree(checkout) != before
    finally:
        (checkout / "blocks.py").unlink()
    (checkout / "model.py").unlink()
    try:
        assert key.tree(checkout) != before, "a deleted network left the key as it was"
    finally:
        subprocess.run(["git", "-C", str(checkout), "checkout", "-q", "model.py"], check=True)


def test_the_reference_key_names_the_kind_and_is_bounded_whatever_the_seeds():
    tree = "a" * 64
    short, long = key.reference("gpu", tree, [0, 1]), key.reference("gpu", tree, list(range(500)))
    assert short != long and short != key.reference("cpu", tree, [0, 1])
    assert short.startswith("gate-gpu-") and len(long) < 80


def test_ci_gets_the_base_key_and_whether_a_change_decides_anything(checkout, tmp_path, capsys):
    change = tmp_path / "change"
    shutil.copytree(checkout, change)
    key.main(["--kind", "gpu", str(checkout), str(change)])
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["same"] == "true" and lines["key"].startswith("gate-gpu-")
    (change / "model.py").write_text((change / "model.py").read_text() + "\n")
    key.main(["--kind", "gpu", str(checkout), str(change)])
    assert "same=false" in capsys.readouterr().out


def test_a_folder_git_cannot_list_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        key.main([str(tmp_path)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a git checkout" in err
