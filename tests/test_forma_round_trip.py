"""Round trip: an LMS fed from HR files, exported to CSV by the forma-* sources, imported into an
empty `iotask lms init` database, gives the same users, units, courses and enrollments."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import aged, run_cli, write_csv

KINDS = ("orgchart", "users", "courses", "enrollments")  # the order a site imports them in
FILES = {
    "orgchart": [["code", "name", "parent_code", "name:italian"],
                 ["emea-it", "Italy", "emea", "Italia"], ["emea", "EMEA", "", "EMEA"],
                 ["emea-de", "Germany", "emea", "Germania"], ["amer", "Americas", "", "Americhe"]],
    "users": [["userid", "firstname", "lastname", "email", "language", "tree_code", "valid"],
              ["mrossi", "Mario", "Rossi", "mario@example.com", "italian", "emea-it", "1"],
              ["lmüller", "Lena", "Müller", "lena@example.com", "german", "emea-de#emea", "1"],
              ["jdoe", "John", "Doe", "john@example.com", "english", "amer", "0"],
              ["zoe", "Zoë", "Ünal", "", "", "", "1"]],
    "courses": [["code", "name", "description", "status", "course_type", "date_begin"],
                ["SAF-1", "Safety", "Stay safe", "available", "classroom", "2026-01-10"],
                ["GDPR", "Data protection", "", "preparation", "elearning", ""]],
    "enrollments": [["userid", "code", "level", "date_subscription", "status", "date_complete",
                     "score"],
                    ["mrossi", "SAF-1", "student", "2026-02-01", "completed",
                     "2026-03-01 10:30:00", "88"],
                    ["lmüller", "SAF-1", "tutor", "2026-02-02", "subscribed", "", ""],
                    ["jdoe", "GDPR", "3", "2026-02-03", "in_progress", "", ""]],
}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda row: sorted(row.items()))


def _cli(db: str, *args: str) -> None:
    result = run_cli("--db", db, *args)
    assert result.code == 0, f"iotask {' '.join(args)}: {result.err}"


def _import(db: str, lms: str, files: dict[str, Path], tag: str) -> None:
    for kind in KINDS:
        _cli(db, "connection", "add", f"{tag}-{kind}-file", "--type", "csv",
             "--set", f"url={files[kind]}")
        _cli(db, "connection", "add", f"{tag}-{kind}", "--type", f"forma-{kind}",
             "--set", f"database={lms}")
        _cli(db, "task", "add", f"{tag}: import {kind}", "--source", f"{tag}-{kind}-file",
             "--destination", f"{tag}-{kind}")
        _cli(db, "run", f"{tag}: import {kind}")


def _export(db: str, lms: str, folder: Path, tag: str) -> dict[str, Path]:
    folder.mkdir()
    out = {}
    for kind in KINDS:
        out[kind] = folder / f"{kind}.csv"
        _cli(db, "connection", "add", f"{tag}-{kind}-out", "--type", "csv",
             "--set", f"url={out[kind]}")
        _cli(db, "task", "add", f"{tag}: export {kind}", "--source", f"{tag}-{kind}",
             "--destination", f"{tag}-{kind}-out")
        _cli(db, "run", f"{tag}: export {kind}")
    return out


def test_export_then_import_into_an_empty_lms_gives_the_same_records(
        iotask, forma_url, migrated_url, tmp_path):
    given = {kind: write_csv(tmp_path / f"{kind}.csv", rows[0], rows[1:])
             for kind, rows in FILES.items()}
    _import(migrated_url, forma_url, given, "a")
    first = _export(migrated_url, forma_url, tmp_path / "first", "a")

    empty = f"sqlite:///{tmp_path / 'empty-lms.db'}"
    _cli(empty, "lms", "init")
    for kind in KINDS:
        aged(first[kind])
    _import(migrated_url, empty, first, "b")
    second = _export(migrated_url, empty, tmp_path / "second", "b")

    for kind in KINDS:
        assert _read(first[kind]) == _read(second[kind]), kind
    users = {row["userid"]: row for row in _read(first["users"])}
    assert {"mrossi", "lmüller", "jdoe", "zoe"} <= set(users)  # (and the site's own /admin)
    assert users["lmüller"]["tree_code"].split("#") == sorted(["emea-de", "emea"])
    assert users["jdoe"]["valid"] in ("0", "false")
    units = {row["code"]: row for row in _read(first["orgchart"])}
    assert units["emea-it"]["parent_code"] == "emea"
    assert units["emea-it"]["name:italian"] == "Italia"
    enrolled = {(row["userid"], row["code"]): row for row in _read(first["enrollments"])}
    assert set(enrolled) == {("mrossi", "SAF-1"), ("lmüller", "SAF-1"), ("jdoe", "GDPR")}
    assert enrolled[("mrossi", "SAF-1")]["score"] == "88"
    assert enrolled[("mrossi", "SAF-1")]["date_complete"].startswith("2026-03-01 10:30")
