"""The campaign partitions: one dynamic partition per campaign, keyed by its id."""

from __future__ import annotations

import re
from collections.abc import Iterable

import dagster as dg

# Exactly what campaign_key writes: "007" or "١٢" (str.isdigit accepts both) would import
# campaign 7 or 12 under a partition the campaign's history never shows.
_CAMPAIGN_KEY = re.compile(r"[1-9][0-9]*")

campaign_partitions = dg.DynamicPartitionsDefinition(name="campaign")


def campaign_key(campaign_id: int) -> str:
    return str(campaign_id)


def campaign_id_of(partition_key: str) -> int:
    if not _CAMPAIGN_KEY.fullmatch(partition_key):
        raise dg.Failure(f"partition '{partition_key}' is not a campaign id: partitions are campaign ids")
    return int(partition_key)


def add_missing(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[dg.AddDynamicPartitionsRequest]:
    """The request adding those of `keys` the instance does not have yet (none when it has them
    all), for a sensor whose run requests name these campaigns' partitions."""
    missing = [key for key in keys if not instance.has_dynamic_partition(campaign_partitions.name, key)]
    return [campaign_partitions.build_add_request(missing)] if missing else []
