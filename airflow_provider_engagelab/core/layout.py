"""Where output files go: the root URL, the partition layout and the names in a partition.

Pure (no Airflow imports). Layout under the output root::

    <root>/<stats_type>/time_unit=<DAY|HOUR>/date=<yyyy-MM-dd>/part-<hash>.<jsonl|csv|parquet>
                                                               _engagelab_manifest.json
                                                               _engagelab.lock.<...>   (while a commit runs)

The partition date is the first 10 characters of a row's ``time``. A data file is named by
the hash of the journey set it was written for; the manifest records which journeys each
data file holds (see :mod:`airflow_provider_engagelab.sinks.partition`). Bookkeeping names
start with ``_`` and never end in a data extension, so globs such as ``**/*.parquet`` and
readers that skip ``_``/``.`` names (pyarrow, DuckDB, Polars with hive partitioning) never
take them for data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from airflow_provider_engagelab.core.options import OUTPUT_FORMATS
from airflow_provider_engagelab.core.query import parse_stats_type, parse_time_unit
from airflow_provider_engagelab.exceptions import EngageLabValidationError

_HASH_CHARS = 16

#: The manifest of a partition: the journeys of each of its data files.
MANIFEST_NAME = "_engagelab_manifest.json"

#: Prefix of the lease files of a partition's commit lock.
LOCK_PREFIX = "_engagelab.lock."

#: Extensions of data files, whatever format wrote them (a root may hold several).
DATA_EXTENSIONS: frozenset[str] = frozenset(OUTPUT_FORMATS.values())


def journey_set_hash(journey_ids: Iterable[int]) -> str:
    """A short stable hash of a *set* of journey IDs (order and duplicates do not matter)."""
    ids = sorted(set(journey_ids))
    digest = hashlib.sha256(",".join(str(j) for j in ids).encode("ascii")).hexdigest()
    return digest[:_HASH_CHARS]


def file_name(journey_ids: Iterable[int], output_format: str, attempt: int = 0) -> str:
    """``part-<hash of the journey set>[-<attempt>].<ext>``."""
    suffix = f"-{attempt}" if attempt else ""
    return f"part-{journey_set_hash(journey_ids)}{suffix}.{OUTPUT_FORMATS[output_format]}"


def data_extension(name: str) -> str | None:
    """The format extension of a data file name, or ``None`` for any other name."""
    if name.startswith(("_", ".")):
        return None
    ext = name.rpartition(".")[2]
    return ext if "." in name and ext in DATA_EXTENSIONS else None


def is_hidden_temp(name: str) -> bool:
    """Whether ``name`` is a hidden temporary file of a local publish (``.<name>.<id>.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def partition_path(stats_type: Any, time_unit: Any, day: date) -> str:
    """``<stats_type>/time_unit=<UNIT>/date=<yyyy-MM-dd>`` (relative, ``/``-separated)."""
    stype = parse_stats_type(stats_type).value
    unit = parse_time_unit(time_unit).value
    return f"{stype}/time_unit={unit}/date={day.isoformat()}"


def window_dates(first: date, last: date) -> list[date]:
    """Every calendar day of ``[first, last]``."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def join_uri(root: str, relative: str) -> str:
    """``root`` + ``/`` + ``relative`` with exactly one slash between them."""
    return f"{root.rstrip('/')}/{relative.lstrip('/')}"


def output_root_uri(output_path: Any, param: str = "output_path") -> str:
    """The output root as a URL without credentials or connection id, no trailing slash.

    ``/data/out`` becomes ``file:///data/out``; ``s3://aws_conn@bucket/prefix/`` becomes
    ``s3://bucket/prefix``. A path without a scheme must be absolute.
    """
    if not isinstance(output_path, str) or not output_path.strip():
        raise EngageLabValidationError(
            f"Invalid {param}={output_path!r}: must be a URL such as 's3://bucket/prefix' or "
            "'file:///data/engagelab', or an absolute local path"
        )
    text = output_path.strip()
    if "://" not in text:
        if not os.path.isabs(text):
            raise EngageLabValidationError(
                f"Invalid {param}={output_path!r}: a local path must be absolute "
                "(or use a URL such as 'file:///data/engagelab')"
            )
        return "file://" + os.path.normpath(text).rstrip("/")
    scheme, rest = text.split("://", 1)
    netloc, sep, path = rest.partition("/")
    netloc = netloc.rpartition("@")[2]
    if not scheme or (not netloc and not path):
        raise EngageLabValidationError(f"Invalid {param}={output_path!r}: not a URL with a location")
    return f"{scheme.lower()}://{netloc}{sep}{path}".rstrip("/") or f"{scheme.lower()}://"


def local_root(root_uri: str) -> str | None:
    """The local directory of a ``file://`` root (from :func:`output_root_uri`), else ``None``."""
    if root_uri.startswith("file://"):
        return root_uri[len("file://"):] or "/"
    return None


def asset_uri(output_path: str, stats_type: Any) -> str:
    """The Asset URI of one operator's output: ``<root>/<stats_type>``."""
    return join_uri(output_root_uri(output_path), parse_stats_type(stats_type).value)
