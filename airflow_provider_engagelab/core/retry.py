"""Retry and pacing policy shared by the sync and async hooks (built on tenacity)."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import tenacity

from airflow_provider_engagelab.core.settings import ConnectionSettings
from airflow_provider_engagelab.exceptions import EngageLabError

#: First backoff wait in seconds; doubles per attempt up to ``max_retry_wait``.
BASE_WAIT = 0.5


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now() if now else datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def is_retryable(exc: BaseException) -> bool:
    """Only failures a later attempt can fix: rate limit, server error, transport, bad body."""
    return isinstance(exc, EngageLabError) and exc.retryable


class BackoffWait(tenacity.wait.wait_base):
    """Exponential backoff with full jitter, or the server's ``Retry-After``; both capped."""

    def __init__(self, cap: float, base: float = BASE_WAIT, rng: random.Random | None = None):
        self.cap = cap
        self.base = base
        self.rng = rng or random.Random()

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after: float | None = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # Honour the server, plus a little jitter so parallel tasks do not stampede.
            return min(self.cap, retry_after + self.rng.uniform(0, min(1.0, self.base)))
        ceiling = min(self.cap, self.base * (2 ** (retry_state.attempt_number - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)


def retry_kwargs(
    settings: ConnectionSettings,
    *,
    before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> dict[str, Any]:
    """Arguments for ``tenacity.Retrying`` / ``AsyncRetrying`` from the connection settings."""
    kwargs: dict[str, Any] = {
        "stop": tenacity.stop_after_attempt(settings.max_retries + 1),
        "wait": BackoffWait(settings.max_retry_wait),
        "retry": tenacity.retry_if_exception(is_retryable),
        "reraise": True,
    }
    if before_sleep is not None:
        kwargs["before_sleep"] = before_sleep
    if sleep is not None:
        kwargs["sleep"] = sleep
    return kwargs


def budget_exhausted(exc: EngageLabError, attempts: int, settings: ConnectionSettings) -> EngageLabError:
    """The last retryable error, reworded to say that the retry budget ran out."""
    if not exc.retryable or attempts <= 1:
        return exc
    hint = (
        "; lower requests_per_second or max_concurrent_requests, or share an Airflow pool"
        if exc.status == 429 or exc.code == 55110
        else ""
    )
    new = type(exc)(
        f"{exc.message} — gave up after {attempts} attempts (connection extra "
        f"max_retries={settings.max_retries}, max_retry_wait={settings.max_retry_wait:g}s){hint}",
        code=exc.code,
        status=exc.status,
        retryable=exc.retryable,
    )
    new.retry_after = exc.retry_after
    return new


class Pacer:
    """Spaces request starts ``1/rate`` seconds apart; thread-safe, never blocks itself.

    ``reserve()`` returns how long the caller must sleep before sending; the sync hook
    sleeps with ``time.sleep``, the async hook with ``asyncio.sleep``.
    """

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate else 0.0
        self.clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next send slot; return the delay until it."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now
