"""OpenLineage objects from a task's :class:`~.core.lineage.TaskLineage`.

Imported only by ``get_openlineage_facets_on_complete`` (when the OpenLineage provider calls it,
after the task ran), never at DAG parse: it imports the OpenLineage client at module level.
"""

from __future__ import annotations

from typing import Any

import attrs
from airflow.providers.common.compat.openlineage.facet import (
    DatasetFacet,
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
    SchemaDatasetFacet,
    SchemaDatasetFacetFields,
)
from airflow.providers.openlineage.extractors import OperatorLineage

from airflow_provider_engagelab.core.lineage import Column, LineageInput, LineageOutput, TaskLineage

#: The key of :class:`EngageLabQueryDatasetFacet` in an input dataset's facets.
QUERY_FACET = "engagelab_query"


@attrs.define
class EngageLabQueryDatasetFacet(DatasetFacet):  # type: ignore[misc]
    """What a task asked an EngageLab endpoint for: how many journeys (not which), the window
    (first and last day, inclusive), the time unit, and how many journeys answered an error."""

    stats_type: str
    time_unit: str
    start: str
    end: str
    journey_count: int
    journey_errors: int = 0


def _schema(columns: tuple[Column, ...]) -> Any:
    return SchemaDatasetFacet(fields=[
        SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.description) for c in columns
    ])


def input_dataset(item: LineageInput) -> Any:
    """One endpoint as an OpenLineage input dataset (query facet, schema of the API fields)."""
    return InputDataset(
        namespace=item.namespace,
        name=item.name,
        facets={
            "schema": _schema(item.fields),
            QUERY_FACET: EngageLabQueryDatasetFacet(
                stats_type=item.stats_type, time_unit=item.time_unit, start=item.start, end=item.end,
                journey_count=item.journey_count, journey_errors=item.journey_errors,
            ),
        },
    )


def output_dataset(item: LineageOutput) -> Any:
    """One output (root, Delta table, SQL table) with its schema and outputStatistics."""
    return OutputDataset(
        namespace=item.namespace,
        name=item.name,
        facets={"schema": _schema(item.columns)},
        outputFacets={
            "outputStatistics": OutputStatisticsOutputDatasetFacet(
                rowCount=item.row_count, size=item.size_bytes, fileCount=item.file_count,
            ),
        },
    )


def operator_lineage(lineage: TaskLineage | None) -> Any:
    """The ``OperatorLineage`` of a task (empty when it recorded nothing)."""
    if lineage is None:
        return OperatorLineage()
    return OperatorLineage(
        inputs=[input_dataset(i) for i in lineage.inputs],
        outputs=[output_dataset(o) for o in lineage.outputs],
    )
