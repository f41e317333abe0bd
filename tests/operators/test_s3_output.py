"""Writing to ``s3://`` through ObjectStoragePath, against moto's S3 server on 127.0.0.1.

Needs the ``[s3]`` extra (apache-airflow-providers-amazon registers the ``s3`` file system for
ObjectStoragePath; s3fs does the uploads) and moto's server mode.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

pytest.importorskip("airflow.providers.amazon.aws.fs.s3", reason="needs apache-airflow-providers-amazon")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from airflow_provider_engagelab.core.layout import journey_set_hash
from airflow_provider_engagelab.core.parsing import COLUMNS
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.operators.engagelab import (
    EngageLabJourneyStatsOperator,
    EngageLabWebhookStatsOperator,
)
from airflow_provider_engagelab.testing.sandbox import Fault


@pytest.fixture
def s3(s3_bucket):
    return s3_bucket.client, s3_bucket.name, s3_bucket.conn_id


def objects(client, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in sorted(keys)}


def test_s3_csv_output_read_back_rerun_and_failure(sandbox, s3):
    client, bucket, conn_id = s3
    op = EngageLabWebhookStatsOperator(
        task_id="t",
        journey_ids=[12, 11],
        start_time="2026-06-01",
        end_time="2026-06-03",
        output_path=f"s3://{bucket}/stats/",
        output_conn_id=conn_id,
        output_format="csv",
    )
    summary = op.execute({})
    name = f"part-{journey_set_hash([11, 12])}.csv"
    keys = [f"stats/webhook/time_unit=DAY/date=2026-06-0{d}/{name}" for d in (1, 2, 3)]
    assert [f["uri"] for f in summary["files"]] == [f"s3://{bucket}/{k}" for k in keys]
    stored = objects(client, bucket)
    manifests = [k.rsplit("/", 1)[0] + "/_engagelab_manifest.json" for k in keys]
    assert sorted(stored) == sorted(keys + manifests)  # nothing else (no temporary or lock keys)
    for k in keys:
        day = k.split("date=")[1][:10]
        rows = list(csv.DictReader(io.StringIO(stored[k].decode())))
        assert list(rows[0]) == list(COLUMNS[StatsType.WEBHOOK])
        expected = sandbox.expected_rows("webhook", [11, 12], "DAY", day, day)
        assert [(int(r["journey_id"]), int(r["component_id"]), int(r["send_count"])) for r in rows] == [
            (r["journey_id"], r["component_id"], r["send_count"]) for r in expected
        ]
    assert (
        summary["total_rows"]
        == len(sandbox.expected_rows("webhook", [11, 12], "DAY", "2026-06-01", "2026-06-03"))
        > 0
    )

    # a rerun: same keys, same bytes
    op.execute({})
    assert objects(client, bucket) == stored

    # a failing run (one call rejected): nothing changes in the bucket
    op.start_time, op.end_time = "2026-03-01", "2026-04-09"  # 2 calls
    sandbox.inject(Fault("code_in_200", code=40050))
    with pytest.raises(Exception, match="40050"):
        op.execute({})
    assert objects(client, bucket) == stored


def test_s3_jsonl_default_format(sandbox, s3):
    client, bucket, conn_id = s3
    op = EngageLabJourneyStatsOperator(
        task_id="t",
        journey_ids=[1],
        start_time="2026-06-01",
        end_time="2026-06-01",
        output_path=f"s3://{bucket}",
        output_conn_id=conn_id,
    )
    summary = op.execute({})
    ((key, body),) = [(k, v) for k, v in objects(client, bucket).items() if "/part-" in k]
    assert key == f"journey/time_unit=DAY/date=2026-06-01/part-{journey_set_hash([1])}.jsonl"
    assert [json.loads(x) for x in body.decode().splitlines()] == sandbox.expected_rows(
        "journey", [1], "DAY", "2026-06-01", "2026-06-01"
    )
    assert summary["files"] == [{"uri": f"s3://{bucket}/{key}", "rows": 1}]
