"""Apache Airflow provider for EngageLab Marketing Automation journey statistics."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (entry point)."""
    from airflow_provider_engagelab._provider_info import provider_info

    return provider_info(__version__)
