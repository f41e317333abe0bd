"""What a task read and wrote, as plain data, for lineage (OpenLineage facets are built from it).

The operators fill a :class:`TaskLineage` while they run (from what they already know: the
query, the API's base URL, the sink's commit summary), so building lineage afterwards needs no
request. Names follow OpenLineage's dataset naming: ``namespace`` + ``name``; a file or Delta
output is ``file`` + ``/abs/path`` locally, ``s3://bucket`` + ``key/prefix`` (``gs://``,
``abfss://`` alike) on an object store. Pure: no Airflow and no OpenLineage imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from airflow_provider_engagelab.core.contract import COLUMN_KINDS, COLUMNS, DETAIL_FIELDS, INT, NUMBER, STR
from airflow_provider_engagelab.core.query import StatsQuery, StatsType

#: The type names of each output format, per contract kind.
FORMAT_TYPES: dict[str, dict[str, str]] = {
    "xcom": {INT: "integer", NUMBER: "number", STR: "string"},
    "jsonl": {INT: "integer", NUMBER: "number", STR: "string"},
    "csv": {INT: "integer", NUMBER: "number", STR: "string"},
    "parquet": {INT: "int64", NUMBER: "double", STR: "string"},
    "delta": {INT: "long", NUMBER: "double", STR: "string"},
}


@dataclass(frozen=True)
class Column:
    """One column (or API field) with its type; ``description`` says what is special about it."""

    name: str
    type: str | None
    description: str | None = None


@dataclass(frozen=True)
class LineageInput:
    """The endpoint a task read: ``namespace`` is the API's ``scheme://host[:port]``."""

    namespace: str
    name: str
    stats_type: str
    time_unit: str
    start: str
    end: str
    journey_count: int
    journey_errors: int
    fields: tuple[Column, ...]


@dataclass(frozen=True)
class LineageOutput:
    """One dataset a task wrote (a stats-type root, a Delta table, a SQL table)."""

    namespace: str
    name: str
    kind: str
    columns: tuple[Column, ...]
    row_count: int
    size_bytes: int | None = None
    file_count: int | None = None


@dataclass
class TaskLineage:
    """What one task instance read and wrote (set by ``execute``)."""

    inputs: list[LineageInput] = field(default_factory=list)
    outputs: list[LineageOutput] = field(default_factory=list)


def api_dataset(base_url: str, query: StatsQuery, journey_errors: int,
                new_fields: list[str] | None = None) -> LineageInput:
    """The input dataset of a query against the API at ``base_url`` (host and port only: a
    base URL never carries credentials; its path, if any, prefixes the endpoint)."""
    parsed = urlparse(base_url)
    host = parsed.hostname or ""
    netloc = f"{host}:{parsed.port}" if parsed.port else host
    name = f"{parsed.path.rstrip('/')}{query.stats_type.endpoint}"
    api_fields = [Column(n, FORMAT_TYPES["jsonl"][k]) for n, k in DETAIL_FIELDS[query.stats_type]]
    api_fields += [Column(n, None, "a field the contract does not name") for n in new_fields or []]
    return LineageInput(
        namespace=f"{parsed.scheme}://{netloc}", name=name, stats_type=query.stats_type.value,
        time_unit=query.time_unit.value, start=query.start.isoformat(), end=query.end.isoformat(),
        journey_count=len(query.journey_ids), journey_errors=journey_errors, fields=tuple(api_fields),
    )


def location(uri: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a file or directory URL (no credentials)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return "file", parsed.path or "/"
    scheme = "s3" if parsed.scheme in ("s3a", "s3n") else parsed.scheme
    netloc = parsed.netloc.rpartition("@")[2] if scheme != "abfss" else parsed.netloc
    return f"{scheme}://{netloc}", parsed.path.lstrip("/") or "/"


def written_columns(stats_type: StatsType, output_format: str, extra: list[str] | None = None,
                    extra_columns: tuple[Column, ...] = ()) -> tuple[Column, ...]:
    """The columns a format writes for a stats type, then the kept new fields (if any)."""
    types = FORMAT_TYPES[output_format]
    kinds = COLUMN_KINDS[stats_type]
    columns = [Column(name, types[kinds[name]]) for name in COLUMNS[stats_type]]
    columns += list(extra_columns)
    kept_type = "string" if output_format == "csv" else None
    columns += [Column(name, kept_type, "a field the contract does not name (on_schema_change='keep')")
                for name in extra or []]
    return tuple(columns)


def file_output(root: str, stats_type: StatsType, output_format: str, result: dict[str, Any],
                kept: list[str] | None = None) -> LineageOutput:
    """The stats-type root of a files output, from the file sink's commit summary."""
    namespace, name = location(f"{root.rstrip('/')}/{stats_type.value}")
    return LineageOutput(
        namespace=namespace, name=name, kind=output_format,
        columns=written_columns(stats_type, output_format, kept),
        row_count=int(result["total_rows"]), size_bytes=result.get("bytes"),
        file_count=len(result["files"]),
    )


def delta_output(stats_type: StatsType, result: dict[str, Any]) -> LineageOutput:
    """The Delta table of a task, from the Delta sink's commit summary."""
    namespace, name = location(str(result["table"]))
    return LineageOutput(
        namespace=namespace, name=name, kind="delta",
        columns=written_columns(stats_type, "delta", extra_columns=(Column("date", "date", "partition"),)),
        row_count=int(result["total_rows"]), size_bytes=result.get("bytes"),
        file_count=len(result.get("files") or []),
    )


#: Default ports of the databases whose OpenLineage namespace is ``scheme://host:port``.
_SQL_PORTS = {"postgres": 5432, "mysql": 3306, "mssql": 1433}


def sql_output(conn_type: str, host: str | None, port: int | None, database: str | None,
               schema: str | None, table: str, columns: list[tuple[str, str]],
               row_count: int) -> LineageOutput:
    """A SQL table in OpenLineage's naming: ``postgres://host:port`` + ``database.schema.table``
    (MySQL: ``database.table``; SQLite: ``sqlite://<file>`` + ``main.table``). Built from the
    Connection's host, port and database only, never its credentials."""
    kind = (conn_type or "sql").lower()
    scheme = "postgres" if kind in ("postgres", "postgresql") else kind
    name = table.rsplit(".", 1)[-1]
    if scheme == "sqlite":
        namespace = f"sqlite://{host or ''}"
        parts: list[str | None] = [schema or "main", name]
    else:
        port = port or _SQL_PORTS.get(scheme)
        namespace = f"{scheme}://{host or 'localhost'}" + (f":{port}" if port else "")
        parts = [database, name] if scheme == "mysql" else [database, schema, name]
    return LineageOutput(
        namespace=namespace, name=".".join(p for p in parts if p), kind="sql",
        columns=tuple(Column(n, t) for n, t in columns), row_count=row_count,
    )
