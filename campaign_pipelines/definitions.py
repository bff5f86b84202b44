"""The one Definitions of campaign-pipelines: every asset, job, sensor and resource."""

from __future__ import annotations

import dagster as dg

from campaign_pipelines.assets.contacts import campaign_contacts
from campaign_pipelines.ops.admin import ADMIN_JOBS
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.sensors.imports import campaign_import_sensor

defs = dg.Definitions(
    assets=[campaign_contacts],
    jobs=ADMIN_JOBS,
    sensors=[campaign_import_sensor],
    resources={
        "database": PostgresResource(url=dg.EnvVar("DATABASE_URL")),
        "contact_files": ContactFilesResource(directory=dg.EnvVar("CONTACTS_DIR")),
    },
)
