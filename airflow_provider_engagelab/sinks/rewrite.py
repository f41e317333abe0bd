"""Read the journeys of a data file, and rewrite one without some journeys' rows.

What a partition commit does to the files of other journey groupings: a file whose journeys
partly overlap the committing task's keeps only the rows of the journeys the task did not
fetch. Works on local copies, in bounded memory (batches of lines or Parquet row groups), for
every format whatever the committing task writes: JSON lines keep their bytes line for line,
CSV rows are re-written by ``csv.writer`` (the same bytes the encoder wrote), Parquet keeps
its schema and row-group size. No Airflow imports.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from typing import Any

import msgspec

from airflow_provider_engagelab.core import encoding
from airflow_provider_engagelab.exceptions import EngageLabOutputError

_LINES_PER_BATCH = 8192


class _JourneyOnly(msgspec.Struct):
    journey_id: int


_JOURNEY_LINES = msgspec.json.Decoder(_JourneyOnly)


def _jsonl_batches(path: str) -> Iterator[tuple[list[bytes], list[int]]]:
    with open(path, "rb") as handle:
        while True:
            lines = [line for line in itertools.islice(handle, _LINES_PER_BATCH) if line.strip()]
            if not lines:
                return
            yield lines, [_JOURNEY_LINES.decode(line).journey_id for line in lines]


def _csv_batches(path: str) -> Iterator[tuple[list[str], list[list[str]], list[int]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        column = header.index("journey_id")
        while True:
            rows = list(itertools.islice(reader, _LINES_PER_BATCH))
            if not rows:
                return
            yield header, rows, [int(row[column]) for row in rows]


def file_journeys(path: str, ext: str, shown: str | None = None) -> set[int]:
    """The journey IDs that have rows in a local data file of format ``ext``.

    :param shown: how to name the file in an error (its URL in the store).
    """
    try:
        if ext == "jsonl":
            return {j for _, ids in _jsonl_batches(path) for j in ids}
        if ext == "csv":
            return {j for _, _, ids in _csv_batches(path) for j in ids}
        encoding.require_parquet()
        import pyarrow.parquet as pq

        # partitioning=None: the file alone (pyarrow 23/24 would also read the time_unit= and
        # date= of its path as columns and fail to merge them with the file's time_unit)
        table = pq.read_table(path, columns=["journey_id"], partitioning=None)
        return set(table.column(0).to_pylist())
    except (ValueError, KeyError, msgspec.DecodeError, OSError) as exc:
        raise _unreadable(shown or path, exc) from exc


def _unreadable(path: str, exc: BaseException) -> EngageLabOutputError:
    return EngageLabOutputError(
        f"cannot read the journey_id of the rows of {path}: {type(exc).__name__}: {exc}; it is "
        "not a file of this provider's layout (move it out of the output root)"
    )


def drop_journeys(
    source: str, target: str, ext: str, drop: frozenset[int], shown: str | None = None
) -> tuple[int, set[int]]:
    """Write ``source`` to ``target`` without the rows of the journeys in ``drop``.

    :param shown: how to name the file in an error (its URL in the store).
    :return: the number of rows kept and their journey IDs.
    """
    try:
        if ext == "jsonl":
            return _drop_jsonl(source, target, drop)
        if ext == "csv":
            return _drop_csv(source, target, drop)
        return _drop_parquet(source, target, drop)
    except (ValueError, KeyError, msgspec.DecodeError) as exc:
        raise _unreadable(shown or source, exc) from exc


def _drop_jsonl(source: str, target: str, drop: frozenset[int]) -> tuple[int, set[int]]:
    kept, journeys = 0, set[int]()
    with open(target, "wb") as out:
        for lines, ids in _jsonl_batches(source):
            keep = [line for line, j in zip(lines, ids, strict=True) if j not in drop]
            journeys.update(j for j in ids if j not in drop)
            out.write(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in keep))
            kept += len(keep)
    return kept, journeys


def _drop_csv(source: str, target: str, drop: frozenset[int]) -> tuple[int, set[int]]:
    kept, journeys = 0, set[int]()
    with open(target, "wb") as out:
        wrote_header = False
        for header, rows, ids in _csv_batches(source):
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            if not wrote_header:
                writer.writerow(header)
                wrote_header = True
            keep = [row for row, j in zip(rows, ids, strict=True) if j not in drop]
            journeys.update(j for j in ids if j not in drop)
            writer.writerows(keep)
            out.write(buf.getvalue().encode("utf-8"))
            kept += len(keep)
    return kept, journeys


def _drop_parquet(source: str, target: str, drop: frozenset[int]) -> tuple[int, set[int]]:
    pa = encoding.require_parquet()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from airflow_provider_engagelab.sinks.staging import PARQUET_BATCH_ROWS

    kept, journeys = 0, set[int]()
    value_set = pa.array(sorted(drop), type=pa.int64())
    parquet = pq.ParquetFile(source)
    writer: Any = None
    try:
        writer = pq.ParquetWriter(target, parquet.schema_arrow)
        pending: list[Any] = []
        count = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            mask = pc.invert(pc.is_in(batch.column("journey_id"), value_set=value_set))
            batch = batch.filter(mask)
            if not batch.num_rows:
                continue
            journeys.update(batch.column("journey_id").to_pylist())
            pending.append(batch)
            count += batch.num_rows
            kept += batch.num_rows
            if count >= PARQUET_BATCH_ROWS:
                table = pa.Table.from_batches(pending, parquet.schema_arrow)
                whole = count - count % PARQUET_BATCH_ROWS
                writer.write_table(table.slice(0, whole), row_group_size=PARQUET_BATCH_ROWS)
                pending, count = table.slice(whole).to_batches(), count - whole
        if count:
            writer.write_table(pa.Table.from_batches(pending, parquet.schema_arrow))
    finally:
        if writer is not None:
            writer.close()
    return kept, journeys
