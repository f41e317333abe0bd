"""The quick variant of ``benchmarks/run.py``: every figure runs on small sizes and completes.

Timings are not asserted (they live in ``make bench``); the call counts are: every run the
benchmark makes must cost exactly ceil(ids/100) x ceil(days/31) requests per stats type, as
counted by the sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--json", str(out)],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    return proc, report


def _figures(report: dict, item: str) -> list[dict]:
    return [f for f in report.get("figures", []) if f["item"] == item]


def test_quick_run_completes_and_prints_the_table(quick_report):
    proc, report = quick_report
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["quick"] is True
    for item in "123456789":
        assert _figures(report, item), f"figure {item} missing from the report"
    header = next(line for line in proc.stdout.splitlines() if line.startswith("#"))
    assert header.split() == ["#", "figure", "target", "measured", "ratio", "result"]


def test_every_run_makes_the_fewest_calls(quick_report):
    _, report = quick_report
    counts = _figures(report, "1")
    labels = [f["name"] for f in counts]
    # the plain shapes, both backfill runs and every memory run report their counts
    assert any("backfill concurrent" in name for name in labels)
    assert any("backfill sequential" in name for name in labels)
    assert sum("memory" in name for name in labels) >= 2
    for fig in counts:
        check = fig["detail"]
        assert check["rate_limited"] == 0, fig
        assert set(check["seen_per_type"].values()) == {check["expected_per_type"]}, fig
        assert fig["ok"] is True


def test_requests_counted_by_the_sandbox_at_id_and_day_borders(quick_report):
    _, report = quick_report
    expected = {"1 ids x 1 d DAY": 1, "100 ids x 31 d DAY": 1, "101 ids x 32 d DAY": 4,
                "250 ids x 100 d DAY": 12, "250 ids x 3 d HOUR": 3}
    seen = {
        f["name"].removeprefix("calls: "): f["detail"]["seen_per_type"] for f in _figures(report, "1")
    }
    for label, per_type in expected.items():
        assert seen[label] == {"journey": per_type, "message": per_type, "webhook": per_type}, label


def test_memory_runs_wrote_the_rows_they_fetched(quick_report):
    _, report = quick_report
    peaks = [f for f in _figures(report, "3") if "peak RSS" in f["name"]]
    assert peaks
    for fig in peaks:
        for size in ("small", "large"):
            run = fig["detail"][size]
            assert run["rows"] > 0 and run["files"] == 1
            assert run["peak_rss_kib"] >= run["rss_before_kib"] > 0
        assert fig["detail"]["large"]["rows"] > 5 * fig["detail"]["small"]["rows"]


def test_width_runs_cover_every_width_and_make_the_fewest_calls(quick_report):
    _, report = quick_report
    counts = [f for f in _figures(report, "1") if f["name"].startswith("calls: width ours")]
    assert len(counts) >= 2  # one per width (x format)
    assert all(f["ok"] for f in counts)
    peaks = [f for f in _figures(report, "9") if f["name"].startswith("peak RSS vs width")]
    assert peaks
    for fig in peaks:
        ours = fig["detail"]["ours"]
        assert len(ours) >= 2
        for run in ours.values():
            assert run["rows"] > 0 and run["peak_mib"] >= run["baseline_mib"] > 0
