"""Tests of the sensor and the trigger."""
