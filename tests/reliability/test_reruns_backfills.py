"""Reruns and backfills: whatever runs, in whatever order, every row is in the output exactly once.

Output files are named by partition (stats type, time unit, date) and by the *set* of
journey IDs, so any run over a date rewrites that date's file. Checked against the
sandbox's oracle (``Sandbox.expected_rows``), row by row with duplicates kept: three runs of
the same task, daily runs with ``lookback_days`` while the data settles late, and two
overlapping backfills (daily runs, and whole ranges) in JSON lines, CSV and Parquet.
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import UTC, data_files_under, files_under, sort_rows, stray_files

from airflow_provider_engagelab.core.parsing import DETAIL_FIELDS
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator


def daily_context(day: date) -> dict[str, Any]:
    """The context of a daily run covering ``day`` (a data interval [day, day + 1))."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return {"data_interval_start": start, "data_interval_end": end, "logical_date": start}


def days(first: str, last: str) -> list[date]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [a + timedelta(days=i) for i in range((b - a).days + 1)]


def read_rows(root: Path, fmt: str, stats_type: str) -> list[dict[str, Any]]:
    """Every row of every output file under ``root``, typed as the API types them."""
    rows: list[dict[str, Any]] = []
    kinds = {"journey_id": "int", **dict(DETAIL_FIELDS[StatsType(stats_type)])}
    conv = {"int": int, "number": float, "str": str}
    for path in sorted(root.rglob(f"*.{fmt}")):
        if fmt == "jsonl":
            rows += [json.loads(line) for line in path.read_text().splitlines()]
        elif fmt == "csv":
            with path.open(newline="") as handle:
                for r in csv.DictReader(handle):
                    rows.append({k: conv[kinds.get(k, "str")](v) for k, v in r.items()})
        else:
            import pyarrow.parquet as pq

            # the file alone: pyarrow 23/24 also read the time_unit=/date= of its path as columns
            rows += pq.read_table(path, partitioning=None).to_pylist()
    return [normalise(r) for r in rows]


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    """CSV and Parquet hold ``revenue_amount`` as a float; compare every format that way."""
    if "revenue_amount" in row:
        row = {**row, "revenue_amount": float(row["revenue_amount"])}
    return row


def expected(sb, stats_type: str, ids: list[int], unit: str, first: str, last: str) -> list[dict[str, Any]]:
    return sort_rows(normalise(r) for r in sb.expected_rows(stats_type, ids, unit, first, last))


def assert_exactly_once(root: Path, fmt: str, stats_type: str, want: list[dict[str, Any]]) -> None:
    got = sort_rows(read_rows(root, fmt, stats_type))
    assert len(got) == len(want)  # no row twice, none missing
    assert got == want
    assert stray_files(root) == []


CASES = [("journey", "DAY", "jsonl"), ("message", "HOUR", "csv"), ("webhook", "DAY", "parquet")]


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def case(request) -> tuple[str, str, str]:
    if request.param[2] == "parquet":
        pytest.importorskip("pyarrow")
    return request.param


def test_three_runs_of_the_same_task_leave_one_copy(sb, tmp_path, case):
    stats_type, unit, fmt = case
    run_day = date(2026, 5, 14)
    # the same journeys, given three ways: the file names depend on the set only
    forms = ["3,1,2", [2, 3, 1], "[1, 2, 3]"]
    snapshots = []
    for form in forms:
        EngageLabStatsOperator(
            task_id="t", stats_type=stats_type, journey_ids=form, time_unit=unit,
            output_path=str(tmp_path), output_format=fmt,
        ).execute(daily_context(run_day))
        snapshots.append(files_under(tmp_path))
    assert snapshots[0] == snapshots[1] == snapshots[2] and len(data_files_under(tmp_path)) == 1
    assert_exactly_once(tmp_path, fmt, stats_type, expected(sb, stats_type, [1, 2, 3], unit, "2026-05-14",
                                                            "2026-05-14"))


def test_lookback_rewrites_days_that_settled_late(sb, tmp_path, case):
    """Daily runs, each when its day is only complete until 18:00, each looking back 2 days."""
    stats_type, unit, fmt = case
    ids = [7, 8]
    for day in days("2026-05-01", "2026-05-08"):
        cutoff = datetime(day.year, day.month, day.day, 18, tzinfo=UTC)  # the run's day is partial
        sb.configure(available_through=cutoff)
        summary = EngageLabStatsOperator(
            task_id="t", stats_type=stats_type, journey_ids=ids, time_unit=unit, lookback_days=2,
            output_path=str(tmp_path), output_format=fmt,
        ).execute(daily_context(day))
        assert summary["window"] == {"start": (day - timedelta(days=2)).isoformat(), "end": day.isoformat()}
    # the sandbox still at the last run's cutoff: 05-08 partial, every earlier day settled
    assert len(data_files_under(tmp_path)) == 10  # 04-29 .. 05-08, one file per date
    assert_exactly_once(tmp_path, fmt, stats_type, expected(sb, stats_type, ids, unit, "2026-04-29",
                                                            "2026-05-08"))


def test_two_overlapping_daily_backfills_leave_one_copy(sb, tmp_path, case):
    """Backfill A runs 05-01..05-20, backfill B (backwards) 05-10..05-31: one daily run per date."""
    stats_type, unit, fmt = case
    ids = [31, 32, 33]
    backfill_a = days("2026-05-01", "2026-05-20")
    backfill_b = list(reversed(days("2026-05-10", "2026-05-31")))
    for day in backfill_a + backfill_b:
        EngageLabStatsOperator(
            task_id="t", stats_type=stats_type, journey_ids=ids, time_unit=unit, output_path=str(tmp_path),
            output_format=fmt,
        ).execute(daily_context(day))
    assert len(data_files_under(tmp_path)) == 31
    assert_exactly_once(tmp_path, fmt, stats_type, expected(sb, stats_type, ids, unit, "2026-05-01",
                                                            "2026-05-31"))


def test_two_overlapping_range_backfills_of_mapped_batches_leave_one_copy(sb, tmp_path, case):
    """Each backfill is one run per journey batch (as mapped tasks) over its whole range."""
    stats_type, unit, fmt = case
    batches = [[41, 42], [43, 44, 45]]
    for first, last in [("2026-05-01", "2026-05-20"), ("2026-05-10", "2026-05-31")]:
        for batch in batches:
            EngageLabStatsOperator(
                task_id="t", stats_type=stats_type, journey_ids=batch, time_unit=unit, start_time=first,
                end_time=last, output_path=str(tmp_path), output_format=fmt,
            ).execute({})
    assert len(data_files_under(tmp_path)) == 31 * len(batches)  # one file per date and batch
    all_ids = [j for batch in batches for j in batch]
    assert_exactly_once(tmp_path, fmt, stats_type, expected(sb, stats_type, all_ids, unit, "2026-05-01",
                                                            "2026-05-31"))
