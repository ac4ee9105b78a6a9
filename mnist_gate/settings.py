"""Settings as dataclass fields that carry their own help and constraint, and the command line
generated from them. No torch here, and nothing read from a file: a profile's settings are
mnist_gate.profiles'.

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


class Refused(Exception):
    """What a command cannot go on with (bad input, a damaged file, a failed write): its message is
    the one line the command ends with, and `status` its exit status. Parser.run() turns every one
    into that line, so a new command gets it by construction."""

    status = 2


class ConfigError(Refused, ValueError):
    """A setting that cannot work, on the command line or in [tool.gate]; the message is one line
    naming it."""


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
    """Every field's own constraint, in one line naming the first that fails."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag(f.name)} must be a finite number, got {value}")
        why = f.metadata.get("check") and value is not None and f.metadata["check"](value)
        if why:
            raise ConfigError(f"{flag(f.name)} {why}, got {value}")


def recipe_names(cls) -> list[str]:
    """The settings that decide a run's result: what two runs must share to be compared."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("recipe", True)]


def recipe(settings) -> dict:
    return {name: getattr(settings, name) for name in recipe_names(settings)}


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

    def run(self, action):
        """action()'s result; a Refused ends the command in its one line and status."""
        try:
            return action()
        except Refused as err:
            self.exit(err.status, f"{self.prog}: error: {err}\n")


def _convert(kind):
    """The type a field's value is parsed as: Path for Path | None, str for str | None."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if args else kind


def parse(cls, argv: list[str] | None, *, prog: str, description: str, build=None):
    """The command line generated from cls's fields; build(**given) makes the settings from the
    flags given (default: cls itself)."""
    given = from_fields(cls, prog=prog, description=description).parse_args(argv)
    return (build or cls)(**vars(given))


def from_fields(cls, *, prog: str, description: str) -> Parser:
    """The command line of cls's fields: a flag each, with its help and default."""
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
    return parser
