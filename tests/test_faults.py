"""Nothing that failed can look like a result: runs killed at each stage, a full disk, two gate
runs at once, unfinished or damaged runs before the verdict, and settings refused before anything
is deleted, claimed or trained."""

import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import train
from mnist_gate import judging, markdown, paths, profiles, record, report, runfolder, verdict
from mnist_gate.data import DataError, load_mnist
from mnist_gate.paths import ROOT, RunFolderError
from mnist_gate.runfolder import INCOMPLETE, PREDICTIONS
from mnist_gate.settings import ConfigError

from . import gate_runs
from .helpers import forked, predictions, save, smoke, unevaluated, writable_copy
from .helpers import record as a_record

KILLS = [
    ("training", signal.SIGINT),
    ("training", signal.SIGTERM),
    ("saving", signal.SIGKILL),
    ("reports", signal.SIGINT),
    ("reports", signal.SIGTERM),
    ("reports", signal.SIGKILL),
]


def stopping(real):
    """real, after it says the stage is reached and waits there for a signal."""

    def stopped(*args, **kwargs):
        print("stage reached", flush=True)
        time.sleep(120)
        return real(*args, **kwargs)

    return stopped


def train_stopping_at(stage: str, argv: list[str]) -> None:
    """train.py's command line, stopped at a stage: "training" (it trains on), "saving" (model.pt
    is written, the predictions and the record are not) or "reports" (everything else is)."""
    train.evaluate = unevaluated  # the child's own: what it is killed in is not evaluation
    if stage == "saving":
        np.save = stopping(np.save)
    if stage == "reports":
        report.write_run_reports = stopping(report.write_run_reports)
    train.main(argv)


@pytest.mark.parametrize("stage, sig", KILLS, ids=[f"{st}-{sig.name}" for st, sig in KILLS])
def test_a_run_killed_at_any_stage_is_never_a_result(tmp_path, stage, sig):
    out = tmp_path / "run"
    epochs = "1000" if stage == "training" else "1"
    argv = ["--epochs", epochs, "--limit", "256", "--no-progress", "--out", str(out)]
    marker = "epoch  1 " if stage == "training" else "stage reached"
    with forked(lambda: train_stopping_at(stage, argv)) as child:
        line = ""
        while marker not in line:
            line = child.stdout.readline()
            assert line, child.stderr.read()
        os.kill(child.pid, sig)
        status, err = child.wait(), child.stderr.read()
    if sig == signal.SIGKILL:
        assert status == -signal.SIGKILL, err
    else:
        how = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}[sig]
        assert status == 128 + sig, err
        assert err.strip().splitlines() == [
            f"train.py: {how}; a run folder it had claimed stays marked INCOMPLETE"
        ]
    assert (out / INCOMPLETE).exists()
    with pytest.raises(record.RecordError, match="never finished"):
        runfolder.load_record(out)
    with pytest.raises(RunFolderError, match="holds one that never finished"):
        runfolder.claim(out, "Net")


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """A finished run with its reports, trained once for the tests that copy it."""
    _, run = train.train(smoke(tmp_path_factory.mktemp("reported"), limit=256, reports=True))
    return run.folder


@pytest.fixture
def copied(reported, tmp_path) -> SimpleNamespace:
    """A copy of that run, for a test to change: its folder."""
    return SimpleNamespace(folder=Path(shutil.copytree(reported, tmp_path / "run")))


def test_reports_come_before_the_run_is_complete_and_can_be_rebuilt(copied, capsys):
    run = copied
    promised = {"metrics.json", "model.pt", "test_predictions.npy", "summary.md", "curves.png",
                "errors.png", "model.txt"}  # fmt: skip
    assert {p.name for p in run.folder.iterdir()} == promised
    for name in ("summary.md", "errors.png", "model.txt"):
        (run.folder / name).unlink()
    report.main([str(run.folder)])
    assert {p.name for p in run.folder.iterdir()} == promised


def test_a_run_changed_since_it_trained_is_one_line_and_its_reports_stay(copied, tmp_path, capsys):
    run = copied
    reports = ("summary.md", "curves.png", "errors.png", "model.txt")
    before = {name: (run.folder / name).read_bytes() for name in reports}
    data = json.loads((run.folder / "metrics.json").read_text())
    changes = [
        ("its predictions gone", lambda: (run.folder / "test_predictions.npy").unlink(),
         "has no test_predictions.npy to report on"),
        ("its data moved", lambda: (run.folder / "metrics.json").write_text(json.dumps(
            {**data, "config": {**data["config"], "data_dir": str(tmp_path / "moved")}})),
         "moved"),
        ("its network gone from model.py", lambda: (run.folder / "metrics.json").write_text(
            json.dumps({**data, "model": "Gone"})), "'Gone' is not a network in model.py"),
    ]  # fmt: skip
    kept = {name: (run.folder / name).read_bytes() for name in ("metrics.json", PREDICTIONS)}
    for what, change, message in changes:
        change()
        with pytest.raises(SystemExit) as exit:
            report.main([str(run.folder)])
        err = capsys.readouterr().err
        assert exit.value.code == 2 and err.count("\n") == 1 and message in err, (what, err)
        assert {name: (run.folder / name).read_bytes() for name in reports} == before, what
        for name, saved in kept.items():
            (run.folder / name).write_bytes(saved)


def test_a_checkpoint_that_is_not_one_is_one_line_when_reports_are_rebuilt(copied, capsys):
    run = copied
    checkpoint = run.folder / "model.pt"
    for write in (lambda: checkpoint.write_bytes(pickle.dumps({"model": 1})),
                  lambda: torch.save([1, 2], checkpoint),
                  lambda: torch.save({"model": {"weight": 1}}, checkpoint),
                  lambda: torch.save({"model": {}}, checkpoint),
                  lambda: checkpoint.write_bytes(b""),
                  lambda: os.mkfifo(checkpoint)):  # fmt: skip
        checkpoint.unlink(missing_ok=True)
        write()
        with pytest.raises(SystemExit) as exit:
            report.main([str(run.folder)])
        err = capsys.readouterr().err
        assert exit.value.code == 2 and err.count("\n") == 1 and "model.pt is" in err, err


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem of 128 KiB: room for a run's checkpoint and record, not its reports."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_and_leaves_the_run_incomplete(small_disk, monkeypatch, capsys):
    monkeypatch.setattr(train, "evaluate", unevaluated)
    out = small_disk / "run"
    with pytest.raises(SystemExit) as exit:
        train.main(["--epochs", "1", "--limit", "256", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert exit.value.code == 1 and err.count("\n") == 1, err
    assert f"cannot save the run in {out} (No space left on device); it stays INCOMPLETE" in err
    assert (out / INCOMPLETE).exists() and (out / "model.pt").exists()


def test_a_checkpoint_the_disk_refuses_is_one_line(tmp_path, monkeypatch, capsys):
    def refused(obj, path):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64")

    monkeypatch.setattr(train.runtime.torch, "save", refused)
    monkeypatch.setattr(train, "evaluate", unevaluated)
    with pytest.raises(SystemExit) as exit:
        train.main(["--epochs", "1", "--limit", "256", "--no-progress", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit.value.code == 1 and err.count("\n") == 1 and "it stays INCOMPLETE" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [INCOMPLETE]


def test_divergence_at_the_last_step_is_a_failure_not_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit:
        train.main(["--epochs", "1", "--limit", "256", "--lr", "1e30", "--no-progress",
                    "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert exit.value.code == 1 and "test loss became nan after epoch 1" in err, err
    assert not (out / "metrics.json").exists() and (out / INCOMPLETE).exists()


def test_two_gate_runs_never_touch_each_others_folders(tmp_path):
    profile = profiles.load().profiles["8k"]
    folder = runfolder.gate_folder(profile.name, 0, tmp_path)
    folder.mkdir()
    (folder / "theirs").write_text("a run in progress")
    with paths.locked(tmp_path / f".{folder.name}.lock", "busy"):  # the other gate run
        with pytest.raises(RunFolderError, match=f"another gate run in this checkout is training "
                                                 f"{folder.name}"):  # fmt: skip
            gate_runs.train_seed(profile, 0, tmp_path)
    assert (folder / "theirs").read_text() == "a run in progress"


def test_unfinished_and_missing_seeds_fail_the_verdict(tmp_path):
    for seed in (0, 2):
        save(tmp_path / f"gate-8k-seed{seed}", a_record(0.9950, seed=seed))
    unfinished = tmp_path / "gate-8k-seed1"
    unfinished.mkdir()
    (unfinished / INCOMPLETE).write_text("run started")
    passed, text = verdict.summary(tmp_path, seeds=[0, 1, 2], names=["8k"])
    assert not passed
    assert "- **FAIL**: 8k seed 1: no finished run" in text
    assert f"- **FAIL**: {unfinished} never finished (INCOMPLETE)" in text
    passed, text = verdict.summary(tmp_path, seeds=[0, 2])
    assert not passed and "- **FAIL**: 25k seed 0: no finished run" in text  # every profile


def test_a_finished_looking_folder_marked_incomplete_is_refused(tmp_path):
    save(tmp_path / "gate-8k-seed0", a_record(0.9950))
    (tmp_path / "gate-8k-seed0" / INCOMPLETE).write_text("run started")
    with pytest.raises(verdict.ReportError, match="holds a run that never finished"):
        verdict.summary(tmp_path, seeds=[0], names=["8k"])


def test_the_verdict_counts_no_seed_twice(tmp_path):
    for folder in ("a", "b"):
        save(tmp_path / folder / "gate-8k-seed0", a_record())
    with pytest.raises(verdict.ReportError, match="8k seed 0 twice: in"):
        verdict.summary(tmp_path, seeds=[0], names=["8k"])


@pytest.mark.parametrize(
    "folder, message",
    [("gate-8k-seed1", "its record is of 8k seed 0, which the gate keeps in gate-8k-seed0/"),
     ("gate-25k-seed0", "its record is of 8k seed 0"), ("gate-8k", "its record is of 8k seed 0")],
)  # fmt: skip
def test_the_verdict_believes_no_record_in_another_runs_folder(tmp_path, folder, message):
    save(tmp_path / folder, a_record())  # a copy of seed 0's run, to pass for another
    with pytest.raises(verdict.ReportError, match=message):
        verdict.summary(tmp_path, seeds=[0, 1], names=["8k"])


def test_the_verdict_believes_no_record_its_predictions_contradict(tmp_path):
    save(tmp_path / "gate-8k-seed0", a_record(0.9990), predictions(list(range(50))))
    with pytest.raises(verdict.ReportError, match="get 9,950 of 10,000 right, its record says"):
        verdict.summary(tmp_path, seeds=[0], names=["8k"])


@pytest.mark.parametrize(
    "labels",
    [
        lambda real: np.zeros_like(real),  # every label and every guess 0: "100%"
        lambda real: np.roll(real, 1),  # the test labels in another order
        lambda real: np.where(np.arange(len(real)) == 7, (real + 1) % 10, real),  # one changed
        lambda real: real[:100],  # a test set of 100 images
        lambda real: real[:9_999],  # one image short
    ],
    ids=["all zero", "shifted", "one label", "100 images", "9,999 images"],
)
def test_the_verdict_believes_no_run_labelled_otherwise_than_the_test_set(tmp_path, labels):
    # The run writes its own label row, guesses it right (but for 49 of 9,999), records that.
    row = labels(predictions([])[0])
    guesses = row.copy()
    guesses[: 49 if len(row) == 9_999 else 0] += 1
    correct = int((row == guesses).sum())
    run = a_record(1.0, test_images=len(row), test_correct=correct)
    last = dataclasses.replace(run.history[-1], test_acc=correct / len(row))
    save(tmp_path / "gate-8k-seed0", dataclasses.replace(run, history=(*run.history[:-1], last)),
         np.stack([row, guesses]))  # fmt: skip
    with pytest.raises(verdict.ReportError, match="is not the 10,000 MNIST test labels shipped"):
        verdict.summary(tmp_path, seeds=[0], names=["8k"])


def test_seeds_of_different_code_fail_their_verdict():
    runs = [a_record(seed=s, git_commit=c) for s, c in ((0, "a" * 40), (1, "b" * 40), (2, None))]
    judged = judging.judge(profiles.load().profiles["8k"], runs)
    assert not judged.passed and judged.run_failures == (
        f"the seeds trained different code: commit {'a' * 12}: seed 0; commit {'b' * 12}: "
        "seed 1; commit unknown: seed 2",
    )
    same = [a_record(seed=s, git_commit="a" * 40) for s in (0, 1)]
    assert judging.judge(profiles.load().profiles["8k"], same).passed


def test_a_record_trained_otherwise_than_its_profile_fails_it():
    profile = profiles.load().profiles["25k"]  # epochs = 18, small_epochs = 0
    config = {**a_record().config, "model": "Net25k", "epochs": 18, "small_epochs": 8}
    run = a_record(model="Net25k", profile="25k", config=config)
    judged = judging.judge(profile, [run])
    assert judged.run_failures == (
        "seed 0: trained with small_epochs = 8; profile 25k trains with 0",
    )


def test_a_record_of_another_model_fails_its_profile():
    judged = judging.judge(profiles.load().profiles["8k"], [a_record(model="Net25k")])
    assert judged.run_failures[0] == "seed 0: trained Net25k, not Net"
    # Its summary says so too, instead of a table of passes over a failing verdict.
    assert "| model | Net25k | Net |  | **FAIL** |" in markdown.verdict(judged)


def test_a_profile_with_a_misspelled_setting_stops_the_suite_before_any_test(monkeypatch):
    from . import conftest

    typo = profiles.Profile("8k", "Net", 8000, 15, 0.994, train={"epoch": 12})
    chosen = conftest.Selection([typo], [0], defer_verdict=False)
    config = SimpleNamespace(stash={conftest.SELECTION: chosen})
    with pytest.raises(pytest.UsageError, match="profile 8k sets 'epoch', which is not"):
        conftest.pytest_configure(config)


def test_a_profile_that_trains_over_its_epoch_budget_is_refused_before_training():
    over = profiles.Profile("8k", "Net", 8000, 10, 0.994)  # train.py's default is 15 epochs
    with pytest.raises(ConfigError, match="profile 8k trains 15 epochs, over its max_epochs of 10"):
        over.settings(train.Config, seed=0)


def test_a_seed_beyond_what_torch_takes_is_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        train.main(["--seed", str(2**64), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "--seed must be from 0 to 2^63 - 1" in err, err


def test_a_data_dir_one_level_too_deep_is_a_hint_not_a_download(tmp_path):
    writable_copy(ROOT / "data" / "MNIST", tmp_path / "MNIST")
    for deep in (tmp_path / "MNIST", tmp_path / "MNIST" / "raw"):
        before = sorted(deep.rglob("*"))
        with pytest.raises(DataError, match="give --data-dir the folder that holds MNIST/"):
            load_mnist(deep)
        assert sorted(deep.rglob("*")) == before


GOOD = """
[tool.gate]
regression = false

[tool.gate.seeds]
local = [0]
ci = [0, 1]
reference = [0, 1, 2]

[tool.gate.profiles.8k]
model = "Net"
max_params = 8000
max_epochs = 15
min_accuracy = 0.994
"""


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace("[tool.gate.profiles.8k]", "[tool.gate.profiles.'q/x']"),
         "a profile's name is letters, digits, '-' and '_' only"),
        (lambda t: t.replace("[tool.gate.profiles.8k]", "[tool.gate.profiles.'../..']"),
         "a profile's name is letters"),
        (lambda t: t.replace("[tool.gate.profiles.8k]", "[tool.gate.profiles.'8 k']"),
         "a profile's name is letters"),
        (lambda t: t.replace("[tool.gate", "[tool.gates"), "has no [tool.gate] table"),
        (lambda t: t.replace("max_epochs = 15", "max_epoch = 15"),
         "max_epoch is not a budget's key"),
        (lambda t: t.replace("max_epochs = 15\n", ""), "max_epochs missing"),
        (lambda t: t.replace("model = ", "model "), "is not valid TOML"),
        (lambda t: t.replace("local = [0]", 'local = ["0"]'), "'0' is not a seed"),
        (lambda t: t.replace("local = [0]", "local = [-1]"), "-1 is not a seed"),
        (lambda t: t.replace("local = [0]", "local = [1, 1]"), "local in pyproject.toml names "
         "seed 1 twice"),
        (lambda t: t.replace("local = [0]", "local = 0"), "no [tool.gate.seeds] local = [0, 1"),
        (lambda t: t.replace("8000", '"8k"'), "max_params = '8k': must be a whole number"),
        (lambda t: t.replace("0.994", "99.4"), "min_accuracy = 99.4: a fraction of the test set"),
        (lambda t: t.replace("8000", "0"), "max_params = 0: must be at least 1"),
        (lambda t: t.replace("15", "15.5"), "max_epochs = 15.5: must be a whole number"),
        (lambda t: t.replace("15", "true"), "max_epochs = True: must be a whole number"),
        (lambda t: t.replace('"Net"', '""'), "model is empty"),
        (lambda t: t.replace("regression = false", "regression = true"),
         "2 ci seeds against 3 reference seeds give the regression check 0% chance of catching a "
         "0.05-point drop, under the 80% it is sized for; reference needs more seeds (or set "
         "[tool.gate] regression = false)"),
        (lambda t: t.replace("regression = false", "").replace("[0, 1, 2]", str(list(range(48)))),
         "2 ci seeds against 48 reference seeds give the regression check 0% chance of catching "
         "a 0.05-point drop, under the 80% it is sized for; ci needs 20 seeds"),
        (lambda t: t.replace("regression = false\n", ""), "under the 80% it is sized for"),
        (lambda t: t.replace('"Net"', '"Net"\nretired = "yes"'),
         "[tool.gate.profiles.8k] retired = 'yes': must be true or false"),
        (lambda t: t.replace("regression = false", 'regression = "no"'),
         "[tool.gate] regression = 'no': must be true or false"),
        (lambda t: t.replace("regression = false", "").replace("ci = [0, 1]", "ci = [0]"),
         "1 ci seeds against 3 reference seeds give the regression check no chance"),
    ],
    ids=["slash", "dots", "space", "no table", "misspelt", "missing", "toml", "string seed",
         "negative seed", "seed twice", "seeds not a list", "8k", "percent", "zero",
         "fraction of an epoch", "bool", "no model", "too few reference seeds", "too few ci seeds",
         "on by default", "retired not a bool",
         "switch not a bool", "one seed"],
)  # fmt: skip
def test_a_broken_gate_table_is_one_line_naming_the_key(tmp_path, change, message):
    path = tmp_path / "pyproject.toml"
    path.write_text(GOOD)
    assert profiles.load(path).profiles["8k"].max_params == 8000 and profiles.load(path).seeds("ci")
    path.write_text(change(GOOD))
    with pytest.raises(ConfigError) as err:
        profiles.load(path).seeds("local")
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_broken_gate_table_stops_training_and_the_verdict_in_one_line(
    tmp_path, monkeypatch, capsys
):
    # The slow tier's refusal of the same table: tests/test_session.py.
    broken = tmp_path / "pyproject.toml"
    broken.write_text((ROOT / "pyproject.toml").read_text().replace("= 0.994", "= 99.4"))
    monkeypatch.setattr(paths, "PYPROJECT", broken)
    monkeypatch.setattr(paths, "RUNS", tmp_path / "runs")
    commands = (lambda: train.main(["--epochs", "1"]), lambda: verdict.main([str(paths.RUNS)]))
    for command in commands:
        with pytest.raises(SystemExit) as exit:
            command()
        err = capsys.readouterr().err
        assert exit.value.code == 2 and err.count("\n") == 1, err
        assert "min_accuracy = 99.4: a fraction of the test set" in err
        assert not (tmp_path / "runs").exists()


def damaged_record(change) -> str:
    data = json.loads(a_record().to_json())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.write_text(" " * 2_000_000), "over the 1,000,000 bytes"),
        (lambda p: p.write_text(damaged_record(lambda d: d.update(notes=[1, 2]))), "notes is"),
        (lambda p: p.write_text(damaged_record(lambda d: d.update(final_test_acc="x"))),
         "final_test_acc x is not"),
        (lambda p: p.write_text(damaged_record(lambda d: d.update(epochs=0, history=[]))),
         "0 epochs of history for 0 epochs"),
    ],
    ids=["deep", "/dev/zero", "fifo", "huge", "notes", "accuracy a string", "no epochs"],
)  # fmt: skip
def test_a_damaged_record_is_one_line_never_a_traceback_or_a_hang(tmp_path, write, message):
    folder = tmp_path / "gate-8k-seed0"
    save(folder, a_record())
    (folder / "metrics.json").unlink()
    write(folder / "metrics.json")
    with pytest.raises(record.RecordError, match=message):
        runfolder.load_record(folder)
    with pytest.raises(verdict.ReportError, match=message):
        verdict.summary(tmp_path, seeds=[0], names=["8k"])


def test_a_damaged_record_on_mains_side_is_dropped_with_a_sentence(tmp_path):
    save(tmp_path / "new" / "gate-8k-seed0", a_record(0.9950))
    main = tmp_path / "main" / "gate-8k-seed0"
    save(main, a_record(0.9950))
    (main / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    passed, text = verdict.summary(
        tmp_path / "new", main_dir=tmp_path / "main", seeds=[0], names=["8k"]
    )
    assert "Dropped from main's reference:" in text and "nested too deeply" in text
    # Left with no reference, the regression check fails closed, and says why.
    assert not passed and "- **FAIL**: no reference from main to compare with. Dropped" in text


def npy_header(shape: tuple) -> bytes:
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (117 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.write_bytes(npy_header((2, 10**12)) + bytes(20_000)), "is not 2 rows"),
        (lambda p: p.write_bytes(npy_header((2, 10_000)) + bytes(100)), "is not 2 rows"),
        (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
        (lambda p: p.write_bytes(b"not numpy at all"), "is unreadable"),
    ],
    ids=["header of 10^12", "short", "/dev/zero", "not npy"],
)  # fmt: skip
def test_damaged_predictions_are_one_line_never_a_traceback_or_a_hang(tmp_path, write, message):
    folder = tmp_path / "gate-8k-seed0"
    save(folder, a_record())
    (folder / PREDICTIONS).unlink()
    write(folder / PREDICTIONS)
    with pytest.raises(verdict.ReportError, match=message):
        verdict.summary(tmp_path, seeds=[0], names=["8k"])


def test_a_gate_folder_that_is_a_link_is_not_a_run(tmp_path):
    real = tmp_path / "elsewhere" / "gate-8k-seed0"
    save(real, a_record())
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "gate-8k-seed0").symlink_to(real)
    with pytest.raises(verdict.ReportError, match="is a link: a gate run is a folder of its own"):
        verdict.summary(tmp_path / "runs", seeds=[0], names=["8k"])


def test_a_gate_folder_that_is_a_file_or_a_link_is_replaced_and_never_followed(
    tmp_path, monkeypatch
):
    class Trained(Exception):
        pass

    def stop(cfg, profile):  # the folder is cleared before training starts: stop there
        assert not cfg.out.exists() and not cfg.out.is_symlink()
        raise Trained

    monkeypatch.setattr(train, "train", stop)
    profile = profiles.load().profiles["8k"]
    kept = tmp_path / "elsewhere"
    kept.mkdir()
    (kept / "precious").write_text("keep")
    for make in (lambda p: p.write_text("a file"), lambda p: p.symlink_to(kept)):
        make(runfolder.gate_folder(profile.name, 0, tmp_path))
        with pytest.raises(Trained):
            gate_runs.train_seed(profile, 0, runs=tmp_path)
    assert (kept / "precious").read_text() == "keep"


class NothingToTrain(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10] * 0


class NineClasses(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(28 * 28, 9)

    def forward(self, x):
        return self.head(x.flatten(1))


class Crashes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(10, 10)  # sized for something else

    def forward(self, x):
        return self.head(x.flatten(1))


@pytest.mark.parametrize(
    "net, message",
    [(NothingToTrain, "it has no trainable parameters"),
     (NineClasses, "its output for them is not (N, 10) logits"),
     (Crashes, "RuntimeError: mat1 and mat2 shapes cannot be multiplied")],
    ids=["no parameters", "nine classes", "crashes"],
)  # fmt: skip
def test_a_network_that_cannot_train_is_one_line_before_anything_is_claimed(
    tmp_path, capsys, monkeypatch, net, message
):
    import model

    monkeypatch.setattr(model, net.__name__, net, raising=False)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit:
        train.main(["--model", net.__name__, "--out", str(out), "--limit", "256", "--epochs", "1"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.count("\n") == 1, err
    assert f"train.py: error: model.{net.__name__} cannot train: " in err and message in err, err
    assert not out.exists()  # nothing claimed, nothing to clean up
