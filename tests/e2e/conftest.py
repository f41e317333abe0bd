"""Fixtures of the end-to-end tests: real Airflow runs of the example DAGs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "engagelab_conftest_airflow"
if _NAME not in sys.modules:  # tests/ is not a package: load the shared helper by path
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).resolve().parents[1] / "conftest_airflow.py"
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)

from engagelab_conftest_airflow import airflow_home, airflow_runner  # noqa: E402, F401
