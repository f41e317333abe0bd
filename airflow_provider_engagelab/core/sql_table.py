"""The SQL table of a stats type, as data: table names, columns, key, and what a task replaces.

Pure (no Airflow, no SQLAlchemy): the columns come from the contract (:mod:`.contract`), plus
one typed column, ``bucket_start``, the start of the bucket as a timestamp (``time`` is kept as
the API gives it). The SQL sink (:mod:`..sinks.sql`) turns this into DDL and statements for a
dialect; nothing here is SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from airflow_provider_engagelab.core.contract import COLUMN_KINDS, COLUMNS, PRIMARY_KEYS, STR
from airflow_provider_engagelab.core.query import StatsType, TimeUnit
from airflow_provider_engagelab.exceptions import EngageLabValidationError

#: The kind of the typed bucket column (the contract's kinds are ``int``, ``number``, ``str``).
TIMESTAMP = "timestamp"

#: The typed bucket column: ``time`` as a timestamp without time zone (the API's buckets have
#: no documented time zone), the start of the hour or of the day.
BUCKET_COLUMN = "bucket_start"

#: Length of the text columns of the primary key (``time_unit``, ``time``): bounded, so that
#: databases that cannot index unbounded text (MySQL, SQL Server) can hold the key.
KEY_TEXT_LENGTH = 32

#: Longest identifier accepted (PostgreSQL truncates longer names silently).
MAX_IDENTIFIER_LENGTH = 63

#: Journey IDs per ``IN (...)`` list of one delete statement (bound parameters stay low).
DELETE_IDS_PER_STATEMENT = 500

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

__all__ = [
    "BUCKET_COLUMN",
    "TIMESTAMP",
    "ReplaceRange",
    "SqlColumn",
    "TableName",
    "bucket_start_text",
    "parse_table_name",
    "replace_ranges",
    "table_columns",
]


@dataclass(frozen=True)
class TableName:
    """A validated table name, optionally schema-qualified (unquoted parts)."""

    name: str
    schema: str | None = None

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def parse_table_name(value: Any, param: str = "table") -> TableName:
    """``table`` or ``schema.table``: each part a plain identifier (letters, digits, ``_``, not
    starting with a digit, at most 63 characters). Nothing else is accepted, so no quoting or
    SQL can come in through the name; the SQL sink quotes each part for its dialect."""
    if not isinstance(value, str):
        raise EngageLabValidationError(
            f"Invalid {param}={value!r}: must be a string 'table' or 'schema.table'"
        )
    parts = value.split(".")
    shown = repr(value) if len(value) <= 120 else repr(value[:117] + "...")
    if len(parts) > 2:
        raise EngageLabValidationError(
            f"Invalid {param}={shown}: at most one dot, as in 'schema.table'"
        )
    for part in parts:
        if not _IDENTIFIER.match(part) or len(part) > MAX_IDENTIFIER_LENGTH:
            raise EngageLabValidationError(
                f"Invalid {param}={shown}: {part!r} is not a plain identifier (letters, digits and "
                f"'_', not starting with a digit, 1 to {MAX_IDENTIFIER_LENGTH} characters; write "
                "'schema.table' without quotes)"
            )
    if len(parts) == 2:
        return TableName(parts[1], parts[0])
    return TableName(parts[0])


@dataclass(frozen=True)
class SqlColumn:
    """One column of the table.

    :param name: the column name (lowercase, as in the contract).
    :param kind: ``int``, ``number``, ``str`` (the contract's kinds) or ``timestamp``.
    :param key: part of the primary key.
    """

    name: str
    kind: str
    key: bool

    @property
    def bounded_text(self) -> bool:
        """A text column of the key (stored with a bounded length)."""
        return self.kind == STR and self.key


def table_columns(stats_type: StatsType) -> tuple[SqlColumn, ...]:
    """The columns of a stats type's table: the flat row's ``COLUMNS``, then ``bucket_start``."""
    key = set(PRIMARY_KEYS[stats_type])
    kinds = COLUMN_KINDS[stats_type]
    columns = [SqlColumn(name, kinds[name], name in key) for name in COLUMNS[stats_type]]
    return (*columns, SqlColumn(BUCKET_COLUMN, TIMESTAMP, False))


def bucket_start_text(time: str, unit: TimeUnit) -> str:
    """The ``bucket_start`` of an API ``time`` as ``yyyy-MM-dd HH:MM:SS`` text."""
    return f"{time}:00:00" if unit is TimeUnit.HOUR else f"{time} 00:00:00"


@dataclass(frozen=True)
class ReplaceRange:
    """Rows one task replaces: these journeys, every ``time`` of ``[first, last]``, one unit.

    ``time`` is ``yyyy-MM-dd`` or ``yyyy-MM-dd HH``, so the rows of the dates ``[first, last]``
    are exactly those with ``lower <= time < upper`` (text comparison of fixed-width digits).
    """

    first: date
    last: date
    journey_ids: tuple[int, ...]

    @property
    def lower(self) -> str:
        """The smallest ``time`` of the range (inclusive bound)."""
        return self.first.isoformat()

    @property
    def upper(self) -> str:
        """The day after the range (exclusive bound)."""
        return (self.last + timedelta(days=1)).isoformat()


def replace_ranges(
    fetched: Iterable[tuple[date, date, Iterable[int]]],
    ids_per_range: int = DELETE_IDS_PER_STATEMENT,
) -> list[ReplaceRange]:
    """Merge what a task fetched (per call: its window and the journeys that answered) into
    few ranges to delete: calls of the same window are united, consecutive windows with the
    same journeys joined, and each journey list cut into pieces of ``ids_per_range``."""
    by_window: dict[tuple[date, date], set[int]] = {}
    for first, last, ids in fetched:
        by_window.setdefault((first, last), set()).update(ids)
    merged: list[tuple[date, date, frozenset[int]]] = []
    for (first, last), ids in sorted(by_window.items()):
        if not ids:
            continue
        frozen = frozenset(ids)
        if merged and merged[-1][2] == frozen and merged[-1][1] + timedelta(days=1) == first:
            merged[-1] = (merged[-1][0], last, frozen)
        else:
            merged.append((first, last, frozen))
    out = []
    for first, last, ids in merged:
        ordered = sorted(ids)
        for i in range(0, len(ordered), ids_per_range):
            out.append(ReplaceRange(first, last, tuple(ordered[i : i + ids_per_range])))
    return out
