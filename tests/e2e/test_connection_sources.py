"""The Connection works from `airflow connections add`, a URI and JSON in the environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.conftest_airflow import without_mask_echo

AIRFLOW_CLI = Path(sys.executable).parent / "airflow"

PROBE = """
import json
from airflow_provider_engagelab.hooks.engagelab import EngageLabHook
hook = EngageLabHook()
ok, message = hook.test_connection()
print(json.dumps({"ok": ok, "base_url": hook.resolved.base_url,
                  "settings": hook.resolved.settings.as_dict()}))
"""


def _run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _probe(env: dict[str, str]) -> dict:
    return json.loads(_run([sys.executable, "-c", PROBE], env).strip().splitlines()[-1])


@pytest.fixture
def sandbox(engagelab_sandbox: Sandbox) -> Sandbox:
    """The shipped plugin's sandbox."""
    return engagelab_sandbox


PROBE_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="probe_connection", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def probe_connection():
    @task
    def probe() -> dict:
        from airflow_provider_engagelab.hooks.engagelab import EngageLabHook

        hook = EngageLabHook()
        ok, message = hook.test_connection()
        return {"ok": ok, "base_url": hook.resolved.base_url,
                "settings": hook.resolved.settings.as_dict()}

    probe()


probe_connection()
"""


def test_connections_add_cli(airflow_runner, sandbox):
    """A connection stored by the CLI (metadata database) is what a task's hook uses."""
    env = airflow_runner.env()
    cli = [str(AIRFLOW_CLI), "connections"]
    subprocess.run([*cli, "delete", "engagelab_default"], env=env, capture_output=True, timeout=300)
    _run([*cli, "add", "engagelab_default", "--conn-type", "engagelab", "--conn-host", sandbox.url,
          "--conn-login", sandbox.api_key, "--conn-password", sandbox.api_secret,
          "--conn-extra", json.dumps({"max_concurrent_requests": 2, "timeout": 9})], env)
    airflow_runner.add_dag_source("probe_connection.py", PROBE_DAG)
    try:
        result = airflow_runner.run("probe_connection", logical_date="2026-06-02T00:00:00+00:00")
    finally:
        subprocess.run([*cli, "delete", "engagelab_default"], env=env, capture_output=True, timeout=300)
    seen = result.xcom("probe")
    assert seen["ok"] is True and seen["base_url"] == sandbox.url
    assert seen["settings"]["max_concurrent_requests"] == 2 and seen["settings"]["timeout"] == 9
    assert sandbox.counters()["requests"] == 1
    assert sandbox.api_secret not in without_mask_echo(result.log)  # Airflow 3.0's harness echo aside


def test_env_uri_with_scheme_in_the_path(airflow_runner, sandbox):
    host_port = sandbox.url.split("://", 1)[1]
    uri = f"engagelab://{sandbox.api_key}:{sandbox.api_secret}@{host_port}/http?timeout=7&max_retries=1"
    seen = _probe(airflow_runner.env({"AIRFLOW_CONN_ENGAGELAB_DEFAULT": uri}))
    assert seen["ok"] is True and seen["base_url"] == sandbox.url
    assert seen["settings"]["timeout"] == 7 and seen["settings"]["max_retries"] == 1


def test_env_json(airflow_runner, sandbox):
    conn = sandbox.airflow_connection(requests_per_second=5)
    seen = _probe(airflow_runner.env({"AIRFLOW_CONN_ENGAGELAB_DEFAULT": json.dumps(conn)}))
    assert seen["ok"] is True and seen["settings"]["requests_per_second"] == 5
