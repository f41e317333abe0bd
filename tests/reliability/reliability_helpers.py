"""Helpers shared by the reliability suite (a plain module: test files import it by name).

The suite proves the guarantees of issue 6 (faults, reruns, bad input, secrets) against the
local sandbox API over real HTTP, with real files; see docs/guarantees.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox
from tests.conftest_airflow import DAG_TEST_MASK_ECHO, without_mask_echo  # noqa: F401

UTC = timezone.utc

#: Recognisable credentials: any appearance of the secret or its Basic token is a leak.
KEY = "rel-key-4f2a"
SECRET = "Rel1ability-S3CRET-c0ffee-must-never-show"
TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()

#: The sandbox serves data up to this instant: fixed, so no test depends on today's date.
CUTOFF = datetime(2026, 7, 1, tzinfo=UTC)

#: Small, fast retries for most tests (the waits are real but short).
FAST_RETRIES: dict[str, Any] = {"max_retries": 2, "max_retry_wait": 0.05}


def conn_dict(
    sb: Sandbox | str, *, key: str = KEY, secret: str | None = SECRET, **extra: Any
) -> dict[str, Any]:
    """An ``engagelab`` Connection (JSON form) for the sandbox ``sb`` (or a base URL)."""
    host = sb if isinstance(sb, str) else sb.url
    conn: dict[str, Any] = {"conn_type": "engagelab", "host": host, "login": key, "password": secret}
    if extra:
        conn["extra"] = extra
    return conn


def set_conn(monkeypatch: pytest.MonkeyPatch, sb: Sandbox | str, conn_id: str = "engagelab_default",
             **extra: Any) -> dict[str, Any]:
    """Point ``conn_id`` at the sandbox, with the given tuning extras (FAST_RETRIES by default)."""
    conn = conn_dict(sb, **(extra or FAST_RETRIES))
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn


def reset_sandbox(sb: Sandbox) -> None:
    """Back to a well-behaved sandbox: no faults, no latency, no limits, fixed cutoff."""
    sb.clear_faults()
    sb.configure(
        available_through=CUTOFF, missing_journeys=set(), missing_journey_mode="per_journey",
        rate_limit=None, rate_burst=None, send_retry_after=True, retry_after_override=None,
        latency=0.0, failure_rate=0.0, drop_rate=0.0, hang_rate=0.0, hang_seconds=30.0, seed=0,
    )
    sb.reset_counters()


# ---------------------------------------------------------------------------- files
def files_under(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), hidden ones included."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def data_files_under(root: Path) -> dict[str, bytes]:
    """The data files under ``root`` (no manifest, lock or hidden file)."""
    return {name: data for name, data in files_under(root).items()
            if not name.rsplit("/", 1)[-1].startswith(("_", "."))}


def digests_under(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), for large trees."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def stray_files(root: Path) -> list[str]:
    """Temporary, hidden or lock files left behind (``.name.xxx.tmp``, ``*.tmp``, ``.*``,
    ``_engagelab.lock.*``)."""
    return [
        str(p.relative_to(root)) for p in root.rglob("*")
        if p.is_file() and (p.name.startswith((".", "_engagelab.lock.")) or p.name.endswith(".tmp"))
    ]


def read_jsonl_rows(root: Path) -> list[dict[str, Any]]:
    """All rows of every ``*.jsonl`` file under ``root``."""
    rows: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Identity of a row: journey x bucket (x component)."""
    return (row["journey_id"], row["time"], row.get("component_id", 0))


def sort_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in a canonical order (duplicates kept)."""
    return sorted(rows, key=row_key)


# ---------------------------------------------------------------------------- waits
class RecordingSleep:
    """Stands in for a hook's ``sleep``: records every wait, optionally really waits."""

    def __init__(self, real: bool = False) -> None:
        self.waits: list[float] = []
        self.real = real
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
        if self.real and seconds > 0:
            threading.Event().wait(seconds)


def record_hook_sleeps(monkeypatch: pytest.MonkeyPatch, real: bool = True) -> RecordingSleep:
    """Make every ``EngageLabHook`` created from now on wait through one recorder.

    The operators build their hook inside ``execute``; this is how a test sees the waits.
    """
    from airflow_provider_engagelab.hooks.engagelab import EngageLabHook

    recorder = RecordingSleep(real=real)
    original = EngageLabHook.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.sleep = recorder

    monkeypatch.setattr(EngageLabHook, "__init__", init)
    return recorder


# ---------------------------------------------------------------------------- secrets
def leaks(text: str, *secrets: str) -> list[str]:
    """Lines of ``text`` that show the API secret or its Basic token (or other ``secrets``)."""
    needles = [n for n in (SECRET, TOKEN, *secrets) if n]
    return [line for line in text.splitlines() if any(n in line for n in needles)]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOX = re.compile(r"[\u2500-\u257f]")  # box drawing: rich tracebacks frame (and wrap) their text


def plain_text(text: str) -> str:
    """``text`` without colours and frames, whitespace collapsed: a wrapped message reads whole.

    Airflow 3.0 prints task failures as rich tracebacks (with locals), wrapping long values
    across framed lines; search this form too, or a secret split over two lines is missed.
    """
    return " ".join(_BOX.sub(" ", _ANSI.sub("", text)).split())


def exception_texts(exc: BaseException) -> list[str]:
    """str/repr/args of an exception and of every exception chained to it (suppressed too)."""
    import traceback

    texts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        attrs = vars(item) if hasattr(item, "__dict__") else {}
        texts += [str(item), repr(item), repr(getattr(item, "args", ())), repr(attrs)]
        todo += [item.__cause__, item.__context__]
    texts.append("".join(traceback.format_exception(exc)))
    return texts


# ---------------------------------------------------------------------------- a recording HTTP server
class RecordingServer:
    """A local HTTP server that records every request (path + headers) and answers ``respond``.

    ``respond(handler) -> (status, headers, body)``; the default answers 200 with an empty
    JSON envelope.
    """

    def __init__(
        self, respond: Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]] | None = None
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.respond = respond or (lambda h: (200, {"Content-Type": "application/json"},
                                              b'{"code":0,"message":"success","data":[]}'))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append({"path": self.path, "headers": dict(self.headers.items())})
                status, headers, body = outer.respond(self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                         daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def redirecting_server(target: str, status: int = 302) -> Iterator[RecordingServer]:
    """A server that answers every request with a redirect to ``target`` + the same path."""

    def respond(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return status, {"Location": target.rstrip("/") + h.path}, b""

    with RecordingServer(respond) as server:
        yield server
