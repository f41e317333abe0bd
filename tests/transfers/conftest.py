"""Fixtures of the SQL transfer tests: the sandbox, and a real database per backend.

``db`` is parametrized over ``postgres`` (the session's private server,
:mod:`tests.conftest_postgres`) and ``sqlite`` (a file in the test's folder). Each test gets its
own table name; ``db.rows()`` reads a table back as dicts of the contract's columns, typed as
the database returns them (:mod:`tests.transfers.sql_helpers`).
"""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.transfers.sql_helpers import CUTOFF, Db


@pytest.fixture(scope="module")
def sb():
    with Sandbox(available_through=CUTOFF) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _engagelab_connection(sb, monkeypatch):
    sb.clear_faults()
    sb.configure(latency=0.0, missing_journeys=[])
    sb.reset_counters()
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))


@pytest.fixture(params=["postgres", "sqlite"])
def db(request, tmp_path, monkeypatch) -> Db:
    table = f"engagelab_{uuid.uuid4().hex[:10]}"
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        conn_id = f"pg_{uuid.uuid4().hex[:8]}"
        out = Db("postgres", conn_id, server.env(conn_id), table, server=server)
    else:
        path = tmp_path / "stats.db"
        conn_id = f"lite_{uuid.uuid4().hex[:8]}"
        env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "sqlite", "host": str(path)})}
        out = Db("sqlite", conn_id, env, table, path=path)
    for name, value in out.env.items():
        monkeypatch.setenv(name, value)
    return out
