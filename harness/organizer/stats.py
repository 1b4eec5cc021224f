"""Small statistics for leaderboards and the regression check, without scipy.

Methods (and why), used by `grade` and `check`:

* `t_interval`: the 95% Student-t interval of the mean across seeds,
  mean ± t(0.975, n-1) · sd / sqrt(n). It covers both sources of noise at once:
  training randomness and the sampling of the 1000 held-out images (each seed
  draws its own held-out set). With 5 seeds t(0.975, 4) = 2.776.
* `paired_t_test`: two entries graded on the same seeds (same training subsets,
  same held-out images) are compared on their per-seed differences; two-sided.
  Used to mark entries "within noise" (p >= 0.05). An exact sign-flip permutation
  test would be assumption-free, but with 5 seeds its smallest two-sided p-value
  is 2/32 = 0.0625, so it could never separate anything at 5%; it is reported
  (`sign_flip_p`) but not used for the decision.
* `wilson_interval` (harness.scoring) on pooled counts: the binomial interval of
  all held-out predictions of an entry together; it ignores seed-to-seed
  training noise, so it is narrower and shown only as a secondary figure.
* `two_proportion_test`: one-sided z-test that a current pooled accuracy is below
  a baseline's, the binomial noise of finite held-out sets on both sides.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence


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


def t_quantile(p: float, df: float) -> float:
    """The p-quantile (p > 0.5) of Student's t, by bisection on the CDF."""
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
    low: Optional[float]
    high: Optional[float]
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
    mean_difference: float
    t: Optional[float]
    p: Optional[float]  # two-sided; None when it cannot be computed (n < 2)
    sign_flip_p: Optional[float]


def sign_flip_p(differences: Sequence[float]) -> Optional[float]:
    """Exact two-sided permutation p-value of the mean difference (all 2^n sign flips)."""
    n = len(differences)
    if n == 0 or n > 16:
        return None
    observed = abs(sum(differences)) - 1e-12
    hits = sum(1 for signs in itertools.product((1, -1), repeat=n)
               if abs(sum(s * d for s, d in zip(signs, differences))) >= observed)
    return hits / 2**n


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Two-sided paired t-test of a vs b over shared seeds (same order)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    if n < 2:
        return PairedTest(n, diffs[0] if diffs else 0.0, None, None, sign_flip_p(diffs))
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs)
    if sd <= 1e-12:  # identical differences (up to rounding): no noise to test against
        t = 0.0 if abs(mean) <= 1e-12 else math.copysign(math.inf, mean)
        p = 1.0 if abs(mean) <= 1e-12 else 0.0
    else:
        t = mean / (sd / math.sqrt(n))
        p = t_sf_two_sided(t, n - 1)
    return PairedTest(n, mean, t, p, sign_flip_p(diffs))


def two_proportion_test(correct_a: int, total_a: int, correct_b: int, total_b: int, margin: float = 0.0) -> float:
    """One-sided p-value of H0: p_a >= p_b - margin against p_a < p_b - margin (pooled z-test).

    a is the current run, b the baseline. A small p means a is significantly worse
    than the baseline by more than `margin`.
    """
    if total_a == 0 or total_b == 0:
        return 1.0
    pa, pb = correct_a / total_a, correct_b / total_b
    se = math.sqrt(max(pa * (1 - pa), 1e-12) / total_a + max(pb * (1 - pb), 1e-12) / total_b)
    z = ((pb - margin) - pa) / se
    return normal_sf(z)
