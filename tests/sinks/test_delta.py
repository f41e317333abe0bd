"""Delta Lake output: exactly once by transaction, whatever the journey grouping of each task.

The scenarios of ``test_exactly_once.py`` for ``output_format="delta"``: real operator tasks
against the sandbox API, on a local root and on moto's S3 server (in its own process, with
S3's atomic conditional writes: see ``moto_s3_server.py``), concurrent tasks as separate
processes (``task_runner.py``). Each ends by reading the table back with deltalake: every row
key (journey, time unit, time, component) is there once, with the sandbox's values. Conflicts
are injected as real commits of another writer between a task's snapshot and its commit.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.sinks import tasks
from tests.sinks.tasks import daily

deltalake = pytest.importorskip("deltalake")
pa = pytest.importorskip("pyarrow")

from airflow_provider_engagelab.exceptions import (  # noqa: E402
    EngageLabOutputError,
    EngageLabValidationError,
)
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator  # noqa: E402
from airflow_provider_engagelab.sinks import delta as delta_sink  # noqa: E402
from airflow_provider_engagelab.testing.output import duplicate_keys, row_key  # noqa: E402
from airflow_provider_engagelab.testing.sandbox import Sandbox  # noqa: E402

UTC = timezone.utc
HERE = Path(__file__).parent
#: The sandbox serves data up to this instant: fixed, so no test depends on today's date.
CUTOFF = datetime(2026, 7, 1, tzinfo=UTC)

#: (stats type, time unit): a key without and with component_id, both units.
CASES = [("journey", "DAY"), ("message", "HOUR")]
#: The case of the scenarios with concurrent processes (each costs an Airflow import per process).
CONCURRENT = ("message", "HOUR")


@pytest.fixture(scope="module")
def moto_s3_endpoint():
    """Overrides the conftest's in-process server for this module (see ``moto_s3_server.py``)."""
    pytest.importorskip("moto.server")
    proc = subprocess.Popen([sys.executable, str(HERE / "moto_s3_server.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:"), endpoint
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def sb():
    with Sandbox(available_through=CUTOFF) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _connection(sb, monkeypatch):
    sb.clear_faults()
    sb.configure(latency=0.0, missing_journeys=[])
    sb.reset_counters()
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def case(request):
    return request.param


@dataclass
class Root:
    """An output root on a backend, and how to read its tables back."""

    backend: str
    output_path: str
    conn_id: str | None
    bucket: Any = None

    def table(self, stats_type: str, unit: str) -> str:
        return f"{self.output_path}/{stats_type}/{unit.lower()}"

    def options(self) -> dict[str, str]:
        """What a reader (deltalake, Polars) needs for the table: object_store keys only."""
        if self.bucket is None:
            return {}
        return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                "aws_region": "us-east-1", "aws_endpoint_url": self.bucket.endpoint, "aws_allow_http": "true"}

    def open(self, stats_type: str, unit: str) -> Any:
        return deltalake.DeltaTable(self.table(stats_type, unit), storage_options=self.options())

    def env(self) -> dict[str, str]:
        return dict(self.bucket.env) if self.bucket is not None else {}


@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path) -> Root:
    if request.param == "file":
        return Root("file", str(tmp_path / "out"), None)
    bucket = request.getfixturevalue("s3_bucket")
    return Root("s3", f"s3://{bucket.name}/lake", bucket.conn_id, bucket)


def kwargs(root: Root, case, ids, first=None, last=None, **extra) -> dict[str, Any]:
    stats_type, unit = case
    out = {"stats_type": stats_type, "journey_ids": list(ids), "time_unit": unit,
           "output_path": root.output_path, "output_format": "delta", **extra}
    if root.conn_id:
        out["output_conn_id"] = root.conn_id
    if first is not None:
        out.update(start_time=first, end_time=last)
    return out


def task(root: Root, case, ids, first=None, last=None, *, context=None, **extra) -> dict[str, Any]:
    """One task, in this process."""
    return EngageLabStatsOperator(task_id="t", **kwargs(root, case, ids, first, last, **extra)).execute(
        context or {}
    )


def start_tasks(root: Root, sb: Sandbox, specs: list[dict[str, Any]]) -> list[subprocess.Popen]:
    """Tasks in separate processes (as on other workers), all started at once."""
    return tasks.start_tasks(root.env(), sb.airflow_connection(), specs)


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[dict[str, Any]]:
    return tasks.finish(procs, timeout)


def expected(sb: Sandbox, case, *pieces) -> dict[tuple, dict[str, Any]]:
    """The sandbox's rows of every (ids, first, last) piece, by key (later pieces win)."""
    stats_type, unit = case
    want: dict[tuple, dict[str, Any]] = {}
    for ids, first, last in pieces:
        for row in sb.expected_rows(stats_type, list(ids), unit, first, last):
            if "revenue_amount" in row:
                row = {**row, "revenue_amount": float(row["revenue_amount"])}
            want[row_key(row, stats_type)] = row
    return want


def read_rows(root: Root, case) -> list[dict[str, Any]]:
    """Every row of the table (deltalake), without the partition column, which is checked."""
    rows = root.open(*case).to_pyarrow_table().to_pylist()
    for row in rows:
        assert row.pop("date") == date.fromisoformat(row["time"][:10])
    return rows


def assert_exactly_once(root: Root, case, want: dict[tuple, dict[str, Any]]) -> None:
    stats_type = case[0]
    rows = read_rows(root, case)
    assert duplicate_keys(rows, stats_type) == []
    got = {row_key(r, stats_type): r for r in rows}
    assert sorted(set(got) - set(want)) == [] and sorted(set(want) - set(got)) == []
    assert got == want


def J(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


# ---------------------------------------------------------------------------- regroupings


def test_a_journey_added_to_the_list(sb, root, case):
    """Journeys 1-6 over days 1-5, then 1-7 over days 3-7 (a daily run looking back)."""
    first = task(root, case, J(1, 6), "2026-05-01", "2026-05-05")
    summary = task(root, case, J(1, 7), "2026-05-03", "2026-05-07")
    assert (first["version"], summary["version"]) == (1, 2)  # version 0 created the table
    assert summary["partitions"] == 5 and summary["commit_attempts"] == 1
    assert len(summary["removed"]) == 3  # the first task's files of days 3-5
    assert summary["table"] == (root.table(*case) if root.bucket else "file://" + root.table(*case))
    assert_exactly_once(root, case, expected(sb, case, (J(1, 6), "2026-05-01", "2026-05-05"),
                                             (J(1, 7), "2026-05-03", "2026-05-07")))


def test_a_journey_dropped_from_the_list_keeps_its_rows(sb, root, case):
    """Journeys 1-7, then 1-6 over the same days: journey 7 keeps its rows, once."""
    task(root, case, J(1, 7), "2026-05-01", "2026-05-04")
    summary = task(root, case, J(1, 6), "2026-05-01", "2026-05-04")
    assert len(summary["removed"]) == 4 and len(summary["files"]) == 4  # each day rewritten once
    assert_exactly_once(root, case, expected(sb, case, (J(1, 7), "2026-05-01", "2026-05-04")))


def test_a_failed_journey_keeps_its_rows(sb, root, case):
    """Under on_journey_error='warn', a journey answering 50202 is not replaced."""
    task(root, case, J(1, 4), "2026-05-01", "2026-05-02")
    sb.configure(missing_journeys=[3])
    summary = task(root, case, J(1, 4), "2026-05-01", "2026-05-03", on_journey_error="warn")
    assert [e["journey_id"] for e in summary["journey_errors"]] == [3]
    sb.configure(missing_journeys=[])
    assert_exactly_once(root, case, expected(sb, case, (J(1, 4), "2026-05-01", "2026-05-02"),
                                             ([1, 2, 4], "2026-05-01", "2026-05-03")))


def test_a_batch_size_changed_runs_concurrently_over_the_old_files(sb, root):
    """Batches of 3 first; then batches of 2, as three concurrent processes over their files."""
    case = CONCURRENT
    for batch in ([1, 2, 3], [4, 5, 6]):
        task(root, case, batch, "2026-05-01", "2026-05-06")
    sb.configure(latency=0.3)  # the three fetches end together: their commits meet
    procs = start_tasks(root, sb, [{"operator": kwargs(root, case, batch, "2026-05-03", "2026-05-08")}
                                   for batch in ([1, 2], [3, 4], [5, 6])])
    summaries = finish(procs)
    assert sorted(s["version"] for s in summaries) == [3, 4, 5]  # one commit each, in some order
    assert_exactly_once(root, case, expected(sb, case, (J(1, 6), "2026-05-01", "2026-05-08")))


@pytest.mark.parametrize("order", ["daily-first", "backfill-first"])
def test_a_daily_dag_beside_a_mapped_backfill(sb, root, order):
    """A daily task over all journeys (lookback 2) and a backfill mapped over batches, same days."""
    case = CONCURRENT

    def run_daily() -> None:
        for day in ("2026-05-11", "2026-05-12"):
            task(root, case, J(1, 6), context=daily(day), lookback_days=2)

    def run_backfill() -> None:  # the mapped instances run at once, as on two workers
        finish(start_tasks(root, sb, [{"operator": kwargs(root, case, batch, "2026-05-01", "2026-05-14")}
                                      for batch in ([1, 2, 3], [4, 5, 6])]))

    for step in (run_daily, run_backfill) if order == "daily-first" else (run_backfill, run_daily):
        step()
    assert_exactly_once(root, case, expected(sb, case, (J(1, 6), "2026-05-01", "2026-05-14")))


def test_reruns_of_one_grouping_replace_in_place(sb, root, case):
    """The same task three times: one new version each, the same rows, the last files only."""
    summaries = [task(root, case, [3, 1, 2], "2026-05-01", "2026-05-02") for _ in range(3)]
    assert [s["version"] for s in summaries] == [1, 2, 3]
    assert [len(s["files"]) for s in summaries] == [2, 2, 2]
    for before, after in zip(summaries, summaries[1:], strict=False):
        assert sorted(after["removed"]) == sorted(f["uri"] for f in before["files"])
    live = [u if "://" in u else f"file://{u}" for u in root.open(*case).file_uris()]
    assert sorted(live) == sorted(f["uri"] for f in summaries[-1]["files"])
    assert sum(f["rows"] for f in summaries[-1]["files"]) == summaries[-1]["total_rows"]
    assert_exactly_once(root, case, expected(sb, case, ([1, 2, 3], "2026-05-01", "2026-05-02")))


# ---------------------------------------------------------------------------- conflicts and failures


class StoreFault(Exception):
    """A failure injected while the rows are being written."""


def interfere(root: Root, case, monkeypatch, times: int) -> list[int]:
    """Before each of the first ``times`` writes of a task, another writer commits on its table.

    The other writer rewrites journey 7's rows of 2026-05-01 (its own rows, unchanged): a real
    commit that removes a file the task's snapshot read, which delta-rs reports as a conflict.
    Returns the versions it committed.
    """
    real = deltalake.write_deltalake
    committed: list[int] = []

    def write_deltalake(table, data, **kw):
        if len(committed) < times:
            other = root.open(*case)
            rows = other.to_pyarrow_table(filters=[("date", "=", date(2026, 5, 1)), ("journey_id", "=", 7)])
            real(other, rows, mode="overwrite", predicate="date = '2026-05-01' AND journey_id = 7")
            committed.append(other.version())
        return real(table, data, **kw)

    monkeypatch.setattr(deltalake, "write_deltalake", write_deltalake)
    return committed


def test_a_conflicting_commit_is_retried_from_a_fresh_snapshot_and_logged(sb, root, case, monkeypatch,
                                                                           caplog):
    task(root, case, J(1, 7), "2026-05-01", "2026-05-03")
    others = interfere(root, case, monkeypatch, times=2)
    monkeypatch.setattr(delta_sink, "BASE_BACKOFF_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING, logger=delta_sink.__name__):
        summary = task(root, case, J(1, 6), "2026-05-01", "2026-05-03")
    assert others == [2, 3]
    assert summary["commit_attempts"] == 3 and summary["version"] == 4
    conflicts = [r.getMessage() for r in caplog.records if "Delta commit conflict" in r.getMessage()]
    assert len(conflicts) == 2 and "attempt 1 of 25" in conflicts[0] and "attempt 2 of 25" in conflicts[1]
    assert_exactly_once(root, case, expected(sb, case, (J(1, 7), "2026-05-01", "2026-05-03")))


def test_conflicts_past_the_bound_fail_clearly_and_commit_nothing(sb, root, case, monkeypatch):
    task(root, case, J(1, 7), "2026-05-01", "2026-05-03")
    before = sorted(read_rows(root, case), key=lambda r: row_key(r, case[0]))
    interfere(root, case, monkeypatch, times=10**6)
    monkeypatch.setattr(delta_sink, "BASE_BACKOFF_SECONDS", 0.0)
    monkeypatch.setattr(delta_sink, "MAX_COMMIT_ATTEMPTS", 3)
    with pytest.raises(EngageLabOutputError, match=r"(?s)3 attempt\(s\).*concurrent commits.*nothing"):
        task(root, case, J(1, 6), "2026-05-01", "2026-05-03")
    monkeypatch.undo()
    table = root.open(*case)
    history = table.history()
    assert table.version() == 4  # the first task's commit (1) and the other writer's three
    # the other writer's commits (journey 7 alone, no task metadata), then the first task's
    assert [h["operationParameters"]["predicate"].count("journey_id") for h in history[:3]] == [1, 1, 1]
    assert ["engagelab" in h for h in history[:4]] == [False, False, False, True]
    assert sorted(read_rows(root, case), key=lambda r: row_key(r, case[0])) == before


def test_a_write_failing_half_way_commits_nothing_and_its_retry_completes(sb, root, case, monkeypatch):
    task(root, case, J(1, 7), "2026-05-01", "2026-05-03")
    before = sorted(read_rows(root, case), key=lambda r: row_key(r, case[0]))
    real = delta_sink.DeltaSink._batches

    def batches(self, staged, days):
        source = real(self, staged, days)
        yield next(source)  # delta-rs has the first date's rows, then the task dies
        raise StoreFault("injected failure while writing")

    monkeypatch.setattr(delta_sink.DeltaSink, "_batches", batches)
    with pytest.raises((StoreFault, EngageLabOutputError), match="injected failure"):
        task(root, case, J(1, 6), "2026-05-01", "2026-05-03")
    monkeypatch.undo()
    assert root.open(*case).version() == 1
    assert sorted(read_rows(root, case), key=lambda r: row_key(r, case[0])) == before
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))
    for name, value in root.env().items():
        monkeypatch.setenv(name, value)
    assert task(root, case, J(1, 6), "2026-05-01", "2026-05-03")["version"] == 2  # the retry
    assert_exactly_once(root, case, expected(sb, case, (J(1, 7), "2026-05-01", "2026-05-03")))


# ---------------------------------------------------------------------------- readers and schema


@pytest.mark.parametrize("rcase", [("message", "HOUR"), ("webhook", "DAY"), ("journey", "DAY")],
                         ids=lambda c: "-".join(c))
def test_deltalake_and_polars_read_the_sandboxs_rows_with_the_parquet_types(sb, root, rcase):
    pl = pytest.importorskip("polars")
    task(root, rcase, J(1, 5), "2026-05-01", "2026-05-04")
    task(root, rcase, [2, 3, 8], "2026-05-03", "2026-05-06")
    want = expected(sb, rcase, (J(1, 5), "2026-05-01", "2026-05-04"), ([2, 3, 8], "2026-05-03", "2026-05-06"))
    assert_exactly_once(root, rcase, want)
    frame = pl.read_delta(root.table(*rcase), storage_options=root.options())
    rows = frame.to_dicts()
    for row in rows:
        assert row.pop("date") == date.fromisoformat(row["time"][:10])
    assert duplicate_keys(rows, rcase[0]) == []
    assert {row_key(r, rcase[0]): r for r in rows} == want
    kinds = {"Int64": "int", "Float64": "number", "String": "str", "Date": "date"}
    from airflow_provider_engagelab.core.contract import COLUMN_KINDS
    from airflow_provider_engagelab.core.query import parse_stats_type

    assert {name: kinds[str(dtype)] for name, dtype in frame.schema.items()} == {
        **COLUMN_KINDS[parse_stats_type(rcase[0])], "date": "date"}
    arrow = root.open(*rcase).schema().to_arrow()
    assert pa.schema(arrow) == delta_sink.table_schema(rcase[0])


def test_a_table_with_other_columns_is_refused_before_any_request(sb, root):
    case = ("journey", "DAY")
    schema = delta_sink.table_schema("journey")
    bad = schema.set(schema.get_field_index("entry_count"), pa.field("entry_count", pa.string()))
    deltalake.DeltaTable.create(root.table(*case), deltalake.Schema.from_arrow(bad), partition_by=["date"],
                                storage_options=root.options())
    with pytest.raises(EngageLabValidationError, match=r"column 'entry_count' is .*string.*expected.*long"):
        task(root, case, [1], "2026-05-01", "2026-05-01")
    assert sb.counters()["requests"] == 0
    assert root.open(*case).version() == 0


def test_files_and_tables_share_a_root_without_touching_each_other(sb, tmp_path):
    """jsonl files and a Delta table of the same stats type and unit, under one root."""
    out = tmp_path / "out"
    case = ("journey", "DAY")
    files = {"task_id": "f", "stats_type": "journey", "journey_ids": J(1, 3), "start_time": "2026-05-01",
             "end_time": "2026-05-02", "output_path": str(out)}
    EngageLabStatsOperator(**files).execute({})
    task(Root("file", str(out), None), case, J(1, 3), "2026-05-01", "2026-05-02")
    EngageLabStatsOperator(**files).execute({})
    from airflow_provider_engagelab.testing.output import read_rows as read_files

    want = expected(sb, case, (J(1, 3), "2026-05-01", "2026-05-02"))
    assert {row_key(r, "journey"): r for r in read_files(out, "journey", "DAY")} == want
    assert_exactly_once(Root("file", str(out), None), case, want)


def test_a_location_with_files_but_no_table_is_refused_before_any_request(sb, tmp_path):
    table = tmp_path / "out" / "journey" / "day"
    table.mkdir(parents=True)
    (table / "notes.txt").write_text("not a table")
    with pytest.raises(EngageLabValidationError, match=r"day holds notes.txt but no Delta table"):
        task(Root("file", str(tmp_path / "out"), None), ("journey", "DAY"), [1], "2026-05-01", "2026-05-01")
    assert sb.counters()["requests"] == 0


# ---------------------------------------------------------------------------- S3 options and secrets


def test_the_s3_options_pin_safe_commits_and_carry_the_connections_credentials():
    options = delta_sink.s3_storage_options(access_key_id="AKID", secret_access_key="sekret",
                                            session_token="tok", region="eu-west-1",
                                            endpoint_url="http://127.0.0.1:9000")
    assert options == {
        "aws_conditional_put": "etag", "AWS_S3_ALLOW_UNSAFE_RENAME": "false", "AWS_S3_LOCKING_PROVIDER": "",
        "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "sekret", "AWS_SESSION_TOKEN": "tok",
        "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ALLOW_HTTP": "true",
    }
    assert "AWS_ALLOW_HTTP" not in delta_sink.s3_storage_options(endpoint_url="https://s3.example.com")
    assert "AWS_ACCESS_KEY_ID" not in delta_sink.s3_storage_options(region="us-east-1")  # default chain


def test_the_aws_secret_of_the_connection_never_shows(sb, s3_bucket, monkeypatch, caplog):
    secret = "s3cr3t-of-the-aws-connection-4242"
    conn = {"conn_type": "aws", "login": "AKIDDELTATEST", "password": secret,
            "extra": {"endpoint_url": s3_bucket.endpoint, "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DELTA_SECRET", json.dumps(conn))
    root = Root("s3", f"s3://{s3_bucket.name}/lake", "aws_delta_secret", s3_bucket)
    case = ("journey", "DAY")
    with caplog.at_level(logging.DEBUG):
        summary = task(root, case, J(1, 7), "2026-05-01", "2026-05-02")
        interfere(root, case, monkeypatch, times=10**6)
        monkeypatch.setattr(delta_sink, "MAX_COMMIT_ATTEMPTS", 1)
        with pytest.raises(EngageLabOutputError) as failed:
            task(root, case, [1, 2], "2026-05-01", "2026-05-02")
    chain, exc = [], failed.value
    while exc is not None:
        chain.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    assert secret not in json.dumps(summary)
    assert secret not in "\n".join(chain)
    assert secret not in caplog.text


# ---------------------------------------------------------------------------- refusals


def test_delta_output_is_checked_when_the_dag_is_parsed():
    common = {"task_id": "t", "stats_type": "journey", "journey_ids": [1], "output_format": "DELTA"}
    with pytest.raises(EngageLabValidationError, match=r"output_path=None for output_format='delta'"):
        EngageLabStatsOperator(**common)
    with pytest.raises(EngageLabValidationError, match=r"output_path='gs://b/x'.*not gs://"):
        EngageLabStatsOperator(**common, output_path="gs://b/x")
    assert EngageLabStatsOperator(**common, output_path="/data/lake").output_format == "delta"
    assert EngageLabStatsOperator(**common, output_path="{{ var.value.lake }}").output_format == "delta"
    EngageLabStatsOperator.partial(task_id="m", stats_type="journey", output_format="delta")  # path: expand()
    with pytest.raises(EngageLabValidationError, match=r"on_schema_change='keep' for output_format='delta'"):
        EngageLabStatsOperator(**common, output_path="/data/lake", on_schema_change="keep")


def test_without_the_extra_the_task_fails_before_any_request_naming_it(sb, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "deltalake", None)
    with pytest.raises(EngageLabValidationError, match=r"airflow-provider-engagelab\[delta\]"):
        task(Root("file", str(tmp_path / "out"), None), ("journey", "DAY"), [1], "2026-05-01", "2026-05-01")
    assert sb.counters()["requests"] == 0
    assert not (tmp_path / "out").exists()


def test_the_replace_predicate_groups_dates_by_their_fetched_journeys():
    d1, d2, d3, d4 = (date(2026, 5, day) for day in (1, 2, 3, 4))
    fetched = {d1: frozenset({2, 1}), d2: frozenset({1, 2}), d3: frozenset({1}), d4: frozenset()}
    predicate = delta_sink.replace_predicate(fetched)
    assert predicate == ("(date IN ('2026-05-01', '2026-05-02') AND journey_id IN (1, 2)) OR "
                         "(date IN ('2026-05-03') AND journey_id IN (1))")


def test_the_public_helpers_give_the_tasks_location_and_options(s3_bucket):
    from airflow_provider_engagelab.operators.delta_tables import delta_storage_options, delta_table_uri

    assert delta_table_uri("/data/lake/", "message", "HOUR") == "/data/lake/message/hour"
    assert delta_table_uri("file:///data/lake", "webhook", "day") == "/data/lake/webhook/day"
    assert delta_table_uri("s3://aws_x@bucket/p/", "journey", "DAY") == "s3://bucket/p/journey/day"
    assert delta_storage_options("/data/lake") == {}
    options = delta_storage_options(f"s3://{s3_bucket.conn_id}@{s3_bucket.name}/lake")  # id in the URL
    assert options == delta_storage_options(f"s3://{s3_bucket.name}/lake", s3_bucket.conn_id)
    assert options["AWS_ENDPOINT_URL"] == s3_bucket.endpoint and options["AWS_ALLOW_HTTP"] == "true"
    assert (options["AWS_ACCESS_KEY_ID"], options["AWS_REGION"]) == ("testing", "us-east-1")
    assert options["aws_conditional_put"] == "etag"
