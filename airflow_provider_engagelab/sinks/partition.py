"""The commit of one partition: its rows of a task's journeys replaced, every other row kept once.

A partition (``<stats_type>/time_unit=<U>/date=<d>``) may hold files of many tasks, written
with different journey groupings (a daily task over all journeys, a mapped backfill over
batches, a list that grew). A task that fetched journeys ``J`` for the date commits, holding
the partition's lock (:mod:`.lease`):

1. list the partition and read its manifest (``_engagelab_manifest.json``), which records the
   journeys each data file holds; a data file the manifest does not describe (a commit that
   died before updating it, or a file of an older version of this provider) is read to find
   its journeys;
2. every other file that holds some of ``J``: deleted when it holds only journeys of ``J``,
   else rewritten in place (one atomic replace) without the rows of ``J``;
3. the task's file ``part-<hash of J>.<ext>`` published (one atomic replace); a task without
   rows for the date publishes nothing;
4. the manifest written.

Readers see whole files only. A crash between the steps leaves rows of ``J`` missing until the
retry (step 2 runs before step 3), never a key twice; the manifest only ever over-states what a
file holds, which costs a needless rewrite later, never a duplicate. No Airflow imports.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_engagelab.core.layout import (
    MANIFEST_NAME,
    data_extension,
    file_name,
    is_hidden_temp,
)
from airflow_provider_engagelab.sinks.lease import PartitionLock
from airflow_provider_engagelab.sinks.rewrite import drop_journeys, file_journeys
from airflow_provider_engagelab.sinks.staging import StagedFile
from airflow_provider_engagelab.sinks.store import Store

_MANIFEST_VERSION = 1


@dataclass
class PartitionResult:
    """What one partition commit did (paths relative to the store's root)."""

    directory: str
    written: str | None = None
    rows: int = 0
    bytes: int = 0
    removed: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    #: store requests made (lock, listing, manifest, files)
    requests: int = 0
    #: lease files of dead tasks that were removed
    broken_locks: int = 0


@dataclass
class _Entry:
    journeys: frozenset[int]
    rows: int | None
    size: int | None

    def as_json(self) -> dict[str, Any]:
        return {"journeys": sorted(self.journeys), "rows": self.rows, "size": self.size}


def _load_manifest(data: bytes) -> dict[str, _Entry]:
    """The entries of a manifest; an unreadable one counts as absent (files are read instead)."""
    try:
        doc = json.loads(data)
        return {
            str(name): _Entry(frozenset(int(j) for j in e["journeys"]), e.get("rows"), e.get("size"))
            for name, e in doc["files"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def _dump_manifest(entries: Mapping[str, _Entry]) -> bytes:
    files = {name: entries[name].as_json() for name in sorted(entries)}
    return json.dumps({"version": _MANIFEST_VERSION, "files": files}, separators=(",", ":")).encode()


class _Committer:
    def __init__(self, store: Store, directory: str, lock: PartitionLock, scratch: str) -> None:
        self.store = store
        self.directory = directory
        self.lock = lock
        self.scratch = scratch
        self.requests = 0

    def path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def local_copy(self, name: str) -> str:
        fd, local = tempfile.mkstemp(dir=self.scratch, suffix="-" + name)
        os.close(fd)
        self.store.get_file(self.path(name), local)
        self.requests += 1
        return local

    def journeys_of(self, name: str, ext: str) -> frozenset[int]:
        local = self.local_copy(name)
        try:
            return frozenset(file_journeys(local, ext, self.store.uri(self.path(name))))
        finally:
            os.remove(local)

    def delete(self, name: str) -> None:
        self.lock.ensure()
        self.store.delete(self.path(name))
        self.requests += 1

    def rewrite(self, name: str, ext: str, drop: frozenset[int]) -> _Entry | None:
        """Replace ``name`` by itself without the rows of ``drop``; ``None`` when none stay."""
        local = self.local_copy(name)
        target = local + ".new"
        try:
            rows, journeys = drop_journeys(local, target, ext, drop, self.store.uri(self.path(name)))
            if not rows:
                self.delete(name)
                return None
            self.lock.ensure()
            self.store.put_file(target, self.path(name))
            self.requests += 1
            return _Entry(frozenset(journeys), rows, os.path.getsize(target))
        finally:
            for path in (local, target):
                if os.path.exists(path):
                    os.remove(path)


def commit_partition(
    store: Store,
    directory: str,
    journeys: frozenset[int],
    staged: StagedFile | None,
    output_format: str,
    *,
    lease_seconds: float,
    wait_seconds: float,
    scratch_dir: str | None = None,
) -> PartitionResult:
    """Replace the rows of ``journeys`` in one partition by the staged file (see the module).

    :param store: where the output root is.
    :param directory: the partition, relative to the root.
    :param journeys: the journeys the task fetched for this date (its rows are all theirs).
    :param staged: the task's rows for the date, or ``None`` when it has none.
    :param output_format: the format of ``staged``.
    :param lease_seconds: the lease of the partition's commit lock.
    :param wait_seconds: how long to wait for other tasks' commits of the partition.
    :param scratch_dir: where to download files that must be read or rewritten.
    """
    result = PartitionResult(directory)
    lock = PartitionLock(store, directory, lease_seconds=lease_seconds, wait_seconds=wait_seconds)
    with tempfile.TemporaryDirectory(prefix="engagelab-commit-", dir=scratch_dir) as scratch, lock:
        work = _Committer(store, directory, lock, scratch)
        listing = lock.listing
        manifest: dict[str, _Entry] = {}
        if MANIFEST_NAME in listing:
            manifest = _load_manifest(store.read(work.path(MANIFEST_NAME)))
            work.requests += 1
        # What each data file holds: the manifest's word (an over-statement at worst), or the file.
        held: dict[str, _Entry] = {}
        for name, size in sorted(listing.items()):
            ext = data_extension(name)
            if ext is None:
                continue
            entry = manifest.get(name)
            if entry is None or (size is not None and entry.size is not None and entry.size != size):
                entry = _Entry(work.journeys_of(name, ext), None, size)
            held[name] = entry
        target = _target_name(journeys, output_format, held)
        kept: dict[str, _Entry] = {}
        for name, entry in held.items():
            ext = data_extension(name)
            assert ext is not None
            if name == target or not entry.journeys & journeys:
                if name != target:
                    kept[name] = entry
                continue
            if entry.journeys <= journeys:
                work.delete(name)
                result.removed.append(work.path(name))
                continue
            narrowed = work.rewrite(name, ext, journeys)
            if narrowed is None:
                result.removed.append(work.path(name))
            else:
                kept[name] = narrowed
                result.rewritten.append(work.path(name))
        if staged is not None and staged.rows:
            lock.ensure()
            store.put_file(staged.local_path, work.path(target))
            work.requests += 1
            size = os.path.getsize(staged.local_path)
            kept[target] = _Entry(journeys, staged.rows, size)
            result.written, result.rows, result.bytes = work.path(target), staged.rows, size
        elif target in held:
            work.delete(target)
            result.removed.append(work.path(target))
        for name in listing:  # hidden temporaries of local publishes that died (we hold the lock)
            if is_hidden_temp(name):
                work.delete(name)
        if kept != manifest:
            lock.ensure()
            if kept:
                store.put_bytes(work.path(MANIFEST_NAME), _dump_manifest(kept))
            else:
                store.delete(work.path(MANIFEST_NAME))
            work.requests += 1
    result.requests = work.requests + lock.requests
    result.broken_locks = lock.broken
    return result


def _target_name(journeys: frozenset[int], output_format: str, held: Mapping[str, _Entry]) -> str:
    """``part-<hash of journeys>.<ext>``, unless a file of that name holds other journeys too
    (which a commit never makes, but a hand-made file could): then the next free suffix."""
    attempt = 0
    while True:
        name = file_name(journeys, output_format, attempt)
        entry = held.get(name)
        if entry is None or entry.journeys <= journeys:
            return name
        attempt += 1
