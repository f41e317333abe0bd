"""The file sink: rows staged per date on local disk, then committed partition by partition.

Exactly once under one output root, whatever the journey grouping of each task: each date of
the window is committed by :func:`~.partition.commit_partition` under the partition's lock,
replacing the rows of the journeys the task fetched for that date and keeping every other
row once. The journeys a task *fetched* for a date are those of the calls covering it that
answered with ``error_code`` 0; a journey that failed (under ``on_journey_error`` ``warn`` or
``skip``) keeps the rows it had. No Airflow imports.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from airflow_provider_engagelab.core.layout import partition_path
from airflow_provider_engagelab.core.parsing import ParsedResponse
from airflow_provider_engagelab.core.query import StatsQuery
from airflow_provider_engagelab.sinks.base import note_coverage
from airflow_provider_engagelab.sinks.partition import PartitionResult, commit_partition
from airflow_provider_engagelab.sinks.staging import PartitionStager
from airflow_provider_engagelab.sinks.store import LocalStore, Store

_log = logging.getLogger(__name__)

#: Partitions one task commits at once on an object store (each under its own lock).
OBJECT_STORE_COMMIT_WIDTH = 8


class FileSink:
    """Partitioned files under an output root (see the module).

    :param store: the output root.
    :param query: what the task fetches (stats type, time unit, window).
    :param output_format: ``jsonl``, ``csv`` or ``parquet``.
    :param lease_seconds: lease of a partition's commit lock.
    :param wait_seconds: how long to wait for other tasks' commits of a partition.
    :param staging_dir: parent of the local staging directory (default: the system temp).
    :param keep_extra_fields: write the fields the contract does not name too
        (``on_schema_change='keep'``).
    """

    def __init__(
        self,
        store: Store,
        query: StatsQuery,
        output_format: str,
        *,
        lease_seconds: float,
        wait_seconds: float,
        staging_dir: str | None = None,
        keep_extra_fields: bool = False,
    ) -> None:
        self.store = store
        self.query = query
        self.output_format = output_format
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.staging_dir = staging_dir
        self._stager = PartitionStager(
            query.stats_type, query.time_unit, query.start, query.end, output_format,
            staging_dir=staging_dir, keep_extra_fields=keep_extra_fields,
        )
        self._fetched: dict[date, set[int]] = defaultdict(set)

    @property
    def total_rows(self) -> int:
        """Rows staged so far."""
        return self._stager.total_rows

    def stage(self, parsed: ParsedResponse) -> None:
        """Stage one answer's rows, and note which journeys it covers on which dates."""
        self._stager.add_response(parsed)
        note_coverage(self._fetched, parsed, self.query)

    def commit(self) -> dict[str, Any]:
        """Commit every date the task fetched any journey for; return the summary."""
        staged = self._stager.finish()
        days = [d for d in self._stager.dates if self._fetched.get(d)]
        unit = self.query.time_unit

        def one(day: date) -> PartitionResult:
            return commit_partition(
                self.store, partition_path(self.query.stats_type, unit, day),
                frozenset(self._fetched[day]), staged.get(day), self.output_format,
                lease_seconds=self.lease_seconds, wait_seconds=self.wait_seconds,
                scratch_dir=self.staging_dir,
            )

        width = 1 if isinstance(self.store, LocalStore) else OBJECT_STORE_COMMIT_WIDTH
        if width == 1 or len(days) < 2:
            results = [one(day) for day in days]
        else:
            workers = min(width, len(days))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engagelab-commit") as pool:
                results = list(pool.map(one, days))
        files = [{"uri": self.store.uri(r.written), "rows": r.rows} for r in results if r.written]
        summary = {
            "files": files,
            "total_rows": sum(r.rows for r in results),
            "bytes": sum(r.bytes for r in results),
            "partitions": len(results),
            "dates": [day.isoformat() for day in days],
            "removed": [self.store.uri(p) for r in results for p in r.removed],
            "rewritten": [self.store.uri(p) for r in results for p in r.rewritten],
            "store_requests": sum(r.requests for r in results),
            "broken_locks": sum(r.broken_locks for r in results),
        }
        for r in results:
            for path in r.rewritten:
                _log.debug("Kept the other journeys' rows of %s (rewritten without this task's)", path)
        return summary

    def abort(self) -> None:
        """Remove the staged files (nothing was published)."""
        self._stager.cleanup()

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stager.cleanup()
