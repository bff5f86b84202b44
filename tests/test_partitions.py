"""The campaign partitions: a campaign's key is its id, only that key reads back as the campaign, and
sensors add only the partitions the instance lacks."""

from __future__ import annotations

import dagster as dg
import pytest

from campaign_pipelines.partitions import add_missing, campaign_id_of, campaign_key, campaign_partitions


def test_a_campaign_key_reads_back_as_its_campaign() -> None:
    assert campaign_key(42) == "42"
    assert campaign_id_of(campaign_key(42)) == 42
    assert campaign_partitions.name == "campaign"


@pytest.mark.parametrize("key", ["0", "007", "-3", "4.0", " 4", "٤٢", "²", "forty-two", ""])
def test_a_key_campaign_key_never_writes_is_refused_by_name(key: str) -> None:
    with pytest.raises(dg.Failure) as failure:
        campaign_id_of(key)

    assert failure.value.description == f"partition '{key}' is not a campaign id: partitions are campaign ids"


def test_add_missing_requests_only_the_partitions_the_instance_lacks() -> None:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(campaign_partitions.name, ["1"])

        assert add_missing(instance, ["1", "2", "3"]) == [campaign_partitions.build_add_request(["2", "3"])]
        assert add_missing(instance, ["1"]) == []
