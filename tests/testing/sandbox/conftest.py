"""Fixtures of the sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_engagelab.testing.sandbox import Sandbox

from .helpers import CUTOFF


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    """A started sandbox with a fixed cutoff (no test depends on today's date)."""
    with Sandbox(available_through=CUTOFF) as s:
        yield s
