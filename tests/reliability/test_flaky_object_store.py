"""A flaky object store: 20 % of uploads answered 503 SlowDown, 5 % of uploads cut off half-way,
200 ms on every request, between the operators and moto's S3 server.

The message statistics, DAY and HOUR, 150 journeys x 40 days, in all three formats, either
succeed with output byte-identical to a fault-free run, or fail clearly, and then the retry
(Airflow's: a rerun of the same task) succeeds byte-identically. No partial object, lock or
temporary object is ever left. Faults are chosen per request by a seeded hash of the request
(method, key, how many times that key was sent), so a failing run can be reproduced: the seed
is printed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("airflow.providers.amazon.aws.fs.s3", reason="needs apache-airflow-providers-amazon")
aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from airflow_provider_engagelab.exceptions import EngageLabError  # noqa: E402
from airflow_provider_engagelab.operators.engagelab import EngageLabStatsOperator  # noqa: E402
from airflow_provider_engagelab.testing.sandbox import Sandbox  # noqa: E402

SEED = 20261201
IDS = list(range(1, 151))
START, END = "2026-03-01", "2026-04-09"  # 40 days
SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")


class FlakyS3Proxy:
    """A reverse proxy in front of an S3 endpoint that fails uploads by a seeded rule."""

    def __init__(self, upstream: str, seed: int, slowdown: float = 0.2, reset: float = 0.05,
                 latency: float = 0.2) -> None:
        self.upstream, self.seed = upstream.rstrip("/"), seed
        self.slowdown, self.reset, self.latency = slowdown, reset, latency
        self.counts: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.enabled = True

    def _fault(self, method: str, path: str) -> str | None:
        if not self.enabled or method not in ("PUT", "POST"):
            return None
        with self._lock:
            self._sent[f"{method} {path}"] += 1
            nth = self._sent[f"{method} {path}"]
        digest = hashlib.sha256(f"{self.seed}|{method}|{path}|{nth}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw < self.slowdown:
            return "503"
        if draw < self.slowdown + self.reset:
            return "reset"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.latency)
        fault = self._fault(request.method, request.path)
        with self._lock:
            self.counts[f"{request.method} requests"] += 1
        if fault == "503":
            await request.read()
            with self._lock:
                self.counts["503 SlowDown"] += 1
            return web.Response(status=503, body=SLOWDOWN, content_type="application/xml")
        if fault == "reset":
            await request.content.read(max(1, (request.content_length or 2) // 2))  # half the upload
            with self._lock:
                self.counts["connection reset mid-upload"] += 1
            request.transport.abort()
            return web.Response(status=500)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body, allow_redirects=False) as upstream:
            payload = await upstream.read()
            hop = ("content-length", "transfer-encoding", "content-encoding", "connection")
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in hop}
            return web.Response(status=upstream.status, body=payload, headers=out)

    def start(self) -> str:
        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

            async def up() -> None:
                self._session = aiohttp.ClientSession(auto_decompress=False)
                app = web.Application(client_max_size=1024**3)
                app.router.add_route("*", "/{tail:.*}", self._handle)
                self._runner = web.AppRunner(app, access_log=None)
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                await site.start()
                self.port = site._server.sockets[0].getsockname()[1]
                self._ready.set()

            self._loop.run_until_complete(up())
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(30)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        async def down() -> None:
            await self._session.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@pytest.fixture(scope="module")
def sb():
    with Sandbox(available_through="2026-07-01") as sandbox:
        yield sandbox


@pytest.fixture
def proxy(s3_bucket, monkeypatch, sb):
    flaky = FlakyS3Proxy(s3_bucket.endpoint, SEED)
    url = flaky.start()
    print(f"flaky S3 proxy {url} -> {s3_bucket.endpoint}, seed {SEED}")
    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": url, "region_name": "us-east-1"}}
    # A conn id per proxy: Airflow's object storage caches one file system per conn id in the
    # process, so a second test under one id would reach the first test's (stopped) proxy.
    flaky.conn_id = f"aws_flaky_{flaky.port}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{flaky.conn_id.upper()}", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_ENGAGELAB_DEFAULT", json.dumps(sb.airflow_connection()))
    yield flaky
    flaky.stop()


def run(bucket, prefix: str, conn_id: str, fmt: str, unit: str) -> dict[str, Any]:
    return EngageLabStatsOperator(
        task_id="t", stats_type="message", journey_ids=IDS, time_unit=unit, start_time=START,
        end_time=END, output_path=f"s3://{bucket.name}/{prefix}", output_conn_id=conn_id,
        output_format=fmt,
    ).execute({})


def data(bucket, prefix: str) -> dict[str, bytes]:
    return {k[len(prefix):]: v for k, v in bucket.objects(prefix).items()}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_uploads_through_a_flaky_store_end_byte_identical(s3_bucket, proxy, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    proxy.enabled = False
    for unit in ("DAY", "HOUR"):
        run(s3_bucket, "clean/", s3_bucket.conn_id, fmt, unit)
    clean = data(s3_bucket, "clean/")
    assert len([k for k in clean if "/part-" in k]) == 2 * 40

    proxy.enabled = True
    attempts, errors = Counter(), []
    for unit in ("DAY", "HOUR"):
        for attempt in range(1, 6):  # Airflow's retries of the failed task
            attempts[unit] = attempt
            try:
                run(s3_bucket, "flaky/", proxy.conn_id, fmt, unit)
                break
            except EngageLabError as exc:  # a clear error naming what failed, then the retry
                assert "could not" in str(exc) and "s3://" in str(exc), str(exc)
                errors.append(f"{unit} attempt {attempt}: {exc}")
        else:
            pytest.fail(f"{unit}: five task attempts did not get through the flaky store: {errors}")
    flaky = data(s3_bucket, "flaky/")
    print(f"seed {SEED}, {fmt}: {dict(proxy.counts)}; task attempts {dict(attempts)}")
    assert proxy.counts["503 SlowDown"] > 0 and proxy.counts["connection reset mid-upload"] > 0
    assert sorted(flaky) == sorted(clean)  # no partial, lock or temporary object listed
    assert flaky == clean  # byte-identical
