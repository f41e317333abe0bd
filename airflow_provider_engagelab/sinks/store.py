"""The few object-store operations the file sink's commit protocol needs, on two backends.

* :class:`LocalStore`: a local (or mounted) file system through ``os``: whole files appear by
  ``os.replace`` of a synced temporary file, new files by ``O_EXCL``;
* :class:`FsspecStore`: an fsspec file system (what Airflow's ``ObjectStoragePath`` gives for
  ``s3://``, ``gs://``, ``abfs://`` ...): an object appears whole when its upload completes.

The protocol (:mod:`.partition`, :mod:`.lease`) relies on two properties: a written object
is visible whole or not at all, and a listing made after a write (or delete) shows it. Local
file systems, Amazon S3 (strongly consistent since December 2020), Google Cloud Storage and
Azure Blob Storage give both; :data:`SAFE_PROTOCOLS` names the fsspec protocols accepted.
Any other backend is refused before anything is written. Paths are ``/``-separated and
relative to the store's root. Every failure is an :class:`EngageLabOutputError` naming the
path. No Airflow imports.
"""

from __future__ import annotations

import inspect
import os
import shutil
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_provider_engagelab.core.layout import join_uri
from airflow_provider_engagelab.exceptions import EngageLabOutputError, EngageLabValidationError

#: fsspec protocols whose uploads are atomic and whose listings are read-after-write consistent.
SAFE_PROTOCOLS: frozenset[str] = frozenset(
    {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "memory"}
)

_T = TypeVar("_T")


class Store:
    """Operations on files under one root; subclasses implement them for a backend.

    :param root_uri: the root as a URL (for messages and summaries).
    """

    backend = "store"

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")

    def uri(self, relative: str) -> str:
        """The URL of a path under the root."""
        return join_uri(self.root_uri, relative)

    def _guard(self, what: str, relative: str, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except EngageLabOutputError:
            raise
        except Exception as exc:  # every backend raises its own types
            raise EngageLabOutputError(
                f"could not {what} {self.uri(relative)}: {type(exc).__name__}: {exc}"
            ) from exc

    # The operations; each ``relative`` is a path under the root.
    def list(self, directory: str) -> dict[str, int | None]:
        """Names (not paths) of the files directly in ``directory`` with their sizes; ``{}``
        when it does not exist. Always fresh (no listing cache)."""
        raise NotImplementedError

    def read(self, relative: str) -> bytes:
        """The whole content of a file."""
        raise NotImplementedError

    def get_file(self, relative: str, local_path: str) -> None:
        """Download a file to a local path."""
        raise NotImplementedError

    def put_file(self, local_path: str, relative: str) -> None:
        """Publish a local file under ``relative``, replacing any file there, atomically."""
        raise NotImplementedError

    def put_bytes(self, relative: str, data: bytes) -> None:
        """Write small content under ``relative``, replacing any file there, atomically."""
        raise NotImplementedError

    def create(self, relative: str, data: bytes) -> None:
        """Write a new small file (its name is unique: a lease of :mod:`.lease`)."""
        raise NotImplementedError

    def delete(self, relative: str) -> None:
        """Remove a file; a file already gone is not an error."""
        raise NotImplementedError


class LocalStore(Store):
    """A directory of a local or mounted file system."""

    backend = "local file system"

    def __init__(self, root_dir: str, root_uri: str | None = None) -> None:
        super().__init__(root_uri or "file://" + root_dir)
        self.root_dir = root_dir

    def _path(self, relative: str) -> str:
        return os.path.join(self.root_dir, *relative.split("/")) if relative else self.root_dir

    def _makedirs(self, relative: str) -> None:
        directory = os.path.dirname(self._path(relative))
        try:
            os.makedirs(directory, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise EngageLabOutputError(
                f"the partition path {directory} is blocked: a file exists where a directory "
                "must be; move it away and rerun the task"
            ) from None

    def list(self, directory: str) -> dict[str, int | None]:
        path = self._path(directory)

        def scan() -> dict[str, int | None]:
            found: dict[str, int | None] = {}
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        try:
                            if entry.is_file(follow_symlinks=False):
                                found[entry.name] = entry.stat(follow_symlinks=False).st_size
                        except FileNotFoundError:  # removed while listing
                            continue
            except FileNotFoundError:
                return {}
            except NotADirectoryError:
                raise EngageLabOutputError(
                    f"the partition path {path} is blocked: it is a file, not a directory; "
                    "move it away and rerun the task"
                ) from None
            return found

        return self._guard("list", directory, scan)

    def read(self, relative: str) -> bytes:
        def read() -> bytes:
            with open(self._path(relative), "rb") as handle:
                return handle.read()

        return self._guard("read", relative, read)

    def get_file(self, relative: str, local_path: str) -> None:
        self._guard("read", relative, lambda: shutil.copyfile(self._path(relative), local_path))

    def _replace(self, relative: str, write: Callable[[Any], None], *, sync: bool) -> None:
        """Write to a hidden temporary file next to the target, then rename it into place."""
        self._makedirs(relative)
        target = self._path(relative)
        head, tail = os.path.split(target)
        temp = os.path.join(head, f".{tail}.{uuid.uuid4().hex[:12]}.tmp")

        def replace() -> None:
            try:
                with open(temp, "xb") as handle:
                    write(handle)
                    if sync:
                        handle.flush()
                        os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                try:
                    os.remove(temp)
                except FileNotFoundError:
                    pass
                raise
            if sync:
                _fsync_dir(head)

        self._guard("write", relative, replace)

    def put_file(self, local_path: str, relative: str) -> None:
        def copy(handle: Any) -> None:
            with open(local_path, "rb") as source:
                shutil.copyfileobj(source, handle, 1024 * 1024)

        self._replace(relative, copy, sync=True)

    def put_bytes(self, relative: str, data: bytes) -> None:
        # Not synced: a manifest lost in a power cut is rebuilt from the data files.
        self._replace(relative, lambda handle: handle.write(data), sync=False)

    def create(self, relative: str, data: bytes) -> None:
        self._makedirs(relative)

        def create() -> None:
            fd = os.open(self._path(relative), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

        self._guard("create", relative, create)

    def delete(self, relative: str) -> None:
        def delete() -> None:
            try:
                os.remove(self._path(relative))
            except FileNotFoundError:
                pass

        self._guard("delete", relative, delete)


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


def _protocol(fs: Any) -> str:
    protocol = fs.protocol
    return str(protocol[0] if isinstance(protocol, (tuple, list)) else protocol)


def _fresh_listing_kwargs(fs: Any) -> dict[str, bool]:
    """The ``ls`` arguments that make a file system list from the store, never its cache.

    Dropping the cache first is not enough when threads share one file system (the lease
    heartbeat, threads of one task): a listing that started before a write and ends after
    another thread's ``invalidate_cache`` puts its stale result back, and the next cached
    ``ls`` returns it. s3fs and gcsfs take ``refresh``, adlfs ``invalidate_cache``.
    """
    names: set[str] = set()
    for method in (getattr(fs, "_ls", None), fs.ls):  # an async file system's ls only wraps _ls
        if not callable(method):
            continue
        try:
            names.update(inspect.signature(method).parameters)
        except (TypeError, ValueError):  # a builtin without a signature
            continue
    return {name: True for name in ("refresh", "invalidate_cache") if name in names}


class FsspecStore(Store):
    """A prefix of an fsspec file system whose protocol is in :data:`SAFE_PROTOCOLS`.

    :param fs: the file system (e.g. ``ObjectStoragePath(...).fs``, credentials attached).
    :param root_path: the root in the file system's own form (``bucket/prefix``).
    :param root_uri: the root as a URL, for messages.
    """

    def __init__(self, fs: Any, root_path: str, root_uri: str) -> None:
        super().__init__(root_uri)
        protocol = _protocol(fs)
        if protocol not in SAFE_PROTOCOLS:
            raise EngageLabValidationError(
                f"Invalid output_path={root_uri!r}: the {protocol!r} file system cannot give the "
                "exactly-once commit (it needs uploads that appear whole and listings that show "
                "every finished write at once); write to a local path, s3://, gs:// or abfs:// "
                f"instead ({', '.join(sorted(SAFE_PROTOCOLS))})"
            )
        self.backend = f"{protocol}:// object store"
        self.fs = fs
        self.root_path = root_path.rstrip("/")
        self._fresh = _fresh_listing_kwargs(fs)

    def _path(self, relative: str) -> str:
        return f"{self.root_path}/{relative}" if relative else self.root_path

    def list(self, directory: str) -> dict[str, int | None]:
        path = self._path(directory)

        def scan() -> dict[str, int | None]:
            self.fs.invalidate_cache(path)
            try:
                entries = self.fs.ls(path, detail=True, **self._fresh)
            except FileNotFoundError:
                return {}
            found: dict[str, int | None] = {}
            for entry in entries:
                if entry.get("type", "file") != "file":
                    continue
                name = str(entry["name"]).rstrip("/").rpartition("/")[2]
                size = entry.get("size")
                found[name] = int(size) if size is not None else None
            return found

        return self._guard("list", directory, scan)

    def read(self, relative: str) -> bytes:
        return self._guard("read", relative, lambda: bytes(self.fs.cat_file(self._path(relative))))

    def get_file(self, relative: str, local_path: str) -> None:
        self._guard("read", relative, lambda: self.fs.get_file(self._path(relative), local_path))

    def put_file(self, local_path: str, relative: str) -> None:
        self._guard("write", relative, lambda: self.fs.put_file(local_path, self._path(relative)))

    def put_bytes(self, relative: str, data: bytes) -> None:
        self._guard("write", relative, lambda: self.fs.pipe_file(self._path(relative), data))

    def create(self, relative: str, data: bytes) -> None:
        self.put_bytes(relative, data)

    def delete(self, relative: str) -> None:
        def delete() -> None:
            try:
                self.fs.rm_file(self._path(relative))
            except FileNotFoundError:
                pass

        self._guard("delete", relative, delete)
