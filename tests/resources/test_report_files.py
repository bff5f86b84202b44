"""The reports folder resource: the folder it names, else REPORTS_DIR, else $CAMPAIGNS_HOME/reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_pipelines.resources.report_files import ReportFilesResource


def test_a_named_folder_wins_then_reports_dir_then_the_campaigns_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGNS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("REPORTS_DIR", raising=False)
    assert ReportFilesResource().path == tmp_path / "home" / "reports"

    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "from-env"))
    assert ReportFilesResource().path == tmp_path / "from-env"
    assert ReportFilesResource(directory=str(tmp_path / "named")).path == tmp_path / "named"
