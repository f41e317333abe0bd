"""The SQL sink: a task's rows into one table, exactly once, in one transaction.

Opening the sink checks the table before any API request: an existing table must have the
columns and primary key this task writes (a mismatch is an error naming what differs; the
table is never altered), a missing one is created when ``create_table`` says so (in its own
short transaction, serialised between concurrent tasks). Then the loader of the database
(:mod:`.sql_load`) stages each answer as it arrives, and :meth:`SqlSink.commit` replaces, in
one transaction, exactly the rows of the journeys each call answered for (``error_code`` 0)
over that call's dates and the task's time unit. Only the contract's columns are written
(fields the contract does not name are the transfer's ``on_schema_change`` business: logged,
or refused). A journey that failed under
``on_journey_error`` ``warn``/``skip`` keeps its rows, as do the journeys and dates the task
did not fetch.

The DB-API connection (and its dialect) come from the transfer operator's common.sql hook, as
a :class:`SqlDatabase`; the sink owns and closes the connection. No Airflow imports.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_engagelab.core.parsing import ParsedResponse
from airflow_provider_engagelab.core.query import StatsQuery
from airflow_provider_engagelab.core.sql_table import TableName, replace_ranges
from airflow_provider_engagelab.exceptions import EngageLabValidationError
from airflow_provider_engagelab.sinks.sql_load import (
    SQLITE_BUSY_TIMEOUT_MS,
    CopyLoader,
    ExecutemanyLoader,
    has_copy,
    plain_cursor,
)
from airflow_provider_engagelab.sinks.sql_schema import (
    POSTGRES,
    SQLITE,
    TableSql,
    describe,
    differences,
    mismatch_error,
    pg_schema_of,
    sa_dialect,
)

_log = logging.getLogger(__name__)


@dataclass
class SqlDatabase:
    """A database as the sink needs it, built from a common.sql ``DbApiHook``.

    :param connection: an open DB-API connection (the sink closes it).
    :param dialect_name: the SQLAlchemy dialect name (``postgresql``, ``sqlite``, ``mysql``...).
    :param placeholder: the driver's parameter marker (``%s`` or ``?``).
    :param inspector: a SQLAlchemy inspector factory, for databases other than PostgreSQL and
        SQLite (their catalogs are read on ``connection``).
    """

    connection: Any
    dialect_name: str
    placeholder: str = "%s"
    inspector: Callable[[], Any] | None = None


def _lock_key(text: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``text``."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


class SqlSink:
    """One table of a SQL database (see the module).

    :param db: the database.
    :param table: the validated table name.
    :param query: what the task fetches (stats type, time unit, window).
    :param create_table: create the table when it is missing (else that is an error).
    """

    def __init__(self, db: SqlDatabase, table: TableName, query: StatsQuery, *, create_table: bool) -> None:
        self.db = db
        self.query = query
        self.sql = TableSql(sa_dialect(db.dialect_name), table, query.stats_type)
        self.rows_staged = 0
        self._fetched: list[tuple[Any, Any, frozenset[int]]] = []
        self._closed = False
        self._committed = False
        #: The table's columns and their types as the database declares them (for lineage).
        self.column_types: list[tuple[str, str]] = []
        conn = db.connection
        try:
            if self.sql.family == SQLITE:  # before the first read: wait for other tasks' writes
                conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_MS)}")
            self.created = self._ensure_table(create_table)
            self.schema = self._schema()
            loader_cls = CopyLoader if self.sql.family == POSTGRES and has_copy(conn) else ExecutemanyLoader
            self.loader = loader_cls(conn, self.sql, query.time_unit, db.placeholder)
            self.loader.begin()
        except BaseException:
            self._close_connection()
            raise

    @property
    def method(self) -> str:
        """``copy`` or ``executemany``."""
        return self.loader.method

    # ------------------------------------------------------------------ the table
    def _ensure_table(self, create_table: bool) -> bool:
        """Check the existing table, or create it; True when this task created it."""
        conn, sql = self.db.connection, self.sql
        cursor = plain_cursor(conn)
        try:
            found = describe(cursor, sql, self.db.placeholder, self.db.inspector)
            if found is None and not create_table:
                raise EngageLabValidationError(
                    f"Invalid table={str(sql.table)!r}: there is no such table and create_table=False; "
                    "create it, or set create_table=True"
                )
            created = found is None and self._create(cursor)
            if not created:
                found = found or describe(cursor, sql, self.db.placeholder, self.db.inspector) or []
                diffs = differences(sql, found)
                if diffs:
                    raise mismatch_error(sql, diffs)
                self.column_types = [(c.name, c.type) for c in found]
            else:
                self.column_types = self._created_types()
        except BaseException:
            self._rollback_quietly()
            raise
        finally:
            cursor.close()
        self._end_transaction()
        return created

    def _created_types(self) -> list[tuple[str, str]]:
        """The columns and types of the table as this sink creates it (the dialect's DDL)."""
        return [(str(c.name), str(c.type.compile(dialect=self.sql.dialect)))
                for c in self.sql.sa_table().columns]

    def _create(self, cursor: Any) -> bool:
        """Create the table unless a concurrent task just did; True when this one did."""
        conn, sql, p = self.db.connection, self.sql, self.db.placeholder
        try:
            if sql.family == POSTGRES:
                # Two tasks creating the same table at once: the second waits, then sees it.
                key = _lock_key(f"engagelab:create:{sql.qualified}")
                cursor.execute(f"SELECT pg_advisory_xact_lock({p})", (key,))
            elif sql.family == SQLITE:
                conn.isolation_level = None
                cursor.execute("BEGIN IMMEDIATE")
            if describe(cursor, sql, p, self.db.inspector) is not None:
                return False
            cursor.execute(sql.create_sql())
            if sql.family == SQLITE:
                cursor.execute("COMMIT")
            else:
                conn.commit()
        except EngageLabValidationError:
            raise
        except Exception as exc:
            self._rollback_quietly()
            if sql.family not in (POSTGRES, SQLITE) and describe(cursor, sql, p, self.db.inspector):
                return False  # created by a concurrent task meanwhile
            raise EngageLabValidationError(
                f"Invalid table={str(sql.table)!r}: creating it failed ({type(exc).__name__}: "
                f"{str(exc).strip()[:500]})"
            ) from exc
        _log.info("Created table %s for %s statistics", sql.qualified, sql.stats_type.value)
        return True

    def _schema(self) -> str | None:
        """The schema the table name resolves to (for lineage), if known."""
        if self.sql.table.schema:
            return self.sql.table.schema
        if self.sql.family == SQLITE:
            return "main"
        if self.sql.family == POSTGRES:
            cursor = plain_cursor(self.db.connection)
            try:
                return pg_schema_of(cursor, self.sql, self.db.placeholder)
            finally:
                cursor.close()
                self._end_transaction()
        return None

    def _end_transaction(self) -> None:
        conn = self.db.connection
        if self.sql.family == SQLITE:
            if conn.in_transaction:
                conn.execute("COMMIT")
        else:
            conn.commit()

    def _rollback_quietly(self) -> None:
        try:
            conn = self.db.connection
            if self.sql.family == SQLITE:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            else:
                conn.rollback()
        except Exception:  # noqa: BLE001 - a broken connection: closing it rolls back anyway
            _log.debug("rollback failed", exc_info=True)

    # ------------------------------------------------------------------ the Sink protocol
    def stage(self, parsed: ParsedResponse) -> None:
        """Stage one answer's rows; note its window and the journeys it answered for."""
        self.rows_staged += self.loader.stage(parsed)
        call = parsed.call
        if call is None:  # an answer built by hand: it covers the whole query
            ok = frozenset(self.query.journey_ids) - {e.journey_id for e in parsed.errors}
            self._fetched.append((self.query.start, self.query.end, ok))
        else:
            self._fetched.append((call.start, call.end, frozenset(parsed.ok_journeys)))

    def commit(self) -> dict[str, Any]:
        """Replace the fetched journeys' rows in one transaction; return the counts."""
        ranges = replace_ranges(self._fetched)
        deleted, inserted = self.loader.replace(ranges)
        self._committed = True
        return {
            "rows_deleted": deleted,
            "rows_inserted": inserted,
            "method": self.method,
            "replace_attempts": self.loader.attempts,
            "created": self.created,
            "schema": self.schema,
            "columns": [list(c) for c in self.column_types],
        }

    def abort(self) -> None:
        """Roll back whatever is not committed and close the connection. Safe after commit."""
        if self._closed:
            return
        try:
            self.loader.close()
        except Exception:  # noqa: BLE001 - closing the connection rolls back anyway
            _log.debug("closing the loader failed", exc_info=True)
        finally:
            self._close_connection()

    def _close_connection(self) -> None:
        self._closed = True
        try:
            self.db.connection.close()
        except Exception:  # noqa: BLE001
            _log.debug("closing the connection failed", exc_info=True)
