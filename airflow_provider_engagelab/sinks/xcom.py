"""The XCom sink: the rows themselves, with a size guard before anything reaches Airflow."""

from __future__ import annotations

from typing import Any

from airflow_provider_engagelab.core.parsing import ParsedResponse
from airflow_provider_engagelab.exceptions import EngageLabXComTooLargeError


class XComSink:
    """Collect the rows for XCom, failing as soon as there are more than ``max_rows``.

    The check runs while the answers arrive, so an oversized result is never built up in
    memory nor pushed to XCom (it would be stored in Airflow's metadata database).
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows: list[dict[str, Any]] = []

    def stage(self, parsed: ParsedResponse) -> None:
        if len(self.rows) + parsed.row_count > self.max_rows:
            raise EngageLabXComTooLargeError(
                f"Invalid output_path=None: the result has more than max_xcom_rows={self.max_rows} "
                "rows, too many for XCom (they would be stored in Airflow's metadata database); set "
                "output_path (e.g. 's3://bucket/engagelab' or 'file:///data/engagelab') to write "
                "them to files, or raise max_xcom_rows"
            )
        self.rows.extend(parsed.rows)

    def commit(self) -> list[dict[str, Any]]:
        return self.rows

    def abort(self) -> None:
        self.rows = []
