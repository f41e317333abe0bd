"""How rows reach a SQL table: PostgreSQL's ``COPY``, or ``executemany`` in chunks.

Both loaders stage the rows as the answers arrive (memory stays flat) and then replace, in
one transaction, exactly the rows of the journeys x dates x time unit the task fetched:
delete them, insert the new ones, commit. If anything fails the transaction rolls back and
the table is as it was.

* :class:`CopyLoader` (PostgreSQL, psycopg 2 or 3): the task's transaction opens a temporary
  table (``ON COMMIT DROP``), ``COPY ... FROM STDIN`` streams each answer into it as CSV, then
  ``DELETE`` + ``INSERT ... SELECT`` move the rows into the table (``bucket_start`` computed
  by the database). The delete and insert run under a savepoint: when a concurrent task wrote
  the same keys first (unique violation) or the two deadlock, they are retried (the staged rows
  are kept), so overlapping tasks end with one copy of each key, the later task's.
* :class:`ExecutemanyLoader` (any other DB-API database; SQLite): the rows are spooled to a
  local temporary file (msgpack, in frames), then one short transaction deletes and inserts
  them with ``executemany`` in chunks. On SQLite it starts with ``BEGIN IMMEDIATE`` (the
  database's write lock, waited for up to :data:`SQLITE_BUSY_TIMEOUT_MS`), so concurrent tasks
  take turns instead of failing.

No Airflow imports.
"""

from __future__ import annotations

import logging
import random
import struct
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, Any

import msgspec

from airflow_provider_engagelab.core import encoding
from airflow_provider_engagelab.core.contract import COLUMNS, STR
from airflow_provider_engagelab.core.disk import disk_error
from airflow_provider_engagelab.core.parsing import ParsedResponse
from airflow_provider_engagelab.core.query import TimeUnit
from airflow_provider_engagelab.core.sql_table import BUCKET_COLUMN, ReplaceRange, bucket_start_text
from airflow_provider_engagelab.sinks.sql_schema import SQLITE, TableSql

_log = logging.getLogger(__name__)

#: Rows encoded per piece of a ``COPY`` stream, per spooled frame and per ``executemany``.
CHUNK_ROWS = 10_000

#: Attempts of the replace step when concurrent tasks conflict on the same keys.
REPLACE_ATTEMPTS = 5

#: How long a SQLite task waits for another task's write transaction, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 300_000

#: SQLSTATEs of a conflict with a concurrent transaction: unique violation, serialization
#: failure, deadlock.
RETRYABLE_SQLSTATES = frozenset({"23505", "40001", "40P01"})

_FRAME = struct.Struct("<I")


def _chunks(seq: Sequence[Any], size: int = CHUNK_ROWS) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _values(parsed: ParsedResponse, sql: TableSql) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of an answer as tuples in ``COLUMNS`` order, a chunk at a time."""
    if parsed.records is not None:
        columns = encoding.COLUMN_TUPLE[sql.stats_type]  # fields the contract does not name left out
        for chunk in _chunks(parsed.records):
            yield list(map(columns, chunk))
    else:
        for chunk in _chunks(parsed.rows):
            yield encoding.row_values(sql.stats_type, chunk)


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))


class _Loader:
    """What the SQL sink needs of a loader (see the module)."""

    method = ""

    def __init__(self, conn: Any, sql: TableSql, time_unit: TimeUnit, placeholder: str) -> None:
        self.conn = conn
        self.sql = sql
        self.unit = time_unit
        self.p = placeholder
        self.attempts = 0

    def begin(self) -> None:
        """Get ready to stage rows."""

    def stage(self, parsed: ParsedResponse) -> int:
        """Stage the rows of one answer; return how many."""
        raise NotImplementedError

    def replace(self, ranges: Sequence[ReplaceRange]) -> tuple[int, int]:
        """Delete the rows of ``ranges``, insert the staged rows, commit; (deleted, inserted)."""
        raise NotImplementedError

    def close(self) -> None:
        """Drop what is staged (rolled back if not committed)."""

    def _delete(self, cursor: Any, ranges: Sequence[ReplaceRange]) -> int:
        q, p = self.sql.quote, self.p
        deleted = 0
        for r in ranges:
            marks = ", ".join([p] * len(r.journey_ids))
            cursor.execute(
                f"DELETE FROM {self.sql.qualified} WHERE {q('time_unit')} = {p} AND {q('time')} >= {p} "
                f"AND {q('time')} < {p} AND {q('journey_id')} IN ({marks})",
                (self.unit.value, r.lower, r.upper, *r.journey_ids),
            )
            deleted += max(cursor.rowcount, 0)
        return deleted


# ---------------------------------------------------------------------------- PostgreSQL


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return str(code) if code else None


def plain_cursor(conn: Any) -> Any:
    """A cursor returning tuples, whatever cursor factory the hook's connection was given."""
    module = type(conn).__module__.split(".")[0]
    if module == "psycopg":
        from psycopg.rows import tuple_row

        return conn.cursor(row_factory=tuple_row)
    if module == "psycopg2":
        import psycopg2.extensions

        return conn.cursor(cursor_factory=psycopg2.extensions.cursor)
    return conn.cursor()


def has_copy(conn: Any) -> bool:
    """Whether the connection is psycopg 2 or 3 (both stream ``COPY ... FROM STDIN``)."""
    return type(conn).__module__.split(".")[0] in ("psycopg", "psycopg2")


class _ChunkReader:
    """A file-like ``read(n)`` over byte chunks (psycopg2's ``copy_expert`` reads one)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._chunks))
            except StopIteration:
                return b""
        n = len(self._buf) if size is None or size < 0 else size
        out, self._buf = self._buf[:n], self._buf[n:]
        return out.tobytes()

    readline = read


class CopyLoader(_Loader):
    """PostgreSQL: ``COPY`` into a temporary table, then ``DELETE`` + ``INSERT ... SELECT``."""

    method = "copy"

    def begin(self) -> None:
        self.conn.autocommit = False
        self.cursor = plain_cursor(self.conn)
        self.stage_name = f"engagelab_stage_{uuid.uuid4().hex[:12]}"
        from sqlalchemy.schema import CreateTable

        table = self.sql.sa_table(self.stage_name, staging=True, prefixes=["TEMPORARY"],
                                  postgresql_on_commit="DROP")
        self.cursor.execute(str(CreateTable(table).compile(dialect=self.sql.dialect)).strip())
        self.stage_ref = f"pg_temp.{self.stage_name}"
        self._columns = COLUMNS[self.sql.stats_type]
        names = ", ".join(self._quote(c) for c in self._columns)
        text = [self._quote(c.name) for c in self.sql.columns if c.kind == STR]
        self.copy_sql = (f"COPY {self.stage_ref} ({names}) FROM STDIN WITH (FORMAT csv, "
                         f"FORCE_NOT_NULL ({', '.join(text)}))")

    def _quote(self, name: str) -> str:
        # Always quoted: "time" is a keyword in expressions; lowercase names mean the same quoted.
        return str(self.sql.dialect.identifier_preparer.quote_identifier(name))

    def _csv(self, parsed: ParsedResponse) -> Iterator[bytes]:
        stype = self.sql.stats_type
        if parsed.records is not None:
            for chunk in _chunks(parsed.records):
                yield encoding.csv_records(stype, chunk)
        else:
            for chunk in _chunks(parsed.rows):
                yield encoding.csv_rows(stype, chunk)

    def stage(self, parsed: ParsedResponse) -> int:
        if not parsed.row_count:
            return 0
        chunks = self._csv(parsed)
        if hasattr(self.cursor, "copy"):  # psycopg 3
            with self.cursor.copy(self.copy_sql) as copy:
                for chunk in chunks:
                    copy.write(chunk)
        else:  # psycopg2
            self.cursor.copy_expert(self.copy_sql, _ChunkReader(chunks), size=1 << 20)
        return parsed.row_count

    def replace(self, ranges: Sequence[ReplaceRange]) -> tuple[int, int]:
        names = ", ".join(self._quote(c) for c in self._columns)
        time_col = self._quote("time")
        bucket = (f"CAST({time_col} || ':00' AS TIMESTAMP)" if self.unit is TimeUnit.HOUR
                  else f"CAST({time_col} AS TIMESTAMP)")
        insert = (f"INSERT INTO {self.sql.qualified} ({names}, {self._quote(BUCKET_COLUMN)}) "
                  f"SELECT {names}, {bucket} FROM {self.stage_ref}")
        cur = self.cursor
        for attempt in range(REPLACE_ATTEMPTS):
            self.attempts = attempt + 1
            cur.execute("SAVEPOINT engagelab_replace")
            try:
                deleted = self._delete(cur, ranges)
                cur.execute(insert)
                inserted = max(cur.rowcount, 0)
                cur.execute("RELEASE SAVEPOINT engagelab_replace")
            except Exception as exc:
                if _sqlstate(exc) not in RETRYABLE_SQLSTATES or attempt == REPLACE_ATTEMPTS - 1:
                    raise
                _log.warning("A concurrent task wrote some of the same rows of %s (SQLSTATE %s); "
                             "replacing them again (attempt %d of %d)", self.sql.qualified,
                             _sqlstate(exc), attempt + 2, REPLACE_ATTEMPTS)
                cur.execute("ROLLBACK TO SAVEPOINT engagelab_replace")
                _backoff(attempt)
                continue
            self.conn.commit()
            return deleted, inserted
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.rollback()


# ---------------------------------------------------------------------------- executemany


def _is_integrity_error(conn: Any, exc: BaseException) -> bool:
    cls = getattr(conn, "IntegrityError", None)
    if isinstance(cls, type) and isinstance(exc, cls):
        return True
    return any(c.__name__ == "IntegrityError" for c in type(exc).__mro__)


class ExecutemanyLoader(_Loader):
    """Any DB-API database: rows spooled locally, then ``executemany`` in one transaction."""

    method = "executemany"

    def begin(self) -> None:
        try:
            self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="engagelab-sql-")
        except OSError as exc:
            raise disk_error(exc, tempfile.gettempdir(), "spooling rows for the SQL table") from None
        self.sqlite = self.sql.family == SQLITE
        if self.sqlite:
            self.conn.isolation_level = None  # explicit BEGIN IMMEDIATE ... COMMIT below
        elif hasattr(self.conn, "autocommit") and not callable(self.conn.autocommit):
            self.conn.autocommit = False

    def stage(self, parsed: ParsedResponse) -> int:
        encode = msgspec.msgpack.encode
        try:
            for values in _values(parsed, self.sql):
                data = encode(values)
                self._spool.write(_FRAME.pack(len(data)))
                self._spool.write(data)
        except OSError as exc:  # a full disk: nothing reached the table (one transaction)
            raise disk_error(exc, tempfile.gettempdir(), "spooling rows for the SQL table") from None
        return parsed.row_count

    def _frames(self) -> Iterator[list[list[Any]]]:
        self._spool.flush()
        self._spool.seek(0)
        decode = msgspec.msgpack.decode
        while header := self._spool.read(_FRAME.size):
            (size,) = _FRAME.unpack(header)
            yield decode(self._spool.read(size))

    def _bucket(self, time_text: str) -> Any:
        text = bucket_start_text(time_text, self.unit)
        return text if self.sqlite else datetime.fromisoformat(text)

    def replace(self, ranges: Sequence[ReplaceRange]) -> tuple[int, int]:
        names = [*COLUMNS[self.sql.stats_type], BUCKET_COLUMN]
        insert = (f"INSERT INTO {self.sql.qualified} ({self.sql.column_list(names)}) "
                  f"VALUES ({', '.join([self.p] * len(names))})")
        time_at = names.index("time")
        for attempt in range(REPLACE_ATTEMPTS):
            self.attempts = attempt + 1
            cur = self.conn.cursor()
            try:
                if self.sqlite:
                    cur.execute("BEGIN IMMEDIATE")
                deleted = self._delete(cur, ranges)
                inserted = 0
                for frame in self._frames():
                    for row in frame:
                        row.append(self._bucket(row[time_at]))
                    cur.executemany(insert, frame)
                    inserted += len(frame)
                if self.sqlite:
                    cur.execute("COMMIT")
                else:
                    self.conn.commit()
                return deleted, inserted
            except Exception as exc:
                self._rollback()
                if not _is_integrity_error(self.conn, exc) or attempt == REPLACE_ATTEMPTS - 1:
                    raise
                _log.warning("A concurrent task wrote some of the same rows of %s (%s); replacing "
                             "them again (attempt %d of %d)", self.sql.qualified, type(exc).__name__,
                             attempt + 2, REPLACE_ATTEMPTS)
                _backoff(attempt)
            finally:
                cur.close()
        raise AssertionError("unreachable")

    def _rollback(self) -> None:
        if self.sqlite:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        else:
            self.conn.rollback()

    def close(self) -> None:
        try:
            self._rollback()
        finally:
            self._spool.close()
