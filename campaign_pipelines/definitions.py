"""The one Definitions of campaign-pipelines: every asset, job, sensor, schedule and resource."""

import dagster as dg

from campaign_pipelines import execution
from campaign_pipelines.assets.contacts import campaign_contacts
from campaign_pipelines.assets.report import campaign_report
from campaign_pipelines.assets.sends import campaign_sends
from campaign_pipelines.ops.admin import ADMIN_JOBS
from campaign_pipelines.ops.control import control_campaign
from campaign_pipelines.ops.send import send_campaign
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.resources.http import HttpClientResource
from campaign_pipelines.resources.quotas import QuotaResource
from campaign_pipelines.resources.report_files import ReportFilesResource
from campaign_pipelines.resources.tracking import TrackingResource
from campaign_pipelines.sensors.imports import campaign_import_sensor
from campaign_pipelines.sensors.reports import campaign_report_sensor
from campaign_pipelines.sensors.sending import campaign_launch_sensor, relaunch_stalled, stalled_lines_sensor

defs = dg.Definitions(
    assets=[campaign_contacts, campaign_sends, campaign_report],
    jobs=[*ADMIN_JOBS, send_campaign, control_campaign],
    sensors=[campaign_import_sensor, campaign_launch_sensor, stalled_lines_sensor, campaign_report_sensor],
    schedules=[relaunch_stalled],
    # This machine, or Celery workers with CAMPAIGNS_EXECUTOR=celery (docs/deploy.md).
    executor=execution.default_executor(),
    resources={
        "database": PostgresResource(url=dg.EnvVar("DATABASE_URL")),
        "contact_files": ContactFilesResource(directory=dg.EnvVar("CONTACTS_DIR")),
        "quotas": QuotaResource(redis_url=dg.EnvVar("REDIS_URL")),
        "http": HttpClientResource(),
        "report_files": ReportFilesResource(),
        "tracking": TrackingResource(base_url=dg.EnvVar("TRACKING_BASE_URL"), secret=dg.EnvVar("TRACKING_SECRET")),
        **execution.io_managers(),
    },
)
