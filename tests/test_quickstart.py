"""The README's first command: scripts/demo installs iotask (no extras) in a fresh virtualenv and
runs the main job on SQLite; the installed package is one top-level name, and what an extra
would bring is named when it is missing."""

from __future__ import annotations

import csv
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo"


@dataclass
class Newcomer:
    folder: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]

    @property
    def venv(self) -> Path:
        return Path(self.env["IOTASK_VENV"])

    def iotask(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "iotask"), *args], cwd=self.folder,
                              env=self.env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Newcomer:
    """In a virtualenv of its own, as a newcomer's (never the one running these tests)."""
    folder = tmp_path_factory.mktemp("newcomer")
    env = {**os.environ, "IOTASK_VENV": str(folder / "venv")}
    for name in ("IOTASK_DATABASE_URL", "IOTASK_CONFIG", "IOTASK_LOG", "IOTASK_FILE_ROOTS"):
        env.pop(name, None)
    first = subprocess.run([str(DEMO)], cwd=folder, env=env, capture_output=True, text=True,
                           timeout=600)
    return Newcomer(folder, env, first)


@pytest.mark.slow
def test_demo_installs_migrates_and_runs_due_tasks(newcomer: Newcomer):
    """The demo builds an LMS in ./iotask.db and run-due feeds it, in sequence: the org chart,
    ~200 users placed in their units, the catalogue, enrollments with completions; then the
    completions go out to a CSV file."""
    first, tmp_path = newcomer.first, newcomer.folder
    assert first.returncode == 0, first.stderr
    for task in ("org chart", "users", "courses", "enrollments", "export completions"):
        assert f"demo: {task}: success" in first.stdout, first.stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'iotask.db'}")
    with engine.connect() as conn:
        users = conn.execute(sa.text("SELECT count(*) FROM core_user")).scalar_one()
        units = conn.execute(sa.text("SELECT count(*) FROM core_org_chart_tree")).scalar_one()
        placed = conn.execute(sa.text(
            "SELECT count(DISTINCT m.idstMember) FROM core_group_members m "
            "JOIN core_org_chart_tree t ON t.idst_oc = m.idst")).scalar_one()
        courses = conn.execute(sa.text("SELECT count(*) FROM learning_course")).scalar_one()
        completed = conn.execute(sa.text(
            "SELECT count(*) FROM learning_courseuser WHERE status = 2")).scalar_one()
        statuses = conn.execute(sa.text("SELECT status FROM core_task_run")).scalars().all()
    engine.dispose()
    assert users == 200 and placed == 200 and units == 9 and courses == 8
    assert completed > 0
    assert statuses == ["success"] * 5
    with open(tmp_path / "iofiles" / "demo" / "completions-export.csv", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == completed
    assert {"userid", "code", "date_complete", "score"} <= set(exported[0])

    again = subprocess.run([str(DEMO)], cwd=tmp_path, env=newcomer.env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "demo already set up" in again.stdout and "nothing due" in again.stdout


@pytest.mark.slow
def test_the_package_installs_one_top_level_name(newcomer: Newcomer):
    """connectors and migrations install inside iotask, never beside other projects' packages."""
    assert newcomer.first.returncode == 0, newcomer.first.stderr
    (site,) = newcomer.venv.glob("lib/python3*/site-packages")
    (record,) = site.glob("iotask-*.dist-info/RECORD")
    top = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    assert {name for name in top if not name.endswith(".dist-info") and name != ".."} == {
        "iotask"}
    assert not (site / "connectors").exists() and not (site / "migrations").exists()
    assert (site / "iotask" / "connectors" / "csv.py").is_file()
    assert (site / "iotask" / "migrations" / "versions").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize(("url", "extra"), [
    ("mysql+pymysql://iotask@127.0.0.1:1/lms", "iotask[mysql]"),
    ("mariadb://iotask@127.0.0.1:1/lms", "iotask[mysql]"),
    ("postgresql://iotask@127.0.0.1:1/lms", "iotask[postgres]"),
])
def test_a_missing_database_driver_names_its_extra(newcomer: Newcomer, url: str, extra: str):
    result = newcomer.iotask("--db", url, "status")
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"pip install '{extra}'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_sftp_without_its_extra_names_it(newcomer: Newcomer):
    result = newcomer.iotask("connection", "add", "hr", "--type", "csv",
                             "--set", "url=sftp://hr@sftp.example.com/out/users.csv")
    assert result.returncode == 2, result.stderr
    assert "pip install 'iotask[sftp]'" in result.stderr and "Traceback" not in result.stderr
