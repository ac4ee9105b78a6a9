"""The verdict's judgements, and nothing else: a profile's runs held to its budget (judge()), and
this change's seeds against main's reference seeds (regressions()). Rendering them is
mnist_gate.markdown's; gathering the runs and answering the CI job, mnist_gate.verdict's. No torch.

With one seed the verdict is that run's; with several it is on their mean (their spread, a
one-sided 95% lower bound on the mean and the chance that one more run ends under the threshold
come with it, from mnist_gate.stats). The regression check asks whether the recipe got worse:
Student's one-sided t-test on the per-seed accuracies of the two sides. Against one of main's runs,
both classify the same 10,000 images, so that comparison is paired: the images the change fixes
and breaks, and McNemar's exact test on them.
"""

import functools
import random
from dataclasses import dataclass

import numpy as np

from . import stats
from .profiles import GateError, Profile, check_accuracy, check_epochs, check_parameter_count
from .record import Record


@dataclass(frozen=True)
class Verdict:
    profile: Profile
    records: tuple[Record, ...]
    run_failures: tuple[str, ...]  # a line per run and broken budget: parameters, epochs
    accuracy_failure: str | None  # the final-epoch accuracy (the mean, with several seeds)
    spread: stats.Spread  # of the final-epoch accuracies

    @property
    def failures(self) -> list[str]:
        return [*self.run_failures, *filter(None, [self.accuracy_failure])]

    @property
    def passed(self) -> bool:
        return not self.failures


def failure(check, value, profile: Profile) -> str | None:
    """The line a budget check raises, or None when it holds."""
    try:
        check(value, profile)
    except GateError as err:
        return str(err)
    return None


def judge(profile: Profile, records: list[Record]) -> Verdict:
    """A profile's runs against its budget: every run's parameters and epochs, and the final-epoch
    test accuracy (their mean, with several seeds)."""
    records = sorted(records, key=lambda r: r.seed)
    if not records:
        raise ValueError(f"profile {profile.name}: no runs to judge")
    found = []
    for r in records:
        other = r.model != profile.model and f"trained {r.model}, not {profile.model}"
        recipe = next(
            (f"trained with {key} = {r.config.get(key)!r}; profile {profile.name} trains with "
             f"{value!r}" for key, value in profile.train.items() if r.config.get(key) != value),
            None,
        )  # fmt: skip
        found += [
            f"seed {r.seed}: {why}"
            for why in (
                other,
                recipe,
                failure(check_parameter_count, r.parameters, profile),
                failure(check_epochs, r.epochs, profile),
            )
            if why
        ]
    by_commit = {}
    for r in records:
        by_commit.setdefault(r.git_commit or "unknown", []).append(str(r.seed))
    if len(by_commit) > 1:  # one verdict judges one version of the code
        groups = [f"commit {c[:12]}: seed {', '.join(s)}" for c, s in sorted(by_commit.items())]
        found.append(f"the seeds trained different code: {'; '.join(groups)}")
    accuracies = [r.final_test_acc for r in records]
    spread = stats.spread(accuracies, profile.min_accuracy)
    why = failure(check_accuracy, spread.mean, profile)
    if why and len(records) > 1:
        why = f"mean of {len(records)} seeds: {why}"
    return Verdict(profile, tuple(records), tuple(found), why, spread)


def unpaired(new: np.ndarray, old: np.ndarray) -> str | None:
    """Why two runs' predictions cannot be compared image by image, or None."""
    if old.shape != new.shape:
        return f"main's predictions cover {old.shape[1]:,} images, this change's {new.shape[1]:,}"
    if not np.array_equal(old[0], new[0]):
        return "main's predictions are of other test labels, or in another order"
    return None


def paired(new: np.ndarray, old: np.ndarray) -> tuple[int, int, float]:
    """Images the change fixes and breaks, and McNemar's exact p-value on them."""
    right_new, right_old = new[1] == new[0], old[1] == old[0]
    fixed = int((right_new & ~right_old).sum())
    broken = int((right_old & ~right_new).sum())
    return fixed, broken, stats.mcnemar(fixed, broken)


def plain(fixed: int, broken: int, p: float) -> str:
    if p >= 0.05:
        return "no evidence of a change"
    return "significantly better" if fixed > broken else "significantly worse"


# The regression check blocks an honest pull request (nothing changed) at most this often, every
# profile together: each profile's test runs at FALSE_ALARMS / profiles (Bonferroni).
FALSE_ALARMS = 0.01
# The drop the regression check is sized to catch, at the spread it is sized for: Net's final
# accuracy over 25 seeds on an H200 had sd 0.055 points (EXPERIMENTS.md). With 2 profiles, 24
# seeds against main's 48 catch it 84% of the time (tests/test_verdict.py simulates it).
DROP, SEED_SD, POWER = 0.05, 0.055, 0.80
PROFILES = 2  # the profiles pyproject.toml ships, which the error rates above are stated for


def alpha(profiles: int) -> float:
    """Each profile's level when `profiles` are compared in one pull request."""
    return FALSE_ALARMS / max(profiles, 1)


def dropped(w: stats.MeanChange, level: float) -> bool:
    """The regression check's rule: a drop significant at `level`, one-sided."""
    return w.change < 0 and w.p_drop < level


@dataclass(frozen=True)
class Regression:
    """One profile's seeds against main's: accuracies in percent, Student's test on them, and the
    level it is judged at."""

    name: str
    new: list[float]
    old: list[float]
    test: stats.MeanChange
    profiles: int  # compared in the pull request: each is judged at alpha(profiles)

    @property
    def level(self) -> float:
        return alpha(self.profiles)

    @property
    def dropped(self) -> bool:
        return dropped(self.test, self.level)


@functools.cache
def power(n_new: int, n_old: int, profiles: int = PROFILES, sd: float = SEED_SD, *,
          drop: float = DROP, wider: float = 1.0, trials: int = 2_000) -> float:  # fmt: skip
    """The regression check's chance of blocking one profile whose mean fell `drop` points, with
    these seeds a side, main's scattering sd points a seed and this change's `wider` times that:
    its own rule on `trials` simulated pairs of sides, seeded, so the same each time (and worked
    out once a process). With drop=0 it is the check's false alarms on that profile: alpha() when
    the spreads match, more when this change's seeds scatter wider (EXPERIMENTS.md)."""
    rng, level = random.Random(0), alpha(profiles)
    found = 0
    for _ in range(trials):
        new = [rng.gauss(-drop, sd * wider) for _ in range(n_new)]
        found += dropped(stats.student(new, [rng.gauss(0, sd) for _ in range(n_old)]), level)
    return found / trials


def underpowered(n_new: int, n_old: int, profiles: int = PROFILES) -> str | None:
    """One line when these seed counts give the regression check less than POWER, with the
    numbers; else None."""
    if n_new < 2 or n_old < 2:
        return None  # not judged at all, and said so
    chance = power(n_new, n_old, profiles)
    if chance >= POWER:
        return None
    low, high = n_new, 200  # power(low) < POWER; the fewest seeds here that reach it, if any
    if power(high, n_old, profiles) < POWER:
        needs = "more seeds on main"
    else:
        while high - low > 1:
            middle = (low + high) // 2
            enough = power(middle, n_old, profiles) >= POWER
            low, high = (low, middle) if enough else (middle, high)
        needs = f"{high} seeds here"
    return (
        f"{n_new} seeds here and {n_old} on main catch a {DROP}-point drop with {chance:.0%} "
        f"chance at a spread of {SEED_SD} points, under the {POWER:.0%} this check is sized for "
        f"({needs} would reach it)"
    )


def setting(runs: list[Record]) -> str:
    """The device kinds runs ran on, e.g. "cuda" (several, joined by " and ")."""
    return " and ".join(dict.fromkeys(r.device_type for r in runs))


def torches(runs: list[Record]) -> str:
    return " and ".join(dict.fromkeys(r.torch for r in runs))


def regressions(
    runs: list[Record], reference: list[Record], known: frozenset[str] | None = None
) -> tuple[list[Regression], list[str], list[str]]:
    """Each profile of runs against main's reference runs of it, at the level that keeps the
    whole pull request's false alarms at FALSE_ALARMS; a line for each profile that passes
    unjudged (one the change adds: not in `known`, the base's profiles, nor in the reference);
    and a line for each profile that fails because it cannot be compared: a side with fewer than
    two seeds, or sides of two device kinds. The check compares or fails, never passes for want of
    a comparison. Runs of another torch are compared: a change that moves torch changes its
    recipe's result, and the line says so."""
    names = list(dict.fromkeys(r.name for r in [*runs, *reference]))
    judged, notes, failures = [], [], []
    for name in names:
        ours = [r for r in runs if r.name == name]
        theirs = [r for r in reference if r.name == name]
        new = [100 * r.final_test_acc for r in ours]
        old = [100 * r.final_test_acc for r in theirs]
        if not theirs and known is not None and name not in known:
            notes.append(f"{name}: added by this change, so main has no reference for it yet")
        elif len(new) < 2 or len(old) < 2:
            failures.append(
                f"{name}: cannot be compared, a side with fewer than two seeds ({len(new)} seeds "
                f"here, {len(old)} in main's reference)"
            )
        elif setting(ours) != setting(theirs):
            failures.append(
                f"{name}: cannot be compared, this change ran on {setting(ours)} and main's "
                f"reference on {setting(theirs)}; the reference must be of this gate's kind"
            )
        else:
            if torches(ours) != torches(theirs):
                notes.append(
                    f"{name}: this change ran torch {torches(ours)}, main's reference torch "
                    f"{torches(theirs)}; the comparison includes that move"
                )
            judged.append(Regression(name, new, old, stats.student(new, old), len(names)))
    return judged, notes, failures
