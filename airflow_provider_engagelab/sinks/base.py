"""The sink interface: where a task's rows go.

An operator fetches through the hook and hands each parsed answer to a sink, then, once every
call succeeded and the journey-error policy passed, asks it to commit; on any failure the
sink is aborted and nothing it staged becomes visible. Each sink owns its commit protocol:
files (:mod:`.files`), XCom (:mod:`.xcom`). No Airflow imports.
"""

from __future__ import annotations

from typing import Any, Protocol

from airflow_provider_engagelab.core.parsing import ParsedResponse


class Sink(Protocol):
    """Stage rows, then commit or abort."""

    def stage(self, parsed: ParsedResponse) -> None:
        """Take the rows of one parsed answer (the hook yields them in plan order)."""

    def commit(self) -> Any:
        """Make everything staged visible; return what the task reports (rows or a summary)."""

    def abort(self) -> None:
        """Drop everything staged; nothing becomes visible. Safe to call after commit."""
