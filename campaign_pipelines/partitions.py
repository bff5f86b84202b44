"""The campaign partitions: one dynamic partition per campaign, keyed by its id."""

from __future__ import annotations

import dagster as dg

campaign_partitions = dg.DynamicPartitionsDefinition(name="campaign")


def campaign_key(campaign_id: int) -> str:
    return str(campaign_id)


def campaign_id_of(partition_key: str) -> int:
    if not partition_key.isdigit():
        raise dg.Failure(f"partition '{partition_key}' is not a campaign id: partitions are campaign ids")
    return int(partition_key)
