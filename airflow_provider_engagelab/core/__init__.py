"""The pure core of the provider: no Airflow imports.

Validation, request planning, response parsing, error-code mapping, retry and pacing
policy, run windows and output writers live here once, and are shared by the sync hook,
the async hook, the trigger, the sensor and the operators.
"""
