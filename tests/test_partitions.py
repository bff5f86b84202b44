import dagster as dg

from campaign_pipelines.partitions import add_missing, campaign_partitions


def test_add_missing_requests_only_the_partitions_the_instance_lacks():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(campaign_partitions.name, ["1"])

        assert add_missing(instance, ["1", "2", "3"]) == [campaign_partitions.build_add_request(["2", "3"])]
        assert add_missing(instance, ["1"]) == []
