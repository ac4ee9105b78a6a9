"""A run's record has one schema: what train.py writes is what every reader loads, and an old or
damaged file is one line that says what is wrong, never a traceback or a wrong number."""

import json
import subprocess
import sys

import pytest

from mnist_gate import record as records
from mnist_gate import runfolder
from mnist_gate.paths import ROOT
from mnist_gate.record import RecordError

from .helpers import record, save, smoke


def test_what_a_run_saves_loads_as_the_record_it_returned(tmp_path):
    import train

    _, run = train.train(smoke(tmp_path, limit=256))
    loaded = runfolder.load_record(run.folder)
    assert loaded == run and loaded.folder == run.folder
    assert loaded.final_test_acc == run.history[-1].test_acc
    assert json.loads((run.folder / runfolder.RECORD).read_text())["version"] == records.VERSION


def damaged(tmp_path, change) -> str:
    data = json.loads(record().to_json())
    change(data)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runfolder.RECORD).write_text(json.dumps(data))
    with pytest.raises(RecordError) as err:
        runfolder.load_record(folder)
    return str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("version"), "is from before records had a version; train it again"),
        (lambda d: d.update(version=99), "is version 99; this code reads 2"),
        (lambda d: d.pop("test_correct"), "has no test_correct"),
        (lambda d: d.update(seed="0"), "seed is '0', not a <class 'int'>"),
        (lambda d: d.update(parameters=True), "parameters is True"),
        (lambda d: d.update(test_correct=10_001), "10001 correct of 10000 test images"),
        (lambda d: d.update(epochs=15), "3 epochs of history for 15 epochs"),
        (lambda d: d.update(test_correct=9_000), "0.995 is not 9000/10000"),
        (lambda d: d["history"][0].pop("lr"), "history[0] has no lr"),
        (lambda d: d["history"][-1].update(test_acc=float("nan")), "accuracy nan is not"),
        (lambda d: d.update(final_test_acc=1.5), "final_test_acc 1.5 is not 9950/10000"),
        (lambda d: d.update(final_test_acc=float("inf")), "final_test_acc inf is not"),
    ],
    ids=["no version", "newer version", "missing field", "string seed", "bool count",
         "more correct than images", "short history", "accuracy contradicts", "bad epoch",
         "nan history", "final 1.5", "final inf"],
)  # fmt: skip
def test_a_damaged_record_is_refused_by_name(tmp_path, change, message):
    assert message in damaged(tmp_path, change)


def test_a_missing_or_unreadable_record_is_one_line(tmp_path):
    with pytest.raises(RecordError, match="no metrics.json in"):
        runfolder.load_record(tmp_path)
    (tmp_path / runfolder.RECORD).write_text('{"model": "Net", "final_te')
    with pytest.raises(RecordError, match="is unreadable"):
        runfolder.load_record(tmp_path)
    (tmp_path / runfolder.RECORD).write_text("[1, 2]")
    with pytest.raises(RecordError, match="is not a JSON object"):
        runfolder.load_record(tmp_path)


def test_a_record_round_trips(tmp_path):
    run = save(tmp_path / "run", record(0.9947, seed=3))
    assert runfolder.load_record(run.folder) == run


def test_the_record_module_imports_no_torch():
    code = "import sys; sys.modules['torch'] = None; import mnist_gate.record, mnist_gate.verdict"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_record_with_fields_this_code_does_not_know_is_read(tmp_path):
    """CI judges a change's records with its base's code: a field a change adds (with a default,
    keeping the version) must not stop the base from reading the record."""
    data = json.loads(record(0.9947, seed=3).to_json())
    data["added_later"] = {"by": "a change"}
    data["history"][0]["also_added"] = 1.5
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runfolder.RECORD).write_text(json.dumps(data))
    assert runfolder.load_record(folder) == record(0.9947, seed=3)


def test_a_record_from_before_a_field_was_added_reads_with_its_default(tmp_path):
    data = json.loads(record(0.9947, key="f" * 64).to_json())
    del data["key"]
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runfolder.RECORD).write_text(json.dumps(data))
    assert runfolder.load_record(folder).key is None
