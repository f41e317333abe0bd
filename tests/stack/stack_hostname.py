"""Worker host names for the distributed stack test (``scripts/stack.sh``).

The two Celery workers of the stack run on one machine, so Airflow's default host name (the
machine's FQDN) would be the same for both and a task instance's ``hostname`` could not tell
which worker ran it. ``scripts/stack.sh`` starts each worker with
``AIRFLOW__CORE__HOSTNAME_CALLABLE=stack_hostname.hostname`` and its own ``STACK_HOSTNAME``, as
if each worker were its own machine.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The worker's name from ``STACK_HOSTNAME``, else the machine's fully qualified name."""
    return os.environ.get("STACK_HOSTNAME") or socket.getfqdn()
