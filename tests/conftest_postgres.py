"""A real PostgreSQL server for the tests: Debian's binaries, a private data folder, 127.0.0.1.

``postgres_server`` (session scope) runs ``initdb`` into a fresh temporary folder, starts
``postgres`` on a free port of 127.0.0.1 only (its Unix socket in that folder, password
authentication with a random password), and at the end of the session stops exactly that
server (``pg_ctl stop``, then its PID from ``postmaster.pid`` if it did not go) and removes the
folder. As ``scripts/stack.sh`` does: PostgreSQL's tools refuse to run as root, so as root they
run as the ``postgres`` user. Without PostgreSQL installed the tests that need it are skipped,
unless ``ENGAGELAB_REQUIRE_POSTGRES=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` (Debian's layout)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if os.access(Path(d) / "initdb", os.X_OK):
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server and how to reach it."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    pid: int

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow Connection (JSON form) of type ``postgres`` for this server."""
        conn: dict[str, Any] = {"conn_type": "postgres", "host": self.host, "port": self.port,
                                "login": self.user, "password": self.password, "schema": self.dbname}
        if extra:
            conn["extra"] = extra
        return conn

    def env(self, conn_id: str) -> dict[str, str]:
        """``AIRFLOW_CONN_<CONN_ID>`` for a process that should reach this server."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection())}

    def connect(self) -> Any:
        """A psycopg2 connection (autocommit) for the tests' own queries."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=self.dbname)
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement on a fresh connection; its rows (empty for statements without)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """Start a private server (see the module); stop it and remove its folder on exit."""
    bindir = pg_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
    base = Path(tempfile.mkdtemp(prefix="engagelab-pg-"))
    data, sock, log = base / "data", base / "sock", base / "server.log"
    password = secrets.token_hex(16)
    pid = 0
    try:
        base.chmod(0o755)  # the postgres user must reach its data folder
        sock.mkdir()
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (base, sock, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            _as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                       "--locale=C.UTF-8", "--auth=scram-sha-256", f"--pwfile={pwfile}"]),
            check=True, capture_output=True, text=True, timeout=120,
        )
        pwfile.unlink()
        port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sock} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        start = subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "start", "-D", str(data), "-w", "-t", "60", "-l", str(log),
                       "-o", options]),
            capture_output=True, text=True, timeout=120,
        )
        if start.returncode != 0:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {start.stdout}{start.stderr}{tail}")
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield PostgresServer("127.0.0.1", port, "postgres", password, "postgres", pid)
    finally:
        if pid:
            subprocess.run(_as_owner([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w",
                                      "-t", "30"]), capture_output=True, timeout=60)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)  # still there: stop exactly that process
                os.kill(pid, signal.SIGQUIT)
                time.sleep(1)
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL on 127.0.0.1 for the whole session (see the module)."""
    pytest.importorskip("psycopg2")
    if pg_bindir() is None:
        if os.environ.get("ENGAGELAB_REQUIRE_POSTGRES") == "1":
            pytest.fail("ENGAGELAB_REQUIRE_POSTGRES=1 but PostgreSQL is not installed "
                        "(bash scripts/ci-system-deps.sh installs it)")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    with run_postgres() as server:
        yield server
