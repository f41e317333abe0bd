"""The error of a local temporary file that could not be written (a full disk, a missing folder).

Answer bodies (the sync hook) and staged rows (the file sink) live in the task's temporary
folder (``TMPDIR``); when it fails, the task fails saying which folder and what to do, before
anything is published. Pure: no Airflow imports.
"""

from __future__ import annotations

import errno

from airflow_provider_engagelab.exceptions import EngageLabOutputError

__all__ = ["disk_error"]

_FULL = (errno.ENOSPC, errno.EDQUOT)


def _is_full(exc: OSError) -> bool:
    # pyarrow's file errors are OSErrors without an errno, the reason only in their text
    return exc.errno in _FULL or "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


def disk_error(exc: OSError, folder: str, what: str) -> EngageLabOutputError:
    """The error for a local file operation that failed in ``folder`` while ``what``.

    Not retried by the hooks (a new attempt meets the same disk); Airflow's task retry may
    find room later.
    """
    if _is_full(exc):
        return EngageLabOutputError(
            f"no space left on the device of the temporary folder {folder} while {what}: free "
            "space there, or point TMPDIR (the task's temporary folder) at a larger disk; nothing "
            "was published",
            retryable=False,
        )
    return EngageLabOutputError(
        f"could not use the temporary folder {folder} while {what}: "
        f"{exc.strerror or str(exc) or type(exc).__name__}; check that it exists and is writable, "
        "or point TMPDIR (the task's temporary folder) elsewhere; nothing was published",
        retryable=False,
    )
