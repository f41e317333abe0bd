"""``on_schema_change='keep'`` for CSV and Parquet: the new fields as extra columns.

Which fields an answer adds is known only as the answers arrive, and a CSV header or a Parquet
schema is written first; so under ``keep`` a date's rows are staged as JSON lines and turned
into the output format at the end, with the contract's columns followed by every new field in
the order the task met them. A row without a field has it empty (CSV) or null (Parquet).

* CSV: strings as they are, other values as JSON text (``1``, ``0.25``, ``true``, ``{...}``);
* Parquet: a field's type is int64 when every value is an integer, float64 when every value is
  a number, bool or string when every value is one; anything else (mixed or nested) is stored
  as JSON text in a string column.

Files written before a field appeared lack its column: read a root of such files by name
(DuckDB ``read_parquet(..., union_by_name=true)``, a pyarrow dataset with the unified schema).
No Airflow imports.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from airflow_provider_engagelab.core import encoding
from airflow_provider_engagelab.core.contract import COLUMNS
from airflow_provider_engagelab.core.query import StatsType

_BATCH = 8192
_DICTS = msgspec.json.Decoder(dict[str, Any])
_JSON = msgspec.json.Encoder()


def _batches(path: str) -> Iterator[list[dict[str, Any]]]:
    with open(path, "rb") as handle:
        while True:
            lines = list(itertools.islice(handle, _BATCH))
            if not lines:
                return
            yield [_DICTS.decode(line) for line in lines if line.strip()]


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return _JSON.encode(value).decode()


def to_csv(source: str, target: str, stats_type: StatsType, extras: Sequence[str]) -> None:
    """Write the staged JSON lines ``source`` as CSV with ``extras`` after the columns."""
    columns = list(COLUMNS[stats_type])
    with open(target, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*columns, *extras])
        for rows in _batches(source):
            writer.writerows(
                [*(row.get(c) for c in columns), *(_text(row.get(x)) for x in extras)] for row in rows
            )
    os.remove(source)


def _arrow_type(pa: Any, kinds: set[type]) -> tuple[Any, bool]:
    """The Arrow type of a new field from the Python types of its values; ``True`` = JSON text."""
    if kinds == {int}:
        return pa.int64(), False
    if kinds and kinds <= {int, float}:
        return pa.float64(), False
    if kinds == {bool}:
        return pa.bool_(), False
    if kinds <= {str}:
        return pa.string(), False
    return pa.string(), True


def to_parquet(
    source: str, target: str, stats_type: StatsType, extras: Sequence[str], row_group: int
) -> None:
    """Write the staged JSON lines ``source`` as Parquet with ``extras`` after the columns."""
    pa = encoding.require_parquet()
    import pyarrow.parquet as pq

    kinds: dict[str, set[type]] = {x: set() for x in extras}
    for rows in _batches(source):
        for row in rows:
            for name in extras:
                value = row.get(name)
                if value is not None:
                    kinds[name].add(type(value))
    base = encoding.parquet_schema(stats_type)
    types = {name: _arrow_type(pa, kinds[name]) for name in extras}
    schema = pa.schema([*base, *(pa.field(name, types[name][0]) for name in extras)])
    columns = list(COLUMNS[stats_type])
    with pq.ParquetWriter(target, schema) as writer:
        pending: list[Any] = []
        count = 0
        for rows in _batches(source):
            arrays = [pa.array([row.get(c) for row in rows], type=f.type)
                      for c, f in zip(columns, base, strict=True)]
            for name in extras:
                kind, as_json = types[name]
                values = [row.get(name) for row in rows]
                arrays.append(pa.array([_text(v) for v in values] if as_json else values, type=kind))
            pending.append(pa.record_batch(arrays, schema=schema))
            count += len(rows)
            if count >= row_group:
                table = pa.Table.from_batches(pending, schema)
                whole = count - count % row_group
                writer.write_table(table.slice(0, whole), row_group_size=row_group)
                pending, count = table.slice(whole).to_batches(), count - whole
        if count:
            writer.write_table(pa.Table.from_batches(pending, schema))
    os.remove(source)


def extra_keys(rows: Sequence[Mapping[str, Any]], stats_type: StatsType) -> list[str]:
    """The keys of flat dict rows that are not ``COLUMNS``, in the order met."""
    known = set(COLUMNS[stats_type])
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in known:
                seen.setdefault(key)
    return list(seen)

