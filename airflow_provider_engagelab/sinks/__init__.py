"""Sinks: where a task's rows go (stage, then commit or abort). See :mod:`.base`."""
