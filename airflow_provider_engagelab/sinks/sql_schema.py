"""The SQL table on a real database: names quoted by the dialect, DDL, introspection, checks.

DDL is compiled by SQLAlchemy for the connection's dialect from the column list of
:mod:`..core.sql_table` (no SQL text is assembled from user input: the only user input, the
table name, is a validated identifier quoted by the dialect's own preparer). Existing tables
are read back from the catalog, on the task's own DB-API connection for PostgreSQL and SQLite,
through a SQLAlchemy inspector for other databases, and compared with what would be written.
No Airflow imports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_engagelab.core.contract import INT, NUMBER, PRIMARY_KEYS, STR
from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.core.sql_table import (
    KEY_TEXT_LENGTH,
    TIMESTAMP,
    SqlColumn,
    TableName,
    table_columns,
)
from airflow_provider_engagelab.exceptions import EngageLabValidationError

#: The dialect families with their own catalog queries (others use a SQLAlchemy inspector).
POSTGRES = "postgresql"
SQLITE = "sqlite"

#: How each kind is declared (SQL type names of the PostgreSQL DDL, for messages).
KIND_DDL = {INT: "BIGINT", NUMBER: "DOUBLE PRECISION", STR: "TEXT", TIMESTAMP: "TIMESTAMP"}


def sa_dialect(name: str) -> Any:
    """The SQLAlchemy dialect of ``name`` (``postgresql``, ``sqlite``, ``mysql``...), or the
    default ANSI dialect for a name SQLAlchemy does not know."""
    from sqlalchemy.engine import default, make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return make_url(f"{name}://").get_dialect()()
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError):
        return default.DefaultDialect()


@dataclass(frozen=True)
class TableSql:
    """The quoted names of one table for one dialect.

    :param dialect: the SQLAlchemy dialect (its preparer quotes, its compiler writes DDL).
    :param table: the validated table name.
    :param stats_type: what the table holds.
    """

    dialect: Any
    table: TableName
    stats_type: StatsType

    @property
    def family(self) -> str:
        """The dialect's name: ``postgresql``, ``sqlite``, ``mysql``, ..."""
        return str(getattr(self.dialect, "name", "default"))

    @property
    def columns(self) -> tuple[SqlColumn, ...]:
        """Every column, in table order."""
        return table_columns(self.stats_type)

    @property
    def key(self) -> tuple[str, ...]:
        """The primary key columns."""
        return PRIMARY_KEYS[self.stats_type]

    def quote(self, name: str) -> str:
        """An identifier as the dialect writes it (quoted where it needs quotes)."""
        return str(self.dialect.identifier_preparer.quote(name))

    @property
    def qualified(self) -> str:
        """The table's name in SQL: ``schema.table``, each part quoted where needed."""
        name = self.quote(self.table.name)
        return f"{self.quote(self.table.schema)}.{name}" if self.table.schema else name

    def column_list(self, names: Sequence[str]) -> str:
        """``a, b, c`` quoted where needed."""
        return ", ".join(self.quote(n) for n in names)

    def sa_table(self, name: str | None = None, *, staging: bool = False, **kw: Any) -> Any:
        """The table as a SQLAlchemy ``Table`` (a staging table: the API columns, no key)."""
        import sqlalchemy as sa

        kinds: dict[str, Callable[[], Any]] = {
            INT: sa.BigInteger, NUMBER: lambda: sa.Float(precision=53), STR: sa.Text, TIMESTAMP: sa.DateTime,
        }
        cols = [c for c in self.columns if not (staging and c.kind == TIMESTAMP)]
        columns: list[Any] = [
            sa.Column(c.name, sa.String(KEY_TEXT_LENGTH) if c.bounded_text else kinds[c.kind](),
                      nullable=staging)
            for c in cols
        ]
        if not staging:
            columns.append(sa.PrimaryKeyConstraint(*self.key))
        schema = None if staging else self.table.schema
        return sa.Table(name or self.table.name, sa.MetaData(), *columns, schema=schema, **kw)

    def create_sql(self) -> str:
        """``CREATE TABLE`` of the table, compiled for the dialect."""
        from sqlalchemy.schema import CreateTable

        return str(CreateTable(self.sa_table()).compile(dialect=self.dialect)).strip()


# ---------------------------------------------------------------------------- introspection


@dataclass(frozen=True)
class ColumnInfo:
    """One column of an existing table, as its catalog describes it."""

    name: str
    type: str
    nullable: bool
    has_default: bool
    in_key: bool
    sa_type: Any = None


_PG_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.atthasdef,
       COALESCE(a.attnum = ANY(i.indkey), false)
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = to_regclass({p}) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def pg_exists(cursor: Any, sql: TableSql, placeholder: str) -> bool:
    """Whether the table exists (resolved as the statements will resolve it)."""
    cursor.execute(f"SELECT to_regclass({placeholder}) IS NOT NULL", (sql.qualified,))
    return bool(cursor.fetchone()[0])


def pg_schema_of(cursor: Any, sql: TableSql, placeholder: str) -> str | None:
    """The schema the table's name resolves to (``public`` for an unqualified name, usually)."""
    cursor.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.oid = to_regclass({placeholder})",
        (sql.qualified,),
    )
    row = cursor.fetchone()
    return str(row[0]) if row else None


def describe(cursor: Any, sql: TableSql, placeholder: str,
             inspector: Callable[[], Any] | None = None) -> list[ColumnInfo] | None:
    """The existing table's columns, or ``None`` when there is no such table."""
    if sql.family == POSTGRES:
        if not pg_exists(cursor, sql, placeholder):
            return None
        cursor.execute(_PG_COLUMNS.format(p=placeholder), (sql.qualified,))
        return [ColumnInfo(str(n), str(t), bool(nl), bool(d), bool(k))
                for n, t, nl, d, k in cursor.fetchall()]
    if sql.family == SQLITE:
        prefix = f"{sql.quote(sql.table.schema)}." if sql.table.schema else ""
        cursor.execute(f"PRAGMA {prefix}table_info({sql.quote(sql.table.name)})")
        rows = cursor.fetchall()
        if not rows:
            return None
        return [ColumnInfo(str(r[1]), str(r[2] or ""), not r[3], r[4] is not None, bool(r[5])) for r in rows]
    if inspector is None:
        raise EngageLabValidationError(
            f"Invalid table={str(sql.table)!r}: its database ({sql.family}) can only be checked "
            "through a SQLAlchemy inspector, and the connection's hook has none"
        )
    insp = inspector()
    if not insp.has_table(sql.table.name, schema=sql.table.schema):
        return None
    pk = insp.get_pk_constraint(sql.table.name, schema=sql.table.schema)
    key = set(pk.get("constrained_columns") or [])
    return [
        ColumnInfo(str(c["name"]), str(c["type"]), bool(c.get("nullable", True)),
                   c.get("default") is not None or bool(c.get("autoincrement") is True),
                   c["name"] in key, c["type"])
        for c in insp.get_columns(sql.table.name, schema=sql.table.schema)
    ]


def _sqlite_affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (the rules of its documentation, 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not t or "BLOB" in t:
        return "BLOB"
    if any(s in t for s in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


_PG_OK = {
    INT: re.compile(r"bigint|numeric(\(\d+(,0)?\))?\Z"),
    NUMBER: re.compile(r"double precision|numeric(\(\d+(,\d+)?\))?\Z"),
    STR: re.compile(r"text|character varying(\(\d+\))?\Z"),
    TIMESTAMP: re.compile(r"timestamp(\(\d\))? with(out)? time zone\Z"),
}
_SQLITE_OK = {
    INT: {"INTEGER", "NUMERIC"}, NUMBER: {"REAL", "NUMERIC"}, STR: {"TEXT"}, TIMESTAMP: {"NUMERIC", "TEXT"},
}


def type_matches(family: str, kind: str, info: ColumnInfo) -> bool:
    """Whether an existing column can hold the values of ``kind`` without loss."""
    if family == POSTGRES:
        return bool(_PG_OK[kind].match(info.type))
    if family == SQLITE:
        return _sqlite_affinity(info.type) in _SQLITE_OK[kind]
    if info.sa_type is None:
        return True
    import sqlalchemy as sa

    wanted = {INT: (sa.Integer, sa.Numeric), NUMBER: (sa.Float, sa.Numeric),
              STR: (sa.String,), TIMESTAMP: (sa.DateTime, sa.String)}[kind]
    return isinstance(info.sa_type, wanted)


def differences(sql: TableSql, found: list[ColumnInfo]) -> list[str]:
    """What differs between an existing table and what would be written (empty: it matches)."""
    fold = (lambda s: s) if sql.family == POSTGRES else str.casefold
    have = {fold(c.name): c for c in found}
    wanted = {fold(c.name): c for c in sql.columns}
    out = []
    missing = [c for key, c in wanted.items() if key not in have]
    if missing:
        out.append("missing column(s) " + ", ".join(f"{c.name} ({KIND_DDL[c.kind]})" for c in missing))
    extra = [c.name for key, c in have.items() if key not in wanted and not c.nullable and not c.has_default]
    if extra:
        out.append("column(s) this task does not write are NOT NULL without a default: " + ", ".join(extra))
    for key, col in wanted.items():
        info = have.get(key)
        if info is not None and not type_matches(sql.family, col.kind, info):
            out.append(f"column {info.name} is {info.type}, expected {KIND_DDL[col.kind]} "
                       f"(or a type that holds {col.kind} values without loss)")
    found_key = sorted(fold(c.name) for c in found if c.in_key)
    want_key = sorted(fold(n) for n in sql.key)
    if not missing and found_key != want_key:
        shown = ", ".join(c.name for c in found if c.in_key) or "none"
        out.append(f"primary key is ({shown}), expected ({', '.join(sql.key)})")
    return out


def mismatch_error(sql: TableSql, diffs: list[str]) -> EngageLabValidationError:
    """The error for an existing table that does not match (nothing is altered)."""
    return EngageLabValidationError(
        f"Invalid table={str(sql.table)!r}: the existing table does not match the "
        f"{sql.stats_type.value} statistics this task writes: " + "; ".join(diffs) + ". It is left "
        "as it is: use another table, change it to match, or drop it and let create_table=True "
        "create it"
    )
