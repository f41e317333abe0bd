"""What the Airflow UI's Test button sent and got back, and whose failure it was.

Kept apart from the browser test (no selenium import) so the classification is tested on every
machine, with or without Chromium.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The answer of Airflow 3.3.1-3.3.2 to the list's Test button for a connection without a port.
AIRFLOW_PORT_BUG = "The host or port to test differs from the stored connection"
AIRFLOW_PORT_BUG_REF = "apache/airflow#73298"


@dataclass
class UiTestCall:
    """One ``POST /api/v2/connections/test`` the UI made, as seen on the network."""

    status: int
    request: dict[str, Any]
    response: Any
    toast: str

    @property
    def is_airflow_port_bug(self) -> bool:
        """Airflow's own 400 for the list's ``port: 0`` (the hook never ran)."""
        detail = self.response.get("detail") if isinstance(self.response, dict) else self.response
        return self.status == 400 and AIRFLOW_PORT_BUG in str(detail) and self.request.get("port") == 0

    @property
    def hook_ran(self) -> bool:
        """Airflow answered with the hook's verdict (``status``/``message``)."""
        return self.status == 200 and isinstance(self.response, dict) and "status" in self.response
