"""The whole bad-input corpus through the command line, as `grep -r Traceback` over its output
would judge it: CSV files (run, dry run, preview, the --xml report), settings, URLs and
configuration. Every answer is a clear line; none is a traceback."""

from __future__ import annotations

import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Result, aged, run_cli

DATA = Path(__file__).parent / "data" / "bad_csv"
CSV_FILES = sorted(DATA.glob("*.csv"))

BAD_SETTINGS = [
    ("csv", ["url=in/x.csv", "delimiter=;;"]), ("csv", ["url=in/x.csv", "header=maybe"]),
    ("csv", ["url=in/x.csv", "encoding=klingon"]), ("csv", ["url=in/x.csv", "timeout=-1"]),
    ("csv", ["url=in/x.csv", "retries=1e9"]), ("csv", ["url=in/x.csv", "max_field_size=0"]),
    ("csv", ["url=in/x.csv", "quarantine=../up"]), ("csv", ["url=in/x.csv", "consume=eat"]),
    ("csv", ["url=in/x.csv", "nonsense=1"]), ("csv", ["url=in/x.csv", "stable_seconds=nan"]),
    ("csv", ["url=in/x.csv", "password=env:1BAD"]), ("sql", ["table=x", "remove=shred"]),
    ("sql", ["table=x", "remove=deactivate"]), ("sql", []), ("sql", ["table=x", "key="]),
]
BAD_URLS = [
    "file:///etc/passwd", "../../etc/passwd", "file://otherhost/x.csv", "gopher://h/x.csv",
    "ftp://bob:pa/ssW0rdX@host/in/", "ftp://[::1/x.csv", "sftp://h:99999/x.csv",
    "https://h/x.csv%00", "file:///in/a%00b.csv", "http://h/x.csv", "in/{date:%Q", "",
    "ftp://h/in/{name}.csv", "https://" + "a" * 3000 + "/x.csv",
]
BAD_DATABASES = [
    "mysql+pymysql://u@h:abc/db", "mysql+pymysql//root:pw@localhost/db", "nosuchdb://x",
    "postgresql://u@h:99999999999/db", "sqlite:////no/such/folder/x.db", "::::", "",
]
BAD_ENVIRONMENT = [
    ("IOTASK_TIMEZONE", "Mars/Olympus"), ("IOTASK_LEASE_SECONDS", "-5"),
    ("IOTASK_LEASE_SECONDS", "1e99"), ("IOTASK_LOG_LEVEL", "LOUD"),
    ("IOTASK_LOG", "syslog:/nonexistent.sock"), ("IOTASK_LOG", "/no/such/folder/iotask.log"),
    ("IOTASK_LOG", "syslog:host:port"), ("IOTASK_CONFIG", "/no/such/iotask.ini"),
    ("IOTASK_FILE_ROOTS", ":::"), ("IOTASK_REJECT_DIR", "/proc/no"),
]


def guarded(*args: str) -> Result:
    """run_cli, with an exception that escapes written as the traceback a person would see."""
    try:
        return run_cli(*args)
    except Exception:  # noqa: BLE001 (the corpus is judged on what a person would see)
        return Result(1, "", traceback.format_exc())


@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_traceback_anywhere_in_the_bad_input_corpus(iotask, migrated_url, engine, tmp_path,
                                                       monkeypatch):
    sa.Table("lms_user", sa.MetaData(), sa.Column("userid", sa.String(50), primary_key=True),
             sa.Column("firstname", sa.String(100)), sa.Column("lastname", sa.String(100)),
             sa.Column("email", sa.String(200)), sa.Column("org", sa.String(50))).create(engine)
    db = ("--db", migrated_url)
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user",
           "--set", "key=userid")
    outputs: list[str] = []
    for number, path in enumerate(CSV_FILES):
        copy = tmp_path / f"{number}-{path.name}"
        copy.write_bytes(path.read_bytes())
        aged(copy)
        name = f"c{number}"
        iotask("connection", "add", name, "--type", "csv", "--set", f"url={copy}")
        added = guarded(*db, "task", "add", name, "--source", name, "--destination", "lms",
                        "--max-errors", "100%")
        outputs.append(added.err)
        if added.code:
            continue
        for args in (("task", "preview", name), ("run", name, "--dry-run"),
                     ("run", name, "--dry-run", "--json"), ("history", name)):
            result = guarded(*db, *args)
            outputs += [result.out, result.err]
        report = guarded(*db, "run", name, "--xml")
        outputs += [report.out, report.err]
        if report.out.strip():
            ET.fromstring(report.out.encode("utf-8"))  # well-formed, whatever the file held
    for type_name, settings in BAD_SETTINGS:
        args = [part for setting in settings for part in ("--set", setting)]
        result = guarded(*db, "connection", "add", "bad", "--type", type_name, *args)
        outputs += [result.out, result.err]
    for url in BAD_URLS:
        result = guarded(*db, "connection", "add", "bad", "--type", "csv", "--set", f"url={url}")
        outputs += [result.out, result.err]
        guarded(*db, "connection", "remove", "bad")
    for url in BAD_DATABASES:
        for args in (("--db", url, "status"), ("--db", url, "db", "current")):
            result = guarded(*args)
            outputs += [result.out, result.err]
        result = guarded(*db, "connection", "add", "far", "--type", "sql",
                         "--set", f"database={url}", "--set", "table=x")
        outputs += [result.out, result.err]
        guarded(*db, "connection", "remove", "far")
    for variable, value in BAD_ENVIRONMENT:
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            for args in (("status",), ("run-due",), ("config",)):
                result = guarded(*db, *args)
                outputs += [result.out, result.err]
    everything = "\n".join(outputs)
    assert "Traceback" not in everything, everything[everything.find("Traceback") - 2000:][:4000]
    assert "ssW0rdX" not in everything and ":pw@" not in everything
