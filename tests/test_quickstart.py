"""The README's first command: scripts/demo installs iotask and runs the main job on SQLite."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import sqlalchemy as sa

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo"


def test_demo_installs_migrates_and_runs_due_tasks(tmp_path):
    """In a virtualenv of its own, as a newcomer's (never the one running these tests)."""
    env = {**os.environ, "IOTASK_VENV": str(tmp_path / "venv")}
    for name in ("IOTASK_DATABASE_URL", "IOTASK_CONFIG", "IOTASK_LOG", "IOTASK_FILE_ROOTS"):
        env.pop(name, None)
    first = subprocess.run([str(DEMO)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr
    assert "demo: import HR users: success" in first.stdout
    assert "demo: export users: success" in first.stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'iotask.db'}")
    with engine.connect() as conn:
        users = conn.execute(sa.text("SELECT userid FROM demo_lms_user ORDER BY userid"))
        assert [u for (u,) in users] == ["akim", "jdoe", "lmüller", "mrossi"]
        statuses = conn.execute(sa.text("SELECT status FROM core_task_run")).scalars().all()
    engine.dispose()
    assert statuses == ["success", "success"]
    with open(tmp_path / "iofiles" / "demo" / "users-export.csv", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert {row["userid"] for row in exported} == {"akim", "jdoe", "lmüller", "mrossi"}

    again = subprocess.run([str(DEMO)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert "demo already set up" in again.stdout and "nothing due" in again.stdout
