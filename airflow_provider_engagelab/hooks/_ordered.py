"""The sync hook's concurrency: planned calls on a thread pool, answers in plan order, one decode at a time.

:func:`run_ordered` runs the calls of one fetch with at most ``width`` requests in flight and
at most ``2 x width`` calls started and not yet yielded. Each call runs in a pool thread with
its retries (its :class:`Turn` says when it may send and when it may decode); the consumer (the
thread iterating the generator) gets the answers in plan order. What that bounds:

* **requests**: a call holds one of ``width`` request slots while it sends and downloads (its
  body streams to a file on disk); pacing waits inside the slot, retry backoff outside it;
* **decoding**: a downloaded call waits for its turn, then hands its decoding to the consumer's
  thread (:meth:`Turn.decode`). The consumer decodes only the call it waits for, and only once it
  asked for it, so one answer is decoded at a time and none waits decoded: calls that finish
  before an earlier one wait as bodies on disk. The outcome goes back to the call's retry loop,
  so a body that turns out truncated is retried within that call's retry budget, as any failure;
* **threads**: ``2 x width`` (a call waiting for its turn keeps its thread, not a request slot).

When the run ends early (a failure in plan order, the consumer stops iterating, the task is
killed), :meth:`OrderedRun.cancel` wakes every call: waits (for a slot, a turn, a backoff when
the hook sleeps for real) end at once and downloads stop at their next chunk; calls not yet
started are dropped and the pool is shut down.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from airflow_provider_engagelab.core.planning import PlannedCall

__all__ = ["Cancelled", "OrderedRun", "Turn", "run_ordered"]

T = TypeVar("T")


class Cancelled(Exception):
    """The run ended before this call did (not an ``EngageLabError``: never retried)."""


class _Job:
    """A decoding that a call hands to the consumer's thread."""

    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class OrderedRun:
    """What the calls of one :func:`run_ordered` share: request slots, the turn, cancellation."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._cond = threading.Condition()
        self._in_flight = 0
        self._turn = -1
        self._job: _Job | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """End the run: every wait of every call ends with :class:`Cancelled`."""
        with self._cond:
            self.cancelled = True
            self._cond.notify_all()

    def _check(self) -> None:
        if self.cancelled:
            raise Cancelled("the run ended")

    def _notify(self, *_: Any) -> None:
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ the consumer's side
    def take(self, index: int, future: Future[T]) -> T:
        """Give the turn to call ``index``, decode for it until it is done, and return its outcome.

        Runs in the consumer's thread; its waits can be interrupted by a signal handler (what
        Airflow runs on ``SIGTERM``), which then ends the run.
        """
        with self._cond:
            self._turn = index
            self._cond.notify_all()
        future.add_done_callback(self._notify)
        while True:
            with self._cond:
                while self._job is None and not future.done():
                    self._cond.wait()
                job = self._job
            if job is None:
                return future.result()
            try:
                job.result = job.fn()
            except Exception as exc:  # noqa: BLE001 - the call's retry loop decides what it means
                job.error = exc
            except BaseException:  # the task is being killed: the call ends, this goes on up
                job.error = Cancelled("the run ended")
                raise
            finally:
                with self._cond:
                    self._job = None
                    job.done = True
                    self._cond.notify_all()


class Turn:
    """One call's place in an :class:`OrderedRun` (its index in plan order)."""

    def __init__(self, run: OrderedRun, index: int) -> None:
        self.run = run
        self.index = index

    def check(self) -> None:
        """Raise :class:`Cancelled` when the run has ended (between download chunks)."""
        self.run._check()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Hold one of the run's ``width`` request slots (send, download)."""
        run = self.run
        with run._cond:
            while run._in_flight >= run.width and not run.cancelled:
                run._cond.wait()
            run._check()
            run._in_flight += 1
        try:
            yield
        finally:
            with run._cond:
                run._in_flight -= 1
                run._cond.notify_all()

    def pause(self, seconds: float, sleep: Callable[[float], Any]) -> None:
        """Wait ``seconds`` (pacing, retry backoff); cancelling the run cuts a real sleep short.

        ``sleep`` is the hook's: a sleep a test put there instead of ``time.sleep`` is called as is.
        """
        run = self.run
        if sleep is time.sleep:
            with run._cond:
                run._cond.wait_for(lambda: run.cancelled, timeout=seconds)
        else:
            sleep(seconds)
        run._check()

    def decode(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the consumer's thread once it is this call's turn; its result or error."""
        run = self.run
        job = _Job(fn)
        with run._cond:
            while (run._turn != self.index or run._job is not None) and not run.cancelled:
                run._cond.wait()
            run._check()
            run._job = job
            run._cond.notify_all()
            while not job.done and not run.cancelled:
                run._cond.wait()
            if not job.done:
                raise Cancelled("the run ended")
        if job.error is not None:
            raise job.error
        result: T = job.result
        return result


class _Started(Generic[T]):
    __slots__ = ("future", "index")

    def __init__(self, index: int, future: Future[T]) -> None:
        self.index = index
        self.future = future


def run_ordered(
    calls: list[PlannedCall], fetch: Callable[..., T], width: int,
    discard: Callable[[T], None] | None = None,
) -> Iterator[T]:
    """Run ``fetch(call, turn=...)`` for each call on a pool; yield the outcomes in plan order.

    The first failing call in plan order raises when its turn comes, after every earlier result
    was yielded. On that error, or when the consumer stops iterating, the run is cancelled,
    calls not yet started are dropped, and the pool is shut down after the running ones end;
    the outcomes of calls that ended but were never yielded go to ``discard``.
    """
    limit = 2 * width
    run = OrderedRun(width)
    pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="engagelab")
    started: deque[_Started[T]] = deque()
    todo = iter(enumerate(calls))
    try:
        while True:
            while len(started) < limit:
                nxt = next(todo, None)
                if nxt is None:
                    break
                index, call = nxt
                started.append(_Started(index, pool.submit(fetch, call, turn=Turn(run, index))))
            if not started:
                return
            head = started.popleft()
            yield run.take(head.index, head.future)
    finally:
        run.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for left in started:
            if discard is not None and left.future.done() and not left.future.cancelled() \
                    and left.future.exception() is None:
                discard(left.future.result())
