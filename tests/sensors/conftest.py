"""Fixtures of the sensor/trigger tests: a sandbox connection and a throwaway Airflow home.

``airflow_home`` gives each test its own ``AIRFLOW_HOME`` (SQLite metadata database copied
from one migrated once per session, its own DAGs folder) and runs a DAG file's
``dag.test()`` in a subprocess, so the Airflow configuration of the pytest process is never
touched. The DAG file must end with :func:`dag_test_main` (``airflow_home.main_block(...)``;
it calls ``dag.test()`` with the logical date from the environment and exits 0 only when the
run succeeded).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sensor_helpers import KEY, SECRET, set_connection

from airflow_provider_engagelab.testing.sandbox import Sandbox


# ---------------------------------------------------------------------------- sandbox
@pytest.fixture
def sandbox_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox with a recognisable secret; ``AIRFLOW_CONN_ENGAGELAB_DEFAULT`` points at it.

    Retries stay small (2 retries, waits capped at 0.2 s) so transient faults are cheap.
    """
    with Sandbox(api_key=KEY, api_secret=SECRET) as sb:
        set_connection(monkeypatch, sb)
        yield sb


# ---------------------------------------------------------------------------- Airflow home
def dag_test_main(dag_var: str = "dag") -> str:
    """Source to append to a DAG file: run ``dag.test()`` when executed as a script."""
    return textwrap.dedent(f"""

        if __name__ == "__main__":
            import os as _os
            import sys as _sys
            from datetime import datetime as _dt

            _run = {dag_var}.test(logical_date=_dt.fromisoformat(_os.environ["DAG_TEST_LOGICAL_DATE"]))
            print("DAG_TEST_STATE=" + str(getattr(_run.state, "value", _run.state)), flush=True)
            _sys.exit(0 if str(getattr(_run.state, "value", _run.state)) == "success" else 1)
    """)


@dataclass
class DagTestRun:
    """A ``dag.test()`` subprocess whose output is collected line by line."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        """Everything printed so far (stdout and stderr)."""
        return "".join(self.lines)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 120.0) -> bool:
        """Poll ``condition`` until it holds, the process ends or ``timeout`` passes."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            if self.proc.poll() is not None:
                return condition()
            time.sleep(0.05)
        return False

    def wait_for_text(self, text: str, timeout: float = 120.0) -> bool:
        """Wait until ``text`` appears in the output."""
        return self.wait_until(lambda: text in self.output, timeout)

    def finish(self, timeout: float = 240.0) -> int:
        """Wait for the exit code (the process is killed after ``timeout``)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = -9
        if self._reader is not None:
            self._reader.join(timeout=10)
        return code


@dataclass
class AirflowHome:
    """An isolated Airflow home: SQLite database, DAGs folder, environment for subprocesses."""

    path: Path
    env: dict[str, str]

    @property
    def dags_folder(self) -> Path:
        """The configured ``[core] dags_folder`` (dag.test() needs the DAG file inside it)."""
        return self.path / "dags"

    main_block = staticmethod(dag_test_main)

    def write_dag(self, name: str, source: str) -> Path:
        """Write a DAG file into the DAGs folder; returns its path."""
        target = self.dags_folder / name
        target.write_text(textwrap.dedent(source))
        return target

    def start_dag_test(self, dag_file: Path, logical_date: str, **env: str) -> DagTestRun:
        """Start ``python <dag_file>`` (which ends with :func:`dag_test_main`)."""
        full_env = {**self.env, "DAG_TEST_LOGICAL_DATE": logical_date, **env}
        proc = subprocess.Popen(
            [sys.executable, str(dag_file)], env=full_env, cwd=self.path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        return DagTestRun(proc)

    def logs_text(self) -> str:
        """The text of every file under the home's ``logs`` folder."""
        logs = self.path / "logs"
        if not logs.exists():
            return ""
        return "".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*")) if p.is_file())


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture(scope="session")
def _airflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite metadata database, made once per session."""
    home = tmp_path_factory.mktemp("airflow-template")
    (home / "dags").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=_base_env(home),
        capture_output=True, text=True, timeout=600,
    )
    if done.returncode:
        pytest.fail(f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return home / "airflow.db"


@pytest.fixture
def airflow_home(tmp_path: Path, _airflow_db_template: Path) -> AirflowHome:
    """A fresh Airflow home for this test (a copy of the migrated database)."""
    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    shutil.copy(_airflow_db_template, home / "airflow.db")
    return AirflowHome(home, _base_env(home))
