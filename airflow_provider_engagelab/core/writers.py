"""Output writers: partition layout, file names, serialisation, staging and commit order.

Pure (no Airflow imports). The operators stream rows into a :class:`PartitionStager`, which
keeps one staged local file per calendar day of the requested window (never all rows in
memory); after every API call succeeded and the journey-error policy passed, :func:`commit`
publishes the staged files one by one, in date order, each one atomically:

* local file systems: :func:`publish_local` copies next to the target under a hidden temporary
  name, then renames it into place (``os.replace``);
* object stores: the caller puts the finished file under its final key in one request (an
  object becomes visible only when its upload completes).

Layout under the output root::

    <root>/<stats_type>/time_unit=<DAY|HOUR>/date=<yyyy-MM-dd>/part-<journey-set hash>.<ext>

The partition date is the first 10 characters of a row's ``time``. The file name depends only
on the *set* of requested journey IDs, so reruns, retries, lookbacks and overlapping backfills
replace the same files, and mapped tasks over different journey batches never collide. Every
date of the window gets a file (empty, or a header-only CSV, when it has no rows), so a rerun
always replaces stale content. Files hold no timestamps: the same rows give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from operator import attrgetter, itemgetter
from typing import IO, Any, TypeVar

import msgspec

from airflow_provider_engagelab.core.parsing import (
    COLUMNS,
    DETAIL_FIELDS,
    RECORD_TYPES,
    JourneyError,
    ParsedResponse,
)
from airflow_provider_engagelab.core.query import (
    StatsType,
    TimeUnit,
    parse_journey_ids,
    parse_stats_type,
    parse_time_unit,
)
from airflow_provider_engagelab.exceptions import (
    EngageLabJourneyErrors,
    EngageLabResponseError,
    EngageLabValidationError,
    EngageLabXComTooLargeError,
)

#: Output formats and their file extensions.
OUTPUT_FORMATS: dict[str, str] = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}

#: What a per-journey ``error_code`` does: fail the task, warn and go on, or go on quietly.
ERROR_POLICIES: tuple[str, ...] = ("fail", "warn", "skip")

#: Default cap of rows returned through XCom (the metadata database stores them).
DEFAULT_MAX_XCOM_ROWS = 10_000

#: How many staged files a :class:`PartitionStager` keeps open at once.
MAX_OPEN_FILES = 32

#: Rows :meth:`PartitionStager.add_all` groups by date before writing (bounded memory).
STAGE_BATCH_ROWS = 8192

#: Rows per Parquet row group at most.
PARQUET_BATCH_ROWS = 65_536


PARQUET_INSTALL_HINT = "pip install 'airflow-provider-engagelab[parquet]'"

_HASH_CHARS = 16

# ---------------------------------------------------------------------------- parameters


def parse_output_format(value: Any, param: str = "output_format") -> str:
    """Accept ``jsonl``, ``csv`` or ``parquet`` (any case)."""
    if isinstance(value, str) and value.strip().lower() in OUTPUT_FORMATS:
        return value.strip().lower()
    raise EngageLabValidationError(
        f"Invalid {param}={value!r}: must be one of {', '.join(repr(f) for f in OUTPUT_FORMATS)}"
    )


def parse_error_policy(value: Any, param: str = "on_journey_error") -> str:
    """Accept ``fail``, ``warn`` or ``skip`` (any case)."""
    if isinstance(value, str) and value.strip().lower() in ERROR_POLICIES:
        return value.strip().lower()
    raise EngageLabValidationError(
        f"Invalid {param}={value!r}: must be one of {', '.join(repr(p) for p in ERROR_POLICIES)}"
    )


def parse_max_xcom_rows(value: Any, param: str = "max_xcom_rows") -> int:
    """A positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EngageLabValidationError(f"Invalid {param}={value!r}: must be an integer >= 1")
    return value


def require_parquet() -> Any:
    """Import pyarrow (the ``[parquet]`` extra) or fail naming the install command."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise EngageLabValidationError(
            "Invalid output_format='parquet': it needs pyarrow, which is not installed; "
            f"install the extra: {PARQUET_INSTALL_HINT}"
        ) from None
    return pyarrow


# ---------------------------------------------------------------------------- layout


def journey_set_hash(journey_ids: Any) -> str:
    """A short stable hash of the *set* of journey IDs (order and duplicates do not matter)."""
    ids = sorted(set(parse_journey_ids(journey_ids)))
    digest = hashlib.sha256(",".join(str(j) for j in ids).encode("ascii")).hexdigest()
    return digest[:_HASH_CHARS]


def file_name(journey_ids: Any, output_format: str) -> str:
    """``part-<hash of the journey set>.<ext>``."""
    return f"part-{journey_set_hash(journey_ids)}.{OUTPUT_FORMATS[parse_output_format(output_format)]}"


def partition_path(stats_type: Any, time_unit: Any, day: date) -> str:
    """``<stats_type>/time_unit=<UNIT>/date=<yyyy-MM-dd>`` (relative, ``/``-separated)."""
    stype = parse_stats_type(stats_type).value
    unit = parse_time_unit(time_unit).value
    return f"{stype}/time_unit={unit}/date={day.isoformat()}"


def relative_path(stats_type: Any, time_unit: Any, day: date, journey_ids: Any, output_format: str) -> str:
    """Path of one output file relative to the output root."""
    return f"{partition_path(stats_type, time_unit, day)}/{file_name(journey_ids, output_format)}"


def window_dates(first: date, last: date) -> list[date]:
    """Every calendar day of ``[first, last]``."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def join_uri(root: str, relative: str) -> str:
    """``root`` + ``/`` + ``relative`` with exactly one slash between them."""
    return f"{root.rstrip('/')}/{relative.lstrip('/')}"


# ---------------------------------------------------------------------------- serialisation


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_MSGSPEC_JSON = msgspec.json.Encoder()
_STR_KEYS = frozenset({str})
#: Value types msgspec writes exactly like the stdlib encoder above.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
_PLAIN_OR_FLOAT = _PLAIN_TYPES | {float}
_is_float = float.__instancecheck__
_DICT_ONLY = frozenset({dict})
_chain = itertools.chain.from_iterable


def _msgspec_exact(rows: Sequence[Any]) -> bool:
    """Whether msgspec encodes each of ``rows`` to the very bytes of the stdlib encoder.

    True for plain dicts with string keys whose values are strings, ints, booleans, None or
    floats that ``repr`` writes without an exponent (0, or 1e-4 <= abs < 1e16; msgspec writes
    ``1e16`` and ``0.00001`` where Python writes ``1e+16`` and ``1e-05``, and NaN or Infinity
    as ``null`` where the stdlib refuses them). Anything else takes the stdlib encoder. The
    checks run at C level over all rows at once.
    """
    if set(map(type, rows)) != _DICT_ONLY or set(map(type, _chain(rows))) != _STR_KEYS:
        return False
    kinds = set(map(type, _chain(map(dict.values, rows))))
    if kinds <= _PLAIN_TYPES:
        return True
    if not kinds <= _PLAIN_OR_FLOAT:
        return False
    return _floats_exact(list(filter(_is_float, _chain(map(dict.values, rows)))))


def _msgspec_exact_row(row: Any) -> bool:
    """:func:`_msgspec_exact` for one row, with less set-up."""
    if type(row) is not dict or set(map(type, row)) != _STR_KEYS:
        return False
    kinds = set(map(type, row.values()))
    if kinds <= _PLAIN_TYPES:
        return True
    if not kinds <= _PLAIN_OR_FLOAT:
        return False
    return all(f == 0 or 1e-4 <= abs(f) < 1e16 for f in filter(_is_float, row.values()))


def jsonl_line(row: Mapping[str, Any]) -> str:
    """One compact JSON object, keys in row order, ``\\n``-terminated."""
    if _msgspec_exact_row(row):
        try:
            return _MSGSPEC_JSON.encode(row).decode() + "\n"
        except (TypeError, ValueError):  # e.g. a lone surrogate: the stdlib path decides
            pass
    return _JSON.encode(row) + "\n"


def _msgspec_lines(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    """The JSON lines of ``rows`` by msgspec when they are the stdlib's bytes, else ``None``."""
    if _msgspec_exact(rows):
        try:
            return _MSGSPEC_JSON.encode_lines(rows)
        except (TypeError, ValueError):  # e.g. a lone surrogate: the stdlib path decides
            pass
    return None


def jsonl_lines(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`jsonl_line` of every row, joined."""
    data = _msgspec_lines(rows)
    return data.decode() if data is not None else "".join(map(jsonl_line, rows))


def _floats_exact(floats: list[float]) -> bool:
    """Whether ``repr`` writes every one of ``floats`` without an exponent (as msgspec does):
    0, or 1e-4 <= abs < 1e16. Checked at C level; NaN and infinities fail."""
    if not floats:
        return True
    if not math.isfinite(sum(floats)):  # min() and max() could step over a NaN
        return False
    nonzero = list(map(abs, filter(None, floats)))
    return not nonzero or (min(nonzero) >= 1e-4 and max(nonzero) < 1e16)


def _jsonl_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """:func:`jsonl_lines` as UTF-8, what a staged file holds (a lone surrogate fails, as it
    does when the text is written to a UTF-8 file)."""
    data = _msgspec_lines(rows)
    return data if data is not None else "".join(map(jsonl_line, rows)).encode("utf-8")


_RECORD_TIME = attrgetter("time")
#: A getter per column (``COLUMNS`` order) of the typed records of each stats type.
_RECORD_GETTERS: dict[StatsType, list[Callable[[Any], Any]]] = {
    stype: [attrgetter(name) for name in columns] for stype, columns in COLUMNS.items()
}
_DATE_OF = itemgetter(slice(0, 10))
_astuple = msgspec.structs.astuple

#: The number field of each stats type, if any (its floats decide who encodes a record).
_NUMBER_FIELD: dict[StatsType, Callable[[Any], Any] | None] = {
    stype: next((attrgetter(name) for name, kind in fields if kind == "number"), None)
    for stype, fields in DETAIL_FIELDS.items()
}


def _records_exact(stats_type: StatsType, records: Sequence[Any]) -> bool:
    """Whether msgspec writes the numbers of ``records`` like ``repr`` (see :func:`_floats_exact`).

    Typed records hold only ints, strings and (in the number field) ints or finite floats.
    """
    number = _NUMBER_FIELD[stats_type]
    return number is None or _floats_exact(list(filter(_is_float, map(number, records))))


def records_jsonl(stats_type: StatsType, records: Sequence[Any]) -> bytes:
    """JSON lines of typed records (``ParsedResponse.records``): the bytes of
    :func:`jsonl_lines` of their flat rows, written by msgspec without building dicts."""
    if _records_exact(stats_type, records):
        return _MSGSPEC_JSON.encode_lines(records)
    return _jsonl_bytes(msgspec.to_builtins(records))


def records_csv(stats_type: StatsType, records: Sequence[Any]) -> bytes:
    """CSV data lines of typed records: the bytes ``csv.writer`` writes for their columns.

    msgspec encodes the records as JSON arrays; when no string needs CSV quoting (no comma,
    and no character JSON escapes: quote, backslash, control characters) and every float is
    written like ``repr``, dropping the brackets and the string quotes gives exactly the CSV
    line. Otherwise ``csv.writer`` writes them.
    """
    if not records:
        return b""
    tuples = list(map(_astuple, records))
    data = _MSGSPEC_JSON.encode_lines(tuples)
    commas = len(records) * (len(COLUMNS[stats_type]) - 1)
    if data.count(b",") == commas and b"\\" not in data and _records_exact(stats_type, records):
        return data[1:-2].replace(b"]\n[", b"\n").replace(b'"', b"") + b"\n"
    return _csv_bytes(tuples)


def _csv_writer(handle: IO[str]) -> Any:
    return csv.writer(handle, lineterminator="\n")


def csv_header(stats_type: Any) -> str:
    """The CSV header line for a stats type (``COLUMNS`` order)."""
    buf = io.StringIO()
    _csv_writer(buf).writerow(COLUMNS[parse_stats_type(stats_type)])
    return buf.getvalue()


def parquet_schema(stats_type: Any) -> Any:
    """The typed Arrow schema of a stats type (needs pyarrow)."""
    pa = require_parquet()
    kinds = {"int": pa.int64(), "number": pa.float64(), "str": pa.string()}
    fields = [pa.field("journey_id", pa.int64(), nullable=False), pa.field("time_unit", pa.string())]
    fields += [pa.field(name, kinds[kind]) for name, kind in DETAIL_FIELDS[parse_stats_type(stats_type)]]
    return pa.schema(fields)


# ---------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class StagedFile:
    """A finished local file waiting to be published.

    :param relative_path: where it goes, relative to the output root.
    :param local_path: the staged file on local disk.
    :param day: its partition date.
    :param rows: number of data rows in it.
    """

    relative_path: str
    local_path: str
    day: date
    rows: int


class PartitionStager:
    """Stream rows into one staged local file per date of ``[first, last]``.

    Rows are written as they come, one write per date of each batch (at most
    :data:`MAX_OPEN_FILES` files open at once), so memory stays flat whatever the number of
    rows. Parquet is staged as Arrow IPC streams, typed columns built straight from the rows,
    and converted per date by :meth:`finish`. Use as a context manager; the staging directory
    is removed on exit.

    :param stats_type: ``journey``, ``message`` or ``webhook``.
    :param time_unit: ``DAY`` or ``HOUR``.
    :param journey_ids: the requested journey IDs (their set names the files).
    :param first: first date of the window.
    :param last: last date of the window (inclusive).
    :param output_format: ``jsonl``, ``csv`` or ``parquet``.
    :param staging_dir: parent directory for the staging directory (default: the system temp).
    """

    def __init__(
        self,
        stats_type: Any,
        time_unit: Any,
        journey_ids: Any,
        first: date,
        last: date,
        output_format: str,
        *,
        staging_dir: str | None = None,
        max_open_files: int = MAX_OPEN_FILES,
    ) -> None:
        if last < first:
            raise EngageLabValidationError(
                f"Invalid window {first.isoformat()}..{last.isoformat()}: last date before first"
            )
        self.stats_type: StatsType = parse_stats_type(stats_type)
        self.time_unit: TimeUnit = parse_time_unit(time_unit)
        self.output_format = parse_output_format(output_format)
        self._schema = parquet_schema(self.stats_type) if self.output_format == "parquet" else None
        self.journey_ids = parse_journey_ids(journey_ids)
        self.dates = window_dates(first, last)
        self._day_keys = {d.isoformat(): d for d in self.dates}
        self._name = file_name(self.journey_ids, self.output_format)
        self._dir = tempfile.mkdtemp(prefix="engagelab-stage-", dir=staging_dir)
        self._open: OrderedDict[str, IO[bytes]] = OrderedDict()
        self._max_open = max(1, max_open_files)
        self._rows: dict[str, int] = {}
        self._finished = False

    # -- writing ---------------------------------------------------------------------------
    @property
    def directory(self) -> str:
        """The staging directory."""
        return self._dir

    @property
    def total_rows(self) -> int:
        """Rows staged so far."""
        return sum(self._rows.values())

    def _stage_path(self, key: str) -> str:
        ext = _STAGED_EXTENSIONS.get(self.output_format, self.output_format)
        return os.path.join(self._dir, f"{key}.{ext}")

    def _write(self, key: str, data: bytes, rows: int) -> None:
        """Append ``data`` (``rows`` encoded rows) to the staged file of date ``key``."""
        handle = self._open.get(key)
        if handle is None:
            while len(self._open) >= self._max_open:
                _, oldest = self._open.popitem(last=False)
                oldest.close()
            new = key not in self._rows
            handle = self._open[key] = open(self._stage_path(key), "wb" if new else "ab")
            if new:
                self._rows[key] = 0
                if self.output_format == "csv":
                    handle.write(csv_header(self.stats_type).encode("utf-8"))
        else:
            self._open.move_to_end(key)
        handle.write(data)
        self._rows[key] += rows

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("rows cannot be added after finish()")

    def _encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> bytes:
        """The staged bytes of flat rows (a missing column is written empty / null)."""
        if self.output_format == "jsonl":
            return _jsonl_bytes(rows)
        columns = COLUMNS[self.stats_type]
        try:
            values = list(map(itemgetter(*columns), rows))
        except (KeyError, TypeError):
            values = [tuple(row.get(col) for col in columns) for row in rows]
        if self.output_format == "csv":
            return _csv_bytes(values)
        return _arrow_stream(self._schema, list(zip(*values, strict=True)))

    def _encode_records(self, records: Sequence[Any]) -> bytes:
        """The staged bytes of typed records (``ParsedResponse.records``)."""
        if self.output_format == "jsonl":
            return records_jsonl(self.stats_type, records)
        if self.output_format == "csv":
            return records_csv(self.stats_type, records)
        getters = _RECORD_GETTERS[self.stats_type]
        return _arrow_stream(self._schema, [list(map(get, records)) for get in getters])

    def add(self, row: Mapping[str, Any]) -> None:
        """Stage one row in the file of its date (the first 10 characters of ``time``)."""
        self._check_open()
        when = row.get("time")
        key = when[:10] if isinstance(when, str) else None
        if key not in self._day_keys:
            raise EngageLabResponseError(
                f"row of journey {row.get('journey_id')!r} has time {when!r}, outside the "
                f"requested window {self.dates[0].isoformat()}..{self.dates[-1].isoformat()}"
            )
        self._write(key, self._encode_rows([row]), 1)

    def add_all(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Stage every row of an iterable; returns how many.

        The same bytes as :meth:`add` row by row, written in batches of at most
        :data:`STAGE_BATCH_ROWS` rows: one write per date of a batch.
        """
        self._check_open()
        count = 0
        source = iter(rows)
        day_keys = self._day_keys
        while True:
            batch = list(itertools.islice(source, STAGE_BATCH_ROWS))
            if not batch:
                return count
            groups: dict[str, list[Mapping[str, Any]]] = {}
            for row in batch:
                when = row.get("time")
                key = when[:10] if isinstance(when, str) else None
                group = groups.get(key)  # type: ignore[arg-type]
                if group is None:
                    if key not in day_keys:
                        self._write_groups(groups)  # the rows before it, as add() would have
                        self.add(row)  # raises the out-of-window error
                    group = groups[key] = []  # type: ignore[index]
                group.append(row)
            self._write_groups(groups)
            count += len(batch)

    def _write_groups(self, groups: Mapping[str, list[Mapping[str, Any]]]) -> None:
        for key, group in groups.items():
            self._write(key, self._encode_rows(group), len(group))

    def add_response(self, parsed: ParsedResponse) -> int:
        """Stage every row of one parsed answer; returns how many.

        The same files as :meth:`add_all` of ``parsed.rows``. Typed records (the parser's fast
        path) are grouped by date and encoded without building a dict per row (msgspec for
        JSON lines and CSV, Arrow columns for Parquet), one write per date.
        """
        records = parsed.records
        if not records or type(records[0]) is not RECORD_TYPES[self.stats_type, self.time_unit]:
            return self.add_all(parsed.rows)
        self._check_open()
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

    def _close_all(self) -> None:
        while self._open:
            _, handle = self._open.popitem(last=False)
            handle.close()

    def finish(self) -> list[StagedFile]:
        """Close the staged files, create the empty ones, convert Parquet; in date order."""
        if self._finished:
            raise RuntimeError("finish() was already called")
        self._close_all()
        self._finished = True
        staged = []
        for day in self.dates:
            key = day.isoformat()
            path = self._stage_path(key)
            if key not in self._rows:
                with open(path, "wb") as handle:
                    if self.output_format == "csv":
                        handle.write(csv_header(self.stats_type).encode("utf-8"))
            if self.output_format == "parquet":
                path = self._to_parquet(path)
            staged.append(
                StagedFile(
                    relative_path=f"{partition_path(self.stats_type, self.time_unit, day)}/{self._name}",
                    local_path=path,
                    day=day,
                    rows=self._rows.get(key, 0),
                )
            )
        return staged

    def _to_parquet(self, staged_path: str) -> str:
        """Convert one staged file of Arrow IPC streams to Parquet (bounded memory).

        Row groups hold :data:`PARQUET_BATCH_ROWS` rows (the last one fewer), whatever the
        size of the staged batches: the same rows give the same file.
        """
        pa = require_parquet()
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

    # -- cleanup ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Close and remove every staged file."""
        self._close_all()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PartitionStager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


#: Staged file extension where it differs from the output's (Parquet is staged as Arrow IPC).
_STAGED_EXTENSIONS = {"parquet": "arrows"}


def _csv_bytes(values: Iterable[Sequence[Any]]) -> bytes:
    """CSV lines of row value tuples, as ``csv.writer`` writes them, in UTF-8."""
    buf = io.StringIO()
    _csv_writer(buf).writerows(values)
    return buf.getvalue().encode("utf-8")


def _arrow_stream(schema: Any, columns: Sequence[Sequence[Any]]) -> bytes:
    """One Arrow IPC stream (schema, one record batch, end marker) of typed columns."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    batch = pa.record_batch(
        [pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    data: bytes = sink.getvalue().to_pybytes()
    return data


# ---------------------------------------------------------------------------- commit

_R = TypeVar("_R")


def commit(staged: Sequence[StagedFile], publish: Callable[[StagedFile], _R]) -> list[_R]:
    """Publish staged files one at a time, in the given (date) order.

    Call it only after every API call succeeded and the journey-error policy passed. Each
    ``publish`` must be atomic for its file; if one raises, the files before it stay whole,
    the failing one is not visible, and the rest are not touched.
    """
    return [publish(item) for item in staged]


def hidden_temp_path(target: str) -> str:
    """A unique hidden name next to ``target`` (``.<name>.<random>.tmp``)."""
    head, tail = os.path.split(target)
    return os.path.join(head, f".{tail}.{uuid.uuid4().hex[:12]}.tmp")


#: A temporary file older than this was left by a killed task (a live copy takes seconds).
STALE_TEMP_SECONDS = 3600


def _remove_stale_temps(target: str) -> None:
    """Delete temporaries of ``target`` that a task killed mid-copy (SIGKILL) left behind."""
    head, tail = os.path.split(target)
    prefix = f".{tail}."
    try:
        names = os.listdir(head or ".")
    except OSError:
        return
    cutoff = time.time() - STALE_TEMP_SECONDS
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp"):
            path = os.path.join(head, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.remove(path)
            except OSError:
                pass


def publish_local(source: str, target: str) -> None:
    """Copy ``source`` to ``target`` atomically on a local file system.

    The bytes go to a hidden temporary file in the target's directory, are flushed to disk,
    then renamed over the target (``os.replace``): readers see the old file or the new one,
    never a partial one. On failure the temporary file is removed.
    """
    directory = os.path.dirname(target) or "."
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temps(target)
    temp = hidden_temp_path(target)
    try:
        with open(source, "rb") as src, open(temp, "xb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.remove(temp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- XCom rows


def collect_rows(rows: Iterable[dict[str, Any]], max_rows: int) -> list[dict[str, Any]]:
    """All rows as a list, failing as soon as there are more than ``max_rows``.

    The check runs while the rows arrive, so an oversized result is never built up in memory
    nor pushed to XCom.
    """
    result: list[dict[str, Any]] = []
    for row in rows:
        if len(result) >= max_rows:
            raise EngageLabXComTooLargeError(
                f"Invalid output_path=None: the result has more than max_xcom_rows={max_rows} rows, "
                "too many for XCom (they would be stored in Airflow's metadata database); set "
                "output_path (e.g. 's3://bucket/engagelab' or 'file:///data/engagelab') to write "
                "them to files, or raise max_xcom_rows"
            )
        result.append(row)
    return result


# ---------------------------------------------------------------------------- journey errors


def journey_error_report(errors: Iterable[JourneyError]) -> list[dict[str, Any]]:
    """Distinct per-journey errors as JSON-safe dicts, sorted by journey ID and code.

    A journey that fails in several calls (date windows) is reported once per code.
    """
    distinct = {(e.journey_id, e.error_code): e for e in errors}
    return [distinct[key].as_dict() for key in sorted(distinct)]


def journey_errors_exception(report: Sequence[Mapping[str, Any]], stats_type: Any) -> EngageLabJourneyErrors:
    """The error raised under ``on_journey_error='fail'``, listing every failed journey."""
    lines = "; ".join(
        f"journey {e['journey_id']}: code {e['error_code']} ({e['meaning']})" for e in report
    )
    stype = parse_stats_type(stats_type).value
    return EngageLabJourneyErrors(
        f"{len(report)} journey error(s) in {stype} statistics, nothing was written "
        f"(on_journey_error='fail'; use 'warn' or 'skip' to keep the other journeys): {lines}",
        errors=[dict(e) for e in report],
    )


# ---------------------------------------------------------------------------- destinations

#: Object stores whose single upload (put) is atomic: the object appears whole or not at all.
ATOMIC_PUT_PROTOCOLS: frozenset[str] = frozenset(
    {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss", "r2", "memory"}
)


def output_root_uri(output_path: str, param: str = "output_path") -> str:
    """The output root as a URL without credentials or connection id, no trailing slash.

    ``/data/out`` becomes ``file:///data/out``; ``s3://aws_conn@bucket/prefix/`` becomes
    ``s3://bucket/prefix``. A path without a scheme must be absolute.
    """
    if not isinstance(output_path, str) or not output_path.strip():
        raise EngageLabValidationError(
            f"Invalid {param}={output_path!r}: must be a URL such as 's3://bucket/prefix' or "
            "'file:///data/engagelab', or an absolute local path"
        )
    text = output_path.strip()
    if "://" not in text:
        if not os.path.isabs(text):
            raise EngageLabValidationError(
                f"Invalid {param}={output_path!r}: a local path must be absolute "
                "(or use a URL such as 'file:///data/engagelab')"
            )
        return "file://" + os.path.normpath(text).rstrip("/")
    scheme, rest = text.split("://", 1)
    netloc, sep, path = rest.partition("/")
    netloc = netloc.rpartition("@")[2]
    if not scheme or (not netloc and not path):
        raise EngageLabValidationError(f"Invalid {param}={output_path!r}: not a URL with a location")
    return f"{scheme.lower()}://{netloc}{sep}{path}".rstrip("/") or f"{scheme.lower()}://"


def local_root(root_uri: str) -> str | None:
    """The local directory of a ``file://`` root (from :func:`output_root_uri`), else ``None``."""
    if root_uri.startswith("file://"):
        return root_uri[len("file://"):] or "/"
    return None


def asset_uri(output_path: str, stats_type: Any) -> str:
    """The Asset URI of one operator's output: ``<root>/<stats_type>``."""
    return join_uri(output_root_uri(output_path), parse_stats_type(stats_type).value)
