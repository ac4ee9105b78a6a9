"""The code's shape, held: dependencies point one way (train.py and the tests use mnist_gate, never
the reverse), one function reads pyproject.toml, a run folder's file names are spelled in one
module, and no function takes more than five positional arguments."""

import ast
from pathlib import Path

import pytest

from mnist_gate import runfolder
from mnist_gate.paths import ROOT

PACKAGE = sorted((ROOT / "mnist_gate").glob("*.py"))
SOURCES = [*PACKAGE, ROOT / "train.py", ROOT / "model.py", *sorted((ROOT / "scripts").glob("*.py")),
           *sorted((ROOT / "tests").glob("*.py"))]  # fmt: skip


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imported(module: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("path", PACKAGE, ids=[p.name for p in PACKAGE])
def test_no_module_of_the_package_imports_train_py(path):
    assert not {"train", "tests"} & {n.split(".")[0] for n in imported(tree(path))}


def test_one_function_reads_pyproject_toml():
    readers = [
        f"{path.name}:{node.name}"
        for path in PACKAGE
        for node in ast.walk(tree(path))
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(n, ast.Attribute) and n.attr in ("read_text", "loads", "load")
                and "toml" in ast.unparse(n) for n in ast.walk(node))
    ]  # fmt: skip
    assert readers == ["profiles.py:gate_table"]


def test_a_run_folders_file_names_are_spelled_in_runfolder_alone():
    names = {runfolder.CHECKPOINT, runfolder.PREDICTIONS, runfolder.RECORD, runfolder.INCOMPLETE,
             runfolder.SUMMARY, runfolder.CURVES, runfolder.ERRORS,
             runfolder.MODEL_TABLE}  # fmt: skip
    spelled = [
        f"{path.name}: {node.value}"
        for path in [*PACKAGE, ROOT / "train.py"]
        if path.name != "runfolder.py"
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Constant) and node.value in names
    ]
    assert spelled == []


def positional(node: ast.FunctionDef) -> int:
    """Positional parameters, not counting a method's self or cls."""
    params = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]
    return len(params) - (params[:1] in (["self"], ["cls"]))


def test_no_function_takes_more_than_five_positional_arguments():
    crowded = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({positional(node)})"
        for path in SOURCES
        for node in ast.walk(tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and positional(node) > 5
    ]
    assert crowded == []


def test_every_command_parses_with_the_one_line_parser():
    """settings.Parser ends bad arguments in one line and turns every Refused into its line and
    status (Parser.run): a command built on argparse's own parser would print a usage block."""
    plain = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in SOURCES
        if path.name != "settings.py"
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Attribute) and node.attr == "ArgumentParser"
    ]
    assert plain == []
