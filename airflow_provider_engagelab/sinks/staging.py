"""Local staging of a task's rows: one file per calendar day of its window, written as rows come.

Memory stays flat whatever the number of rows: each parsed answer is grouped by date and
appended to the staged files at once (at most :data:`MAX_OPEN_FILES` open). Parquet is staged
as Arrow IPC streams and converted per date by :meth:`PartitionStager.finish` (or kept as
Arrow, for the Delta sink: :func:`read_staged_batches` reads them back). A full disk (or any
failing file operation) is an ``EngageLabOutputError`` naming the staging folder, raised
before anything is published. No Airflow imports.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from operator import attrgetter, itemgetter
from typing import IO, Any

from airflow_provider_engagelab.core import encoding
from airflow_provider_engagelab.core.disk import disk_error
from airflow_provider_engagelab.core.layout import window_dates
from airflow_provider_engagelab.core.options import parse_file_format
from airflow_provider_engagelab.core.query import StatsType, TimeUnit, parse_stats_type, parse_time_unit
from airflow_provider_engagelab.core.records import ParsedResponse
from airflow_provider_engagelab.exceptions import EngageLabResponseError, EngageLabValidationError
from airflow_provider_engagelab.sinks import keep

#: How many staged files a :class:`PartitionStager` keeps open at once.
MAX_OPEN_FILES = 32

#: Rows :meth:`PartitionStager.add_all` groups by date before writing (bounded memory).
STAGE_BATCH_ROWS = 8192

#: Rows per Parquet row group at most.
PARQUET_BATCH_ROWS = 65_536

_RECORD_TIME = attrgetter("time")
_DATE_OF = itemgetter(slice(0, 10))


@dataclass(frozen=True)
class StagedFile:
    """A finished local file of one date, waiting to be committed.

    :param local_path: the staged file on local disk, in the output format.
    :param day: its partition date.
    :param rows: number of data rows in it.
    """

    local_path: str
    day: date
    rows: int


class PartitionStager:
    """Stream rows into one staged local file per date of ``[first, last]``.

    Use as a context manager; the staging directory is removed on exit.

    :param stats_type: ``journey``, ``message`` or ``webhook``.
    :param time_unit: ``DAY`` or ``HOUR``.
    :param first: first date of the window.
    :param last: last date of the window (inclusive).
    :param output_format: ``jsonl``, ``csv`` or ``parquet``.
    :param staging_dir: parent directory of the staging directory (default: the system temp).
    :param keep_extra_fields: write the fields the contract does not name too
        (``on_schema_change='keep'``): CSV and Parquet then stage JSON lines and get the new
        fields as extra columns at :meth:`finish` (see :mod:`.keep`).
    """

    def __init__(
        self,
        stats_type: Any,
        time_unit: Any,
        first: date,
        last: date,
        output_format: str,
        *,
        staging_dir: str | None = None,
        max_open_files: int = MAX_OPEN_FILES,
        keep_extra_fields: bool = False,
    ) -> None:
        if last < first:
            raise EngageLabValidationError(
                f"Invalid window {first.isoformat()}..{last.isoformat()}: last date before first"
            )
        self.stats_type: StatsType = parse_stats_type(stats_type)
        self.time_unit: TimeUnit = parse_time_unit(time_unit)
        self.output_format = parse_file_format(output_format)
        self._schema = encoding.parquet_schema(self.stats_type) if self.output_format == "parquet" else None
        self.dates = window_dates(first, last)
        self._day_keys = {d.isoformat(): d for d in self.dates}
        try:
            self._dir = tempfile.mkdtemp(prefix="engagelab-stage-", dir=staging_dir)
        except OSError as exc:
            folder = staging_dir or tempfile.gettempdir()
            raise disk_error(exc, folder, "creating the staging folder") from None
        self._open: OrderedDict[str, IO[bytes]] = OrderedDict()
        self._max_open = max(1, max_open_files)
        self._rows: dict[str, int] = {}
        self._finished = False
        #: CSV/Parquet under on_schema_change='keep': staged as JSON lines, converted at finish
        self._keep = keep_extra_fields and self.output_format in ("csv", "parquet")
        self._extras: dict[str, None] = {}

    @property
    def directory(self) -> str:
        """The staging directory."""
        return self._dir

    @property
    def total_rows(self) -> int:
        """Rows staged so far."""
        return sum(self._rows.values())

    @property
    def extra_fields(self) -> list[str]:
        """The fields the contract does not name that were staged (under ``keep``), in order met."""
        return list(self._extras)

    def _stage_path(self, key: str) -> str:
        if self._keep:
            ext = "keep.jsonl"
        else:
            ext = "arrows" if self.output_format == "parquet" else self.output_format
        return os.path.join(self._dir, f"{key}.{ext}")

    def _write(self, key: str, data: bytes, rows: int) -> None:
        """Append ``data`` (``rows`` encoded rows) to the staged file of date ``key``."""
        with self._disk(f"staging the rows of {key}"):
            handle = self._open.get(key)
            if handle is None:
                while len(self._open) >= self._max_open:
                    _, oldest = self._open.popitem(last=False)
                    oldest.close()
                new = key not in self._rows
                handle = self._open[key] = open(self._stage_path(key), "wb" if new else "ab")
                if new:
                    self._rows[key] = 0
                    if self.output_format == "csv" and not self._keep:
                        handle.write(encoding.csv_header(self.stats_type))
            else:
                self._open.move_to_end(key)
            handle.write(data)
        self._rows[key] += rows

    @contextmanager
    def _disk(self, what: str) -> Iterator[None]:
        """A failing local file operation (a full disk) as an error naming the staging folder."""
        try:
            yield
        except OSError as exc:
            raise disk_error(exc, self._dir, what) from None

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("rows cannot be added after finish()")

    def _encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> bytes:
        if self._keep:
            for name in keep.extra_keys(rows, self.stats_type):
                self._extras.setdefault(name)
        if self.output_format == "jsonl" or self._keep:
            return encoding.jsonl_rows(rows)
        if self.output_format == "csv":
            return encoding.csv_rows(self.stats_type, rows)
        return encoding.arrow_rows(self._schema, self.stats_type, rows)

    def _encode_records(self, records: Sequence[Any]) -> bytes:
        if self.output_format == "jsonl" or self._keep:
            return encoding.jsonl_records(records)
        if self.output_format == "csv":
            return encoding.csv_records(self.stats_type, records)
        return encoding.arrow_records(self._schema, self.stats_type, records)

    def _out_of_window(self, row: Mapping[str, Any]) -> EngageLabResponseError:
        return EngageLabResponseError(
            f"row of journey {row.get('journey_id')!r} has time {row.get('time')!r}, outside the "
            f"requested window {self.dates[0].isoformat()}..{self.dates[-1].isoformat()}"
        )

    def add_all(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Stage flat dict rows, each in the file of its date; returns how many.

        Written in batches of at most :data:`STAGE_BATCH_ROWS` rows, one write per date of a
        batch; a row outside the window fails after the rows before it were staged.
        """
        self._check_open()
        count = 0
        source = iter(rows)
        while True:
            batch = list(itertools.islice(source, STAGE_BATCH_ROWS))
            if not batch:
                return count
            groups: dict[str, list[Mapping[str, Any]]] = {}
            for row in batch:
                when = row.get("time")
                key = when[:10] if isinstance(when, str) else None
                if key not in self._day_keys:
                    self._write_groups(groups)
                    raise self._out_of_window(row)
                groups.setdefault(key, []).append(row)  # type: ignore[arg-type]
            self._write_groups(groups)
            count += len(batch)

    def _write_groups(self, groups: Mapping[str, list[Mapping[str, Any]]]) -> None:
        for key, group in groups.items():
            self._write(key, self._encode_rows(group), len(group))

    def add_response(self, parsed: ParsedResponse) -> int:
        """Stage every row of one parsed answer; returns how many.

        Typed records (the parser's fast path) are grouped by date and encoded without
        building a dict per row, one write per date.
        """
        records = parsed.records
        kind = getattr(type(records[0]), "record_kind", None) if records else None
        if records is None or kind != (self.stats_type, self.time_unit):
            return self.add_all(parsed.rows)
        self._check_open()
        if self._keep:
            for name in parsed.extra_fields:
                self._extras.setdefault(name)
        times = map(_RECORD_TIME, records)
        keys = list(times if self.time_unit is TimeUnit.DAY else map(_DATE_OF, times))
        distinct = set(keys)
        if not distinct <= self._day_keys.keys():
            return self.add_all(parsed.rows)  # raises the out-of-window error at its row
        groups: dict[str, list[Any]]
        if len(distinct) == 1:
            groups = {keys[0]: records}
        else:
            groups = {key: [] for key in keys}
            for key, record in zip(keys, records, strict=True):
                groups[key].append(record)
        for key, group in groups.items():
            self._write(key, self._encode_records(group), len(group))
        return len(records)

    def _close_all(self, quiet: bool = False) -> None:
        while self._open:
            _, handle = self._open.popitem(last=False)
            try:
                handle.close()
            except OSError:  # a full disk refusing the last buffered bytes
                if not quiet:
                    raise

    def finish(self, *, convert: bool = True) -> dict[date, StagedFile]:
        """Close the staged files and convert Parquet; the files of the dates that have rows.

        :param convert: with ``output_format="parquet"``, ``False`` keeps the staged Arrow IPC
            stream files (``.arrows``) instead of converting them (the Delta sink reads them
            with :func:`read_staged_batches`).
        """
        if self._finished:
            raise RuntimeError("finish() was already called")
        with self._disk("closing the staged files"):
            self._close_all()
        self._finished = True
        staged: dict[date, StagedFile] = {}
        for day in self.dates:
            key = day.isoformat()
            if not self._rows.get(key):
                continue
            path = self._stage_path(key)
            with self._disk(f"converting the staged rows of {key} to {self.output_format}"):
                if self._keep:
                    target = path[: -len(".keep.jsonl")] + f".{self.output_format}"
                    if self.output_format == "csv":
                        keep.to_csv(path, target, self.stats_type, self.extra_fields)
                    else:
                        keep.to_parquet(path, target, self.stats_type, self.extra_fields, PARQUET_BATCH_ROWS)
                    path = target
                elif self.output_format == "parquet" and convert:
                    path = self._to_parquet(path)
            staged[day] = StagedFile(local_path=path, day=day, rows=self._rows[key])
        return staged

    def _to_parquet(self, staged_path: str) -> str:
        """Convert one staged file of Arrow IPC streams to Parquet (bounded memory).

        Row groups hold :data:`PARQUET_BATCH_ROWS` rows (the last one fewer), whatever the
        size of the staged batches: the same rows give the same file.
        """
        pa = encoding.require_parquet()
        import pyarrow.parquet as pq

        target = staged_path[: -len(".arrows")] + ".parquet"
        size = os.path.getsize(staged_path)
        pending: list[Any] = []
        count = 0
        with pa.OSFile(staged_path) as source, pq.ParquetWriter(target, self._schema) as writer:
            while source.tell() < size:
                for batch in pa.ipc.open_stream(source):
                    pending.append(batch)
                    count += batch.num_rows
                    if count >= PARQUET_BATCH_ROWS:
                        table = pa.Table.from_batches(pending, self._schema)
                        whole = count - count % PARQUET_BATCH_ROWS
                        writer.write_table(table.slice(0, whole), row_group_size=PARQUET_BATCH_ROWS)
                        pending, count = table.slice(whole).to_batches(), count - whole
            if count:
                writer.write_table(pa.Table.from_batches(pending, self._schema))
        os.remove(staged_path)
        return target

    def cleanup(self) -> None:
        """Close and remove every staged file."""
        self._close_all(quiet=True)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PartitionStager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def read_staged_batches(path: str) -> Iterator[Any]:
    """The record batches of a staged ``.arrows`` file (concatenated Arrow IPC streams), lazily.

    Memory holds one staged batch (one call's rows of one date) at a time.
    """
    pa = encoding.require_parquet()
    size = os.path.getsize(path)
    with pa.OSFile(path) as source:
        while source.tell() < size:
            yield from pa.ipc.open_stream(source)
