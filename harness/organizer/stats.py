"""Small statistics for leaderboards and the regression check, without scipy.

Methods (and why), used by `grade` and `check`:

* `t_interval`: the 95% Student-t interval of the mean across seeds,
  mean ± t(0.975, n-1) · sd / sqrt(n). It covers both sources of noise at once:
  training randomness and the sampling of the 1000 held-out images (each seed
  draws its own held-out set). With 5 seeds t(0.975, 4) = 2.776.
* `paired_t_test`: two entries graded on the same seeds (same training subsets,
  same held-out images) are compared on their per-seed differences. The leaderboard
  uses its one-sided p-value (`p_greater`) to tell whether an entry is separable
  from the entry above it, at a level corrected for the number of comparisons (see
  harness.organizer.leaderboard.ranking). An exact sign-flip permutation test would
  be assumption-free, but with 5 seeds its smallest one-sided p-value is 1/32, so
  it could never separate anything at a corrected level like 0.05/199: it is not used.
* `wilson_interval` (harness.scoring) on pooled counts: the binomial interval of
  all held-out predictions of an entry together; it ignores seed-to-seed
  training noise, so it is narrower and shown only as a secondary figure.
* `two_proportion_test`: one-sided z-test that a current pooled accuracy is below
  a baseline's by more than a margin, the binomial noise of finite held-out sets on
  both sides (unpooled: each proportion carries its own variance).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (Numerical Recipes, Lentz)."""
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile (p > 0.5) of Student's t, by bisection on the CDF. Cached: a leaderboard asks for
    the same few (p, df) once per entry, and each bisection costs 200 incomplete-beta evaluations."""
    target = 2.0 * (1.0 - p)  # two-sided tail mass
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_sf_two_sided(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass
class Interval:
    mean: float
    low: float | None
    high: float | None
    n: int


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and its Student-t interval; no interval from fewer than 2 values."""
    n = len(values)
    if n == 0:
        return Interval(0.0, None, None, 0)
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    sd = statistics.stdev(values)
    half = t_quantile(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


@dataclass
class PairedTest:
    n: int
    mean_difference: float  # mean of a - b
    t: float | None
    p: float | None  # two-sided; None when it cannot be computed (n < 2)
    p_greater: float | None  # one-sided, against mean(a - b) > 0; None when n < 2


ZERO = 1e-12  # differences this small are rounding, not noise


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test of a vs b over shared seeds (same order): two-sided and one-sided (a > b) p-values.

    When every difference is the same (zero variance) there is no noise to test against: the p-values
    are 0 or 1, by the sign of the difference (1 when there is none)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, not {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    if n < 2:
        return PairedTest(n, diffs[0] if diffs else 0.0, None, None, None)
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs)
    if sd <= ZERO:
        if abs(mean) <= ZERO:
            return PairedTest(n, mean, 0.0, 1.0, 1.0)
        return PairedTest(n, mean, math.copysign(math.inf, mean), 0.0, 0.0 if mean > 0 else 1.0)
    t = mean / (sd / math.sqrt(n))
    p = t_sf_two_sided(t, n - 1)
    return PairedTest(n, mean, t, p, p / 2 if t > 0 else 1.0 - p / 2)


def two_proportion_test(correct_a: int, total_a: int, correct_b: int, total_b: int, margin: float = 0.0) -> float:
    """One-sided p-value of H0: p_a >= p_b - margin against p_a < p_b - margin (unpooled, Wald z-test).

    a is the current run, b the baseline. A small p means a is significantly worse
    than the baseline by more than `margin`. Unpooled because with a margin the null does not
    say the two proportions are equal, so there is no common proportion to pool; each side
    carries its own binomial variance p(1 - p) / n (floored, so that 0% or 100% is not certainty).
    """
    if total_a == 0 or total_b == 0:
        return 1.0
    pa, pb = correct_a / total_a, correct_b / total_b
    se = math.sqrt(max(pa * (1 - pa), 1e-12) / total_a + max(pb * (1 - pb), 1e-12) / total_b)
    z = ((pb - margin) - pa) / se
    return normal_sf(z)
