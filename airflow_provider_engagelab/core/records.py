"""What parsing produces: the rows of one answer and its per-journey errors (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from airflow_provider_engagelab.core.contract import CODE_MEANINGS
from airflow_provider_engagelab.core.planning import PlannedCall


@dataclass(frozen=True)
class JourneyError:
    """A journey the API could not report on, inside a successful call."""

    journey_id: int
    error_code: int

    @property
    def meaning(self) -> str:
        """What the code means."""
        return CODE_MEANINGS.get(self.error_code, "unknown error code")

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for XCom and logs."""
        return {"journey_id": self.journey_id, "error_code": self.error_code, "meaning": self.meaning}


class ParsedResponse:
    """Rows and per-journey errors of one successful call.

    The rows are typed records (``records``: ``msgspec`` structs whose fields are the
    ``COLUMNS`` of the call's stats type, then the fields the contract does not name that the
    decoder has met, ``UNSET`` where a row lacks one), or flat dicts for an answer built by hand.
    ``rows`` gives flat dicts either way.

    :param rows: flat rows (an answer built by hand).
    :param errors: per-journey errors of the call.
    :param records: typed records (what the parser produces); ``rows`` is built on first access.
    :param call: the request this answers (its journeys and window).
    :param ok_journeys: the journeys the call answered with ``error_code`` 0: the ones whose
        statistics over the call's window are complete in the rows (possibly without a row).
    :param extra_fields: the fields the contract does not name that this answer's rows carry.

    :meth:`release` drops the rows (what a stream does once its consumer moved on to the next
    answer); reading them afterwards raises ``RuntimeError``.
    """

    __slots__ = ("_records", "_released", "_rows", "call", "errors", "extra_fields", "ok_journeys")

    def __init__(
        self,
        rows: list[dict[str, Any]] | None = None,
        errors: list[JourneyError] | None = None,
        *,
        records: list[msgspec.Struct] | None = None,
        call: PlannedCall | None = None,
        ok_journeys: frozenset[int] = frozenset(),
        extra_fields: tuple[str, ...] = (),
    ) -> None:
        self._rows = rows if rows is not None or records is not None else []
        self.errors: list[JourneyError] = errors if errors is not None else []
        self._records = records
        self._released = False
        self.call = call
        self.ok_journeys = ok_journeys
        self.extra_fields = extra_fields

    def _check_kept(self) -> None:
        if self._released:
            raise RuntimeError(
                "the rows of this answer were released when its stream moved on to the next "
                "answer: stage or copy them before asking for the next one"
            )

    @property
    def records(self) -> list[msgspec.Struct] | None:
        """The typed records (``None`` for an answer built from flat dicts)."""
        self._check_kept()
        return self._records

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row as a flat dict (built from ``records`` on first access)."""
        self._check_kept()
        if self._rows is None:
            self._rows = msgspec.to_builtins(self._records)
        return self._rows

    @property
    def row_count(self) -> int:
        """Number of rows (without building dicts)."""
        return len(self.records) if self.records is not None else len(self.rows)

    @property
    def released(self) -> bool:
        """Whether :meth:`release` dropped the rows."""
        return self._released

    def release(self) -> None:
        """Drop the rows (records and dicts), keeping the errors, the call and the journeys."""
        self._records = None
        self._rows = None
        self._released = True

    def drop_extra_fields(self) -> None:
        """Forget the values of the fields the contract does not name (rows keep ``COLUMNS``)."""
        if not self.extra_fields:
            return
        if self.records is not None:
            unset = msgspec.UNSET
            for name in self.extra_fields:
                for record in self.records:
                    setattr(record, name, unset)
        if self._rows is not None:
            for row in self._rows:
                for name in self.extra_fields:
                    row.pop(name, None)

    def __repr__(self) -> str:
        rows = "released" if self._released else self.row_count
        return f"ParsedResponse(rows={rows}, errors={self.errors!r})"
