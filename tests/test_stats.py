"""The statistics of the leaderboard and the regression check, against published tables."""

from __future__ import annotations

import pytest

from harness.organizer import stats


def test_t_distribution_matches_tables():
    assert stats.t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-3)
    assert stats.t_sf_two_sided(2.0, 4) == pytest.approx(0.1161, abs=1e-4)
    interval = stats.t_interval([0.27, 0.28, 0.26, 0.275, 0.29])
    assert interval.low == pytest.approx(0.2611, abs=1e-4) and interval.high == pytest.approx(0.2889, abs=1e-4)


def test_paired_tests():
    test = stats.paired_t_test([0.5, 0.6, 0.55, 0.52, 0.58], [0.4, 0.45, 0.5, 0.49, 0.5])
    assert test.p == pytest.approx(0.0170, abs=1e-3)
    assert test.sign_flip_p == pytest.approx(2 / 32)  # the floor with 5 seeds: why it is not the criterion
    assert stats.paired_t_test([0.3, 0.3], [0.3, 0.3]).p == 1.0
    assert stats.paired_t_test([0.3, 0.4], [0.0, 0.1]).p == 0.0  # identical gaps: no noise at all
    assert stats.paired_t_test([0.3], [0.2]).p is None
    # current 28% vs baseline 30% over 3000 images each, margin 0: borderline significant
    assert stats.two_proportion_test(840, 3000, 900, 3000) == pytest.approx(0.0448, abs=2e-3)
