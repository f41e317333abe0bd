"""Run real Airflow DAGs (``dag.test()``) in a temporary AIRFLOW_HOME, for end-to-end tests.

Airflow reads its configuration and opens its metadata database when it is first imported,
which in a pytest session happens long before any fixture runs. So each DAG run happens in a
fresh Python subprocess whose environment points at a private AIRFLOW_HOME with a SQLite
database and a DAGs folder (in Airflow 3.3 ``dag.test()`` needs the DAG file inside
``[core] dags_folder``). ``airflow db migrate`` runs once per pytest session
(``airflow_db_template``); every test gets its own home with a copy of that database.

``tests/conftest.py`` makes its fixtures available to every test directory. In a test::

    def test_daily(airflow_runner, sandbox_env):
        airflow_runner.add_dag_file(pathlib.Path("example_dags/daily.py"))   # or add_dag_source()
        result = airflow_runner.run("engagelab_daily", logical_date="2026-06-02T00:00:00+00:00",
                                    env=sandbox_env)
        assert result.state == "success"
        result.xcom("fetch")            # return value of a task (map_index=-1), or
        result.xcoms[("fetch", 0)]      # of one mapped instance
        result.task_states              # {(task_id, map_index): "success", ...}
        result.asset_events             # [{"uri", "task_id", "map_index", "extra"}, ...]

``airflow_home`` (function scope) is this test's home (``airflow.db``, ``dags``, ``logs``);
``airflow_runner`` runs DAGs in it. ``run(..., runs=[...])`` runs several ``dag.test()`` calls
in one subprocess (saves Airflow's start-up, ~10 s, per extra run). To act while a run is
under way (change the sandbox while a sensor waits), ``start()`` it instead::

    run = airflow_runner.start("my_dag", logical_date=..., env=...)
    assert run.wait_for_text("running trigger in line"), run.output[-5000:]
    ...
    run.finish()
    result = run.result(check=False)
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Seconds one subprocess may take before the test fails.
RUN_TIMEOUT = 600

#: Numbers the run spec files of a session (one per ``start()``).
_SPEC_NUMBERS = itertools.count()

#: Airflow's ``dag.test()`` harness (``InProcessSupervisorComms.send``) echoing, at DEBUG, the
#: MaskSecret(value=...) message by which a secret is *registered* with the masker. Only
#: ``dag.test()`` logs it (a worker's supervisor does not): not a provider leak.
DAG_TEST_MASK_ECHO = re.compile(
    r"\[debug\s*\] Sending request\s+(loc=supervisor\.py:\d+ )?msg=MaskSecret\(value='[^']*', "
    r"name=None, type='MaskSecret'\)$"
)


def without_mask_echo(log: str) -> str:
    """A ``dag.test()`` log without the harness's MaskSecret echo lines (exact matches only)."""
    return "\n".join(line for line in log.splitlines() if not DAG_TEST_MASK_ECHO.search(line))


def _base_env(home: Path, dags: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class DagTestResult:
    """What one ``dag.test()`` left in the metadata database."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[tuple[str, int], str]
    xcoms: dict[tuple[str, int], Any]
    asset_events: list[dict[str, Any]]
    log: str = field(repr=False, default="")

    def xcom(self, task_id: str, map_index: int = -1) -> Any:
        """The ``return_value`` XCom of one task instance."""
        return self.xcoms[(task_id, map_index)]


class AirflowRunner:
    """Runs DAG files with ``dag.test()`` in subprocesses against a private AIRFLOW_HOME."""

    def __init__(self, home: Path, dags_folder: Path, workdir: Path) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.workdir = workdir
        self.dags_folder.mkdir(parents=True, exist_ok=True)

    def add_dag_file(self, path: Path, name: str | None = None) -> Path:
        """Copy a DAG file into the DAGs folder."""
        target = self.dags_folder / (name or Path(path).name)
        shutil.copyfile(path, target)
        return target

    def add_dag_source(self, name: str, source: str) -> Path:
        """Write DAG source code (dedented) into the DAGs folder as ``name``."""
        target = self.dags_folder / name
        target.write_text(textwrap.dedent(source))
        return target

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The subprocess environment (Airflow settings + ``extra``)."""
        env = _base_env(self.home, self.dags_folder)
        env.update(extra or {})
        return env

    def logs_text(self) -> str:
        """The text of every file under the home's ``logs`` folder."""
        logs = self.home / "logs"
        if not logs.exists():
            return ""
        return "".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*")) if p.is_file())

    def run(self, dag_id: str | None = None, *, check: bool = True, **kwargs: Any) -> Any:
        """``dag.test()`` once (returns a :class:`DagTestResult`) or ``runs`` in order (a list).

        Takes what :meth:`start` takes; with ``check`` a run that did not succeed fails the test.
        """
        return self.start(dag_id, **kwargs).result(check=check)

    def start(
        self,
        dag_id: str | None = None,
        *,
        logical_date: str | None = None,
        run_after: str | None = None,
        conf: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        runs: list[Mapping[str, Any]] | None = None,
        partition_runs: bool = False,
    ) -> DagTestRun:
        """Start ``dag.test()`` once or ``runs`` in order; returns at once (a :class:`DagTestRun`).

        Each run is a mapping with ``dag_id`` and optional ``logical_date`` (ISO string; absent:
        ``dag.test()``'s default, now; present and ``None``: a manual run without a logical
        date), ``run_after`` (ISO string) and ``conf``. With ``partition_runs`` (Airflow 3.2+),
        after the runs one scheduler pass turns pending partitioned runs into DAG runs; the
        result list then ends with ``{"dag_id": "__partition_runs__", "runs": [[dag_id, key, run_id]]}``
        (use ``runs=``).
        """
        single = runs is None
        if single:
            if dag_id is None:
                raise ValueError("dag_id or runs is required")
            one: dict[str, Any] = {"dag_id": dag_id, "run_after": run_after, "conf": dict(conf or {})}
            if logical_date is not None:
                one["logical_date"] = logical_date
            runs = [one]
        spec = self.workdir / f"runs-{os.getpid()}-{next(_SPEC_NUMBERS)}.json"
        out = spec.with_suffix(".out.json")
        spec.write_text(json.dumps({"dags_folder": str(self.dags_folder), "runs": runs,
                                    "partition_runs": partition_runs}))
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(spec), str(out)],
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(self.workdir),
        )
        return DagTestRun(proc, out, single)


class DagTestRun:
    """A ``dag.test()`` subprocess started by :meth:`AirflowRunner.start`.

    Its output is collected line by line while it runs (``output``: stdout and stderr in the
    order the lines arrived; ``log``: stdout, then stderr).
    """

    def __init__(self, proc: subprocess.Popen[str], out: Path, single: bool) -> None:
        self.proc = proc
        self.out = out
        self.single = single
        self.lines: list[str] = []
        self._streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True) for name in self._streams
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        stream = getattr(self.proc, name)
        for line in stream:
            self._streams[name].append(line)
            self.lines.append(line)

    @property
    def output(self) -> str:
        """Everything printed so far (stdout and stderr, line by line as it came)."""
        return "".join(self.lines)

    @property
    def log(self) -> str:
        """Everything printed so far: stdout, then stderr."""
        return "".join(self._streams["stdout"]) + "".join(self._streams["stderr"])

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

    def finish(self, timeout: float = RUN_TIMEOUT) -> int:
        """Wait for the exit code (the process is killed after ``timeout``) and all output."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = -9
        for reader in self._readers:
            reader.join(timeout=60)
        return code

    def result(self, check: bool = True, timeout: float = RUN_TIMEOUT) -> Any:
        """:meth:`finish`, then what the run(s) left: like :meth:`AirflowRunner.run`."""
        code = self.finish(timeout)
        log = self.log
        if code != 0 or not self.out.exists():
            raise AssertionError(f"dag.test() subprocess failed (exit {code}):\n{log[-20000:]}")
        raw = json.loads(self.out.read_text())
        results = []
        for item in raw:
            if item["dag_id"] == "__partition_runs__":
                results.append(item)
                continue
            result = DagTestResult(
                dag_id=item["dag_id"],
                run_id=item["run_id"],
                state=item["state"],
                task_states={(t, int(m)): s for t, m, s in item["task_states"]},
                xcoms={(t, int(m)): v for t, m, v in item["xcoms"]},
                asset_events=item["asset_events"],
                log=log,
            )
            if check and result.state != "success":
                raise AssertionError(
                    f"DAG {result.dag_id} ended {result.state}: {result.task_states}\n{log[-20000:]}"
                )
            results.append(result)
        return results[0] if self.single else results


@pytest.fixture(scope="session")
def airflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite metadata database, made once per session (tests get copies)."""
    home = tmp_path_factory.mktemp("airflow-template")
    dags = home / "dags"
    dags.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=_base_env(home, dags),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=str(home),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}")
    return home / "airflow.db"


@pytest.fixture
def airflow_home(tmp_path_factory: pytest.TempPathFactory, airflow_db_template: Path) -> Path:
    """This test's AIRFLOW_HOME: a copy of the migrated database, an empty ``dags`` folder."""
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    shutil.copyfile(airflow_db_template, home / "airflow.db")
    return home


@pytest.fixture
def airflow_runner(airflow_home: Path, tmp_path: Path) -> AirflowRunner:
    """An :class:`AirflowRunner` for this test's ``airflow_home`` (files it writes: ``tmp_path``)."""
    return AirflowRunner(airflow_home, airflow_home / "dags", tmp_path)


# ------------------------------------------------------------------------------ subprocess side


def _child(spec_path: str, out_path: str) -> None:  # pragma: no cover - runs in the subprocess
    from datetime import datetime

    from airflow.models.asset import AssetEvent
    from airflow.models.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    spec = json.loads(Path(spec_path).read_text())
    bag = DagBag(dag_folder=spec["dags_folder"])
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    if hasattr(bag, "sync_to_db"):
        # Airflow 3.0: dag.test() does not write the DAGs to the database itself, so their
        # Assets would be unknown ("inactive assets in its outlets"); 3.1+ syncs in dag.test().
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        DagBundlesManager().sync_bundles_to_db()
        bag.sync_to_db("dags-folder", None)
    results = []
    for run in spec["runs"]:
        dag = bag.get_dag(run["dag_id"])
        if dag is None:
            raise SystemExit(f"DAG {run['dag_id']!r} not found in {spec['dags_folder']}")
        kwargs: dict[str, Any] = {}
        if "logical_date" in run:  # present and None: a run without a logical date
            value = run["logical_date"]
            kwargs["logical_date"] = datetime.fromisoformat(value) if value else None
        if run.get("run_after"):
            kwargs["run_after"] = datetime.fromisoformat(run["run_after"])
        if run.get("conf"):
            kwargs["run_conf"] = run["conf"]
        with create_session() as session:
            before = {e.id for e in session.query(AssetEvent)}
        dag_run = dag.test(**kwargs)
        with create_session() as session:
            tis = session.query(TaskInstance).filter(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id
            )
            task_states = [
                [ti.task_id, ti.map_index, str(getattr(ti.state, "value", ti.state))] for ti in tis
            ]
            xcoms = []
            for x in session.query(XComModel).filter(
                XComModel.dag_id == dag.dag_id, XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            ):
                value = x.value
                if isinstance(value, (bytes, str)):
                    try:
                        value = json.loads(value)
                    except ValueError:
                        pass
                xcoms.append([x.task_id, x.map_index, value])
            events = [
                {"uri": e.asset.uri, "task_id": e.source_task_id, "map_index": e.source_map_index,
                 "extra": e.extra, "partition_key": getattr(e, "partition_key", None)}
                for e in session.query(AssetEvent)
                if e.id not in before
            ]
        results.append(
            {
                "dag_id": dag.dag_id,
                "run_id": dag_run.run_id,
                "state": str(getattr(dag_run.state, "value", dag_run.state)),
                "task_states": task_states,
                "xcoms": xcoms,
                "asset_events": events,
            }
        )
    if spec.get("partition_runs"):
        results.append(_partition_runs())
    Path(out_path).write_text(json.dumps(results, default=str))


def _partition_runs() -> dict[str, Any]:  # pragma: no cover - runs in the subprocess
    """What one scheduler pass makes of the pending partitioned runs (Airflow 3.2+): the
    scheduler's own ``_create_dagruns_for_partitioned_asset_dags``, without a scheduler loop.
    Reported as a pseudo-result ``{"dag_id": "__partition_runs__", "runs": [[dag_id, key, run_id]]}``."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        before = {r.id for r in session.query(DagRun)}
        SchedulerJobRunner(job=Job())._create_dagruns_for_partitioned_asset_dags(session)
        session.flush()
        runs = [[r.dag_id, r.partition_key, r.run_id] for r in session.query(DagRun) if r.id not in before]
    return {"dag_id": "__partition_runs__", "run_id": "", "state": "success", "task_states": [],
            "xcoms": [], "asset_events": [], "runs": sorted(runs)}


if __name__ == "__main__":  # pragma: no cover
    _child(sys.argv[1], sys.argv[2])
