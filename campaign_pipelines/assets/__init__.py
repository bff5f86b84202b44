"""Assets: the per-campaign contact import."""
