"""The demo: an LMS in the embedded SQLite database, fed by an HR system's files and reporting
its completions, so a newcomer sees what iotask is for on a fresh machine.

``set_up`` creates the forma tables (``lms init``) when the database has none, writes the HR
files (an org chart, about 200 users, a course catalogue, enrollments with completions) and the
connections and tasks that import them in order and export the completions; run-due runs them.
Everything is generated from a fixed seed: every demo is the same.
"""

from __future__ import annotations

import csv
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from iotask import connections, lms, tasks
from iotask.models import Connection, Task

UNITS = [  # code, name, parent code
    ("acme", "ACME Corporation", ""),
    ("sales", "Sales", "acme"),
    ("sales-it", "Sales Italy", "sales"),
    ("sales-de", "Sales Germany", "sales"),
    ("eng", "Engineering", "acme"),
    ("eng-milan", "Engineering Milan", "eng"),
    ("eng-berlin", "Engineering Berlin", "eng"),
    ("hr", "People & Culture", "acme"),
    ("finance", "Finance", "acme"),
]
COURSES = [  # code, name, course type, for the units (empty: everyone)
    ("ONB-001", "Welcome to ACME", "elearning", ""),
    ("ETH-100", "Code of conduct", "elearning", ""),
    ("SAF-101", "Workplace safety", "classroom", "eng-milan eng-berlin"),
    ("GDPR-201", "Data protection in practice", "elearning", "hr finance sales-it sales-de"),
    ("PY-101", "Python for engineers", "elearning", "eng-milan eng-berlin"),
    ("NEG-220", "Negotiation", "classroom", "sales-it sales-de"),
    ("XLS-110", "Spreadsheets that add up", "elearning", "finance"),
    ("LEAD-301", "Leading a team", "classroom", ""),
]
FIRST = ["Anna", "Luca", "Sofia", "Jonas", "Lena", "Marco", "Chiara", "Felix", "Giulia", "Paul",
         "Marta", "Ömer", "Zoë", "Élodie", "Dragan", "Aiko", "Noah", "Ines", "Tobias", "Sara"]
LAST = ["Rossi", "Müller", "Bianchi", "Schmidt", "Romano", "Fischer", "Colombo", "Weber",
        "Ricci", "Wagner", "Marino", "Becker", "Greco", "Hoffmann", "Bruno", "Đorđević",
        "Gallo", "Schäfer", "Conti", "Kovač"]
PEOPLE = 200
LMS_FILES = ("orgchart.csv", "users.csv", "courses.csv", "enrollments.csv")
COMPLETIONS_QUERY = (
    "SELECT substr(u.userid, 2) AS userid, c.code, c.name AS course, "
    "substr(cu.date_complete, 1, 19) AS date_complete, "
    "cu.score_given AS score FROM learning_courseuser cu "
    "JOIN core_user u ON u.idst = cu.idUser JOIN learning_course c ON c.idCourse = cu.idCourse "
    "WHERE cu.status = 2 ORDER BY u.userid, c.code")


def people() -> list[dict[str, str]]:
    """The HR system's staff: ~200 people, each in one leaf unit."""
    rng = random.Random(2026)
    leaves = [code for code, _name, _parent in UNITS
              if code not in {parent for _c, _n, parent in UNITS}]
    staff: list[dict[str, str]] = []
    seen: set[str] = set()
    while len(staff) < PEOPLE:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        userid = f"{first[0]}{last}".lower()
        number = 1
        while userid in seen:
            number += 1
            userid = f"{first[0]}{last}{number}".lower()
        seen.add(userid)
        unit = rng.choice(leaves)
        staff.append({"userid": userid, "firstname": first, "lastname": last,
                      "email": f"{userid}@acme.example", "language": rng.choice(
                          ["english", "italian", "german"]), "tree_code": unit, "valid": "1"})
    return staff


def enrollments(staff: list[dict[str, str]]) -> list[dict[str, str]]:
    """Who takes which course, and who completed it when, with what score."""
    rng = random.Random(7)
    rows = []
    for person in staff:
        for code, _name, _type, units in COURSES:
            if units and person["tree_code"] not in units.split():
                continue
            if code == "LEAD-301" and rng.random() > 0.1:
                continue
            done = rng.random() < 0.45
            day = rng.randint(1, 28)
            rows.append({"userid": person["userid"], "code": code, "level": "student",
                         "date_subscription": f"2026-09-{day:02d}",
                         "status": "completed" if done else "subscribed",
                         "date_complete": f"2026-11-{day:02d} 1{day % 8}:30:00" if done else "",
                         "score": str(rng.randint(60, 100)) if done else ""})
    return rows


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_sample_files(folder: Path) -> dict[str, Path]:
    """The HR system's files, dated an hour ago: finished files, ready to import (a file
    younger than a connection's stable_seconds is taken for one still being written)."""
    folder.mkdir(parents=True, exist_ok=True)
    staff = people()
    contents = {
        "orgchart.csv": [{"code": code, "name": name, "parent_code": parent}
                         for code, name, parent in reversed(UNITS)],  # children first: fine
        "users.csv": staff,
        "courses.csv": [{"code": code, "name": name, "course_type": kind, "status": "available",
                         "lang_code": "english"} for code, name, kind, _units in COURSES],
        "enrollments.csv": enrollments(staff),
    }
    an_hour_ago = time.time() - 3600
    paths = {}
    for name, rows in contents.items():
        path = folder / name
        _write(path, rows)
        os.utime(path, (an_hour_ago, an_hour_ago))
        paths[name] = path
    return paths


def set_up(session: Session, folder: Path, file_roots: Sequence[Path]) -> list[str]:
    """Create what is missing of the demo in ``folder`` (inside ``file_roots``) and in the
    iotask database; return the names of what was created."""
    created = []
    if not lms.present(session.connection()):
        lms.create(session.connection())
        created.append("the LMS tables (lms init)")
    files = write_sample_files(folder)
    wanted_connections: list[tuple[str, str, str, list[tuple[str, object]]]] = [
        ("demo-hr-orgchart", "csv", "HR system: the org chart", [("url", files["orgchart.csv"])]),
        ("demo-hr-users", "csv", "HR system: the staff", [("url", files["users.csv"])]),
        ("demo-catalogue", "csv", "The training catalogue", [("url", files["courses.csv"])]),
        ("demo-training", "csv", "HR system: who takes which course, and completions",
         [("url", files["enrollments.csv"])]),
        ("demo-lms-orgchart", "forma-orgchart", "The LMS org chart", []),
        ("demo-lms-users", "forma-users", "The LMS users", []),
        ("demo-lms-courses", "forma-courses", "The LMS courses", []),
        ("demo-lms-enrollments", "forma-enrollments", "The LMS enrollments", []),
        ("demo-lms-completions", "sql", "Completed courses, read from the LMS",
         [("query", COMPLETIONS_QUERY)]),
        ("demo-completions-export", "csv", "Completions for the HR system",
         [("url", folder / "completions-export.csv")]),
    ]
    for name, type_name, description, settings in wanted_connections:
        if session.get(Connection, name) is None:
            connections.add(session, name, type_name, description,
                            [(key, str(value)) for key, value in settings],
                            file_roots=file_roots)
            created.append(name)
    session.flush()
    wanted_tasks = [
        ("demo: org chart", "demo-hr-orgchart", "demo-lms-orgchart", "02:00", "sync", 10),
        ("demo: users", "demo-hr-users", "demo-lms-users", "02:10", "sync", 20),
        ("demo: courses", "demo-catalogue", "demo-lms-courses", "02:20", "insert", 30),
        ("demo: enrollments", "demo-training", "demo-lms-enrollments", "02:30", "insert", 40),
        ("demo: export completions", "demo-lms-completions", "demo-completions-export", "06:00",
         "insert", 50),
    ]
    for name, source, destination, at, import_type, sequence in wanted_tasks:
        if session.get(Task, name) is None:
            tasks.add(session, name, tasks.TaskChanges(
                source=source, destination=destination, schedule_type="at", schedule=at,
                import_type=import_type, sequence=sequence,
                description=f"{source} into {destination}, nightly"), file_roots, now=True)
            created.append(name)
    return created
