"""Fixtures shared by every test directory: real Airflow runs (``dag.test()`` in a subprocess
with a temporary AIRFLOW_HOME) from :mod:`conftest_airflow`."""

from conftest_airflow import airflow_db_template, airflow_home, airflow_runner  # noqa: F401
