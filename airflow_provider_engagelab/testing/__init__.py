"""Testing utilities for ``airflow-provider-engagelab``.

* :mod:`airflow_provider_engagelab.testing.sandbox` -- a local, standard-library-only
  EngageLab-compatible API double (``Sandbox``, ``Fault``; HTTP or HTTPS) plus a CLI
  (``python -m airflow_provider_engagelab.testing.sandbox``); a package of data, faults,
  server, admin and CLI modules.
* :mod:`airflow_provider_engagelab.testing.pytest_plugin` -- the ``engagelab_sandbox``
  pytest fixture; enable it with
  ``pytest_plugins = ["airflow_provider_engagelab.testing.pytest_plugin"]``.

Nothing in this package imports Airflow or the rest of the provider: the sandbox is an
independent model of the upstream API contract.
"""
