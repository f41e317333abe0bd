"""One partition's commit: what it deletes, rewrites and keeps, and what it trusts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from airflow_provider_engagelab.core.layout import MANIFEST_NAME, file_name
from airflow_provider_engagelab.exceptions import EngageLabOutputError
from airflow_provider_engagelab.sinks.partition import commit_partition
from airflow_provider_engagelab.sinks.staging import PartitionStager
from airflow_provider_engagelab.sinks.store import LocalStore
from airflow_provider_engagelab.testing.output import duplicate_keys, read_rows

DAY = date(2026, 6, 1)
PART = "journey/time_unit=DAY/date=2026-06-01"


def rows(ids, n=1):
    return [{"journey_id": j, "time_unit": "DAY", "time": "2026-06-01", "entry_count": n,
             "conversion_count": 0, "completion_count": 0, "early_exit_count": 0, "in_progress_count": 0}
            for j in ids]


def commit(tmp_path: Path, ids, fmt="jsonl", n=1):
    store = LocalStore(str(tmp_path / "out"))
    with PartitionStager("journey", "DAY", DAY, DAY, fmt, staging_dir=str(tmp_path)) as stager:
        stager.add_all(rows(ids, n))
        staged = stager.finish().get(DAY)
        return commit_partition(store, PART, frozenset(ids), staged, fmt, lease_seconds=30, wait_seconds=30)


def manifest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / PART / MANIFEST_NAME).read_text())["files"]


def counts(tmp_path: Path) -> dict[int, int]:
    got = read_rows(tmp_path / "out", "journey", "DAY")
    assert duplicate_keys(got, "journey") == []
    return {r["journey_id"]: r["entry_count"] for r in got}


def test_overlaps_are_deleted_or_narrowed_and_the_manifest_says_so(tmp_path):
    commit(tmp_path, [1, 2, 3])
    commit(tmp_path, [4, 5])
    result = commit(tmp_path, [2, 3, 4, 5, 6], n=9)
    assert result.removed == [f"{PART}/{file_name([4, 5], 'jsonl')}"]
    assert result.rewritten == [f"{PART}/{file_name([1, 2, 3], 'jsonl')}"]
    assert counts(tmp_path) == {1: 1, 2: 9, 3: 9, 4: 9, 5: 9, 6: 9}
    assert {k: v["journeys"] for k, v in manifest(tmp_path).items()} == {
        file_name([1, 2, 3], "jsonl"): [1], file_name([2, 3, 4, 5, 6], "jsonl"): [2, 3, 4, 5, 6]}


def test_an_overstating_manifest_costs_a_rewrite_never_a_row(tmp_path):
    commit(tmp_path, [1, 2])
    path = tmp_path / "out" / PART / MANIFEST_NAME
    doc = json.loads(path.read_text())
    entry = doc["files"][file_name([1, 2], "jsonl")]
    entry["journeys"] = [1, 2, 3, 4]  # says more than the file holds (a commit that died)
    path.write_text(json.dumps(doc))
    commit(tmp_path, [3], n=5)
    assert counts(tmp_path) == {1: 1, 2: 1, 3: 5}


def test_an_unreadable_manifest_is_rebuilt_from_the_files(tmp_path):
    commit(tmp_path, [1, 2])
    (tmp_path / "out" / PART / MANIFEST_NAME).write_text("{not json")
    commit(tmp_path, [2], n=7)
    assert counts(tmp_path) == {1: 1, 2: 7}
    assert {k: v["journeys"] for k, v in manifest(tmp_path).items()} == {
        file_name([1, 2], "jsonl"): [1], file_name([2], "jsonl"): [2]}


def test_a_file_the_manifest_does_not_know_is_read(tmp_path):
    commit(tmp_path, [1])
    stray = tmp_path / "out" / PART / "part-by-hand.jsonl"
    stray.write_text(json.dumps(rows([2, 3])[0]) + "\n" + json.dumps(rows([3])[0]) + "\n")
    commit(tmp_path, [3], n=4)
    assert counts(tmp_path) == {1: 1, 2: 1, 3: 4}


def test_a_name_taken_by_foreign_journeys_gets_a_suffix(tmp_path):
    taken = tmp_path / "out" / PART / file_name([5], "jsonl")
    taken.parent.mkdir(parents=True)
    taken.write_text("".join(json.dumps(r) + "\n" for r in rows([5, 6])))  # hand-made: 5 and 6
    result = commit(tmp_path, [5], n=3)
    assert result.written == f"{PART}/{file_name([5], 'jsonl', attempt=1)}"
    assert counts(tmp_path) == {5: 3, 6: 1}


@pytest.mark.parametrize(("old", "new"), [("jsonl", "parquet"), ("parquet", "csv"), ("csv", "jsonl")])
def test_a_changed_output_format_replaces_the_old_files(tmp_path, old, new):
    pytest.importorskip("pyarrow")
    commit(tmp_path, [1, 2, 3], fmt=old)
    commit(tmp_path, [2, 3], fmt=new, n=6)
    assert counts(tmp_path) == {1: 1, 2: 6, 3: 6}
    suffixes = sorted(p.suffix for p in (tmp_path / "out" / PART).glob("part-*"))
    assert suffixes == sorted([f".{old}", f".{new}"])


def test_no_rows_for_the_date_clears_the_journeys(tmp_path):
    commit(tmp_path, [1, 2])
    store = LocalStore(str(tmp_path / "out"))
    result = commit_partition(store, PART, frozenset({1, 2}), None, "jsonl", lease_seconds=30,
                              wait_seconds=30)
    assert result.written is None and result.removed == [f"{PART}/{file_name([1, 2], 'jsonl')}"]
    assert read_rows(tmp_path / "out", "journey", "DAY") == []
    assert not (tmp_path / "out" / PART / MANIFEST_NAME).exists()


def test_a_file_that_is_not_ours_stops_the_commit_before_any_change(tmp_path):
    commit(tmp_path, [1])
    (tmp_path / "out" / PART / "part-foreign.jsonl").write_text("not json\n")
    before = sorted((tmp_path / "out" / PART).iterdir())
    words = r"cannot read the journey_id of the rows of file://.*/date=2026-06-01/part-foreign.jsonl: "
    with pytest.raises(EngageLabOutputError, match=words):
        commit(tmp_path, [1], n=2)
    assert sorted((tmp_path / "out" / PART).iterdir()) == before
