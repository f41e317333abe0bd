"""The bytes the operators write for contract-shaped answers are those of 152f989 (before the
sink layer): the sha256 of every data file written then, for 6 shapes x 3 formats, is in
``data/golden-152f989.json`` (generated with pyarrow 26.0.1; Parquet bytes carry the writer's
version, so with another pyarrow the Parquet files are compared by content instead)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator
from airflow_provider_engagelab.testing.sandbox import Sandbox

GOLDEN = json.loads(Path(__file__).with_name("data").joinpath("golden-152f989.json").read_text())
GOLDEN_PYARROW = "26.0.1"

#: (stats type, unit, journeys, first, last): month and year ends, both units, every type.
SHAPES = [
    ("journey", "DAY", [3, 1, 2, 7, 11], "2026-03-30", "2026-04-02"),
    ("message", "DAY", [5, 9, 12], "2026-02-27", "2026-03-01"),
    ("webhook", "DAY", [4, 8], "2026-12-30", "2027-01-01"),
    ("journey", "HOUR", [21, 22], "2026-06-01", "2026-06-02"),
    ("message", "HOUR", [31, 33], "2026-06-01", "2026-06-01"),
    ("webhook", "HOUR", [41], "2026-06-01", "2026-06-02"),
]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    with Sandbox(available_through="2030-01-01") as sb, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))
        for fmt in ("jsonl", "csv", "parquet"):
            for stats_type, unit, ids, first, last in SHAPES:
                EngageLabStatsOperator(
                    task_id="t", stats_type=stats_type, journey_ids=ids, time_unit=unit, start_time=first,
                    end_time=last, output_path=f"file://{out}/{fmt}", output_format=fmt,
                ).execute({})
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_data_files_are_the_bytes_of_152f989(written, fmt):
    golden = {k: v for k, v in GOLDEN.items() if k.startswith(f"{fmt}/")}
    files = {str(p.relative_to(written)): p for p in sorted((written / fmt).rglob("part-*"))}
    assert sorted(files) == sorted(golden)  # the same names: the same partitions and journey sets
    if fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        if pa.__version__ != GOLDEN_PYARROW:
            import pyarrow.parquet as pq

            for name, path in files.items():  # same rows, types and row groups instead
                jsonl = written / "jsonl" / name[len("parquet/"):].replace(".parquet", ".jsonl")
                rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
                table = pq.read_table(path, partitioning=None)  # the file alone (pyarrow<25)
                assert table.to_pylist() == [
                    {**r, "revenue_amount": float(r["revenue_amount"])} if "revenue_amount" in r else r
                    for r in rows
                ]
            return
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == golden[name]["sha256"], name
