"""The verdict's judgements, and nothing else: a profile's runs held to its budget (judge()), and
this change's seeds against main's reference seeds (regressions()). Rendering them is
mnist_gate.markdown's; gathering the runs and answering the CI job, mnist_gate.verdict's. No torch.

With one seed the verdict is that run's; with a few it is on their mean; from
rates.bound_seeds() seeds on, the one-sided 99% lower bound on their mean must reach the bar
(mnist_gate.rates says why, with the rates of each rule). The regression check asks whether the
recipe got worse: Hsu's one-sided test on the per-seed accuracies of the two sides. Against one of
main's runs, both classify the same 10,000 images, so that comparison is paired: the images the
change fixes and breaks, and McNemar's exact test on them.
"""

from dataclasses import dataclass

import numpy as np

from . import rates, stats
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
    spread = stats.spread(accuracies, profile.min_accuracy, rates.BOUND_CONFIDENCE)
    n = len(records)
    if n >= rates.bound_seeds():
        why = failure(check_accuracy, spread.lower_bound, profile)
        bound = f"{rates.BOUND_CONFIDENCE:.0%} lower bound on the mean of {n} seeds"
        why = why and f"{bound}: {why.replace('final-epoch test accuracy', 'accuracy')}"
    else:
        why = failure(check_accuracy, spread.mean, profile)
        if why and n > 1:
            why = f"mean of {n} seeds: {why}"
    return Verdict(profile, tuple(records), tuple(found), why, spread)


def rule(n: int) -> str:
    """The accuracy rule the budget verdict holds n seeds to, in a sentence with its rates at the
    spread the gate is sized for (a recipe of the honest mean, and one UNDER points under the
    bar)."""
    honest, under = rates.budget_rates(n)
    return (
        f"With {n} seed{'s' if n > 1 else ''}, {rates.budget_rule(n)} must reach the bar: at a "
        f"spread of {rates.SEED_SD} points a seed and a bar of {rates.BAR:.2f}%, it fails a "
        f"recipe whose mean is {rates.HONEST:.3f}% (Net's) {chance(honest)} of the time, and "
        f"passes one {rates.UNDER} points under the bar {chance(under)} of the time."
    )


def chance(p: float) -> str:
    """A probability for prose: a percentage, or a power of ten ("2e-12") when it is tiny."""
    return f"{p:.1%}" if p >= 0.001 else f"{p:.0e}"


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


def plain(fixed: int, broken: int, p: float, level: float = 0.05) -> str:
    if p >= level:
        return "no evidence of a change"
    return "significantly better" if fixed > broken else "significantly worse"


@dataclass(frozen=True)
class Regression:
    """One profile's seeds against main's: accuracies in percent, Hsu's test on them, and the
    level it is judged at."""

    name: str
    new: list[float]
    old: list[float]
    test: stats.MeanChange
    profiles: int  # compared in the pull request: each is judged at rates.alpha(profiles)

    @property
    def level(self) -> float:
        return rates.alpha(self.profiles)

    @property
    def dropped(self) -> bool:
        """The regression check's rule: a drop significant at the level, one-sided."""
        return self.test.change < 0 and self.test.p_drop < self.level


def underpowered(n_new: int, n_old: int, profiles: int) -> str | None:
    """One line when these seed counts give the regression check less than rates.POWER, with the
    numbers; else None."""
    chance = rates.blocks(n_new, n_old, profiles)
    if chance >= rates.POWER:
        return None
    least = rates.least_seeds(n_old, profiles)
    needs = "more seeds on main" if least is None else f"{least} seeds here"
    return (
        f"{n_new} seeds here and {n_old} on main catch a {rates.DROP}-point drop with "
        f"{chance:.0%} chance at a spread of {rates.SEED_SD} points, under the {rates.POWER:.0%} "
        f"this check is sized for ({needs} would reach it)"
    )


def each(values) -> str:
    """Every value once, in order, joined by " and ": "cuda", "2.11.0 and 2.14.1"."""
    return " and ".join(dict.fromkeys(values))


def regressions(
    runs: list[Record], reference: list[Record], known: dict[str, Profile] | None = None
) -> tuple[list[Regression], dict[str, str], dict[str, str]]:
    """Each profile of runs against main's reference runs of it, at the level that keeps the
    whole pull request's false alarms at rates.FALSE_ALARMS; a line for each profile that passes
    unjudged (one the change adds: not in `known`, the base's profiles, nor in the reference; one
    the base retired that the change no longer trains); and why each profile fails that cannot be
    compared (each by profile name): a side with fewer than two seeds, or sides of two device kinds.
    The check compares or fails, never passes for want of a comparison. Runs of another torch are
    compared: a change that moves torch changes its recipe's result, and the line says so."""
    names = list(dict.fromkeys(r.name for r in [*runs, *reference]))
    judged, notes, failures = [], {}, {}
    for name in names:
        ours = [r for r in runs if r.name == name]
        theirs = [r for r in reference if r.name == name]
        new = [100 * r.final_test_acc for r in ours]
        old = [100 * r.final_test_acc for r in theirs]
        if not theirs and known is not None and name not in known:
            notes[name] = "added by this change, so main has no reference for it yet"
        elif not ours and known is not None and name in known and known[name].retired:
            notes[name] = "retired on main, and this change no longer trains it"
        elif len(new) < 2 or len(old) < 2:
            failures[name] = (
                f"cannot be compared, a side with fewer than two seeds ({len(new)} seeds here, "
                f"{len(old)} in main's reference)"
            )
        elif (kind := each(r.device_type for r in ours)) != (
            main_kind := each(r.device_type for r in theirs)
        ):
            failures[name] = (
                f"cannot be compared, this change ran on {kind} and main's reference on "
                f"{main_kind}; the reference must be of this gate's kind"
            )
        else:
            torch, main_torch = each(r.torch for r in ours), each(r.torch for r in theirs)
            if torch != main_torch:
                notes[name] = (
                    f"this change ran torch {torch}, main's reference torch {main_torch}; the "
                    "comparison includes that move"
                )
            judged.append(Regression(name, new, old, stats.hsu(new, old), len(names)))
    return judged, notes, failures
