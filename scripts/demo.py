"""``make demo``: run the example daily DAG end to end and show what it wrote.

Against the bundled sandbox API by default; against the real EngageLab API when
``ENGAGELAB_API_KEY`` and ``ENGAGELAB_API_SECRET`` are set (then ``ENGAGELAB_JOURNEY_IDS``
names your journeys, and ``ENGAGELAB_HOST`` may change the API host).

It uses an isolated ``AIRFLOW_HOME`` (``.airflow-demo/``, SQLite, no Airflow example DAGs),
runs ``airflow dags test example_engagelab_daily <today>`` (the run covering yesterday) and
writes files under ``demo-output/``. The sandbox is stopped also when the DAG fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from airflow_provider_engagelab.testing.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
#: where the demo writes; ENGAGELAB_DEMO_DIR moves it (the tests use a temporary folder)
WORKDIR = Path(os.environ.get("ENGAGELAB_DEMO_DIR") or ROOT)
OUTPUT = WORKDIR / "demo-output"
HOME = WORKDIR / ".airflow-demo"
DAG_ID = "example_engagelab_daily"


def _airflow(env: dict[str, str], *args: str, quiet: bool = False) -> int:
    cmd = [sys.executable, "-m", "airflow", *args]
    if quiet:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
        return done.returncode
    return subprocess.run(cmd, env=env).returncode


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def report(output: Path) -> int:
    """Print a table of the files written and the first rows of each stats type."""
    files = sorted(p for p in output.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.name != "_engagelab_manifest.json")  # the sink's bookkeeping, not rows
    if not files:
        print("No files were written.")
        return 0
    print(f"\nWrote {len(files)} files under {output}:\n")
    width = max(len(str(p.relative_to(output))) for p in files)
    print(f"  {'file'.ljust(width)}  rows")
    totals: dict[str, int] = {}
    firsts: dict[str, list[dict]] = {}
    for path in files:
        rows = _rows(path)
        stats_type = path.relative_to(output).parts[0]
        totals[stats_type] = totals.get(stats_type, 0) + len(rows)
        firsts.setdefault(stats_type, [])
        firsts[stats_type].extend(rows[: 2 - len(firsts[stats_type])])
        print(f"  {str(path.relative_to(output)).ljust(width)}  {len(rows):>4}")
    print("\nRows per stats type: " + ", ".join(f"{k}={v}" for k, v in totals.items()))
    for stats_type, rows in firsts.items():
        print(f"\nFirst rows of {stats_type}:")
        for row in rows:
            print("  " + json.dumps(row))
    return sum(totals.values())


def main() -> int:
    real = bool(os.environ.get("ENGAGELAB_API_KEY") and os.environ.get("ENGAGELAB_API_SECRET"))
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    HOME.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        "ENGAGELAB_OUTPUT_PATH": OUTPUT.as_uri(),
    })
    sandbox = None
    try:
        if real:
            conn = {"conn_type": "engagelab",
                    "host": os.environ.get("ENGAGELAB_HOST", "https://ma-api.engagelab.com"),
                    "login": os.environ["ENGAGELAB_API_KEY"],
                    "password": os.environ["ENGAGELAB_API_SECRET"]}
            if not os.environ.get("ENGAGELAB_JOURNEY_IDS"):
                print("Set ENGAGELAB_JOURNEY_IDS to your journey IDs (e.g. 123,456) for the real API.")
                return 2
            print(f"Using the real EngageLab API at {conn['host']}")
        else:
            sandbox = Sandbox().start()
            conn = sandbox.airflow_connection()
            env.setdefault("ENGAGELAB_JOURNEY_IDS", "101,102,103")
            print(f"Sandbox API listening on {sandbox.url}")
        env["AIRFLOW_CONN_ENGAGELAB_DEFAULT"] = json.dumps(conn)
        print(f"Airflow home: {HOME} (SQLite); migrating the metadata database ...")
        if _airflow(env, "db", "migrate", quiet=True):
            print("airflow db migrate failed")
            return 1
        # Airflow 3.0's `dags test` needs the DAG's assets in the database (harmless on 3.3).
        if _airflow(env, "dags", "reserialize", quiet=True):
            print("airflow dags reserialize failed")
            return 1
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        print(f"Running: airflow dags test {DAG_ID} {today}  (the run covering yesterday)")
        code = _airflow(env, "dags", "test", DAG_ID, today)
        total = report(OUTPUT)
        if code:
            print(f"\nThe DAG run failed (exit code {code}); see the log above.")
            return code
        if sandbox is not None:
            print(f"\nSandbox answered {sandbox.counters()['requests']} API requests.")
        print(f"\nDemo finished: {total} rows written.")
        return 0
    finally:
        if sandbox is not None:
            sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())
