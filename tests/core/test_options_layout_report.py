"""The pure option parsers, the output layout and names, and the journey-error report."""

from __future__ import annotations

import pytest

from airflow_provider_engagelab.core.layout import (
    LOCK_PREFIX,
    MANIFEST_NAME,
    asset_uri,
    data_extension,
    file_name,
    is_hidden_temp,
    journey_set_hash,
    local_root,
    output_root_uri,
    partition_path,
)
from airflow_provider_engagelab.core.options import (
    parse_error_policy,
    parse_max_xcom_rows,
    parse_output_format,
    parse_seconds,
)
from airflow_provider_engagelab.core.parsing import JourneyError
from airflow_provider_engagelab.core.query import parse_choice
from airflow_provider_engagelab.core.report import journey_error_report, journey_errors_exception
from airflow_provider_engagelab.exceptions import EngageLabJourneyErrors, EngageLabValidationError


@pytest.mark.parametrize(
    ("func", "value", "words"),
    [
        (parse_output_format, "xml", ["output_format", "'xml'", "jsonl", "csv", "parquet", "delta"]),
        (parse_output_format, None, ["output_format", "None"]),
        (parse_error_policy, "ignore", ["on_journey_error", "'ignore'", "fail", "warn", "skip"]),
        (parse_max_xcom_rows, 0, ["max_xcom_rows", "0", ">= 1"]),
        (parse_max_xcom_rows, True, ["max_xcom_rows", "True"]),
        (parse_max_xcom_rows, "100", ["max_xcom_rows", "'100'"]),
    ],
)
def test_parameter_errors_name_parameter_value_and_rule(func, value, words):
    with pytest.raises(EngageLabValidationError) as err:
        func(value)
    for word in words:
        assert word in str(err.value)


def test_parameters_are_normalised():
    assert parse_output_format(" CSV ") == "csv"
    assert parse_error_policy("Warn") == "warn"
    assert parse_max_xcom_rows(5) == 5


def test_one_choice_parser_words_two_and_more_choices():
    with pytest.raises(EngageLabValidationError, match=r"Invalid mode='x': must be 'a' or 'b'"):
        parse_choice("x", ("a", "b"), "mode")
    with pytest.raises(EngageLabValidationError, match=r"must be one of 'a', 'b', 'c'"):
        parse_choice(3, ("a", "b", "c"), "mode")
    assert parse_choice(" B ", ("a", "b"), "mode") == "b"
    assert parse_choice("hour", ("HOUR", "DAY"), "time_unit", upper=True) == "HOUR"


@pytest.mark.parametrize("bad", [0.5, 3601, True, "60", float("nan"), None])
def test_seconds_are_bounded_numbers(bad):
    with pytest.raises(EngageLabValidationError, match=r"commit_lease_seconds=.*from 1 to 3600"):
        parse_seconds(bad, "commit_lease_seconds", minimum=1, maximum=3600)
    assert parse_seconds(2, "x", minimum=1, maximum=3) == 2.0


def test_journey_set_hash_depends_on_the_set_only():
    base = journey_set_hash([1, 2, 3])
    assert journey_set_hash([3, 1, 2]) == base
    assert journey_set_hash((3, 2, 1, 1)) == base
    assert journey_set_hash(frozenset({1, 2, 3})) == base
    assert journey_set_hash([1, 2]) != base
    assert journey_set_hash([1, 2, 4]) != base
    assert len(base) == 16 and int(base, 16) >= 0


def test_partition_layout_and_names():
    from datetime import date

    assert partition_path("journey", "DAY", date(2026, 6, 1)) == "journey/time_unit=DAY/date=2026-06-01"
    assert partition_path("webhook", "hour", date(2026, 6, 2)) == "webhook/time_unit=HOUR/date=2026-06-02"
    name = f"part-{journey_set_hash([5, 7])}"
    assert file_name([7, 5], "csv") == f"{name}.csv"
    assert file_name([7, 5], "parquet", attempt=2) == f"{name}-2.parquet"


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("part-0123.jsonl", "jsonl"),
        ("part-0123.csv", "csv"),
        ("part-0123-1.parquet", "parquet"),
        (MANIFEST_NAME, None),
        (f"{LOCK_PREFIX}1764633600000.60000.abcdef", None),
        (".part-0123.jsonl.1a2b3c.tmp", None),
        ("_SUCCESS", None),
        ("notes.txt", None),
        ("jsonl", None),
    ],
)
def test_only_data_files_count_as_data(name, ext):
    assert data_extension(name) == ext


def test_bookkeeping_names_never_match_a_data_glob():
    import fnmatch

    for name in (MANIFEST_NAME, f"{LOCK_PREFIX}1764633600000.60000.abcdef"):
        assert not any(fnmatch.fnmatch(name, f"*.{e}") for e in ("jsonl", "csv", "parquet"))
        assert name.startswith("_")  # pyarrow's and Spark's readers skip these
    assert is_hidden_temp(".part-1.jsonl.abc.tmp") and not is_hidden_temp("part-1.jsonl")


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("/data/out/", "file:///data/out"),
        ("file:///data/out", "file:///data/out"),
        ("s3://bucket/prefix/", "s3://bucket/prefix"),
        ("s3://aws_conn@bucket/prefix", "s3://bucket/prefix"),
        ("gs://b", "gs://b"),
    ],
)
def test_output_root_uri(given, root):
    assert output_root_uri(given) == root


@pytest.mark.parametrize("bad", ["relative/dir", "", "   ", None, 3])
def test_output_root_uri_rejects(bad):
    with pytest.raises(EngageLabValidationError, match="output_path"):
        output_root_uri(bad)


def test_asset_uri_is_root_plus_stats_type():
    assert asset_uri("s3://bucket/x/", "message") == "s3://bucket/x/message"


def test_local_root():
    assert local_root("file:///data/out") == "/data/out"
    assert local_root("s3://bucket/x") is None


def test_journey_error_report_dedupes_and_sorts():
    errors = [JourneyError(9, 50202), JourneyError(3, 50202), JourneyError(9, 50202), JourneyError(-1, 50221)]
    report = journey_error_report(errors)
    assert [(e["journey_id"], e["error_code"]) for e in report] == [(-1, 50221), (3, 50202), (9, 50202)]
    assert report[1]["meaning"] == "journey does not exist or belongs to another project"


def test_journey_errors_exception_lists_every_journey():
    report = journey_error_report([JourneyError(3, 50202), JourneyError(9, 50221)])
    exc = journey_errors_exception(report, "message")
    assert isinstance(exc, EngageLabJourneyErrors)
    text = str(exc)
    assert "journey 3: code 50202 (journey does not exist" in text
    assert "journey 9: code 50221 (invalid journey_id format)" in text
    assert "nothing was written" in text and "message" in text
    assert exc.errors == report
