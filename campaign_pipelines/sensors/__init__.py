"""Sensors and schedules: the import sensor (more come with sending)."""
