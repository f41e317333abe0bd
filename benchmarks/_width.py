"""Figure 9: peak RSS (and wall time) of a file-writing task against ``max_concurrent_requests``.

The workload of issue 18: ``EngageLabStatsOperator``, message statistics, HOUR, 800 journeys x
32 days (16 calls: 8 of 100 journeys x 31 days, ~40 MB of JSON and ~150k rows each, and 8 of
one day) to a local ``output_path``, as jsonl and as parquet, with the Connection's
``max_concurrent_requests`` at 1, 4, 8 and 16. Each run is a fresh process
(``_memory_child.py``); its peak RSS is ``VmHWM``, its baseline the RSS after the imports.

With a baseline tree (``--baseline-tree PATH``: another checkout, e.g. a worktree of main before
a change; its package goes first on ``PYTHONPATH``), every run of ours is paired with the same
run of that tree, back to back and in alternating order, ``repeats`` times: both see the same
sandbox, machine and load. Wall time is the median of the repeats, peak RSS the highest.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from datetime import date
from typing import Any

from _support import SandboxProcess, count_check, memory_child, set_connection

MiB = 1024

#: (journeys, first day, last day) of the workload, and of the quick variant.
FULL = (800, date(2025, 5, 1), date(2025, 6, 1))
QUICK = (200, date(2025, 6, 1), date(2025, 6, 1))
WIDTHS = (1, 4, 8, 16)
QUICK_WIDTHS = (1, 2)

#: Targets: peak RSS over the import baseline at every width, spread over the widths (MiB),
#: and wall time against the baseline tree.
MAX_OVER_BASELINE_MIB = 150
MAX_SPREAD_MIB = 40
MAX_TIME_RATIO = 1.05


def _spec(ids: int, first: date, last: date, fmt: str, width: int) -> dict[str, Any]:
    return {
        "conn_id": f"engagelab_bench_width_{width}", "stats_type": "message", "time_unit": "HOUR",
        "first_id": 1, "ids": ids, "start": first.isoformat(), "end": last.isoformat(),
        "mode": "operator", "output_format": fmt,
    }


def measure(
    quick: bool,
    formats: tuple[str, ...],
    baseline_tree: str | None = None,
    repeats: int = 3,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the workload per format and width (and the baseline tree's); every run's result."""
    ids, first, last = QUICK if quick else FULL
    widths = QUICK_WIDTHS if quick else WIDTHS
    repeats = 1 if quick else (repeats if baseline_tree else 1)
    ours_env = dict(os.environ)
    trees: dict[str, dict[str, str]] = {"ours": ours_env}
    if baseline_tree:
        base_env = dict(os.environ)
        base_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.path.abspath(baseline_tree), os.environ.get("PYTHONPATH", "")) if p
        )
        trees["baseline"] = base_env
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    with SandboxProcess() as sb:
        for width in widths:
            conn = sb.connection(max_concurrent_requests=width)
            for env in trees.values():
                set_connection(f"engagelab_bench_width_{width}", conn, env)
        log(f"9: warming the sandbox ({ids} journeys x {(last - first).days + 1} days HOUR message)")
        memory_child(sb, _spec(ids, first, last, "jsonl", widths[-1]), ours_env)
        for rep in range(repeats):
            for width in widths:
                for fmt in formats:
                    order = list(trees) if rep % 2 == 0 else list(reversed(trees))
                    for tree in order:
                        log(f"9: {tree} {fmt} width {width} (run {rep + 1}/{repeats})")
                        res = memory_child(sb, _spec(ids, first, last, fmt, width), trees[tree])
                        res["count_check"] = count_check(res.pop("counters"), ("message",), ids, first, last)
                        runs.setdefault((tree, fmt, width), []).append(res)
    return {"ids": ids, "first": first, "last": last, "widths": widths, "formats": formats,
            "trees": list(trees), "repeats": repeats, "runs": runs}


def summary(result: dict[str, Any], tree: str, fmt: str) -> dict[int, dict[str, Any]]:
    """Per width: peak RSS (highest of the repeats), baseline, median wall time, in MiB and s."""
    out = {}
    for width in result["widths"]:
        runs = result["runs"][(tree, fmt, width)]
        top = max(runs, key=lambda r: r["peak_rss_kib"])
        out[width] = {
            "peak_mib": top["peak_rss_kib"] / MiB,
            "baseline_mib": top["rss_before_kib"] / MiB,
            "over_mib": (top["peak_rss_kib"] - top["rss_before_kib"]) / MiB,
            "seconds": statistics.median(r["seconds"] for r in runs),
            "seconds_all": [round(r["seconds"], 2) for r in runs],
            "rows": top["rows"],
            "calls": top["calls"],
            "package": top.get("package"),
        }
    return out


def judge_memory(per_width: dict[int, dict[str, Any]]) -> tuple[bool, float, float]:
    """Whether every width is within the baseline + 150 MiB and the spread under 40 MiB."""
    over = max(v["over_mib"] for v in per_width.values())
    peaks = [v["peak_mib"] for v in per_width.values()]
    spread = max(peaks) - min(peaks)
    return over <= MAX_OVER_BASELINE_MIB and spread < MAX_SPREAD_MIB, over, spread
