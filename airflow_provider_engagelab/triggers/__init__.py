"""Triggers of the EngageLab provider (deferrable sensors)."""
