"""Transfer operators: EngageLab statistics into other systems (SQL tables)."""
