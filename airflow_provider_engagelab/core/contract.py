"""The upstream API contract as data (``shared/engagelab-ma-stats-api.md``).

Fields and JSON types per stats type, the flat row's columns, the primary key of each stats
type, and what each API code means and which exception it raises. Pure: no Airflow imports.
Everything else (the parser, the encoders, the sinks, the SQL and Delta schemas) reads the
contract from here.
"""

from __future__ import annotations

from airflow_provider_engagelab.core.query import StatsType
from airflow_provider_engagelab.exceptions import (
    EngageLabAuthError,
    EngageLabBadRequestError,
    EngageLabError,
    EngageLabJourneyNotFoundError,
    EngageLabProjectNotFoundError,
    EngageLabRateLimitError,
    EngageLabServerError,
)

#: The JSON kinds of detail fields: a long, a number (int or float), a string.
INT = "int"
NUMBER = "number"
STR = "str"

#: What each API code means, for error messages and per-journey error reports.
CODE_MEANINGS: dict[int, str] = {
    40050: "authorization invalid: check the connection's API Key and API Secret",
    55110: "too many requests: rate limit exceeded",
    40001: "invalid HTTP parameter: a required query parameter is missing or invalid",
    40002: "invalid business parameter: format, enum or type validation failed",
    50034: "project does not exist: the project bound to the API key does not exist",
    -1: "internal server error",
    50202: "journey does not exist or belongs to another project",
    50217: "invalid time range: start_time after end_time, or more than 31 days",
    50219: "the number of journey IDs exceeds 100",
    50220: "invalid time_unit: only HOUR and DAY",
    50221: "invalid journey_id format",
}

#: The exception each API code raises (without a code, the HTTP status decides).
CODE_CLASSES: dict[int, type[EngageLabError]] = {
    40050: EngageLabAuthError,
    55110: EngageLabRateLimitError,
    -1: EngageLabServerError,
    50034: EngageLabProjectNotFoundError,
    50202: EngageLabJourneyNotFoundError,
    40001: EngageLabBadRequestError,
    40002: EngageLabBadRequestError,
    50217: EngageLabBadRequestError,
    50219: EngageLabBadRequestError,
    50220: EngageLabBadRequestError,
    50221: EngageLabBadRequestError,
}

#: Detail fields of each endpoint, in the contract's order, with their JSON kinds.
DETAIL_FIELDS: dict[StatsType, tuple[tuple[str, str], ...]] = {
    StatsType.JOURNEY: (
        ("time", STR),
        ("entry_count", INT),
        ("conversion_count", INT),
        ("completion_count", INT),
        ("early_exit_count", INT),
        ("in_progress_count", INT),
    ),
    StatsType.MESSAGE: (
        ("component_id", INT),
        ("component_name", STR),
        ("channel", STR),
        ("time", STR),
        ("entry_count", INT),
        ("plan_count", INT),
        ("send_count", INT),
        ("delivery_count", INT),
        ("impression_count", INT),
        ("open_count", INT),
        ("click_count", INT),
        ("conversion_count", INT),
        ("revenue_count", INT),
        ("revenue_amount", NUMBER),
    ),
    StatsType.WEBHOOK: (
        ("component_id", INT),
        ("component_name", STR),
        ("time", STR),
        ("entry_count", INT),
        ("send_count", INT),
        ("send_failure_count", INT),
    ),
}

#: Columns of a flat row, in order: ``journey_id``, ``time_unit``, then the detail fields.
COLUMNS: dict[StatsType, tuple[str, ...]] = {
    stype: ("journey_id", "time_unit") + tuple(name for name, _ in fields)
    for stype, fields in DETAIL_FIELDS.items()
}

#: The JSON kind of every column of a flat row.
COLUMN_KINDS: dict[StatsType, dict[str, str]] = {
    stype: {"journey_id": INT, "time_unit": STR, **dict(fields)}
    for stype, fields in DETAIL_FIELDS.items()
}

#: The key that identifies one row: present once under one output root or table.
PRIMARY_KEYS: dict[StatsType, tuple[str, ...]] = {
    StatsType.JOURNEY: ("journey_id", "time_unit", "time"),
    StatsType.MESSAGE: ("journey_id", "time_unit", "time", "component_id"),
    StatsType.WEBHOOK: ("journey_id", "time_unit", "time", "component_id"),
}
