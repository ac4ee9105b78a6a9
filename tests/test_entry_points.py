"""Every command a user or a workflow runs ends bad input in one line and exit 2: a missing, an
empty and a wrong-typed input for each, in process through its main(argv), never a traceback."""

import importlib

import pytest

import train

# command -> (its module, and for each kind of bad input its arguments, from inputs()).
MISSING, EMPTY, WRONG = "missing", "empty", "wrong type"


def inputs(tmp_path):
    """A path that does not exist, an empty file, an empty folder, and a file of other bytes."""
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "folder").mkdir()
    (tmp_path / "other.txt").write_text("not what it asks for\n")
    return {
        "missing": str(tmp_path / "nope"),
        "empty file": str(tmp_path / "empty.txt"),
        "empty folder": str(tmp_path / "folder"),
        "other": str(tmp_path / "other.txt"),
    }


# A command that takes a folder: none there, an empty one, a file instead.
FOLDER = {MISSING: lambda p: [p["missing"]], EMPTY: lambda p: [p["empty folder"]],
          WRONG: lambda p: [p["other"]]}  # fmt: skip

COMMANDS = {
    "train.py": (
        train,
        {MISSING: lambda p: ["--data-dir", p["missing"]], EMPTY: lambda p: ["--epochs", ""],
         WRONG: lambda p: ["--out", p["other"]]},
    ),
    "mnist_gate.verdict": (
        "mnist_gate.verdict",
        {MISSING: lambda p: [p["missing"]], EMPTY: lambda p: [p["empty folder"]],
         WRONG: lambda p: [p["empty folder"], "--seeds", "x"]},
    ),
    "mnist_gate.report": ("mnist_gate.report", FOLDER),
    "scripts.readme": ("scripts.readme", FOLDER),
    "mnist_gate.key": ("mnist_gate.key", FOLDER),
    "mnist_gate.profiles": (
        "mnist_gate.profiles",
        {MISSING: lambda p: ["jobs", "ci", "2", p["missing"]],
         EMPTY: lambda p: ["jobs", "ci", "2", p["empty file"]],
         WRONG: lambda p: ["jobs", "ci", "two"]},
    ),
    "scripts.make_mnist": (
        "scripts.make_mnist",
        {MISSING: lambda p: ["--wheel", p["missing"]],
         EMPTY: lambda p: ["--wheel", p["empty file"]],
         WRONG: lambda p: ["--wheel", p["empty folder"]]},
    ),
    "scripts.steptime": (
        "scripts.steptime",
        {MISSING: lambda p: ["Nope"], EMPTY: lambda p: [""],
         WRONG: lambda p: ["Net", "--steps", "x"]},
    ),
    "scripts.benchmark": (
        "scripts.benchmark",
        {MISSING: lambda p: ["--model", "Nope"], EMPTY: lambda p: ["--steps", ""],
         WRONG: lambda p: ["--steps", "x"]},
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", [MISSING, EMPTY, WRONG])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_ends_bad_input_in_one_line(tmp_path, capsys, command, kind):
    module, cases = COMMANDS[command]
    main = (importlib.import_module(module) if isinstance(module, str) else module).main
    with pytest.raises(SystemExit) as exit:
        main(cases[kind](inputs(tmp_path)))
    err = capsys.readouterr().err
    assert exit.value.code == 2, f"{command} ({kind}) exited {exit.value.code}: {err}"
    assert err.count("\n") == 1 and ": error: " in err and "Traceback" not in err, err
