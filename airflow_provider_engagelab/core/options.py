"""The operators' output options, validated before any HTTP call (pure: no Airflow imports)."""

from __future__ import annotations

from typing import Any

from airflow_provider_engagelab.core.query import parse_choice
from airflow_provider_engagelab.exceptions import EngageLabValidationError

#: File output formats and their file extensions.
OUTPUT_FORMATS: dict[str, str] = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}

#: Table output formats: a table with its own layout and commit, not files of partitions.
TABLE_FORMATS: tuple[str, ...] = ("delta",)

#: What a per-journey ``error_code`` does: fail the task, warn and go on, or go on quietly.
ERROR_POLICIES: tuple[str, ...] = ("fail", "warn", "skip")

#: What a detail field the contract does not name does: warn and write the known columns, fail
#: before anything is written, or keep it as an extra column.
SCHEMA_POLICIES: tuple[str, ...] = ("warn", "fail", "keep")

#: Default cap of rows returned through XCom (the metadata database stores them).
DEFAULT_MAX_XCOM_ROWS = 10_000

#: Default lease of a partition commit lock, in seconds (see the README's Guarantees).
DEFAULT_COMMIT_LEASE_SECONDS = 60.0

#: Default bound on waiting for another task's partition commit lock, in seconds.
DEFAULT_COMMIT_WAIT_SECONDS = 900.0


def parse_output_format(value: Any, param: str = "output_format") -> str:
    """Accept ``jsonl``, ``csv``, ``parquet`` or ``delta`` (any case)."""
    return parse_choice(value, (*OUTPUT_FORMATS, *TABLE_FORMATS), param)


def parse_file_format(value: Any, param: str = "output_format") -> str:
    """Accept a file format only: ``jsonl``, ``csv`` or ``parquet`` (any case)."""
    return parse_choice(value, tuple(OUTPUT_FORMATS), param)


def parse_error_policy(value: Any, param: str = "on_journey_error") -> str:
    """Accept ``fail``, ``warn`` or ``skip`` (any case)."""
    return parse_choice(value, ERROR_POLICIES, param)


def parse_schema_policy(value: Any, param: str = "on_schema_change") -> str:
    """Accept ``warn``, ``fail`` or ``keep`` (any case)."""
    return parse_choice(value, SCHEMA_POLICIES, param)


def parse_positive_int(value: Any, param: str) -> int:
    """A positive integer (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EngageLabValidationError(f"Invalid {param}={value!r}: must be an integer >= 1")
    return value


def parse_seconds(value: Any, param: str, *, minimum: float, maximum: float) -> float:
    """A number of seconds within ``[minimum, maximum]`` (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not minimum <= value <= maximum:
        raise EngageLabValidationError(
            f"Invalid {param}={value!r}: must be a number of seconds from {minimum:g} to {maximum:g}"
        )
    return float(value)


def parse_max_xcom_rows(value: Any, param: str = "max_xcom_rows") -> int:
    """A positive integer."""
    return parse_positive_int(value, param)
