"""A gate profile, in the one module that owns it: its budget, the recipe it trains, the seeds it
trains, read from [tool.gate] in pyproject.toml by load() alone; and the rules on the numbers a run
reports (parameters, epochs, accuracy). No torch here: the CI jobs that list the seeds and gather
the runs read these on a machine without it.

    gate = profiles.load()                    # every profile and seed list, checked
    gate.profile("8k").settings(train.Config, seed=3)   # exactly what the gate trains
    python -m mnist_gate.profiles jobs ci 2   # the gate workflow's jobs: two seeds each (0: all)
    python -m mnist_gate.profiles jobs ci 0 base/pyproject.toml   # the seeds of another tree
"""

import argparse
import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import paths, rates
from .settings import ConfigError, Parser, flag, recipe, recipe_names


class GateError(AssertionError):
    """A broken rule; the message names the rule, the layer and by how much."""


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    max_params: int  # strictly fewer trainable parameters than this
    max_epochs: int
    min_accuracy: float  # final-epoch test accuracy, a fraction
    min_receptive_field: int | None = None  # pixels, at the map the global pool averages
    train: dict = field(default_factory=dict, hash=False)  # train.py settings the gate trains with
    # Still trained and judged while a change keeps it; a change judged by a base that retired it
    # may remove it (README, "Adapting": renaming or removing a profile).
    retired: bool = False

    def recipe(self, cls) -> dict:
        """What the profile trains: its model and train settings over cls's recipe defaults."""
        names = recipe_names(cls)
        for key in self.train:
            if key not in names:
                raise ConfigError(
                    f"profile {self.name} sets {key!r}, which is not a training recipe setting "
                    "of train.py"
                )
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name in names}
        wanted = {**defaults, "model": self.model, **self.train}
        if "epochs" in wanted and wanted["epochs"] > self.max_epochs:
            raise ConfigError(
                f"profile {self.name} trains {wanted['epochs']} epochs, over its max_epochs of "
                f"{self.max_epochs}"
            )
        return wanted

    def settings(self, cls, **given):
        """Settings of class cls that train what the profile trains, with the runtime settings
        given (seed, out, ...); a recipe setting given that the profile trains otherwise is
        refused."""
        wanted = self.recipe(cls)
        for key, value in given.items():
            if key in wanted and wanted[key] != value:
                raise ConfigError(
                    f"{flag(key)} {value}: profile {self.name} trains with {wanted[key]}; train "
                    "without --profile to change its settings"
                )
        return cls(**{**wanted, **given, "profile": self.name})


@dataclass(frozen=True)
class Gate:
    """[tool.gate] of one pyproject.toml: every profile, checked, and the seed lists."""

    path: Path
    profiles: dict[str, Profile]
    seed_lists: dict = field(hash=False)  # as written; seeds() checks the one asked for
    regression: bool = True  # [tool.gate] regression = false switches the check off

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise ConfigError(
                f"--profile {name!r} is not in {self.path.name}; it defines "
                f"{', '.join(self.profiles)}"
            )
        return self.profiles[name]

    def seeds(self, where: str = "local") -> list[int]:
        """The seeds each profile trains: local for pytest -m slow, ci for a pull request's
        gate, reference for main's; whole numbers from 0, each once."""
        found = self.seed_lists.get(where)
        key = f"[tool.gate.seeds] {where}"
        if not isinstance(found, list):
            raise ConfigError(f"{self.path} has no {key} = [0, 1, ...] list of seeds")
        return check_seeds(found, f"{key} in {self.path.name}")

    def settings(self, cls, **given):
        """What train.py's command line trains: with `profile`, exactly that profile's settings;
        without, the settings given, labelled with the profile whose recipe they match (a run
        that trains what a profile trains is that profile's, however asked)."""
        name = given.pop("profile", None)
        if name is not None:
            return self.profile(name).settings(cls, **given)
        settings = cls(**given)
        ours = recipe(settings)
        for profile in self.profiles.values():
            try:
                if profile.recipe(cls) == ours:
                    return dataclasses.replace(settings, profile=profile.name)
            except ConfigError:  # a profile with a bad setting matches nothing
                continue
        return settings


NAME = re.compile(r"[A-Za-z0-9_-]+")  # a profile's name names folders: runs/gate-<name>-seed<N>
REQUIRED = {"model": str, "max_params": int, "max_epochs": int, "min_accuracy": float}
OPTIONAL = {"min_receptive_field": int, "train": dict, "retired": bool}
WHERE = ("local", "ci", "reference")
# Every [tool.gate] key: what applies without it, and what it sets (the README's options table).
KEYS = {
    "profiles.NAME.model": ("required", "the network class in model.py the profile gates"),
    "profiles.NAME.max_params": ("required", "trainable parameters must be fewer"),
    "profiles.NAME.max_epochs": ("required", "the most epochs a run may train"),
    "profiles.NAME.min_accuracy": ("required", "the final epoch's test accuracy, a fraction"),
    "profiles.NAME.min_receptive_field": ("none", "pixels the globally pooled map must see"),
    "profiles.NAME.train": (
        "train.py's",
        "the recipe settings it trains with, e.g. `{ epochs = 18 }`",
    ),
    "profiles.NAME.retired": ("false", "trained and judged still; a change may then remove it"),
    "seeds.local": ("required", "the seeds `pytest -m slow` trains"),
    "seeds.ci": ("required in CI", "the seeds a pull request trains"),
    "seeds.reference": ("required in CI", "the seeds main trains, to compare pull requests with"),
    "regression": ("true", "false: no regression check, and every summary says so"),
}


@dataclass(frozen=True)
class Option:
    """A setting of a pytest session: its flag, the environment variable read without it, and
    what applies without either. A switch's flag takes no value (it sets "1", as its variable
    does)."""

    flag: str
    env: str
    default: str
    help: str
    switch: bool = False


SESSION = (
    Option("--profile", "GATE_PROFILE", "all",
           "the profiles to gate: a name from pyproject.toml, a comma list, or all"),
    Option("--seeds", "GATE_SEEDS", "`seeds.local`",
           "a comma list of the seeds the slow tier trains, each profile once per seed"),
    Option("--defer-verdict", "GATE_DEFER_VERDICT", "off (1: on)",
           "train and check each run; the verdict over seeds is left to CI's verdict job",
           switch=True),
)  # fmt: skip


def gate_table(path: Path) -> dict:
    """[tool.gate] of a pyproject.toml, or a ConfigError saying in one line why there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path} ({getattr(err, 'strerror', None) or err})") from None
    try:
        table = tomllib.loads(text).get("tool", {}).get("gate")
    except (tomllib.TOMLDecodeError, AttributeError) as err:
        raise ConfigError(f"{path} is not valid TOML ({err})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path} has no [tool.gate] table of budgets and seeds")
    return table


def checked(where: str, key: str, value, kind: type):
    """value as the type a budget needs, or a ConfigError naming where it is and what it needs."""
    accepted = int | float if kind is float else kind
    if (kind is not bool and isinstance(value, bool)) or not isinstance(value, accepted):
        needs = {str: "a name", int: "a whole number", float: "a number", dict: "a table",
                 bool: "true or false"}[kind]  # fmt: skip
        raise ConfigError(f"{where} {key} = {value!r}: must be {needs}")
    if key == "min_accuracy" and not 0 < value <= 1:
        raise ConfigError(
            f"{where} min_accuracy = {value!r}: a fraction of the test set, e.g. 0.994 for 99.4%"
        )
    if kind is int and value < 1:
        raise ConfigError(f"{where} {key} = {value!r}: must be at least 1")
    if kind is str and not value:
        raise ConfigError(f"{where} {key} is empty: it names a network in model.py")
    return float(value) if kind is float else value


def load(path: Path | None = None) -> Gate:
    """[tool.gate] of pyproject.toml (or the file at path), read once: each profile checked (a
    plain name, the keys a budget has, each of its type and range), the seed lists kept."""
    path = path or paths.PYPROJECT
    gate = gate_table(path)
    table = gate.get("profiles")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{path} has no [tool.gate.profiles.NAME] budget")
    profiles = {}
    for name, budget in table.items():
        where = f"[tool.gate.profiles.{name}]"
        if not NAME.fullmatch(name):
            raise ConfigError(f"{where}: a profile's name is letters, digits, '-' and '_' only")
        if not isinstance(budget, dict):
            raise ConfigError(f"{where} must be a table of the budget's keys")
        unknown = sorted(set(budget) - set(REQUIRED) - set(OPTIONAL))
        missing = [key for key in REQUIRED if key not in budget]
        if unknown or missing:
            problem = f"{unknown[0]} is not a budget's key" if unknown else f"{missing[0]} missing"
            raise ConfigError(f"{where}: {problem} ({', '.join([*REQUIRED, *OPTIONAL])})")
        kinds = {**REQUIRED, **OPTIONAL}
        values = {key: checked(where, key, value, kinds[key]) for key, value in budget.items()}
        profiles[name] = Profile(name=name, **values)
    seed_lists = gate.get("seeds", {})
    regression = gate.get("regression", True)
    if not isinstance(regression, bool):
        raise ConfigError(f"[tool.gate] regression = {regression!r}: must be true or false")
    found = Gate(Path(path), profiles, seed_lists if isinstance(seed_lists, dict) else {},
                 regression)  # fmt: skip
    if regression and {"ci", "reference"} <= set(found.seed_lists):
        check_power(found)
    return found


def check_power(gate: Gate) -> None:
    """The ci and reference seed lists, against what the regression check is sized for: a
    ConfigError in one line, with the least count that would do, when they fall short."""
    ci, reference, n = len(gate.seeds("ci")), len(gate.seeds("reference")), len(gate.profiles)
    chance = rates.blocks(ci, reference, n) if ci >= 2 and reference >= 2 else 0.0
    if chance >= rates.POWER:
        return
    least = rates.least_seeds(reference, n) if reference >= 2 else None
    needs = f"ci needs {least} seeds" if least else "reference needs more seeds"
    power = f"{chance:.0%}" if ci >= 2 and reference >= 2 else "no"
    raise ConfigError(
        f"[tool.gate.seeds] in {gate.path.name}: {ci} ci seeds against {reference} "
        f"reference seeds give the regression check {power} chance of catching a "
        f"{rates.DROP}-point drop, under the {rates.POWER:.0%} it is sized for; {needs} (or set "
        "[tool.gate] regression = false)"
    )


def check_seeds(seeds: list, source: str) -> list[int]:
    """A list of seeds that each train one run: one at least, whole numbers from 0, each once;
    else a ConfigError naming `source`."""
    if not seeds:
        raise ConfigError(f"{source} names no seed: it would train and judge nothing")
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"{source}: {seed!r} is not a seed (a whole number from 0)")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"{source} names seed {twice[0]} twice; each seed is one run")
    return list(seeds)


def jobs(seeds: list[int], per_job: int) -> list[str]:
    """The seeds split among gate jobs, per_job each (0: every seed in one job), each job's as the
    comma list GATE_SEEDS takes."""
    size = per_job or len(seeds) or 1
    return [",".join(map(str, seeds[i : i + size])) for i in range(0, len(seeds), size)]


def check_parameter_count(count: int, profile: Profile) -> int:
    if count >= profile.max_params:
        raise GateError(
            f"{count:,} trainable parameters; profile {profile.name} allows fewer than "
            f"{profile.max_params:,}, so {count - profile.max_params + 1:,} too many"
        )
    return count


def check_accuracy(accuracy: float, profile: Profile) -> float:
    margin = accuracy - profile.min_accuracy
    if margin < 0:
        raise GateError(
            f"final-epoch test accuracy {accuracy:.2%} is below the {profile.min_accuracy:.2%} "
            f"threshold of profile {profile.name} by {-margin * 100:.2f} points"
        )
    return margin


def check_epochs(epochs: int, profile: Profile) -> None:
    if epochs > profile.max_epochs:
        raise GateError(
            f"trained {epochs} epochs; profile {profile.name} allows at most {profile.max_epochs}, "
            f"{epochs - profile.max_epochs} too many"
        )


def seeds_argument(text: str) -> list[int]:
    """A command line's comma list of seeds, checked as every seed list is (check_seeds)."""
    try:
        return check_seeds([int(s) for s in text.split(",")], f"--seeds {text}")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: seeds are whole numbers from 0, comma-separated, e.g. 0,1,2"
        ) from None


def command_line() -> Parser:
    parser = Parser(
        prog="python -m mnist_gate.profiles",
        description="The gate workflow's jobs: a [tool.gate.seeds] list split among them.",
    )
    parser.add_argument("command", choices=["jobs"], help="jobs: print them as JSON")
    parser.add_argument("where", choices=WHERE, help="the seed list")
    parser.add_argument("per_job", type=count, help="seeds each job trains (0: every seed in one)")
    parser.add_argument("pyproject", nargs="?", type=Path, help="default: this checkout's")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = command_line()
    args = parser.parse_args(argv)
    seeds = parser.run(lambda: load(args.pyproject).seeds(args.where))
    print(json.dumps(jobs(seeds, args.per_job)))


def count(text: str) -> int:
    """A whole number from 0, for the command line."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0")
    return int(text)


if __name__ == "__main__":
    main()
