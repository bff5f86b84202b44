"""`campaign_report` materialized in-process into the real database: metadata, files and checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from campaign_pipelines import blacklist, campaigns, templates
from campaign_pipelines.assets.report import (
    COMPLAINT_CHECK,
    HARD_BOUNCE_CHECK,
    SENDABLE_CHECK,
    campaign_report,
)
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.resources.report_files import ReportFilesResource
from tests.sending.fixtures import BREVO, SENDGRID
from tests.support import record_delivery


@pytest.fixture
def materialize(instance: dg.DagsterInstance, database_url: str, tmp_path: Path):
    resources = {
        "database": PostgresResource(url=database_url),
        "report_files": ReportFilesResource(directory=str(tmp_path / "reports")),
    }

    def run(campaign_id: int, **config: object) -> dg.ExecuteInProcessResult:
        instance.add_dynamic_partitions("campaign", [str(campaign_id)])
        return dg.materialize(
            [campaign_report],
            partition_key=str(campaign_id),
            instance=instance,
            resources=resources,
            run_config={"ops": {"campaign_report": {"config": config}}},
        )

    return run


def _materialization(result: dg.ExecuteInProcessResult) -> dg.AssetMaterialization:
    [materialization] = result.asset_materializations_for_node("campaign_report")
    return materialization


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def test_a_sent_campaign_gets_metadata_files_and_warnings(db, make_campaign, run_line, materialize, tmp_path):
    setup = make_campaign(10, [BREVO, SENDGRID])
    for line_id in setup.line_ids:
        run_line(line_id)
    record_delivery(db, setup.campaign_id, 1, blacklist.COMPLAINT)  # line 1, run first, sends all ten
    db.execute("UPDATE campaigns SET status = 'completed', finished_at = now() WHERE id = %s", (setup.campaign_id,))

    result = materialize(setup.campaign_id)

    assert result.success
    metadata = _materialization(result).metadata
    assert metadata["sent"].value == 10 and metadata["contacts"].value == 10 and metadata["sendable"].value == 10
    assert metadata["complaint_rate_pct"].value == 10.0
    assert [record.data["line"] for record in metadata["per_line"].value.records] == [
        "line 1 · Brevo - Compte Principal",
        "line 2 · SendGrid - Secours",
    ]
    assert "| sent | 10 |" in metadata["funnel"].value
    html = Path(metadata["report_html"].value)
    assert html.parent == tmp_path / "reports" / f"campaign-{setup.campaign_id}"
    page = html.read_text(encoding="utf-8")
    assert "<svg" in page and "line 1" in page and "<script" not in page and "<link" not in page
    outcomes = duckdb.sql(
        f"SELECT count(*), count(*) FILTER (WHERE complained) FROM '{metadata['outcomes_parquet'].value}/*.parquet'"
    )
    assert outcomes.fetchone() == (10, 1)
    checks = _checks(result)
    assert not checks[COMPLAINT_CHECK].passed and checks[COMPLAINT_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert "line 1 (10.00%)" in checks[COMPLAINT_CHECK].description
    assert checks[HARD_BOUNCE_CHECK].passed and checks[SENDABLE_CHECK].passed


def test_a_running_campaign_writes_its_parquet_file_only_when_asked(make_campaign, run_line, materialize, tmp_path):
    setup = make_campaign(10, [BREVO])
    run_line(setup.line_ids[0])
    outcomes = tmp_path / "reports" / f"campaign-{setup.campaign_id}" / "outcomes"

    every_minute = _materialization(materialize(setup.campaign_id)).metadata

    assert every_minute["status"].value == "running" and every_minute["sent"].value == 10
    assert "outcomes_parquet" not in every_minute and not outcomes.exists()

    asked = _materialization(materialize(setup.campaign_id, outcomes_while_running=True)).metadata

    assert asked["outcomes_parquet"].value == str(outcomes) and asked["sent"].value == 10
    assert duckdb.sql(f"SELECT count(*) FILTER (WHERE status = 'sent') FROM '{outcomes}/*.parquet'").fetchone() == (10,)


def test_a_campaign_not_imported_materializes_zeros_and_fails_only_its_sendable_check(db, materialize):
    templates.save_template(db, "promo", "<p>Bonjour</p>")
    campaign_id = campaigns.create_campaign(db, name="Draft", subject="Hi", template="promo")

    result = materialize(campaign_id)

    assert result.success
    metadata = _materialization(result).metadata
    assert metadata["contacts"].value == 0 and metadata["open_rate_pct"].value == 0.0
    assert "outcomes_parquet" not in metadata
    assert "have not been imported yet" in metadata["notes"].value
    checks = _checks(result)
    assert not checks[SENDABLE_CHECK].passed and "have not been imported yet" in checks[SENDABLE_CHECK].description
    assert checks[COMPLAINT_CHECK].passed and checks[HARD_BOUNCE_CHECK].passed


def test_a_partition_of_a_deleted_campaign_fails_naming_it(materialize):
    with pytest.raises(dg.Failure, match="partition '7': campaign 7 does not exist"):
        materialize(7)
