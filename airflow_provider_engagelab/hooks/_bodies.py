"""Answer bodies on local disk: written while they download, read back once to be decoded.

A body is an anonymous temporary file (``tempfile.TemporaryFile``: ``O_TMPFILE`` on Linux,
elsewhere a file unlinked as soon as it is created) in the task's temporary folder (``TMPDIR``,
or the hook's ``body_dir``). It never has a name, so nothing can leave it behind: not an error,
not ``SIGTERM``, not even ``SIGKILL``; its space is freed when it is closed (right after its
answer is decoded) or when the process ends. The decoder reads it through ``mmap``, without a
copy into Python memory, and can drop the pages it has read (:meth:`BodyFile.drop_pages`).

A failure of the folder (a full disk, a missing or read-only folder) is an
:class:`~airflow_provider_engagelab.exceptions.EngageLabOutputError` naming the folder
(:func:`~airflow_provider_engagelab.core.disk.disk_error`); a retry of the call would meet the
same disk, so it is not retried. No Airflow imports.
"""

from __future__ import annotations

import mmap
import tempfile
from typing import IO

from airflow_provider_engagelab.core.disk import disk_error
from airflow_provider_engagelab.exceptions import EngageLabOutputError

__all__ = ["CHUNK_BYTES", "BodyFile"]

#: Bytes read from the socket and written to the body file at a time (per running call).
CHUNK_BYTES = 64 * 1024

class BodyFile:
    """One answer body in an anonymous temporary file; close it once it is decoded.

    :param folder: where to create it (``None``: the system's temporary folder, ``TMPDIR``).
    :param what: the answer, for error messages (e.g. ``the answer of /v1/stats/journey ...``).
    """

    def __init__(self, folder: str | None, what: str) -> None:
        self.folder = folder or tempfile.gettempdir()
        self.what = what
        self.size = 0
        self._mapped: mmap.mmap | None = None
        self._view: memoryview | None = None
        try:
            self._file: IO[bytes] = tempfile.TemporaryFile(prefix="engagelab-body-", dir=self.folder)
        except OSError as exc:
            raise disk_error(exc, self.folder, f"saving {what}") from None

    def _failure(self, exc: OSError) -> EngageLabOutputError:
        return disk_error(exc, self.folder, f"saving {self.what} ({self.size:,} bytes saved)")

    def write(self, chunk: bytes) -> None:
        """Append one downloaded chunk."""
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise self._failure(exc) from None
        self.size += len(chunk)

    def view(self) -> bytes | memoryview:
        """The whole body as a read-only buffer (an ``mmap`` of the file), until :meth:`close`."""
        if self._view is None:
            try:
                self._file.flush()
            except OSError as exc:
                raise self._failure(exc) from None
            if not self.size:  # mmap refuses an empty file
                return b""
            self._mapped = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._view = memoryview(self._mapped)
        return self._view

    def drop_pages(self) -> None:
        """Take the body's pages out of this process's memory (they are read again when used)."""
        if self._mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mapped.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        """Unmap and close the file; its space is freed (it has no name to remove)."""
        view, mapped, self._view, self._mapped = self._view, self._mapped, None, None
        try:
            if view is not None:
                view.release()
            if mapped is not None:
                mapped.close()
        except BufferError:  # a slice of the view is still alive (in an error's traceback):
            pass  # the mapping goes with the last slice
        finally:
            self._file.close()

    def __enter__(self) -> BodyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
