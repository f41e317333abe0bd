"""Tests of the SQL transfer (EngageLabStatsToSqlOperator) on PostgreSQL and SQLite."""
