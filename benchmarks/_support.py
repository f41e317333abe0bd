"""Shared helpers of the benchmarks: a sandbox in its own process, connections, call counts.

The sandbox runs as ``python -m airflow_provider_engagelab.testing.sandbox`` in a separate
process, so its CPU (answer generation) and its caches (memory) never count against the
client being measured; it is driven over its loopback-only admin API.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

#: Repository root (``benchmarks/..``).
ROOT = Path(__file__).resolve().parent.parent

#: Data of the sandbox exists before this instant (fixed, so every run sees the same data).
AVAILABLE_THROUGH = "2026-01-01T00:00:00+00:00"

#: The sandbox's endpoints, per stats type.
ENDPOINTS = {
    "journey": "/v1/stats/journey",
    "message": "/v1/stats/journey/message",
    "webhook": "/v1/stats/journey/webhook",
}


def expected_calls(ids: int, first: date, last: date) -> int:
    """The fewest calls for one stats type: ``ceil(ids/100) x ceil(days/31)``."""
    days = (last - first).days + 1
    return math.ceil(ids / 100) * math.ceil(days / 31)


class SandboxProcess:
    """The sandbox CLI in a child process; ``with SandboxProcess(latency=0.1) as sb: sb.url``.

    Keyword arguments are sandbox settings (``rate_limit``, ``latency``, ...), applied through
    ``POST /_admin/config`` once it is up.
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = {"available_through": AVAILABLE_THROUGH, **settings}
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SandboxProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_engagelab.testing.sandbox", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"the sandbox did not start (first line: {line!r})")
        self.url = line
        self.configure(**self.settings)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int:
        """The sandbox process id."""
        assert self._proc is not None
        return self._proc.pid

    def _admin(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change sandbox settings (``rate_limit``, ``latency`` ...); refills the rate bucket."""
        return self._admin("/_admin/config", settings)

    def reset(self) -> None:
        """Zero the counters, drop scripted faults and refill the rate limiter's bucket."""
        self._admin("/_admin/reset", {})

    def counters(self) -> dict[str, Any]:
        """The request counters (without the request log)."""
        counters = self._admin("/_admin/counters")
        counters.pop("log", None)
        return counters

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow Connection (JSON form) for this sandbox with the given Extra."""
        conn: dict[str, Any] = {
            "conn_type": "engagelab",
            "host": self.url,
            "login": "sandbox-key",
            "password": "sandbox-secret",
        }
        if extra:
            conn["extra"] = extra
        return conn


def set_connection(conn_id: str, conn: Mapping[str, Any], env: dict[str, str] | None = None) -> None:
    """Point ``AIRFLOW_CONN_<CONN_ID>`` at ``conn`` (JSON form) in ``env`` (default: this process)."""
    target = os.environ if env is None else env
    target[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(conn))


def count_check(
    counters: Mapping[str, Any], stats_types: Iterable[str], ids: int, first: date, last: date
) -> dict[str, Any]:
    """Compare the sandbox's per-endpoint counts with the fewest-calls formula.

    Requests answered 429 are retries, not planned calls: they are reported apart and taken
    off before the comparison.
    """
    per_call = expected_calls(ids, first, last)
    by_endpoint = counters.get("by_endpoint", {})
    rate_limited = int(counters.get("rate_limited", 0))
    seen = {stype: int(by_endpoint.get(ENDPOINTS[stype], 0)) for stype in stats_types}
    total = sum(seen.values())
    return {
        "expected_per_type": per_call,
        "seen_per_type": seen,
        "requests": total,
        "rate_limited": rate_limited,
        "ok": all(count >= per_call for count in seen.values())
        and total - rate_limited == per_call * len(seen),
    }


def memory_child(sb: SandboxProcess, spec: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Run ``_memory_child.py`` with ``spec`` in a fresh process (``env``), against ``sb``.

    Its output goes to a temporary folder, removed afterwards; the result carries the
    sandbox's counters of the run.
    """
    out = tempfile.mkdtemp(prefix="engagelab-bench-mem-")
    try:
        sb.reset()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("_memory_child.py")),
             json.dumps({**spec, "output_dir": out})],
            env=dict(env), capture_output=True, text=True, cwd=str(ROOT), check=False,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"memory run {dict(spec)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        result["counters"] = sb.counters()
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)
