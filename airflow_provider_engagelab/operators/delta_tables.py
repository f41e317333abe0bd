"""Airflow glue of ``output_format="delta"``: where the tables go and how delta-rs reaches them.

The sink (:mod:`airflow_provider_engagelab.sinks.delta`) imports no Airflow; this module turns
the operator's ``output_path`` and ``output_conn_id`` into the sink's root and storage options:
a local directory needs none, an ``s3://`` root gets the credentials, region and endpoint of
the Airflow ``aws`` Connection (resolved by the Amazon provider, as for file outputs). Nothing
heavy is imported at module level (DAG files import the operators).

Public, for tasks that read or maintain the tables (compaction, vacuum)::

    from deltalake import DeltaTable
    from airflow_provider_engagelab.operators.delta_tables import delta_storage_options, delta_table_uri

    table = DeltaTable(delta_table_uri("s3://lake/engagelab", "message", "DAY"),
                       storage_options=delta_storage_options("s3://lake/engagelab", "aws_default"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_engagelab.core.layout import local_root, output_root_uri
from airflow_provider_engagelab.exceptions import EngageLabValidationError

if TYPE_CHECKING:
    from airflow_provider_engagelab.core.query import StatsQuery
    from airflow_provider_engagelab.sinks.delta import DeltaSink

#: Schemes of the output roots Delta tables are written to (a local path is a ``file://`` root).
DELTA_SCHEMES = ("file", "s3", "s3a")


def check_delta_output(output_path: Any) -> str:
    """The output root of a Delta output, or an error naming ``output_path`` (no I/O)."""
    if output_path is None:
        raise EngageLabValidationError(
            "Invalid output_path=None for output_format='delta': give the root of the Delta tables "
            "(an absolute local path, file:// or s3:// URL)"
        )
    root = output_root_uri(output_path)
    scheme = root.split("://", 1)[0]
    if scheme not in DELTA_SCHEMES:
        raise EngageLabValidationError(
            f"Invalid output_path={output_path!r} for output_format='delta': Delta tables are written "
            f"to local paths, file:// and s3:// roots, not {scheme}://"
        )
    return root


def check_delta_options(on_schema_change: Any) -> None:
    """Refuse ``on_schema_change="keep"``: a Delta table enforces its columns (no I/O)."""
    if isinstance(on_schema_change, str) and on_schema_change.strip().lower() == "keep":
        raise EngageLabValidationError(
            "Invalid on_schema_change='keep' for output_format='delta': the table enforces its "
            "columns, so fields the contract does not name cannot be kept; use 'warn' (write the "
            "known columns) or 'fail'"
        )


def _url_conn_id(output_path: str) -> str | None:
    """The connection id in ``s3://conn_id@bucket/prefix``, if any."""
    netloc = output_path.strip().split("://", 1)[1].partition("/")[0]
    return netloc.rpartition("@")[0] or None


def s3_options_from_connection(conn_id: str | None) -> dict[str, str]:
    """delta-rs S3 options from an Airflow ``aws`` Connection (``None``: boto3's default chain).

    Keys (or the role the Connection assumes), region and ``endpoint_url`` as the Amazon
    provider resolves them (a Connection id that does not exist falls back to boto3's chain
    with a warning, as for file outputs); the secret is registered with Airflow's log masker.
    """
    from airflow_provider_engagelab.sinks.delta import s3_storage_options

    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    except ImportError:
        raise EngageLabValidationError(
            "Invalid output_path: s3:// needs the Amazon provider and s3fs; install the extra: "
            "pip install 'airflow-provider-engagelab[s3]'"
        ) from None
    hook = S3Hook(aws_conn_id=conn_id)
    session = hook.get_session()
    endpoint = hook.conn_config.get_service_endpoint_url(service_name="s3")
    region = hook.conn_config.region_name or session.region_name
    credentials = hook.get_credentials() if session.get_credentials() is not None else None
    return s3_storage_options(
        access_key_id=credentials.access_key if credentials else None,
        secret_access_key=credentials.secret_key if credentials else None,
        session_token=credentials.token if credentials else None,
        region=region,
        endpoint_url=endpoint,
    )


def delta_table_uri(output_path: Any, stats_type: Any, time_unit: Any) -> str:
    """The location of the table of a stats type and time unit under ``output_path``, as
    deltalake takes it (a local directory, or an ``s3://`` URL without connection id)."""
    from airflow_provider_engagelab.sinks.delta import table_path

    root = check_delta_output(output_path)
    return f"{(local_root(root) or root).rstrip('/')}/{table_path(stats_type, time_unit)}"


def delta_storage_options(output_path: Any, output_conn_id: str | None = None) -> dict[str, str]:
    """The deltalake ``storage_options`` the operator uses for ``output_path``: none for a local
    root; for ``s3://`` the credentials, region and endpoint of ``output_conn_id`` (or of the
    connection id in the URL, or boto3's default chain) and the settings of safe commits."""
    root = check_delta_output(output_path)
    if local_root(root) is not None:
        return {}
    return s3_options_from_connection(output_conn_id or _url_conn_id(str(output_path)))


def open_delta_sink(
    query: StatsQuery, output_path: Any, output_conn_id: str | None, *, wait_seconds: float
) -> DeltaSink:
    """The Delta sink of a task: its extra, root and location checked, before any request."""
    from airflow_provider_engagelab.sinks.delta import DeltaSink, require_delta

    require_delta()
    root = check_delta_output(output_path)
    options = delta_storage_options(output_path, output_conn_id)
    return DeltaSink(local_root(root) or root, query, options, wait_seconds=wait_seconds)
