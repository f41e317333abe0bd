"""Read an output root back, for tests of DAGs that write files (yours and ours).

::

    from airflow_provider_engagelab.testing.output import read_rows, duplicate_keys

    rows = read_rows("/data/engagelab", "message", "DAY")   # every row, typed as the API types them
    assert duplicate_keys(rows, "message") == []             # each key once

Reads every data file (``*.jsonl``, ``*.csv``, ``*.parquet``, whatever format wrote it) of one
stats type and time unit under a local root, skipping bookkeeping files (``_*``) and hidden
temporaries (``.*``). CSV values are typed back by the contract; ``revenue_amount`` is always a
float (CSV and Parquet hold it as one). Parquet needs pyarrow.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from airflow_provider_engagelab.core.contract import COLUMN_KINDS, INT, NUMBER, PRIMARY_KEYS
from airflow_provider_engagelab.core.layout import data_extension
from airflow_provider_engagelab.core.query import parse_stats_type, parse_time_unit

_CONVERT = {INT: int, NUMBER: float, "str": str}


def data_files(root: str | Path, stats_type: Any, time_unit: Any) -> list[Path]:
    """The data files of one stats type and time unit under ``root``, in path order."""
    base = Path(root) / parse_stats_type(stats_type).value / f"time_unit={parse_time_unit(time_unit).value}"
    return sorted(p for p in base.rglob("*") if p.is_file() and data_extension(p.name))


def _typed(row: dict[str, Any], kinds: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        kind = kinds.get(key, "str")
        if value in ("", None):
            out[key] = None
        elif kind == NUMBER:
            out[key] = float(value)
        else:
            out[key] = _CONVERT[kind](value)
    return out


def read_rows(root: str | Path, stats_type: Any, time_unit: Any) -> list[dict[str, Any]]:
    """Every row of every data file of one stats type and time unit, duplicates kept."""
    kinds = COLUMN_KINDS[parse_stats_type(stats_type)]
    rows: list[dict[str, Any]] = []
    for path in data_files(root, stats_type, time_unit):
        ext = data_extension(path.name)
        if ext == "jsonl":
            loaded = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        elif ext == "csv":
            with path.open(newline="", encoding="utf-8") as handle:
                loaded = list(csv.DictReader(handle))
        else:
            import pyarrow.parquet as pq

            loaded = pq.read_table(path, partitioning=None).to_pylist()  # the file alone (pyarrow<25)
        rows += [_typed(r, kinds) for r in loaded]
    return rows


def row_key(row: dict[str, Any], stats_type: Any) -> tuple[Any, ...]:
    """The primary key of a row: journey, time unit, time (and component)."""
    return tuple(row.get(column) for column in PRIMARY_KEYS[parse_stats_type(stats_type)])


def duplicate_keys(rows: Iterable[dict[str, Any]], stats_type: Any) -> list[tuple[Any, ...]]:
    """The keys present more than once, sorted."""
    counts = Counter(row_key(row, stats_type) for row in rows)
    return sorted(key for key, n in counts.items() if n > 1)
