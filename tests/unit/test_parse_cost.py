"""DAG files that use our operators and sensor stay cheap to parse."""

from __future__ import annotations

import json
import subprocess
import sys

# (Not airflow.providers.openlineage: with the provider installed, airflow.sdk loads that package
# itself. The OpenLineage client and our builder of its objects load only when lineage is built.)
HEAVY = ["aiohttp", "requests", "airflow.providers.http.hooks.http", "pyarrow", "s3fs", "openlineage",
         "airflow_provider_engagelab._openlineage"]

CODE = """
import json, sys
heavy = json.loads(sys.argv[1])
import airflow.sdk
assert not [m for m in heavy if m in sys.modules], "airflow.sdk itself loads them: test is moot"
import airflow_provider_engagelab.operators.engagelab
import airflow_provider_engagelab.sensors.engagelab
import airflow_provider_engagelab.transfers.engagelab_to_sql
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def test_operator_and_sensor_modules_do_not_load_heavy_modules():
    out = subprocess.run([sys.executable, "-c", CODE, json.dumps(HEAVY)], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
