"""Where the database URL and the time zone come from, and the errors when they are wrong."""

from __future__ import annotations

import contextlib
from zoneinfo import ZoneInfo

import pytest
import tzlocal
from conftest import assert_user_error, run_cli

from iotask import config


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("IOTASK_DATABASE_URL", "IOTASK_CONFIG", "IOTASK_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_is_sqlite_in_current_folder(clean_env, tmp_path):
    assert config.load().database_url == "sqlite:///iotask.db"
    assert run_cli("db", "upgrade").code == 0
    assert (tmp_path / "iotask.db").exists()


def test_order_option_env_ini(clean_env, tmp_path):
    (tmp_path / "iotask.ini").write_text(
        "[iotask]\ndatabase_url = sqlite:///from-ini.db\ntimezone = Asia/Tokyo\n")
    assert config.load().database_url == "sqlite:///from-ini.db"
    assert str(config.load().timezone) == "Asia/Tokyo"
    clean_env.setenv("IOTASK_DATABASE_URL", "sqlite:///from-env.db")
    clean_env.setenv("IOTASK_TIMEZONE", "America/New_York")
    assert config.load().database_url == "sqlite:///from-env.db"
    assert str(config.load().timezone) == "America/New_York"
    assert config.load("sqlite:///from-option.db").database_url == "sqlite:///from-option.db"


def test_iotask_config_names_another_file(clean_env, tmp_path):
    ini = tmp_path / "elsewhere.ini"
    ini.write_text("[iotask]\ndatabase_url = sqlite:///elsewhere.db\n")
    clean_env.setenv("IOTASK_CONFIG", str(ini))
    assert config.load().database_url == "sqlite:///elsewhere.db"


@pytest.mark.parametrize("setup, args, fragments", [
    (lambda p, m: m.setenv("IOTASK_CONFIG", str(p / "missing.ini")), ["task", "list"],
     ["missing.ini", "does not exist"]),
    (lambda p, m: (p / "iotask.ini").write_text("[other]\nx=1\n"), ["task", "list"],
     ["no [iotask] section"]),
    (lambda p, m: (p / "iotask.ini").write_text("not an ini"), ["task", "list"],
     ["cannot read config file"]),
    (lambda p, m: m.setenv("IOTASK_TIMEZONE", "Mars/Olympus"), ["task", "list"],
     ["unknown time zone 'Mars/Olympus'"]),
    (lambda p, m: None, ["--db", "nonsense", "task", "list"], ["cannot parse database URL"]),
    (lambda p, m: None, ["--db", "sqlite:////no/such/folder/x.db", "task", "list"],
     ["folder /no/such/folder does not exist"]),
    (lambda p, m: None, ["--db", "oracle+nodriver://u:pw@h/d", "task", "list"],
     ["unsupported database URL"]),
    (lambda p, m: None, ["--db", "postgresql://u:topsecret@127.0.0.1:1/d", "task", "list"],
     ["cannot connect to database", "***"]),
    (lambda p, m: None, ["task", "nosuchcommand"], ["No such command"]),
    (lambda p, m: None, ["task", "add"], ["Missing argument"]),
])
def test_configuration_mistakes_are_one_line(clean_env, tmp_path, setup, args, fragments):
    setup(tmp_path, clean_env)
    result = run_cli(*args)
    assert_user_error(result, *fragments)
    assert "topsecret" not in result.err


def test_reject_files_go_beside_the_sqlite_database_unless_configured(clean_env, tmp_path):
    clean_env.delenv("IOTASK_REJECT_DIR", raising=False)
    assert config.load("sqlite:////srv/iotask/iotask.db").reject_dir.as_posix() == \
        "/srv/iotask/rejects"
    assert config.load("mysql+pymysql://u@h/db").reject_dir == tmp_path / "rejects"
    (tmp_path / "iotask.ini").write_text("[iotask]\nreject_dir = /var/spool/ini-rejects\n")
    assert config.load().reject_dir.as_posix() == "/var/spool/ini-rejects"
    clean_env.setenv("IOTASK_REJECT_DIR", "/var/spool/env-rejects")
    assert config.load().reject_dir.as_posix() == "/var/spool/env-rejects"


def test_machine_zone_comes_from_tz_and_falls_back_to_utc(monkeypatch):
    """tzlocal reads the zone once a process; reloading stands for a new process."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    tzlocal.reload_localzone()
    assert config.machine_timezone() == ZoneInfo("Asia/Tokyo")
    monkeypatch.setenv("TZ", "Not/AZone")
    with contextlib.suppress(Exception):
        tzlocal.reload_localzone()
    assert isinstance(config.machine_timezone(), ZoneInfo)  # a zone, never an error
    monkeypatch.delenv("TZ")
    with contextlib.suppress(Exception):
        tzlocal.reload_localzone()
