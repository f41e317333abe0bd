"""What a task does with detail fields the contract does not name (``on_schema_change``).

* ``warn`` (default): the known columns are written; each new field is logged once, with the
  journey and time it was first seen in, and reported in the task's summary;
* ``fail``: the task fails at the first answer that has one, before anything is written;
* ``keep``: the fields are written too (JSON lines as they come; CSV and Parquet as extra
  columns after the contract's, see :mod:`airflow_provider_engagelab.sinks.staging`).

Pure: no Airflow imports.
"""

from __future__ import annotations

from typing import Any

import msgspec

from airflow_provider_engagelab.core.options import parse_schema_policy
from airflow_provider_engagelab.core.records import ParsedResponse
from airflow_provider_engagelab.exceptions import EngageLabSchemaChangeError


class SchemaChanges:
    """Apply one task's ``on_schema_change`` policy to each parsed answer, and remember what.

    :param policy: ``warn``, ``fail`` or ``keep``.
    :param stats_type: for messages.
    """

    def __init__(self, policy: str, stats_type: str) -> None:
        self.policy = parse_schema_policy(policy)
        self.stats_type = stats_type
        self.seen: dict[str, dict[str, Any]] = {}

    def _where(self, parsed: ParsedResponse, name: str) -> dict[str, Any]:
        where: dict[str, Any] = {"field": name}
        if parsed.records is not None:
            for record in parsed.records:
                if getattr(record, name, msgspec.UNSET) is not msgspec.UNSET:
                    return {**where, "journey_id": getattr(record, "journey_id", None),
                            "time": getattr(record, "time", None)}
        for row in parsed.rows:
            if name in row:
                return {**where, "journey_id": row.get("journey_id"), "time": row.get("time")}
        return where

    def apply(self, parsed: ParsedResponse) -> list[dict[str, Any]]:
        """Apply the policy to one answer (``warn`` drops the new fields' values); returns the
        fields met for the first time, each with where it was first seen."""
        if not parsed.extra_fields:
            return []
        new = [self._where(parsed, name) for name in parsed.extra_fields if name not in self.seen]
        for item in new:
            self.seen[item["field"]] = item
        if self.policy == "fail":
            names = sorted(parsed.extra_fields)
            first = new[0] if new else self.seen[names[0]]
            raise EngageLabSchemaChangeError(
                f"the API answered {self.stats_type} statistics with detail field(s) the contract does "
                f"not name: {', '.join(names)} (first in journey {first.get('journey_id')}, time "
                f"{first.get('time')!r}); on_schema_change='fail' refuses them before anything is "
                "written. Use on_schema_change='warn' to write the known columns, or 'keep' to add them",
                fields=names,
            )
        if self.policy == "warn":
            parsed.drop_extra_fields()
        return new

    @property
    def fields(self) -> list[str]:
        """Every new field met so far, in the order met."""
        return list(self.seen)

    def report(self) -> list[dict[str, Any]]:
        """JSON-safe list for XCom: each new field with the journey and time it was first seen in."""
        return [dict(item) for item in self.seen.values()]
