"""The Delta Lake sink: one transaction per task that replaces exactly its journeys x window.

Layout: one Delta table per stats type and time unit under the output root, partitioned by
``date`` (the first 10 characters of ``time``)::

    <root>/<stats_type>/<day|hour>/_delta_log/...
                                  /date=<yyyy-MM-dd>/part-....parquet

The table's own path has no ``key=value`` segment: readers that infer Hive partitions from the
whole path (Polars) would take ``time_unit=DAY`` for a partition column the table does not
have; and it never shares a directory with the file outputs' ``time_unit=<U>`` partitions.

Rows are staged per date on local disk as Arrow IPC (never all in memory, as for Parquet
files), then written by ``deltalake`` (delta-rs) in one ``overwrite`` commit whose predicate
is, for each group of dates, the journeys the task *fetched* for them (answered with
``error_code`` 0): their old rows of those dates are deleted, the new ones added, every
other row kept, atomically. A journey that failed under ``on_journey_error`` ``warn`` or
``skip`` is not in the predicate and keeps its rows.

Concurrency is optimistic: delta-rs commits a new log version with a put-if-absent (an
exclusive create on a local file system, a conditional ``If-None-Match`` PUT on S3), and a
task whose snapshot went stale meets delta-rs's conflict check. A conflict (another task
rewrote files this one read) is retried from a fresh snapshot, with jittered backoff,
bounded by :data:`MAX_COMMIT_ATTEMPTS` and ``wait_seconds``; a write that fails leaves the
table as it was (data files it wrote are not in the log: readers never see them, and
``vacuum`` removes them). No Airflow imports: the operator passes the root and the storage
options.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from airflow_provider_engagelab.core import encoding
from airflow_provider_engagelab.core.parsing import ParsedResponse
from airflow_provider_engagelab.core.query import StatsQuery, parse_stats_type, parse_time_unit
from airflow_provider_engagelab.exceptions import EngageLabOutputError, EngageLabValidationError
from airflow_provider_engagelab.sinks.base import note_coverage
from airflow_provider_engagelab.sinks.staging import PartitionStager, StagedFile, read_staged_batches

_log = logging.getLogger(__name__)

DELTA_INSTALL_HINT = "pip install 'airflow-provider-engagelab[delta]'"

#: The partition column of every table: the date of the row's ``time``.
PARTITION_COLUMN = "date"

#: Attempts of a task's transaction at most (the first one and the retries after conflicts).
MAX_COMMIT_ATTEMPTS = 25

#: First pause after a conflict, in seconds; doubled per attempt up to :data:`MAX_BACKOFF_SECONDS`.
BASE_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0

#: Output root schemes the sink writes to (local paths are ``file://`` roots).
SUPPORTED_SCHEMES = ("file", "s3", "s3a")


def require_delta() -> Any:
    """Import deltalake and pyarrow (the ``[delta]`` extra) or fail naming the install command."""
    try:
        import deltalake
        import deltalake.exceptions
        import deltalake.fs
        import pyarrow  # noqa: F401  (staging and the record batches)
    except ImportError:
        raise EngageLabValidationError(
            "Invalid output_format='delta': it needs deltalake and pyarrow, which are not installed; "
            f"install the extra: {DELTA_INSTALL_HINT}"
        ) from None
    return deltalake


def table_path(stats_type: Any, time_unit: Any) -> str:
    """``<stats_type>/<day|hour>``: the table of a stats type and time unit, under the root."""
    return f"{parse_stats_type(stats_type).value}/{parse_time_unit(time_unit).value.lower()}"


def table_schema(stats_type: Any) -> Any:
    """The Arrow schema of a table: the Parquet columns (:func:`~..encoding.parquet_schema`)
    plus the non-null ``date`` (date32) partition column."""
    pa = encoding.require_parquet()
    return encoding.parquet_schema(stats_type).append(pa.field(PARTITION_COLUMN, pa.date32(), nullable=False))


def s3_storage_options(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> dict[str, str]:
    """delta-rs storage options for S3: the credentials, plus the settings of safe commits.

    delta-rs >= 1.0 commits a log version with a conditional put (``If-None-Match: *``), which
    S3 has honoured since 2024 (as MinIO, R2 and most S3-compatible stores do); the locking
    provider (DynamoDB) is gone. Pinned here so that no environment variable of the worker can
    turn it off: conditional puts on, the unsafe-rename mode off, no locking provider.
    """
    options = {
        "aws_conditional_put": "etag",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "false",
        "AWS_S3_LOCKING_PROVIDER": "",
    }
    if access_key_id and secret_access_key:
        options["AWS_ACCESS_KEY_ID"] = access_key_id
        options["AWS_SECRET_ACCESS_KEY"] = secret_access_key
        if session_token:
            options["AWS_SESSION_TOKEN"] = session_token
    if region:
        options["AWS_REGION"] = region
    if endpoint_url:
        options["AWS_ENDPOINT_URL"] = endpoint_url
        if endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


def _sql_list(values: list[str]) -> str:
    return ", ".join(values)


def replace_predicate(fetched: Mapping[date, frozenset[int]]) -> str:
    """The rows a task replaces: per group of dates with the same fetched journeys, those
    journeys on those dates (an SQL predicate of delta-rs; dates and IDs only, no user text)."""
    groups: dict[frozenset[int], list[date]] = defaultdict(list)
    for day, journeys in sorted(fetched.items()):
        if journeys:
            groups[journeys].append(day)
    terms = [
        f"({PARTITION_COLUMN} IN ({_sql_list([repr(d.isoformat()) for d in days])}) AND "
        f"journey_id IN ({_sql_list([str(int(j)) for j in sorted(journeys)])}))"
        for journeys, days in groups.items()
    ]
    return " OR ".join(terms)


def _backoff(attempt: int) -> float:
    """Full jitter: uniform in ``[0, min(max, base * 2**(attempt - 1))]``."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (attempt - 1)))


class DeltaSink:
    """A Delta table per stats type and time unit under an output root (see the module).

    The location is checked when the sink is made, before the task fetches anything: an
    existing table must have the columns this provider writes, and a location that holds
    files but no table is refused.

    :param root: the output root: a local directory or an ``s3://bucket/prefix`` URL.
    :param query: what the task fetches (stats type, time unit, window).
    :param storage_options: delta-rs storage options (credentials; see :func:`s3_storage_options`).
    :param wait_seconds: how long the task retries conflicting commits at most.
    :param max_attempts: attempts of the transaction at most (default :data:`MAX_COMMIT_ATTEMPTS`).
    :param staging_dir: parent of the local staging directory (default: the system temp).
    """

    def __init__(
        self,
        root: str,
        query: StatsQuery,
        storage_options: Mapping[str, str] | None = None,
        *,
        wait_seconds: float,
        max_attempts: int | None = None,
        staging_dir: str | None = None,
    ) -> None:
        self._deltalake = require_delta()
        self.query = query
        self.table_uri = f"{root.rstrip('/')}/{table_path(query.stats_type, query.time_unit)}"
        #: The table as a URL (``file://`` for a local one), for summaries and lineage.
        self.url = self.table_uri if "://" in self.table_uri else f"file://{self.table_uri}"
        self.storage_options = dict(storage_options or {})
        self.wait_seconds = wait_seconds
        self.max_attempts = max(1, MAX_COMMIT_ATTEMPTS if max_attempts is None else max_attempts)
        self._schema = table_schema(query.stats_type)
        self._check_location()
        self._stager = PartitionStager(
            query.stats_type, query.time_unit, query.start, query.end, "parquet", staging_dir=staging_dir,
        )
        self._fetched: dict[date, set[int]] = defaultdict(set)

    # ------------------------------------------------------------------ the table
    def _open(self) -> Any | None:
        """The table as it is now, or ``None`` when there is none yet."""
        dl = self._deltalake
        try:
            if not dl.DeltaTable.is_deltatable(self.table_uri, storage_options=self.storage_options):
                return None
            return dl.DeltaTable(self.table_uri, storage_options=self.storage_options)
        except dl.exceptions.TableNotFoundError:
            return None
        except (OSError, dl.exceptions.DeltaError) as exc:
            raise EngageLabOutputError(
                f"could not read the Delta table {self.table_uri}: {type(exc).__name__}: {exc}"
            ) from exc

    def _entries(self) -> list[str]:
        """Names directly under the table location (which is not a table)."""
        if "://" not in self.table_uri:
            try:
                return sorted(os.listdir(self.table_uri))
            except (FileNotFoundError, NotADirectoryError):
                return []
        from pyarrow.fs import FileSelector

        handler = self._deltalake.fs.DeltaStorageHandler(self.table_uri, self.storage_options)
        infos = handler.get_file_info_selector(FileSelector("", allow_not_found=True, recursive=False))
        return sorted(info.path.rstrip("/").rpartition("/")[2] for info in infos)

    def _check_location(self) -> None:
        table = self._open()
        if table is not None:
            self._check_schema(table)
            return
        entries = self._entries()
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise EngageLabValidationError(
                f"Invalid output_path for output_format='delta': {self.table_uri} holds {shown} but "
                "no Delta table (no _delta_log); move them away or use another output_path"
            )

    def _check_schema(self, table: Any) -> None:
        """Refuse a table whose columns or partitioning differ from what this task writes."""
        expected = self._deltalake.Schema.from_arrow(self._schema)
        want = {f.name: (str(f.type), f.nullable) for f in expected.fields}
        have = {f.name: (str(f.type), f.nullable) for f in table.schema().fields}
        problems = [f"missing column {name!r}" for name in want if name not in have]
        problems += [f"unexpected column {name!r}" for name in have if name not in want]
        problems += [
            f"column {name!r} is {have[name][0]}{'' if have[name][1] else ' NOT NULL'}, "
            f"expected {kind}{'' if nullable else ' NOT NULL'}"
            for name, (kind, nullable) in want.items() if name in have and have[name] != (kind, nullable)
        ]
        partitions = list(table.metadata().partition_columns)
        if partitions != [PARTITION_COLUMN]:
            problems.append(f"partitioned by {partitions}, expected [{PARTITION_COLUMN!r}]")
        if problems:
            raise EngageLabValidationError(
                f"Invalid output_path for output_format='delta': the Delta table {self.table_uri} does "
                f"not match the {self.query.stats_type.value} columns this task writes "
                f"({'; '.join(problems)}); it was left unchanged: write to another output_path, or "
                "migrate the table"
            )

    def _table(self) -> Any:
        """The table, created (schema only, its own commit) when there is none yet."""
        table = self._open()
        if table is not None:
            return table
        dl = self._deltalake
        stype, unit = self.query.stats_type.value, self.query.time_unit.value
        try:
            dl.DeltaTable.create(
                self.table_uri, dl.Schema.from_arrow(self._schema), mode="ignore",
                partition_by=[PARTITION_COLUMN], name=f"engagelab_{stype}_{unit.lower()}",
                description=f"EngageLab {stype} statistics per {unit}, written by airflow-provider-engagelab",
                storage_options=self.storage_options,
            )
        except (OSError, dl.exceptions.DeltaError) as exc:
            if self._open() is None:  # not another task's creation winning the race
                raise EngageLabOutputError(
                    f"could not create the Delta table {self.table_uri}: {type(exc).__name__}: {exc}"
                ) from exc
        table = self._open()
        if table is None:
            raise EngageLabOutputError(f"the Delta table {self.table_uri} is missing after its creation")
        self._check_schema(table)  # another task may have created it first
        return table

    # ------------------------------------------------------------------ the sink
    @property
    def total_rows(self) -> int:
        """Rows staged so far."""
        return self._stager.total_rows

    def stage(self, parsed: ParsedResponse) -> None:
        """Stage one answer's rows, and note which journeys it covers on which dates."""
        self._stager.add_response(parsed)
        note_coverage(self._fetched, parsed, self.query)

    def _batches(self, staged: Mapping[date, StagedFile], days: list[date]) -> Iterator[Any]:
        import pyarrow as pa

        for day in days:
            if day not in staged:
                continue
            partition = pa.scalar(day, pa.date32())
            for batch in read_staged_batches(staged[day].local_path):
                yield pa.RecordBatch.from_arrays(
                    [*batch.columns, pa.repeat(partition, batch.num_rows)], schema=self._schema
                )

    def _write(self, staged: Mapping[date, StagedFile], days: list[date], predicate: str) -> tuple[Any, int]:
        """One transaction, retried from a fresh snapshot after conflicts; (table, attempts)."""
        import pyarrow as pa

        dl = self._deltalake
        deadline = time.monotonic() + self.wait_seconds
        window = f"{self.query.start.isoformat()}..{self.query.end.isoformat()}"
        metadata = {"engagelab": {"stats_type": self.query.stats_type.value, "window": window,
                                  "journeys": len(self.query.journey_ids)}}
        for attempt in range(1, self.max_attempts + 1):
            table = self._table()
            reader = pa.RecordBatchReader.from_batches(self._schema, self._batches(staged, days))
            try:
                dl.write_deltalake(
                    table, reader, mode="overwrite", predicate=predicate,
                    commit_properties=dl.CommitProperties(custom_metadata=metadata),
                )
                return table, attempt
            except dl.exceptions.CommitFailedError as exc:
                remaining = deadline - time.monotonic()
                if attempt >= self.max_attempts or remaining <= 0:
                    raise EngageLabOutputError(
                        f"could not commit to the Delta table {self.table_uri}: {attempt} attempt(s) in "
                        f"{self.wait_seconds - remaining:.1f} s met concurrent commits of other tasks on "
                        f"the same dates (the last: {exc}); nothing of this task was committed, and "
                        "Airflow's retry will run it again"
                    ) from exc
                pause = min(remaining, _backoff(attempt))
                _log.warning(
                    "Delta commit conflict on %s (attempt %d of %d): %s; retrying from a fresh snapshot "
                    "in %.2f s", self.table_uri, attempt, self.max_attempts, str(exc).splitlines()[0], pause,
                )
                time.sleep(pause)
            except (OSError, dl.exceptions.DeltaError) as exc:
                raise EngageLabOutputError(
                    f"could not write to the Delta table {self.table_uri}: {type(exc).__name__}: {exc}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit_actions(self, version: int) -> dict[str, Any]:
        """What the commit of ``version`` did, from its log entry: files added and removed."""
        from pyarrow.fs import FileSystem, PyFileSystem

        handler = self._deltalake.fs.DeltaStorageHandler(self.table_uri, self.storage_options)
        fs: FileSystem = PyFileSystem(handler)
        with fs.open_input_stream(f"_delta_log/{version:020d}.json") as handle:
            lines = handle.read().decode("utf-8").splitlines()
        added: list[dict[str, Any]] = []
        removed: list[str] = []
        size = 0
        metrics: dict[str, Any] = {}
        for line in filter(None, lines):
            action = json.loads(line)
            if "add" in action:
                stats = json.loads(action["add"].get("stats") or "{}")
                added.append({"uri": f"{self.url}/{action['add']['path']}", "rows": stats.get("numRecords")})
                size += int(action["add"].get("size") or 0)
            elif "remove" in action:
                removed.append(f"{self.url}/{action['remove']['path']}")
            elif "commitInfo" in action:
                metrics = action["commitInfo"].get("operationMetrics") or {}
        return {"files": added, "removed": removed, "metrics": metrics, "bytes": size}

    def commit(self) -> dict[str, Any]:
        """Replace the task's journeys x dates in one transaction; return the summary."""
        staged = self._stager.finish(convert=False)
        fetched = {day: frozenset(ids) for day, ids in self._fetched.items() if ids}
        days = sorted(fetched)
        summary: dict[str, Any] = {"table": self.url, "version": None, "files": [], "removed": [],
                                   "total_rows": 0, "bytes": 0, "partitions": len(days), "commit_attempts": 0,
                                   "dates": [day.isoformat() for day in days]}
        if not days:  # every journey failed (warn/skip): nothing to replace
            return summary
        table, attempts = self._write(staged, days, replace_predicate(fetched))
        version = int(table.version())
        actions = self._commit_actions(version)
        summary.update(
            version=version, files=actions["files"], removed=actions["removed"], commit_attempts=attempts,
            bytes=actions["bytes"],
            total_rows=sum(staged[d].rows for d in days if d in staged),
        )
        _log.info(
            "Committed version %d of the Delta table %s: %d date(s) replaced, %d row(s) in %d file(s) "
            "added, %d file(s) removed (%d attempt(s))", version, self.url, len(days),
            summary["total_rows"], len(actions["files"]), len(actions["removed"]), attempts,
        )
        return summary

    def abort(self) -> None:
        """Remove the staged files (nothing was committed unless :meth:`commit` returned)."""
        self._stager.cleanup()

    def __enter__(self) -> DeltaSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stager.cleanup()
