"""The budgets and seeds, in the one table that holds them ([tool.gate] in pyproject.toml), and the
rules on numbers a run reports: parameters, epochs, accuracy. No torch here: the CI jobs that list
the seeds and gather the runs read these on a machine without it.

    python -m mnist_gate.budgets jobs ci 2    # the gate workflow's jobs: two seeds each (0: all)
"""

import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .paths import PYPROJECT


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


def load_profiles(path: Path = PYPROJECT) -> dict[str, Profile]:
    """The budgets, from the one table that holds them: [tool.gate.profiles] in pyproject.toml."""
    table = tomllib.loads(path.read_text())["tool"]["gate"]["profiles"]
    return {name: Profile(name=name, **budget) for name, budget in table.items()}


WHERE = ("local", "ci", "reference")


def seeds(where: str = "local", path: Path = PYPROJECT) -> list[int]:
    """The seeds each profile trains: [tool.gate.seeds] local for pytest -m slow, ci for a pull
    request's gate, reference for main's."""
    return list(tomllib.loads(path.read_text())["tool"]["gate"]["seeds"][where])


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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] != "jobs" or argv[1] not in WHERE or not argv[2].isdigit():
        sys.exit(f"usage: python -m mnist_gate.budgets jobs {{{','.join(WHERE)}}} PER_JOB")
    print(json.dumps(jobs(seeds(argv[1]), int(argv[2]))))


if __name__ == "__main__":
    main()
