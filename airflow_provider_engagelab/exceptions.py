"""Exceptions raised by the EngageLab provider.

Every failure the provider reports is an :class:`EngageLabError`. Errors that come from the
API carry its ``code``, ``message`` and the HTTP ``status``; errors found before any request
(bad parameters, bad connection settings) are :class:`EngageLabValidationError`.

When Apache Airflow is installed (always, inside a task) ``EngageLabError`` is an
``AirflowException``; the pure core stays importable without Airflow for its own tests.
"""

from __future__ import annotations

try:  # Airflow 3.1+: the Task SDK owns the exceptions
    from airflow.sdk.exceptions import AirflowException as _Base
    from airflow.sdk.exceptions import AirflowFailException as _NoRetryBase
except ImportError:  # pragma: no cover - Airflow 3.0, or the pure core without Airflow
    try:
        from airflow.exceptions import AirflowException as _Base  # type: ignore[assignment]
        from airflow.exceptions import AirflowFailException as _NoRetryBase  # type: ignore[no-redef]
    except ImportError:
        _Base = Exception  # type: ignore[misc,assignment]
        _NoRetryBase = None  # type: ignore[misc,assignment]

#: Extra base of errors that a task retry cannot fix (Airflow then fails without retrying).
_NO_RETRY: tuple[type, ...] = (_NoRetryBase,) if _NoRetryBase is not None else ()


class EngageLabError(_Base):  # type: ignore[misc,valid-type]
    """Base class of all provider errors.

    :param message: human-readable description (never contains credentials).
    :param code: the EngageLab API ``code`` when the API reported one, else ``None``.
    :param status: the HTTP status of the response, when there was one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retryable: bool | None = None,
    ):
        self.code = code
        self.message = message
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        #: seconds the server asked us to wait (``Retry-After``), when it said so
        self.retry_after: float | None = None
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        prefix = f"[{', '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"

    def __reduce__(self):  # keep code/status across pickling (Airflow may pickle exceptions)
        return (_rebuild, (type(self), self.message, self.code, self.status, self.retryable))


def _rebuild(
    cls: type[EngageLabError], message: str, code: int | None, status: int | None, retryable: bool
) -> EngageLabError:
    return cls(message, code=code, status=status, retryable=retryable)


class EngageLabValidationError(EngageLabError, *_NO_RETRY, ValueError):  # type: ignore[misc]
    """A parameter or connection setting is invalid; raised before any HTTP call.

    It is an ``AirflowFailException`` too: Airflow fails the task without retrying, since
    a retry would meet the same input.
    """


class EngageLabXComTooLargeError(EngageLabValidationError):
    """The result is larger than ``max_xcom_rows``: set ``output_path`` to write files."""


class EngageLabOutputError(EngageLabError):
    """Writing the output failed: the store refused or failed an operation, a partition path is
    blocked, or a partition's commit lock could not be taken in time. The message names the
    path. Nothing is ever doubled by such a failure; a retry completes the commit."""

    retryable = True


class EngageLabAuthError(EngageLabError):
    """Authentication failed (HTTP 401, code 40050): check the API Key and API Secret."""


class EngageLabRateLimitError(EngageLabError):
    """Rate limit exceeded (HTTP 429, code 55110), after the retry budget was spent."""

    retryable = True


class EngageLabServerError(EngageLabError):
    """The API failed on its side (HTTP 5xx, code -1)."""

    retryable = True


class EngageLabTransportError(EngageLabError):
    """The request did not complete: timeout, refused or dropped connection."""

    retryable = True


class EngageLabResponseError(EngageLabError):
    """The API answered something the contract does not allow (bad JSON, missing fields)."""


class EngageLabSchemaChangeError(EngageLabResponseError, *_NO_RETRY):  # type: ignore[misc]
    """The API answered with fields the contract does not name, under ``on_schema_change='fail'``.

    An ``AirflowFailException`` too: a retry would meet the same answer. ``fields`` lists them.
    """

    def __init__(self, message: str, *, fields: list[str] | None = None):
        self.fields = list(fields or [])
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_schema_change, (self.message, self.fields))


def _rebuild_schema_change(message: str, fields: list[str]) -> EngageLabSchemaChangeError:
    return EngageLabSchemaChangeError(message, fields=fields)


class EngageLabBadRequestError(EngageLabError):
    """The API rejected the request parameters (HTTP 400: codes 40001, 40002, 50217, ...)."""


class EngageLabProjectNotFoundError(EngageLabError):
    """The project bound to the API key does not exist (code 50034)."""


class EngageLabJourneyNotFoundError(EngageLabError):
    """A journey does not exist or belongs to another project (code 50202)."""


class EngageLabJourneyErrors(EngageLabError):
    """One or more journeys reported a per-journey ``error_code`` (partial success).

    :param errors: the per-journey errors, each with ``journey_id``, ``error_code`` and
        ``meaning``.
    """

    def __init__(self, message: str, *, errors: list[dict] | None = None):
        self.errors = list(errors or [])
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_journey_errors, (self.message, self.errors))


def _rebuild_journey_errors(message: str, errors: list[dict]) -> EngageLabJourneyErrors:
    return EngageLabJourneyErrors(message, errors=errors)
