"""The error rates the gate is sized for, worked out exactly from its own rules: no simulation, no
torch, no numpy (the CI jobs that read the seed lists have neither).

The budget verdict over seeds:
- with fewer than bound_seeds() seeds, their mean must reach the bar (one run: that run);
- from bound_seeds() on, the one-sided BOUND_CONFIDENCE lower bound on their mean must reach it,
  so a recipe whose true mean sits at the bar passes at most 1 - BOUND_CONFIDENCE of the time,
  whatever its spread.
bound_seeds() is the fewest seeds at which the bound fails an honest recipe (HONEST, SEED_SD) no
more often than one run of it falls under the bar.

The regression check: Hsu's test (Welch's standard error on the smaller side's degrees of freedom)
at FALSE_ALARMS / profiles a profile, which keeps its false alarms under that level whatever the
two sides' spreads; sized to catch a DROP with POWER at SEED_SD.

Both are integrals over the seeds' sample spreads (chi distributions), by quadrature.
"""

import functools
import math

from . import stats

FALSE_ALARMS = 0.01  # honest pull requests the regression check blocks at most, every profile
# The drop the regression check is sized to catch, at the spread it is sized for: Net's final
# accuracy over 25 seeds on an H200 had mean 99.506% and sd 0.055 points (EXPERIMENTS.md).
DROP, SEED_SD, POWER = 0.05, 0.055, 0.80
HONEST = 99.506  # Net's mean there, in percent: the recipe the budget rates are stated for
BAR = 99.4  # the bar they are stated against, in percent (both profiles')
BOUND_CONFIDENCE = 0.99
UNDER = 0.01  # points under the bar: the recipe whose passing the budget rule must make rare
# Quadrature points a spread is integrated over: one spread (the budget rules), or each of two
# (the regression check, whose double sum costs their square). Against 2,000 points: one spread
# agrees to 2e-4 at 2 seeds (a t quantile on one degree of freedom makes the integrand a step)
# and closer from 3; two spreads of 200 agree to 1e-12 from 4 seeds a side, 3e-5 at 2 or 3.
POINTS, POINTS_EACH = 600, 200


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


@functools.cache
def _spread_ratio(df: int, points: int = POINTS) -> tuple[tuple[float, float], ...]:
    """Quadrature for s / sigma, a sample standard deviation over its true one, on df degrees of
    freedom: (ratio, weight) pairs, weights summing to 1 (the chi distribution, by the midpoint
    rule in w = sqrt(chi-square), where its density is smooth for every df)."""
    top = math.sqrt(df) + 12
    step = top / points
    grid = [(i + 0.5) * step for i in range(points)]
    logs = [(df - 1) * math.log(w) - w * w / 2 for w in grid]
    peak = max(logs)
    weights = [math.exp(x - peak) for x in logs]
    total = sum(weights)
    return tuple(
        (w / math.sqrt(df), x / total) for w, x in zip(grid, weights, strict=True) if x > 1e-16
    )


def alpha(profiles: int) -> float:
    """Each profile's level when `profiles` are compared in one pull request."""
    return FALSE_ALARMS / max(profiles, 1)


@functools.cache
def budget_fails(n: int, mean: float, sd: float, bar: float) -> float:
    """How often the budget verdict fails a recipe of true mean accuracy `mean` and spread sd
    (percent, points) over n seeds, against a bar (percent)."""
    if n < bound_seeds():
        return normal_cdf((bar - mean) / (sd / math.sqrt(n)))
    return _bound_fails(n, mean, sd, bar)


def _bound_fails(n: int, mean: float, sd: float, bar: float) -> float:
    """How often the mean's BOUND_CONFIDENCE lower bound over n seeds falls under the bar."""
    se = sd / math.sqrt(n)
    t = stats.t_quantile(BOUND_CONFIDENCE, n - 1)
    return sum(w * normal_cdf((bar + t * se * r - mean) / se) for r, w in _spread_ratio(n - 1))


def budget_rule(n: int) -> str:
    """What the budget verdict holds n seeds' accuracy to, in words."""
    if n == 1:
        return "the run"
    if n < bound_seeds():
        return "the mean"
    return f"the {BOUND_CONFIDENCE:.0%} lower bound on the mean"


def budget_rates(n: int) -> tuple[float, float]:
    """How often the budget verdict over n seeds fails the honest recipe, and passes one UNDER
    points under the bar, at SEED_SD."""
    return (budget_fails(n, HONEST, SEED_SD, BAR),
            1 - budget_fails(n, BAR - UNDER, SEED_SD, BAR))  # fmt: skip


@functools.cache
def bound_seeds() -> int:
    """The fewest seeds from which the budget verdict holds the mean's lower bound to the bar:
    where that fails an honest recipe no more often than one run of it falls under the bar."""
    one_run = normal_cdf(-(HONEST - BAR) / SEED_SD)
    for n in range(2, 200):
        if _bound_fails(n, HONEST, SEED_SD, BAR) <= one_run:
            return n
    raise ValueError("no seed count keeps the bound's honest failures under one run's")


@functools.cache
def blocks(n_new: int, n_old: int, profiles: int, *, drop: float = DROP, sd: float = SEED_SD,
           wider: float = 1.0) -> float:  # fmt: skip
    """How often the regression check blocks one profile whose mean fell `drop` points, with
    these seeds a side, main's scattering sd points a seed and this change's `wider` times that:
    its power, or with drop=0 its false alarms."""
    level = alpha(profiles)
    t = stats.t_quantile(1 - level, min(n_new, n_old) - 1)
    sd_new = sd * wider
    se = math.sqrt(sd_new**2 / n_new + sd**2 / n_old)
    total = 0.0
    for r_new, w_new in _spread_ratio(n_new - 1, POINTS_EACH):
        for r_old, w_old in _spread_ratio(n_old - 1, POINTS_EACH):
            s = math.sqrt((sd_new * r_new) ** 2 / n_new + (sd * r_old) ** 2 / n_old)
            total += w_new * w_old * normal_cdf((drop - t * s) / se)
    return total


def least_seeds(n_old: int, profiles: int) -> int | None:
    """The fewest seeds a pull request needs against n_old of main's for POWER, or None when no
    count up to 200 reaches it."""
    if blocks(200, n_old, profiles) < POWER:
        return None
    low, high = 1, 200  # blocks(low) < POWER <= blocks(high); a test needs two seeds a side
    while high - low > 1:
        middle = (low + high) // 2
        if blocks(middle, n_old, profiles) >= POWER:
            high = middle
        else:
            low = middle
    return high
