"""Where the product finds its database: the embedded PostgreSQL when DATABASE_URL is unset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_command_on_the_embedded_database_prints_only_its_answer(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    env["CAMPAIGNS_HOME"] = str(tmp_path)
    command = [str(Path(sys.executable).with_name("campaigns")), "campaign", "list"]

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "pgdata").is_dir()
