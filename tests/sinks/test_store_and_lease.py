"""The store operations and the per-partition lease lock, on the local file system, an fsspec
memory file system and moto's S3 server."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_engagelab.core.layout import LOCK_PREFIX
from airflow_provider_engagelab.exceptions import EngageLabOutputError, EngageLabValidationError
from airflow_provider_engagelab.sinks.lease import PartitionLock
from airflow_provider_engagelab.sinks.store import FsspecStore, LocalStore, Store


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return LocalStore(str(tmp_path / "root"))
    if request.param == "memory":
        from fsspec.implementations.memory import MemoryFileSystem

        prefix = f"/engagelab-{time.monotonic_ns()}"
        return FsspecStore(MemoryFileSystem(), prefix, f"memory://{prefix}")
    s3fs = pytest.importorskip("s3fs")
    bucket = request.getfixturevalue("s3_bucket")
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": bucket.endpoint})
    return FsspecStore(fs, f"{bucket.name}/root", f"s3://{bucket.name}/root")


def test_list_put_read_delete(store, tmp_path):
    assert store.list("p") == {}  # a directory that does not exist is empty
    source = tmp_path / "staged"
    source.write_bytes(b"rows\n")
    store.put_file(str(source), "p/part-1.jsonl")
    store.put_bytes("p/_engagelab_manifest.json", b"{}")
    store.create("p/_engagelab.lock.1.2.x", b"{}")
    assert store.list("p") == {"part-1.jsonl": 5, "_engagelab_manifest.json": 2, "_engagelab.lock.1.2.x": 2}
    assert store.read("p/part-1.jsonl") == b"rows\n"
    source.write_bytes(b"newer rows\n")
    store.put_file(str(source), "p/part-1.jsonl")  # replaced whole
    copy = tmp_path / "copy"
    store.get_file("p/part-1.jsonl", str(copy))
    assert copy.read_bytes() == b"newer rows\n"
    store.delete("p/part-1.jsonl")
    store.delete("p/part-1.jsonl")  # already gone: fine
    assert sorted(store.list("p")) == ["_engagelab.lock.1.2.x", "_engagelab_manifest.json"]


def test_local_publish_failure_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    store = LocalStore(str(tmp_path))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "part.csv").write_bytes(b"old\n")
    source = tmp_path / "src"
    source.write_bytes(b"x" * 100_000)

    def broken_replace(a, b):
        assert Path(a).name.startswith(".part.csv.") and Path(a).read_bytes() == b"x" * 100_000
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(EngageLabOutputError, match=r"could not write file://.*/p/part.csv: OSError: rename"):
        store.put_file(str(source), "p/part.csv")
    assert os.listdir(tmp_path / "p") == ["part.csv"]
    assert (tmp_path / "p" / "part.csv").read_bytes() == b"old\n"


def test_local_create_is_exclusive(tmp_path):
    store = LocalStore(str(tmp_path))
    store.create("p/lease", b"a")
    with pytest.raises(EngageLabOutputError, match="could not create"):
        store.create("p/lease", b"b")


def test_a_file_system_without_the_guarantee_is_refused():
    class SftpLike:
        protocol = ("sftp", "ssh")

    with pytest.raises(EngageLabValidationError, match=r"Invalid output_path='sftp://h/x': the 'sftp' file"):
        FsspecStore(SftpLike(), "/x", "sftp://h/x")


# ---------------------------------------------------------------------------- the lock


def lock(store: Store, **kw) -> PartitionLock:
    return PartitionLock(store, "p", lease_seconds=kw.pop("lease", 30), wait_seconds=kw.pop("wait", 60), **kw)


def test_one_holder_at_a_time_among_many_contenders(store):
    inside, peak, done = [0], [0], []
    guard = threading.Lock()

    def contender(i: int) -> None:
        with lock(store):
            with guard:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.01)
            with guard:
                inside[0] -= 1
            done.append(i)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(done) == list(range(8)) and peak[0] == 1
    assert [n for n in store.list("p") if n.startswith(LOCK_PREFIX)] == []  # every lease removed


def test_a_dead_tasks_lease_is_removed_after_its_lease_and_not_before(store):
    store.create(f"p/{LOCK_PREFIX}1764633600000.1000.deadbeef", b"{}")  # a 1 s lease, its task gone
    t0 = time.monotonic()
    with lock(store) as held:
        waited = time.monotonic() - t0
        assert held.broken == 1
    assert 0.9 <= waited < 15
    assert store.list("p") == {}


def test_waiting_is_bounded_and_names_the_holder(store):
    with lock(store):
        words = rf"timed out after 0.3s .*held by other tasks \({LOCK_PREFIX}"
        with pytest.raises(EngageLabOutputError, match=words):
            lock(store, wait=0.3).acquire()
    assert store.list("p") == {}  # the waiter removed its own lease file


def test_a_holder_renews_its_lease_so_a_slow_commit_keeps_the_lock(store):
    """A holder that outlives its lease (4 s) keeps the lock: the renewals are new names.

    (4 s, renewed every 1.3 s: a renewal on a loaded machine, moto under parallel tests, can
    take over a second; the lease must outlast it, as commit_lease_seconds >= 5 does.)
    """
    holder = lock(store, lease=4)
    holder.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(lock(store, lease=4).__enter__()))
    waiter.start()
    time.sleep(10)  # two and a half leases
    holder.ensure()  # still fresh
    assert got == []  # the waiter never took it over
    holder.release()
    waiter.join(30)
    assert len(got) == 1
    got[0].release()


def test_ensure_fails_when_the_renewals_do_not_get_through(tmp_path, monkeypatch):
    store = LocalStore(str(tmp_path))
    clock = [0.0]
    held = lock(store, lease=30, clock=lambda: clock[0])
    held.acquire()
    clock[0] = 25.0  # 25 s without a successful renewal (the heartbeat thread uses the same clock)
    with pytest.raises(EngageLabOutputError, match="lost the commit lock .* not renewed for 25s"):
        held.ensure()
    held.release()


def test_a_store_whose_listing_hides_a_fresh_write_is_refused(tmp_path):
    class Stale(LocalStore):
        def list(self, directory):
            return {}

    with pytest.raises(EngageLabOutputError, match="did not list .* right after it was written"):
        lock(Stale(str(tmp_path))).acquire()


def test_a_stale_listing_put_back_by_another_thread_is_not_read(s3_bucket):
    """Threads share one s3fs file system, and with it one listing cache: a listing that began
    before our lease was written and ended after our ``invalidate_cache`` puts its old result
    back. The store must list from S3 anyway (CI once lost a contender to this race)."""
    s3fs = pytest.importorskip("s3fs")
    endpoint = {"endpoint_url": s3_bucket.endpoint}
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs=endpoint)
    store = FsspecStore(fs, f"{s3_bucket.name}/root", f"s3://{s3_bucket.name}/root")
    directory = f"{s3_bucket.name}/root/p"
    invalidate = fs.invalidate_cache

    def invalidated_then_overtaken(path=None):
        invalidate(path)
        fs.dircache[directory] = []  # what a slower thread's listing stores after us

    fs.invalidate_cache = invalidated_then_overtaken
    with lock(store) as held:
        assert [n for n in held.store.list("p") if n.startswith(LOCK_PREFIX)] == [held._held]


def test_listings_ask_each_file_system_for_fresh_results():
    """s3fs and gcsfs skip their cache with ``refresh``, adlfs with ``invalidate_cache``; a file
    system with neither (local, memory) gets no unknown keyword."""
    from airflow_provider_engagelab.sinks.store import _fresh_listing_kwargs

    class S3Like:  # an async file system: ``ls`` only wraps ``_ls``
        async def _ls(self, path, detail=False, refresh=False, versions=False): ...

        def ls(self, path, detail=True, **kwargs): ...

    class AzureLike:
        async def _ls(self, path, detail=False, invalidate_cache=False, delimiter="/", **kwargs): ...

        def ls(self, path, detail=True, **kwargs): ...

    class LocalLike:
        def ls(self, path, detail=False, **kwargs): ...

    assert _fresh_listing_kwargs(S3Like()) == {"refresh": True}
    assert _fresh_listing_kwargs(AzureLike()) == {"invalidate_cache": True}
    assert _fresh_listing_kwargs(LocalLike()) == {}
