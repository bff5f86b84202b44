"""`control_campaign`: pause, resume or cancel a campaign, or resend its `unknown` contacts."""

from typing import Literal

import dagster as dg
from pydantic import Field

from campaign_pipelines.ops.admin import refused_as_failure
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.sending import campaign as lifecycle


class ControlConfig(dg.Config):
    campaign_id: int = Field(description="Id of the campaign, e.g. 1 (`campaigns campaign list` shows them).")
    action: Literal["pause", "resume", "cancel", "resend_unknown"] = Field(
        description=(
            "pause: running lines stop within seconds, nothing is lost; resume: sending starts again;"
            " cancel: stops for good; resend_unknown: contacts whose send was interrupted by a crash go back"
            " to the pool (they may receive the campaign twice)."
        )
    )


@dg.op(description="Apply an operator's decision to a campaign.")
def apply_control(context: dg.OpExecutionContext, config: ControlConfig, database: PostgresResource) -> str:
    with refused_as_failure(), database.connect() as conn:
        result = lifecycle.apply(conn, config.campaign_id, config.action)
    context.log.info(f"campaign {config.campaign_id}: {config.action} → {result}")
    return result


@dg.job(description="Pause, resume or cancel a campaign; resend contacts left 'unknown' by a crash.")
def control_campaign() -> None:
    apply_control()
