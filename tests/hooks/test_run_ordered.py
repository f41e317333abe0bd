"""EngageLabHook._run_ordered: no head-of-line blocking, plan order, bounded buffering, cleanup.

Most tests replace ``fetch_call`` with fakes that block on events (the last one blocks the
real retry's backoff over requests-mock), so every assertion is about counts and order, never
about timings. The timeouts on the events only turn a hang into a failure.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_engagelab.hooks.engagelab import EngageLabHook

BASE = "https://api.test"
JOURNEY_URL = f"{BASE}/v1/stats/journey"
WIDTH = 3
LIMIT = 2 * WIDTH  # calls started and not yet yielded, at most
TIMEOUT = 10  # seconds; only a guard against a hang


class Boom(Exception):
    """A failure of one call."""


def _set_conn(monkeypatch: pytest.MonkeyPatch, width: int = WIDTH) -> None:
    conn = {"conn_type": "engagelab", "host": BASE, "login": "key-1", "password": "s3cret",
            "extra": {"max_concurrent_requests": width, "max_retries": 3, "max_retry_wait": 5}}
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(conn))


def _calls(hook: EngageLabHook, n: int) -> list[Any]:
    """``n`` planned calls (batches of 100 journeys, one day)."""
    _, calls = hook.plan("journey", list(range(1, 100 * n + 1)), "DAY", "2026-06-01", "2026-06-01")
    assert len(calls) == n
    return calls


def _index(call: Any) -> int:
    return (call.journey_ids[0] - 1) // 100


def _engagelab_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("engagelab") and t.is_alive()}


class Tracker:
    """Counts calls started and results yielded; checks the bound at every start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.started: list[int] = []
        self.finished: list[int] = []
        self.yielded = 0
        self.max_outstanding = 0

    def start(self, i: int) -> None:
        with self.lock:
            self.started.append(i)
            self.max_outstanding = max(self.max_outstanding, len(self.started) - self.yielded)
            self.changed.notify_all()

    def finish(self, i: int) -> None:
        with self.lock:
            self.finished.append(i)
            self.changed.notify_all()

    def consume(self, results: Iterator[tuple[Any, int]], stop_after: int | None = None) -> list[int]:
        got = []
        for parsed, attempts in results:
            with self.lock:
                self.yielded += 1
            assert attempts == 1
            got.append(parsed)
            if stop_after is not None and len(got) == stop_after:
                break
        return got


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> EngageLabHook:
    _set_conn(monkeypatch)
    return EngageLabHook()


def _patch_fetch(monkeypatch: pytest.MonkeyPatch, hook: EngageLabHook, tracker: Tracker,
                 body: Callable[[int], None]) -> None:
    def fake_fetch_call(call: Any, turn: Any = None) -> tuple[int, int]:
        i = _index(call)
        tracker.start(i)
        try:
            body(i)
        finally:
            tracker.finish(i)
        return i, 1

    monkeypatch.setattr(hook, "fetch_call", fake_fetch_call)


def test_slow_first_call_does_not_stop_the_other_slots(hook, monkeypatch):
    n = 20
    tracker = Tracker()
    release_first = threading.Event()
    others_done = threading.Event()
    started_while_blocked: list[int] = []
    later_done: list[int] = []

    def body(i: int) -> None:
        if i == 0:
            assert release_first.wait(TIMEOUT), "call 0 was never released"
            with tracker.lock:
                started_while_blocked.extend(sorted(tracker.started))
        else:
            with tracker.lock:
                later_done.append(i)
                if len(later_done) == LIMIT - 1:
                    others_done.set()

    _patch_fetch(monkeypatch, hook, tracker, body)
    results: list[int] = []
    calls = _calls(hook, n)
    consumer = threading.Thread(target=lambda: results.extend(tracker.consume(hook._run_ordered(calls))))
    consumer.start()
    try:
        # The old behaviour (start a call only when the oldest finishes) starts WIDTH - 1 later
        # calls and then waits for call 0: this event would never be set.
        assert others_done.wait(TIMEOUT), f"only {tracker.started} started while call 0 was blocked"
    finally:
        release_first.set()
        consumer.join(TIMEOUT)
    assert not consumer.is_alive()
    # More than WIDTH - 1 later calls ran while call 0 was blocked: up to the bound, not past it.
    assert started_while_blocked == list(range(LIMIT))
    assert tracker.max_outstanding == LIMIT
    assert results == list(range(n))
    assert sorted(tracker.started) == list(range(n))


def test_results_come_in_plan_order_when_calls_finish_out_of_order(hook, monkeypatch):
    n = 15
    tracker = Tracker()
    done = [threading.Event() for _ in range(n)]
    completed: list[int] = []

    def body(i: int) -> None:
        # Each even call finishes only after the next (odd) one: 1 before 0, 3 before 2, ...
        if i % 2 == 0 and i + 1 < n:
            assert done[i + 1].wait(TIMEOUT)
        with tracker.lock:
            completed.append(i)
        done[i].set()

    _patch_fetch(monkeypatch, hook, tracker, body)
    assert tracker.consume(hook._run_ordered(_calls(hook, n))) == list(range(n))
    assert all(completed.index(i + 1) < completed.index(i) for i in range(0, n - 1, 2))
    assert tracker.max_outstanding <= LIMIT


def test_started_but_not_yielded_calls_never_exceed_the_bound(hook, monkeypatch):
    n = 40
    tracker = Tracker()

    def body(i: int) -> None:
        # Every fifth call waits until every call after it that the bound allows has started
        # (LIMIT - 1 of them, or the end of the plan): the others pile up as done, unyielded.
        if i % 5 == 0:
            last = min(i + LIMIT, n) - 1
            with tracker.changed:
                assert tracker.changed.wait_for(lambda: max(tracker.started) >= last, TIMEOUT)

    _patch_fetch(monkeypatch, hook, tracker, body)
    assert tracker.consume(hook._run_ordered(_calls(hook, n))) == list(range(n))
    assert tracker.max_outstanding == LIMIT


def test_a_failure_is_raised_in_plan_order_and_cancels_the_rest(hook, monkeypatch):
    n, k = 30, 4
    tracker = Tracker()
    later_failed = threading.Event()
    before = _engagelab_threads()

    def body(i: int) -> None:
        if i == k + 1:  # a later call fails first...
            later_failed.set()
            raise Boom(f"call {i}")
        if i == k:  # ...then call k
            assert later_failed.wait(TIMEOUT)
            raise Boom(f"call {i}")

    _patch_fetch(monkeypatch, hook, tracker, body)
    got: list[int] = []
    with pytest.raises(Boom, match=f"^call {k}$"):
        for parsed, _ in hook._run_ordered(_calls(hook, n)):
            got.append(parsed)
            with tracker.lock:
                tracker.yielded += 1
    assert got == list(range(k))  # every earlier result first
    started = len(tracker.started)
    assert started <= k + LIMIT < n  # the rest of the plan never started
    assert _engagelab_threads() - before == set()
    assert len(tracker.finished) == started  # nothing still running


def test_closing_the_generator_early_cancels_the_rest(hook, monkeypatch):
    n = 30
    tracker = Tracker()
    before = _engagelab_threads()
    _patch_fetch(monkeypatch, hook, tracker, lambda i: None)
    results = hook._run_ordered(_calls(hook, n))
    assert tracker.consume(results, stop_after=2) == [0, 1]
    assert _engagelab_threads() - before  # the pool is working
    results.close()  # type: ignore[attr-defined]
    started = len(tracker.started)
    assert started <= 2 + LIMIT < n
    assert _engagelab_threads() - before == set()
    assert len(tracker.finished) == started


def test_width_one_is_a_plain_loop_in_the_caller_thread(monkeypatch):
    _set_conn(monkeypatch, width=1)
    hook = EngageLabHook()
    threads: list[threading.Thread] = []

    def fake_fetch_call(call: Any, turn: Any = None) -> tuple[int, int]:
        threads.append(threading.current_thread())
        return _index(call), 1

    monkeypatch.setattr(hook, "fetch_call", fake_fetch_call)
    assert [p for p, _ in hook._run_ordered(_calls(hook, 5))] == list(range(5))
    assert threads == [threading.current_thread()] * 5


def test_a_429_backoff_on_the_first_call_does_not_stall_the_others(hook, monkeypatch, requests_mock):
    """Over the real fetch_call (requests-mock): call 0's retry sleeps while the others run."""
    n = 12
    lock = threading.Lock()
    answered: list[str] = []
    others_answered = threading.Event()
    first_ids = ",".join(str(j) for j in range(1, 101))

    def answer(request, context):
        ids = request.qs["journey_id"][0]
        with lock:
            answered.append(ids)
            if sum(1 for a in answered if a != first_ids) == LIMIT - 1:
                others_answered.set()
            if answered.count(first_ids) == 1 and ids == first_ids:
                context.status_code = 429
                context.headers["Retry-After"] = "1"
                return {"code": 55110, "message": "Too many requests"}
        return {"code": 0, "message": "success", "data": [
            {"journey_id": int(j), "time_unit": "DAY", "error_code": 0, "detail": [
                {"time": "2026-06-01", "entry_count": 1, "conversion_count": 0, "completion_count": 0,
                 "early_exit_count": 0, "in_progress_count": 0}]} for j in ids.split(",")]}

    def sleep(seconds: float) -> None:  # the backoff of call 0 lasts until the others ran
        assert others_answered.wait(TIMEOUT), f"only {len(answered)} answers during the backoff"

    hook.sleep = sleep
    requests_mock.get(JOURNEY_URL, json=answer)
    stream = hook.iter_stats("journey", list(range(1, 100 * n + 1)), "DAY", "2026-06-01", "2026-06-01")
    assert [row["journey_id"] for row in stream] == list(range(1, 100 * n + 1))
    assert (stream.calls_done, stream.requests, stream.errors) == (n, n + 1, [])
    # While call 0 slept, LIMIT - 1 later calls were answered (not only WIDTH - 1).
    retry = answered.index(first_ids, answered.index(first_ids) + 1)
    assert sum(1 for ids in answered[:retry] if ids != first_ids) >= LIMIT - 1
