"""Reports: the README and each run's files say what the code and the runs say, nothing else."""

import dataclasses

import matplotlib.figure
import numpy as np
import pytest

from mnist_gate import paths, profiles, report
from mnist_gate.verdict import load_runs
from scripts import readme

from .helpers import record, save


@pytest.mark.parametrize("name", readme.SECTIONS)
def test_the_readme_says_what_the_code_says(name):
    path, make = readme.SECTIONS[name]
    found = readme.section(path.read_text(), name)
    assert found, f"{path.name} has no generated:{name} section"
    assert found.group(2).strip() == make(profiles.load()).strip(), (
        f"{path.name}'s {name} no longer matches the code; run `python -m scripts.readme`"
    )


def test_the_results_table_is_the_committed_records():
    found = readme.section(paths.README.read_text(), "results")
    runs = load_runs(sorted((paths.ROOT / "results").glob("*/*")))
    assert runs and found.group(2).strip() == readme.results_table(runs, profiles.load()), (
        "README.md's results no longer match results/; run `python -m scripts.readme results/*/*`"
    )


def runs_on(device: str, profile: str | None, seeds):
    model = {"8k": "Net", "25k": "Net25k", None: "Net"}[profile]
    kind = "cpu" if "CPU" in device else "cuda"
    return [
        record(seed=s, profile=profile, model=model, device=device, device_type=kind) for s in seeds
    ]


def test_the_results_give_each_profile_and_device_a_row():
    runs = [
        run
        for device in ("Test CPU", "Test GPU") for profile in ("25k", "8k")
        for run in runs_on(device, profile, (0, 1))
    ]  # fmt: skip
    runs[-1] = dataclasses.replace(runs[-1], test_correct=9_930)  # one run under the bar
    gate = profiles.load()
    readme.check_seed_runs(runs, gate)  # the same seeds on two devices are no repeat
    rows = readme.results_table(runs, gate).splitlines()[2:]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == ["Net", "Net", "Net25k", "Net25k"]
    assert [row.split(" | ")[-1].strip("| ") for row in rows] == [
        "Test CPU (2 threads)", "Test GPU", "Test CPU (2 threads)", "Test GPU"
    ]  # fmt: skip
    assert "99.30 / 99.40 / 99.50" in rows[1] and "99.50 / 99.50 / 99.50" in rows[0]


def unlike(run):
    return dataclasses.replace(run, config={**run.config, "lr": 0.1})


@pytest.mark.parametrize(
    "runs, message",
    [
        (runs_on("Test CPU", "8k", (0,)) + [unlike(runs_on("Test CPU", "8k", (1,))[0])],
         "the 8k runs were not trained alike: seeds 0 and 1 differ in lr"),
        (runs_on("Test CPU", "8k", (0, 0)), "repeat a seed"),
        (runs_on("Test CPU", None, (0,)), "Net: not trained as a profile"),
    ],
    ids=["settings differ", "a seed twice", "no profile"],
)  # fmt: skip
def test_the_readme_refuses_runs_that_do_not_belong_together(tmp_path, runs, message, capsys):
    folders = [save(tmp_path / f"run{i}", run).folder for i, run in enumerate(runs)]
    before = paths.README.read_text()
    with pytest.raises(SystemExit) as exit:
        readme.main([str(folder) for folder in folders])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert paths.README.read_text() == before


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Every figure a test saves, kept to look at after it is written."""
    figures = []
    save = matplotlib.figure.Figure.savefig

    def keeping(figure, *args, **kwargs):
        figures.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keeping)
    return figures


def test_the_curves_are_drawn(tmp_path, drawn):
    run = record(0.9945)
    report.plot_curves(run, profiles.load().profile("8k"), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = drawn
    loss, accuracy = figure.axes
    assert figure.get_suptitle().endswith("final-epoch test accuracy 99.45%")
    assert [list(line.get_ydata()) for line in loss.lines] == [
        [h.train_loss for h in run.history], [h.test_loss for h in run.history]
    ]  # fmt: skip
    test = accuracy.lines[1]
    assert list(test.get_ydata()) == pytest.approx([100 * h.test_acc for h in run.history])
    assert accuracy.lines[2].get_label() == "gate: 99.4%"


def test_the_errors_are_drawn_as_a_grid(tmp_path, drawn):
    images = np.zeros((300, 28, 28), dtype=np.uint8)
    images[[3, 299]] = [[[77]], [[201]]]  # the two misclassified digits
    pairs = np.array([np.arange(300) % 10, np.arange(300) % 10], dtype=np.uint8)
    pairs[1, [3, 50, 299]] = 0  # image 50 is a 0: right all along
    report.plot_errors(record(0.99), pairs, images, tmp_path / "errors.png")
    assert (tmp_path / "errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = drawn
    (grid,) = figure.axes
    assert [text.get_text() for text in grid.texts] == ["3 as 0", "9 as 0"]
    assert "2 of 300 test images misclassified" in figure.get_suptitle()
    shown = grid.images[0].get_array()
    assert (shown == 77).sum() == (shown == 201).sum() == 28 * 28


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda readme_md, arch: arch.unlink(), "ARCHITECTURE.md (No such file or directory); "
         "restore it from git"),
        (lambda readme_md, arch: readme_md.write_bytes(b"\xff\xfe" + readme_md.read_bytes()),
         "README.md is not UTF-8 text (invalid start byte at byte 0)"),
        (lambda readme_md, arch: readme_md.write_text(
            readme_md.read_text().replace("<!-- /generated:rates -->", "")),
         "no generated:rates section to replace"),
    ],
    ids=["a file missing", "another encoding", "a section's marker gone"],
)  # fmt: skip
def test_documents_it_cannot_rewrite_are_one_line_and_none_is_touched(
    tmp_path, monkeypatch, capsys, damage, message
):
    readme_md, arch = tmp_path / "README.md", tmp_path / "ARCHITECTURE.md"
    operations = tmp_path / "operations.md"
    where = {paths.README: readme_md, paths.ARCHITECTURE: arch, paths.OPERATIONS: operations}
    for real, copy in where.items():
        copy.write_text(real.read_text())
    monkeypatch.setattr(readme, "SECTIONS", {
        name: (where[path], make) for name, (path, make) in readme.SECTIONS.items()
    })  # fmt: skip
    damage(readme_md, arch)
    before = {p: p.read_bytes() for p in where.values() if p.exists()}
    with pytest.raises(SystemExit) as exit:
        readme.main([])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert {p: p.read_bytes() for p in where.values() if p.exists()} == before


def test_the_options_table_names_every_key_a_budget_takes():
    named = {key.split(".")[-1] for key in profiles.KEYS if key.startswith("profiles.NAME.")}
    assert named == set(profiles.REQUIRED) | set(profiles.OPTIONAL)
    seeds = {key.split(".")[-1] for key in profiles.KEYS if key.startswith("seeds.")}
    assert seeds == set(profiles.WHERE)
