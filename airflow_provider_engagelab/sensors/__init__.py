"""Sensors of the EngageLab provider."""
