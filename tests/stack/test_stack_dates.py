"""The stack test's date arithmetic: which days its runs write, on every kind of day."""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("stack_dates", Path(__file__).with_name("stack_driver.py"))
driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(driver)


@pytest.mark.parametrize(
    ("today", "windows"),
    [
        # the 1st-3rd: the daily window lies inside the backfill's last month
        (date(2026, 12, 1), [(date(2026, 9, 1), date(2026, 11, 30))]),
        (date(2026, 12, 2), [(date(2026, 9, 1), date(2026, 12, 1))]),
        (date(2026, 12, 3), [(date(2026, 9, 1), date(2026, 12, 2))]),
        # the 4th: adjacent, one range
        (date(2026, 12, 4), [(date(2026, 9, 1), date(2026, 12, 3))]),
        # later in the month: two ranges
        (date(2026, 12, 15), [(date(2026, 9, 1), date(2026, 11, 30)),
                              (date(2026, 12, 12), date(2026, 12, 14))]),
        # a month end, February of a leap year, a year end and the new year
        (date(2026, 3, 31), [(date(2025, 12, 1), date(2026, 2, 28)),
                             (date(2026, 3, 28), date(2026, 3, 30))]),
        (date(2028, 3, 1), [(date(2027, 12, 1), date(2028, 2, 29))]),
        (date(2026, 12, 31), [(date(2026, 9, 1), date(2026, 11, 30)),
                              (date(2026, 12, 28), date(2026, 12, 30))]),
        (date(2027, 1, 1), [(date(2026, 10, 1), date(2026, 12, 31))]),
        (date(2027, 1, 2), [(date(2026, 10, 1), date(2027, 1, 1))]),
    ],
)
def test_written_windows(today, windows):
    assert driver.written_windows(today) == windows


def test_every_day_of_a_leap_and_a_common_year_is_covered_once():
    for start in (date(2027, 1, 1), date(2028, 1, 1)):
        for offset in range(366):
            today = start + timedelta(days=offset)
            windows = driver.written_windows(today)
            days = [a + timedelta(days=i) for a, b in windows for i in range((b - a).days + 1)]
            assert len(days) == len(set(days))  # disjoint
            yesterday = today - timedelta(days=1)
            assert {yesterday - timedelta(days=2), yesterday} <= set(days)
            assert driver.month_start(today, 3).date() in days
            assert max(days) == max(yesterday, driver.month_start(today, 0).date() - timedelta(days=1))


@pytest.mark.parametrize(
    ("today", "lookback_days", "months", "windows"),
    [
        # the fault scenario (stack_faults.py): 9 months; daily runs for the 2 days before today,
        # each with a lookback of 2 days: yesterday and the 3 days before it
        (date(2026, 12, 2), 3, 9, [(date(2026, 3, 1), date(2026, 12, 1))]),
        (date(2026, 12, 5), 3, 9, [(date(2026, 3, 1), date(2026, 12, 4))]),
        (date(2026, 12, 6), 3, 9, [(date(2026, 3, 1), date(2026, 11, 30)),
                                   (date(2026, 12, 2), date(2026, 12, 5))]),
        (date(2027, 1, 1), 3, 9, [(date(2026, 4, 1), date(2026, 12, 31))]),
        (date(2026, 9, 30), 3, 9, [(date(2025, 12, 1), date(2026, 8, 31)),
                                   (date(2026, 9, 26), date(2026, 9, 29))]),
        # the soak (stack_soak.py): 12 months; 14 daily runs (the 14 days before today) with
        # their lookback of 2 days: yesterday and the 15 days before it
        (date(2026, 12, 2), 15, 12, [(date(2025, 12, 1), date(2026, 12, 1))]),
        (date(2026, 12, 20), 15, 12, [(date(2025, 12, 1), date(2026, 11, 30)),
                                      (date(2026, 12, 4), date(2026, 12, 19))]),
        (date(2028, 3, 1), 15, 12, [(date(2027, 3, 1), date(2028, 2, 29))]),
    ],
)
def test_written_windows_of_the_longer_scenarios(today, lookback_days, months, windows):
    assert driver.written_windows(today, lookback_days=lookback_days, months=months) == windows


@pytest.mark.parametrize(("lookback_days", "months"), [(3, 9), (15, 12), (15, 36)])  # 36: the longer soak
def test_every_day_is_covered_once_by_the_longer_scenarios(lookback_days, months):
    for start in (date(2027, 1, 1), date(2028, 1, 1)):
        for offset in range(366):
            today = start + timedelta(days=offset)
            windows = driver.written_windows(today, lookback_days=lookback_days, months=months)
            days = [a + timedelta(days=i) for a, b in windows for i in range((b - a).days + 1)]
            assert len(days) == len(set(days))
            yesterday = today - timedelta(days=1)
            assert {yesterday - timedelta(days=lookback_days), yesterday} <= set(days)
            assert driver.month_start(today, months).date() == min(days)
            assert max(days) == max(yesterday, driver.month_start(today, 0).date() - timedelta(days=1))
