"""A run's record, metrics.json: its fields, its version, and loading it with a one-line error for
an old or damaged file. No torch: the verdict job reads records on a machine without it.

train.py writes one at the end of every run (mnist_gate.runfolder.save); the verdict, the reports,
the README's tables and the benchmark read them, always through mnist_gate.runfolder.load_record.

Records cross versions of this code: CI judges a change's records with its base's verdict. So a
field is added with a default and keeps VERSION: a reader skips the fields it does not know, and
fills in the default for a record from before the field. VERSION moves only when a field changes
its meaning or goes, and then an older reader refuses the record in one line.
"""

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .settings import Refused

VERSION = 2  # 2: recipe_settings


class RecordError(Refused):
    """A record that cannot be read as one; the message is one line that says which and why."""


@dataclass(frozen=True)
class Epoch:
    epoch: int
    train_loss: float  # label-smoothed, as the trainer minimises it
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float  # at the epoch's first step
    augmented: bool
    size: int  # image side the epoch trained and tested at
    train_seconds: float  # training steps only
    seconds: float  # with the test-set evaluation


@dataclass(frozen=True)
class Record:
    model: str
    profile: str | None  # the gate profile it trained as (train.py --profile), if any
    seed: int
    parameters: int  # trainable
    epochs: int
    test_images: int
    test_correct: int  # at the final epoch
    wall_seconds: float
    device: str
    device_type: str  # cpu or cuda
    threads: int
    torch: str
    python: str
    git_commit: str | None
    config: dict  # every setting, as train.py resolved them
    recipe_settings: tuple[str, ...]  # those of config that decide the result (train.py's recipe)
    history: tuple[Epoch, ...]
    notes: tuple[str, ...] = ()  # what the run changed from its settings, and why
    key: str | None = None  # the tree key of the checkout that trained it (mnist_gate.key)
    version: int = VERSION
    folder: Path | None = field(default=None, compare=False)  # where it was read from

    @property
    def final_test_acc(self) -> float:
        """The gated number: the final epoch's test accuracy, a fraction."""
        return self.test_correct / self.test_images

    @property
    def recipe(self) -> dict:
        """The settings that decided the run's result: what two runs must share to be compared."""
        return {name: self.config.get(name) for name in self.recipe_settings}

    @property
    def name(self) -> str:
        """The profile it trained as, else its model."""
        return self.profile or self.model

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        del data["folder"]
        data["final_test_acc"] = self.final_test_acc  # for people reading the file
        return json.dumps(data, indent=2, allow_nan=False) + "\n"


def _matches(value, kind) -> bool:
    """Whether a JSON value has a field's type (int for float is fine; bool is not an int)."""
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == str | None:
        return value is None or isinstance(value, str)
    if kind is dict:
        return isinstance(value, dict)
    if kind == tuple[str, ...]:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == tuple[Epoch, ...]:
        return isinstance(value, list)
    return isinstance(value, kind)


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise RecordError(f"{where} is not a JSON object")
    fields = [f for f in dataclasses.fields(cls) if f.name != "folder"]
    required = [f.name for f in fields if f.default is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise RecordError(f"{where} has no {', '.join(missing)}")
    for f in fields:
        if f.name in data and not _matches(data[f.name], f.type):
            raise RecordError(f"{where}: {f.name} is {data[f.name]!r}, not a {f.type}")
    return {f.name: data[f.name] for f in fields if f.name in data}


def from_dict(data: dict, where: str = "the record") -> Record:
    """A Record from parsed JSON, or a RecordError that names the first thing wrong with it."""
    if isinstance(data, dict) and data.get("version", None) != VERSION:
        if "version" not in data:
            raise RecordError(f"{where} is from before records had a version; train it again")
        raise RecordError(f"{where} is version {data['version']}; this code reads {VERSION}")
    values = _build(Record, data, where)
    history = tuple(
        Epoch(**_build(Epoch, row, f"{where}, history[{i}]"))
        for i, row in enumerate(values["history"])
    )
    record = Record(
        **{
            **values,
            "history": history,
            "notes": tuple(values.get("notes", ())),
            "recipe_settings": tuple(values["recipe_settings"]),
        }
    )
    if not 0 <= record.test_correct <= record.test_images or record.test_images <= 0:
        raise RecordError(
            f"{where}: {record.test_correct} correct of {record.test_images} test images"
        )
    if record.epochs < 1 or len(history) != record.epochs:
        raise RecordError(f"{where}: {len(history)} epochs of history for {record.epochs} epochs")
    stated = data.get("final_test_acc", record.final_test_acc)
    if not _matches(stated, float) or not math.isclose(stated, record.final_test_acc, abs_tol=1e-9):
        raise RecordError(
            f"{where}: final_test_acc {stated} is not {record.test_correct}/{record.test_images}"
        )
    if not math.isclose(history[-1].test_acc, record.final_test_acc, abs_tol=1e-9):
        raise RecordError(
            f"{where}: the last epoch's accuracy {history[-1].test_acc} is not "
            f"{record.test_correct}/{record.test_images}"
        )
    return record
