"""Tests of airflow_provider_engagelab.testing (a package: its modules import their helpers relatively)."""
