"""Fixtures shared by every test directory: real Airflow runs (``dag.test()`` in a subprocess
with a temporary AIRFLOW_HOME) from :mod:`tests.conftest_airflow`, a private PostgreSQL server
from :mod:`tests.conftest_postgres`, moto's S3 server on 127.0.0.1, and the shipped pytest
plugin (``engagelab_sandbox``, ``engagelab_sandbox_settings``, ``engagelab_connection``, the
``engagelab_sandbox`` marker), enabled here as a user enables it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest_airflow import airflow_db_template, airflow_home, airflow_runner  # noqa: F401
from tests.conftest_postgres import postgres_server  # noqa: F401

pytest_plugins = ["airflow_provider_engagelab.testing.pytest_plugin"]

#: The environment an S3 client needs for moto (no real AWS configuration is ever read).
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port), for the whole session."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class S3Bucket:
    """A fresh bucket on moto with an Airflow ``aws`` Connection for it."""

    endpoint: str
    name: str
    conn_id: str
    client: Any

    @property
    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to reach the bucket through ``conn_id``."""
        conn = {"conn_type": "aws", "login": "testing", "password": "testing",
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}}
        return {**MOTO_ENV, f"AIRFLOW_CONN_{self.conn_id.upper()}": json.dumps(conn)}

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix`` (key -> bytes)."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return {k: self.client.get_object(Bucket=self.name, Key=k)["Body"].read() for k in sorted(keys)}


@pytest.fixture
def s3_bucket(moto_s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket and a Connection (unique id: Airflow caches file systems per connection)."""
    pytest.importorskip("airflow.providers.amazon.aws.fs.s3", reason="needs apache-airflow-providers-amazon")
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    bucket = S3Bucket(moto_s3_endpoint, f"engagelab-{uuid.uuid4().hex[:10]}",
                      f"aws_moto_{uuid.uuid4().hex[:8]}", None)
    for name, value in bucket.env.items():
        monkeypatch.setenv(name, value)
    bucket.client = boto3.client("s3", endpoint_url=moto_s3_endpoint, region_name="us-east-1",
                                 aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket.client.create_bucket(Bucket=bucket.name)
    return bucket
