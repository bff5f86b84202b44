"""`campaign_import_sensor`: starts the import of every campaign configured since its last import.

Configured from the Launchpad or the CLI alike, a campaign needs no further action: this
sensor adds its partition if missing and requests that partition of `campaign_contacts`.
"""

import dagster as dg

from campaign_pipelines.assets.contacts import campaign_contacts
from campaign_pipelines.partitions import add_missing, campaign_key
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.store import campaigns as campaign_sql

# Imports requested per tick; the rest wait for the next tick.
MAX_IMPORTS_PER_TICK = 20


@dg.sensor(
    asset_selection=[campaign_contacts],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the contact import of campaigns configured since their last import.",
)
def campaign_import_sensor(context: dg.SensorEvaluationContext, database: PostgresResource) -> dg.SensorResult:
    with database.connect() as conn:
        # One run per configuration: configuring again imports again.
        due = [
            (campaign_id, f"import-{campaign_id}-{configured_at.timestamp():.6f}")
            for campaign_id, configured_at in campaign_sql.campaigns_awaiting_import(conn, MAX_IMPORTS_PER_TICK)
        ]
        # An import whose process died is started again (it merges what was loaded).
        due += [
            (campaign_id, f"import-{campaign_id}-retry-{started.timestamp():.6f}")
            for campaign_id, started in campaign_sql.interrupted_imports(conn, MAX_IMPORTS_PER_TICK)
        ]
    if not due:
        return dg.SensorResult(skip_reason="no campaign awaits its import")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=campaign_key(campaign_id), run_key=run_key, tags={"campaign": str(campaign_id)})
            for campaign_id, run_key in due
        ],
        dynamic_partitions_requests=add_missing(
            context.instance, (campaign_key(campaign_id) for campaign_id, _ in due)
        ),
    )
