"""Dagster resources: the campaign database and the contacts directory."""
