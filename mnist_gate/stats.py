"""The statistics behind a noise-aware verdict; the standard library only.

- wilson(): the 95% interval of one run's accuracy on n test images (Wilson's score interval,
  which stays inside [0, 1] and keeps its coverage near 0 and 1, where accuracies of 99% live).
- mean_lower_bound(): a one-sided lower bound on the mean accuracy over seeds (Student's t); the
  budget verdict's rule from enough seeds (mnist_gate.rates).
- below_probability(): the chance that one more run ends under a threshold, from a normal fit to
  the runs so far.
- spread(): the numbers above for the accuracies of several seeds, as the verdict and the README's
  results table both show them.
- hsu(): a change in mean accuracy over seeds against a reference's seeds (Hsu's test: Welch's
  standard error, which lets the two spreads differ, on the smaller side's degrees of freedom,
  which keeps the test at or under its level whatever the spreads and seed counts), one-sided for
  a drop, with its interval and the smallest drop the comparison could detect. Student's pooled t
  blocked an honest change that widened the spread 1.5 times 1.2% of the time at a 0.5% level, and
  Welch's own degrees of freedom 1.7% with 3 seeds (EXPERIMENTS.md).
- mcnemar(): the exact McNemar test for two classifiers on the same images: of the images they
  disagree on, how likely a split at least this uneven is if neither is better.
"""

import functools
import math
import statistics
from dataclasses import dataclass
from fractions import Fraction

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion correct/n."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n > 0, got {correct}/{n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(b, a, 1 - x)
    front = (
        math.exp(
            math.lgamma(a + b)
            - math.lgamma(a)
            - math.lgamma(b)
            + a * math.log(x)
            + b * math.log(1 - x)
        )
        / a
    )
    # Lentz's algorithm for the continued fraction 1 / (1 + d1 / (1 + d2 / (1 + ...))).
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2:
            numerator = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            numerator = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1 + numerator * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + numerator / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1 - c * d) < 1e-15:
            break
    return front * (f - 1)


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t > 0 else tail


@functools.cache
def t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p, by bisection on t_cdf."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_lower_bound(values: list[float], confidence: float = 0.95) -> float:
    """One-sided lower confidence bound on the mean of values (at least two)."""
    n = len(values)
    if n < 2:
        raise ValueError("a bound on the mean needs at least two values")
    spread = statistics.stdev(values) / math.sqrt(n)
    return statistics.mean(values) - t_quantile(confidence, n - 1) * spread


def below_probability(values: list[float], threshold: float) -> float:
    """P(one more run < threshold) under a normal fit (mean, sample standard deviation)."""
    mean, sd = statistics.mean(values), statistics.stdev(values)
    if sd == 0:
        return 0.0 if mean >= threshold else 1.0
    return statistics.NormalDist(mean, sd).cdf(threshold)


def mcnemar(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p-value: fixed and broken are the images only the new model, and
    only the old one, gets right. Exact integer arithmetic, so it holds for thousands of images."""
    n = fixed + broken
    if n == 0:
        return 1.0
    term = tail = 1  # C(n, 0); each next term from the last, C(n, k) = C(n, k-1) (n-k+1) / k
    for k in range(1, min(fixed, broken) + 1):
        term = term * (n - k + 1) // k
        tail += term
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


@dataclass(frozen=True)
class Spread:
    """Accuracies over seeds against a threshold: the summary the verdict and the README show."""

    low: float
    mean: float
    high: float
    sd: float | None  # None for a single value
    lower_bound: float | None  # one-sided bound on the mean at `confidence`, Student's t
    below: float | None  # P(one more run < threshold), normal fit


def spread(values: list[float], threshold: float, confidence: float = 0.95) -> Spread:
    several = len(values) > 1
    return Spread(
        low=min(values),
        mean=statistics.mean(values),
        high=max(values),
        sd=statistics.stdev(values) if several else None,
        lower_bound=mean_lower_bound(values, confidence) if several else None,
        below=below_probability(values, threshold) if several else None,
    )


@dataclass(frozen=True)
class MeanChange:
    """This change's seeds against the reference's: a change in mean and how far to trust it."""

    change: float  # mean(new) - mean(old)
    se: float  # its standard error
    df: float  # degrees of freedom

    @property
    def p_drop(self) -> float:
        """One-sided p-value for "new is lower"."""
        if self.se == 0:  # identical values on both sides: only the sign of the change counts
            return 0.5 if self.change == 0 else (0.0 if self.change < 0 else 1.0)
        return t_cdf(self.change / self.se, self.df)

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Two-sided interval of the change."""
        half = t_quantile((1 + confidence) / 2, self.df) * self.se if self.se else 0.0
        return self.change - half, self.change + half

    def detectable(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """The smallest drop this comparison finds with `power` at level `alpha`."""
        if self.se == 0:
            return 0.0
        return (t_quantile(1 - alpha, self.df) + t_quantile(power, self.df)) * self.se


def hsu(new: list[float], old: list[float]) -> MeanChange:
    """Hsu's test for a change in the mean of `new` from that of `old` (each at least two values):
    Welch's standard error on min(n) - 1 degrees of freedom, conservative for any two spreads."""
    if len(new) < 2 or len(old) < 2:
        raise ValueError("a t-test needs at least two values a side")
    se = math.sqrt(statistics.variance(new) / len(new) + statistics.variance(old) / len(old))
    df = min(len(new), len(old)) - 1
    return MeanChange(statistics.mean(new) - statistics.mean(old), se, float(df))
