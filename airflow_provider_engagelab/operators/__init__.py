"""Operators of the EngageLab provider."""
