"""The contacts directory resource: one absolute folder, whatever way it was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_pipelines.resources.contact_files import ContactFilesResource


def test_the_directory_is_absolute_with_home_and_dots_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    assert ContactFilesResource(directory="~/contacts").path == tmp_path / "contacts"
    assert ContactFilesResource(directory="./lists/../contacts").path == tmp_path / "contacts"
