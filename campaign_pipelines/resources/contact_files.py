"""Where contact files may be read from: nothing outside this directory is ever opened."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field


class ContactFilesResource(dg.ConfigurableResource):
    directory: str = Field(description="Directory holding the contact files (set CONTACTS_DIR).")

    @property
    def path(self) -> Path:
        return Path(self.directory).expanduser().resolve()
