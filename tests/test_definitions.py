"""The one Definitions: it loads, holds the admin jobs, the import asset and its sensor, and validates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from campaign_pipelines.definitions import defs
from campaign_pipelines.partitions import campaign_partitions

REPO = Path(__file__).resolve().parents[1]
ADMIN_JOBS = ("register_server", "save_template", "create_campaign", "configure_campaign")


def test_the_admin_jobs_are_registered() -> None:
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert set(ADMIN_JOBS) <= names
    for name in ADMIN_JOBS:
        assert defs.resolve_job_def(name).description


def test_campaign_contacts_is_partitioned_by_campaign() -> None:
    asset = defs.resolve_assets_def("campaign_contacts")
    assert asset.partitions_def == campaign_partitions
    assert isinstance(asset.partitions_def, dg.DynamicPartitionsDefinition)
    assert asset.partitions_def.name == "campaign"


def test_the_import_sensor_targets_campaign_contacts_and_runs_by_default() -> None:
    sensor = defs.resolve_sensor_def("campaign_import_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection is not None
    selected = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert selected == {dg.AssetKey("campaign_contacts")}


def test_resources_come_from_the_environment() -> None:
    assert set(defs.resources) >= {"database", "contact_files"}
    assert defs.resources["database"].url == dg.EnvVar("DATABASE_URL")
    assert defs.resources["contact_files"].directory == dg.EnvVar("CONTACTS_DIR")


def test_dagster_definitions_validate_succeeds(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("", encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DATABASE_URL": "unused", "CONTACTS_DIR": "unused"}
    dagster = Path(sys.executable).with_name("dagster")

    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful for code location campaign_pipelines" in result.stdout
