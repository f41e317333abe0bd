"""Lineage as plain data (no OpenLineage needed), and the asset_partitions checks."""

from __future__ import annotations

from datetime import date

import pytest

from airflow_provider_engagelab.core.lineage import api_dataset, location, sql_output, written_columns
from airflow_provider_engagelab.core.query import StatsType, build_query
from airflow_provider_engagelab.exceptions import EngageLabValidationError


@pytest.mark.parametrize(("uri", "expected"), [
    ("file:///data/out/journey", ("file", "/data/out/journey")),
    ("s3://lake/engagelab/journey", ("s3://lake", "engagelab/journey")),
    ("s3a://lake/engagelab/message/day", ("s3://lake", "engagelab/message/day")),
    ("gs://bucket/x/webhook", ("gs://bucket", "x/webhook")),
])
def test_file_and_table_locations_follow_openlineage_naming(uri, expected):
    assert location(uri) == expected


def test_the_api_dataset_names_host_and_endpoint_and_counts_journeys():
    query = build_query("message", [3, 1, 2], "DAY", date(2026, 5, 1), date(2026, 5, 3))
    read = api_dataset("https://ma-api.engagelab.com", query, 1, ["ctr"])
    assert (read.namespace, read.name) == ("https://ma-api.engagelab.com", "/v1/stats/journey/message")
    assert (read.journey_count, read.journey_errors) == (3, 1)
    assert (read.start, read.end) == ("2026-05-01", "2026-05-03")
    assert read.fields[-1].name == "ctr" and read.fields[-1].type is None
    proxied = api_dataset("http://127.0.0.1:8080/engagelab", query, 0)
    assert proxied.namespace == "http://127.0.0.1:8080"
    assert proxied.name == "/engagelab/v1/stats/journey/message"


def test_sql_tables_in_openlineage_naming():
    pg = sql_output("postgres", "db.internal", None, "analytics", "public", "public.stats",
                    [("a", "BIGINT")], 7)
    assert (pg.namespace, pg.name) == ("postgres://db.internal:5432", "analytics.public.stats")
    assert pg.row_count == 7 and pg.columns[0].type == "BIGINT"
    my = sql_output("mysql", "m", 3307, "shop", None, "stats", [], 0)
    assert (my.namespace, my.name) == ("mysql://m:3307", "shop.stats")
    lite = sql_output("sqlite", "/tmp/x.db", None, None, "main", "stats", [], 0)
    assert (lite.namespace, lite.name) == ("sqlite:///tmp/x.db", "main.stats")


def test_written_columns_per_format():
    parquet = {c.name: c.type for c in written_columns(StatsType.MESSAGE, "parquet")}
    assert [parquet[c] for c in ("journey_id", "revenue_amount", "channel")] == ["int64", "double", "string"]
    kept = written_columns(StatsType.JOURNEY, "csv", ["ctr"])
    assert (kept[-1].name, kept[-1].type) == ("ctr", "string")


@pytest.mark.parametrize("value", ["yes", 1, "True"])
def test_asset_partitions_takes_none_true_or_false(value):
    from airflow_provider_engagelab.operators.engagelab import EngageLabJourneyStatsOperator

    with pytest.raises(EngageLabValidationError, match="asset_partitions"):
        EngageLabJourneyStatsOperator(task_id="t", journey_ids=[1], output_path="/tmp/x",
                                      asset_partitions=value)
