"""``python -m airflow_provider_engagelab.testing.sandbox``: see :mod:`.cli`."""

import sys

from airflow_provider_engagelab.testing.sandbox.cli import main

sys.exit(main())
