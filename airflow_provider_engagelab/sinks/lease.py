"""A lock per partition directory, held by a lease, that works on any :class:`~.store.Store`.

Mutual exclusion needs only what every supported store gives: a new file appears whole, and
a listing made after a write shows it. To take the lock of a directory, a task

1. writes a lease file with a name of its own,
   ``_engagelab.lock.<created ms>.<lease ms>.<token>``;
2. lists the directory. It holds the lock if no *other* live lease file is listed.
   Otherwise, the oldest lease (by name) keeps its file and lists again later; the others
   delete theirs, wait (jittered backoff) and start again.

Two tasks can never both hold it: each wrote its file before it listed, so whichever listed
second saw the other's file. (The priority of the oldest only decides who waits, never who
holds, so clock differences between machines cost fairness, not safety.)

A holder renews its lease from a background thread every ``lease_seconds / 3`` (a new file,
then the old one deleted), so a slow upload cannot outlive it, and checks before every change
that its lease is still fresh (:meth:`PartitionLock.ensure`). A lease file that another task
sees unchanged for ``lease_seconds`` belongs to a task that died (SIGKILL, a lost node): it
is deleted and the commit goes on. A killed task therefore delays the next commit of its
partition by at most ``lease_seconds``, measured on the waiting task's own clock (no clocks
are compared between machines). Waiting longer than ``wait_seconds`` fails the task with an
:class:`EngageLabOutputError`. No Airflow imports.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from airflow_provider_engagelab.core.layout import LOCK_PREFIX
from airflow_provider_engagelab.exceptions import EngageLabOutputError
from airflow_provider_engagelab.sinks.store import Store

_log = logging.getLogger(__name__)

_FIRST_DELAY = 0.02
_MAX_DELAY = 1.0


def _lease_name(lease_seconds: float, token: str) -> str:
    return f"{LOCK_PREFIX}{int(time.time() * 1000):013d}.{int(lease_seconds * 1000)}.{token}"


def _parse_lease(name: str, default_lease: float) -> tuple[tuple[int, str], float]:
    """``((created ms, token), lease seconds)`` of a lease file name (lenient with garbage)."""
    parts = name[len(LOCK_PREFIX):].split(".")
    try:
        return (int(parts[0]), parts[2]), int(parts[1]) / 1000
    except (IndexError, ValueError):
        return (0, name), default_lease


class PartitionLock:
    """The commit lock of one partition directory (a context manager).

    :param store: where the partition lives.
    :param directory: the partition directory, relative to the store's root.
    :param lease_seconds: how long a lease stays valid without renewal; a task that died
        delays the next commit of the partition by at most this long.
    :param wait_seconds: how long to wait for other tasks' commits before failing.
    :param sleep: how to wait (tests replace it).
    :param clock: a monotonic clock (tests replace it).
    """

    def __init__(
        self,
        store: Store,
        directory: str,
        *,
        lease_seconds: float,
        wait_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.directory = directory
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self._sleep = sleep
        self._clock = clock
        self._token = uuid.uuid4().hex[:16]
        self._payload = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "token": self._token}
        ).encode()
        self._held: str | None = None
        self._renewed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        #: the directory's listing when the lock was taken (no other task changed it since)
        self.listing: dict[str, int | None] = {}
        #: how many lease files of dead tasks were removed while taking the lock
        self.broken = 0
        #: store requests spent taking and releasing the lock
        self.requests = 0

    def _path(self, name: str) -> str:
        return f"{self.directory}/{name}"

    def _create(self) -> tuple[str, float]:
        name = _lease_name(self.lease_seconds, self._token)
        at = self._clock()
        self.store.create(self._path(name), self._payload)
        self.requests += 1
        return name, at

    def _delete(self, name: str) -> None:
        self.store.delete(self._path(name))
        self.requests += 1

    # ------------------------------------------------------------------ acquire
    def acquire(self) -> None:
        """Take the lock, waiting for other commits; see the module docs."""
        deadline = self._clock() + self.wait_seconds
        first_seen: dict[str, float] = {}
        mine: str | None = None
        created_at = 0.0
        checked = False  # whether our own file was seen listed since we wrote it
        delay = _FIRST_DELAY
        holders: list[str] = []
        while True:
            if mine is None:
                mine, created_at = self._create()
                checked = False
            listing = self.store.list(self.directory)
            self.requests += 1
            now = self._clock()
            if mine not in listing:
                if not checked:
                    self._delete(mine)
                    raise EngageLabOutputError(
                        f"the {self.store.backend} did not list {self.store.uri(self._path(mine))} "
                        "right after it was written: the exactly-once commit needs a store whose "
                        "listings show every finished write"
                    )
                mine = None  # removed by another task that took it for a dead one: start again
                continue
            checked = True
            rivals: list[tuple[int, str]] = []
            holders = []
            for name in listing:
                if not name.startswith(LOCK_PREFIX) or name == mine:
                    continue
                key, lease = _parse_lease(name, self.lease_seconds)
                if now - first_seen.setdefault(name, now) > lease:
                    _log.warning(
                        "Removing the commit lock %s: unchanged for %.0fs, longer than its lease; "
                        "the task that held it is gone",
                        self.store.uri(self._path(name)), now - first_seen[name],
                    )
                    self._delete(name)
                    self.broken += 1
                    continue
                rivals.append(key)
                holders.append(name)
            if not rivals:
                self._held, self._renewed_at = mine, created_at
                self.listing = {n: s for n, s in listing.items() if not n.startswith(LOCK_PREFIX)}
                self._start_heartbeat()
                return
            own_key, _ = _parse_lease(mine, self.lease_seconds)
            if own_key > min(rivals) or now - created_at > self.lease_seconds / 3:
                self._delete(mine)  # not first in line (or our waiting file grows old): step back
                mine = None
            if now >= deadline:
                if mine is not None:
                    self._delete(mine)
                raise EngageLabOutputError(
                    f"timed out after {self.wait_seconds:g}s waiting for the commit lock of "
                    f"{self.store.uri(self.directory)}, held by other tasks ({', '.join(holders)}); "
                    "a lock of a task that died expires after its lease"
                )
            self._sleep(min(delay * random.uniform(0.5, 1.5), max(0.0, deadline - now)))
            delay = min(delay * 1.5, _MAX_DELAY)

    # ------------------------------------------------------------------ holding
    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="engagelab-lease", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                new, at = self._create()
            except EngageLabOutputError as exc:
                _log.warning("Could not renew the commit lock of %s: %s", self.directory, exc)
                continue
            with self._guard:
                old, self._held, self._renewed_at = self._held, new, at
            try:
                if old is not None:
                    self._delete(old)
            except EngageLabOutputError as exc:  # it expires by itself
                _log.warning("Could not remove the old lease of %s: %s", self.directory, exc)

    def ensure(self) -> None:
        """Fail (before a change) if the lease may have lapsed: renewals did not get through."""
        with self._guard:
            held, age = self._held, self._clock() - self._renewed_at
        if held is None:
            raise EngageLabOutputError(f"the commit lock of {self.store.uri(self.directory)} is not held")
        if age > self.lease_seconds * 2 / 3:
            raise EngageLabOutputError(
                f"lost the commit lock of {self.store.uri(self.directory)}: its lease was not "
                f"renewed for {age:.0f}s (lease {self.lease_seconds:g}s); the store is too slow or "
                "unreachable. Nothing was doubled; a retry completes the commit"
            )

    def release(self) -> None:
        """Stop renewing and remove the lease file (a failure only leaves it to expire)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._guard:
            held, self._held = self._held, None
        if held is not None:
            try:
                self._delete(held)
            except EngageLabOutputError as exc:
                _log.warning("Could not remove the commit lock %s (it expires by itself): %s", held, exc)

    def __enter__(self) -> PartitionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
