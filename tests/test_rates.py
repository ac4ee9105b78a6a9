"""The error rates the gate states hold both ways, worked out from its own rules (mnist_gate.rates),
checked once against a simulation, and held by the verdict itself: a recipe under the bar cannot
pass by luck, an honest one does not fail, and no spread or accepted seed count breaks the
regression check's 1%."""

import numpy as np
import pytest

from mnist_gate import judging, profiles, rates, stats

from .helpers import record

GATE = profiles.load()
CI, REFERENCE = len(GATE.seeds("ci")), len(GATE.seeds("reference"))
PROFILES = len(GATE.profiles)


TRIALS = 200_000


def simulated_blocks(n_new: int, drop: float, wider: float) -> float:
    """The regression check's rule (judging.Regression.dropped on stats.hsu) on TRIALS pairs of
    sides drawn at once, against main's reference seeds at the sized-for spread: how often it
    blocks."""
    rng = np.random.default_rng(0)
    n_old, level, sd = REFERENCE, rates.alpha(PROFILES), rates.SEED_SD
    new = rng.normal(-drop, sd * wider, (TRIALS, n_new))
    old = rng.normal(0.0, sd, (TRIALS, n_old))
    change = new.mean(1) - old.mean(1)
    se = np.sqrt(new.var(1, ddof=1) / n_new + old.var(1, ddof=1) / n_old)
    t = stats.t_quantile(1 - level, min(n_new, n_old) - 1)
    return float(np.mean(change / se < -t))


def test_the_simulated_rule_is_the_verdicts_own():
    new, old = [99.45, 99.47, 99.40, 99.44], [99.50, 99.52, 99.49, 99.55, 99.51]
    test = stats.hsu(new, old)
    regression = judging.Regression("8k", new, old, test, PROFILES)
    t = stats.t_quantile(1 - rates.alpha(PROFILES), min(len(new), len(old)) - 1)
    assert regression.dropped is (test.change / test.se < -t)


@pytest.mark.parametrize(
    "n_new, drop, wider",
    [(CI, rates.DROP, 1.0), (CI, 0.0, 1.0), (3, 0.0, 2.0), (12, rates.DROP, 1.5)],
    ids=["power", "false alarms", "three wide seeds", "twelve wider seeds"],
)  # fmt: skip
def test_the_worked_out_regression_rates_agree_with_a_simulation(n_new, drop, wider):
    worked = rates.blocks(n_new, REFERENCE, PROFILES, drop=drop, wider=wider)
    simulated = simulated_blocks(n_new, drop, wider)
    margin = 4 * (max(worked, 1e-4) * (1 - worked) / TRIALS) ** 0.5  # four standard errors
    assert simulated == pytest.approx(worked, abs=margin), (simulated, worked)


@pytest.mark.parametrize("wider", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_no_spread_and_no_accepted_count_breaks_the_false_alarm_rate(wider):
    level = rates.alpha(PROFILES)  # a profile's share of the 1% a pull request
    for n_new in (2, 3, rates.least_seeds(REFERENCE, PROFILES), CI, REFERENCE, 100):
        alarms = rates.blocks(n_new, REFERENCE, PROFILES, drop=0.0, wider=wider)
        assert alarms <= level, f"{n_new} seeds at {wider}x main's spread: {alarms:.3%}"


def test_the_shipped_seed_counts_have_the_power_they_are_sized_for():
    assert rates.blocks(CI, REFERENCE, PROFILES) >= rates.POWER
    assert rates.least_seeds(REFERENCE, PROFILES) <= CI
    assert rates.blocks(rates.least_seeds(REFERENCE, PROFILES) - 1, REFERENCE, PROFILES) < (
        rates.POWER
    )
    assert judging.underpowered(CI, REFERENCE, PROFILES) is None


def test_the_budget_verdict_at_the_ci_count_holds_both_ways():
    honest = rates.budget_fails(CI, rates.HONEST, rates.SEED_SD, rates.BAR)
    under = 1 - rates.budget_fails(CI, rates.BAR - rates.UNDER, rates.SEED_SD, rates.BAR)
    assert honest <= 1e-6 and under <= 0.01, (honest, under)
    # At the bar itself, whatever the spread: the lower bound's own 1%.
    for sd in (0.02, rates.SEED_SD, 0.1):
        at_bar = 1 - rates.budget_fails(CI, rates.BAR, sd, rates.BAR)
        assert at_bar == pytest.approx(1 - rates.BOUND_CONFIDENCE, abs=2e-4), sd


def test_a_few_local_seeds_fail_an_honest_recipe_no_more_than_one_run_does():
    one_run = rates.budget_fails(1, rates.HONEST, rates.SEED_SD, rates.BAR)
    assert one_run == pytest.approx(0.027, abs=0.001)
    for n in range(2, 13):
        assert rates.budget_fails(n, rates.HONEST, rates.SEED_SD, rates.BAR) <= one_run, n
    # and the bound starts where it first does so, not later
    bound = rates.bound_seeds()
    assert 2 < bound < CI


def test_the_budget_rates_agree_with_a_simulation_of_the_rule():
    n, trials = rates.bound_seeds(), TRIALS
    rng = np.random.default_rng(1)
    for mean in (rates.HONEST, rates.BAR):
        runs = rng.normal(mean, rates.SEED_SD, (trials, n))
        bound = (
            runs.mean(1)
            - stats.t_quantile(rates.BOUND_CONFIDENCE, n - 1) * runs.std(1, ddof=1) / n**0.5
        )
        simulated = float(np.mean(bound < rates.BAR))
        worked = rates.budget_fails(n, mean, rates.SEED_SD, rates.BAR)
        assert simulated == pytest.approx(worked, abs=4 * (worked * (1 - worked) / trials) ** 0.5)


def seeds_at(mean: float, sd: float, n: int) -> list:
    """n records whose accuracies have exactly this mean and sample spread (in points)."""
    offsets = np.linspace(-1, 1, n)
    offsets = offsets / offsets.std(ddof=1) * sd
    return [record((mean + o) / 100, seed=s) for s, o in enumerate(offsets)]


def test_the_verdict_holds_many_seeds_to_the_bound_and_a_few_to_the_mean():
    profile = GATE.profile("8k")
    close = seeds_at(99.42, 0.06, CI)  # a mean over the bar whose bound is not
    judged = judging.judge(profile, close)
    assert not judged.passed and judged.accuracy_failure.startswith(
        f"99% lower bound on the mean of {CI} seeds: accuracy 99.3"
    )
    assert judging.judge(profile, seeds_at(99.42, 0.06, 3)).passed  # the mean rule
    assert judging.judge(profile, seeds_at(99.50, 0.05, CI)).passed
    rule = judging.rule(CI)
    assert f"With {CI} seeds, the 99% lower bound on the mean must reach the bar" in rule
