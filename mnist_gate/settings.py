"""Settings as dataclass fields that carry their own help and constraint, the command line generated
from them, and profiles: the one name for what a gate trains. No torch here.

    epochs: int = setting(15, "training epochs", positive)

A field's constraint runs when the dataclass is built (check()), so a bad value is refused the same
way from the command line, a profile or code. A recipe setting decides a run's result; the others
(seed, device, folder, progress bar) say where and how it runs.
"""

import argparse
import dataclasses
import math
import typing
from dataclasses import field

from . import budgets
from .budgets import ConfigError  # here too: settings are where most of them come from


def setting(default, help: str, check=None, runtime: bool = False):
    """A dataclass field with its help, its constraint (value -> why it is wrong, or None) and
    whether it only says where and how a run runs (runtime) rather than decide its result."""
    return field(default=default, metadata={"help": help, "check": check, "recipe": not runtime})


def positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def non_negative(value) -> str | None:
    return None if value >= 0 else "must not be negative"


def seed_range(value) -> str | None:
    """What every torch generator takes: 0 to 2^63 - 1."""
    return None if 0 <= value < 2**63 else "must be from 0 to 2^63 - 1"


def fraction(value) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def even_between(low: int, high: int):
    def check(value) -> str | None:
        if value % 2 or not low <= value <= high:
            return f"must be even and from {low} to {high}"
        return None

    return check


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def check(settings) -> None:
    """Every field's own constraint; then, for settings that name a profile, that they train
    exactly what the profile trains, and for those that name none, the profile they match."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag(f.name)} must be a finite number, got {value}")
        why = f.metadata.get("check") and value is not None and f.metadata["check"](value)
        if why:
            raise ConfigError(f"{flag(f.name)} {why}, got {value}")
    if not hasattr(settings, "profile"):
        return
    if settings.profile is not None:
        check_profile(settings)
    else:  # a run that trains exactly what a profile trains is that profile's, however asked
        settings.profile = matching_profile(settings)


def recipe_names(cls) -> list[str]:
    """The settings that decide a run's result: what two runs must share to be compared."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("recipe", True)]


def recipe(settings) -> dict:
    return {name: getattr(settings, name) for name in recipe_names(settings)}


def profile(name: str) -> budgets.Profile:
    profiles = budgets.load_profiles()
    if name not in profiles:
        raise ConfigError(
            f"--profile {name!r} is not in pyproject.toml; it defines {', '.join(profiles)}"
        )
    return profiles[name]


def profile_recipe(cls, gated: budgets.Profile) -> dict:
    """What a profile trains: its model and train settings over cls's defaults."""
    name = gated.name
    names = recipe_names(cls)
    for key in gated.train:
        if key not in names:
            raise ConfigError(
                f"profile {name} sets {key!r}, which is not a training recipe setting of train.py"
            )
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name in names}
    wanted = {**defaults, "model": gated.model, **gated.train}
    if "epochs" in wanted and wanted["epochs"] > gated.max_epochs:
        raise ConfigError(
            f"profile {name} trains {wanted['epochs']} epochs, over its max_epochs of "
            f"{gated.max_epochs}"
        )
    return wanted


def for_profile(cls, name: str, **runtime):
    """Settings that train what profile `name` trains, with the runtime settings given (seed, out,
    ...); a recipe setting given that the profile trains otherwise is refused."""
    return cls(**{**profile_recipe(cls, profile(name)), **runtime, "profile": name})


def matching_profile(settings) -> str | None:
    ours = recipe(settings)
    for gated in budgets.load_profiles().values():
        try:
            if profile_recipe(type(settings), gated) == ours:
                return gated.name
        except ConfigError:  # a profile with a bad setting matches nothing
            continue
    return None


def check_profile(settings) -> None:
    wanted = profile_recipe(type(settings), profile(settings.profile))
    differ = [k for k, v in recipe(settings).items() if wanted[k] != v]
    if differ:
        k = differ[0]
        raise ConfigError(
            f"{flag(k)} {getattr(settings, k)}: profile {settings.profile} trains with "
            f"{wanted[k]}; train without --profile to change its settings"
        )


def positive_int(text: str) -> int:
    """argparse type for a count of one or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2, never a usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _convert(kind):
    """The type a field's value is parsed as: Path for Path | None, str for str | None."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if args else kind


def parse(cls, argv: list[str] | None, prog: str, description: str):
    """The command line generated from cls's fields. With --profile, the profile's settings are
    the defaults, and a recipe flag may not contradict them."""
    parser = Parser(prog=prog, description=description)
    for f in dataclasses.fields(cls):
        help = f.metadata["help"] + ("" if f.default is None else f" (default: {f.default})")
        common = dict(default=argparse.SUPPRESS, help=help)
        if f.type is bool:
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, **common)
        else:
            parser.add_argument(
                flag(f.name), type=_convert(f.type), metavar=f.name.upper(), **common
            )
    given = vars(parser.parse_args(argv))
    if given.get("profile") is not None:
        return for_profile(cls, given.pop("profile"), **given)
    return cls(**given)
