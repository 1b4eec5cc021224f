"""The statistics of the leaderboard and the regression check, against published tables."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.organizer import stats

accuracies = st.lists(st.integers(0, 1000).map(lambda k: k / 1000), min_size=2, max_size=8)


def test_t_distribution_matches_tables():
    assert stats.t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-3)
    assert stats.t_sf_two_sided(2.0, 4) == pytest.approx(0.1161, abs=1e-4)
    interval = stats.t_interval([0.27, 0.28, 0.26, 0.275, 0.29])
    assert interval.low == pytest.approx(0.2611, abs=1e-4) and interval.high == pytest.approx(0.2889, abs=1e-4)


def test_paired_tests():
    test = stats.paired_t_test([0.5, 0.6, 0.55, 0.52, 0.58], [0.4, 0.45, 0.5, 0.49, 0.5])
    assert test.p == pytest.approx(0.0170, abs=1e-3)
    assert test.p_greater == pytest.approx(test.p / 2)  # a is ahead: the one-sided p is half the two-sided
    assert stats.paired_t_test([0.3], [0.2]).p is None and stats.paired_t_test([0.3], [0.2]).p_greater is None


def test_zero_variance_has_no_noise_to_test_against():
    same = stats.paired_t_test([0.3, 0.3], [0.3, 0.3])
    assert same.p == 1.0 and same.p_greater == 1.0
    ahead = stats.paired_t_test([0.3, 0.4, 0.5], [0.0, 0.1, 0.2])  # identical gaps
    assert ahead.p == 0.0 and ahead.p_greater == 0.0
    behind = stats.paired_t_test([0.0, 0.1, 0.2], [0.3, 0.4, 0.5])
    assert behind.p == 0.0 and behind.p_greater == 1.0


def test_two_seeds_use_one_degree_of_freedom():
    # differences 0.1 and 0.3: t = 0.2 / (0.1414 / sqrt 2) = 2; with 1 df P(|T| >= 2) = 1 - 2 atan(2) / pi
    test = stats.paired_t_test([0.6, 0.8], [0.5, 0.5])
    assert test.t == pytest.approx(2.0)
    assert test.p == pytest.approx(1 - 2 * math.atan(2) / math.pi, abs=1e-9)
    assert test.p_greater == pytest.approx(test.p / 2, abs=1e-9)


def test_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="same length, not 2 and 3"):
        stats.paired_t_test([0.1, 0.2], [0.1, 0.2, 0.3])


@given(accuracies, st.data())
def test_one_sided_p_values_of_both_orders_add_up_to_one(a, data):
    b = data.draw(st.lists(st.integers(0, 1000).map(lambda k: k / 1000), min_size=len(a), max_size=len(a)))
    ab, ba = stats.paired_t_test(a, b), stats.paired_t_test(b, a)
    assert 0.0 <= ab.p_greater <= 1.0 and ab.p == pytest.approx(ba.p)
    if ab.p_greater not in (0.0, 1.0) or ab.p != 1.0:  # not two equal samples
        assert ab.p_greater + ba.p_greater == pytest.approx(1.0)


def test_two_proportion_test_is_the_unpooled_one():
    # current 28% vs baseline 30% over 3000 images each, margin 0: borderline significant
    p = stats.two_proportion_test(840, 3000, 900, 3000)
    assert p == pytest.approx(0.0448, abs=2e-3)
    # unpooled (Wald): each side its own variance; pooled would use 0.29 * 0.71 on both sides
    se = math.sqrt(0.28 * 0.72 / 3000 + 0.30 * 0.70 / 3000)
    assert p == pytest.approx(0.5 * math.erfc(0.02 / se / math.sqrt(2)), rel=1e-12)
    pooled_se = math.sqrt(0.29 * 0.71 * 2 / 3000)
    assert p != pytest.approx(0.5 * math.erfc(0.02 / pooled_se / math.sqrt(2)), rel=1e-6)
