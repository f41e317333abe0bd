"""The test suite (a package, so helpers are imported by their package path, e.g.
``tests.conftest_airflow``, never by a bare module name)."""
