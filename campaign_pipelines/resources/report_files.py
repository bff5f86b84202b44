"""Where campaign reports are written: one folder per campaign (report.html, outcomes/*.parquet)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from campaign_pipelines import settings


class ReportFilesResource(dg.ConfigurableResource):
    directory: str = Field(
        default="",
        description="Folder of the campaign reports; empty = REPORTS_DIR, else $CAMPAIGNS_HOME/reports (var/reports).",
    )

    @property
    def path(self) -> Path:
        return Path(self.directory).expanduser().resolve() if self.directory else settings.reports_dir()
