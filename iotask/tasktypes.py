"""Task types: PeopleFluent's "+ Add Tasks" form as one command.

A type names the kind of data (``usersCsv``, ``trainingHistoryXml``, ...): which way it goes, the
file's format and connector, the LMS connector at the other end, the file's columns and a
sample file under ``examples/``. ``iotask task add NAME --type TYPE --url URL`` makes from it a
file-end connection ``NAME-file`` (the URL), an LMS-end connection ``NAME-lms`` (the LMS
database) and the task with the type's map, in the caller's one transaction. After that they
are ordinary connections and a task: ``iotask connection edit NAME-file --set delimiter=;``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from shlex import quote
from typing import Any

from sqlalchemy.orm import Session

from iotask import connections, registry, tasks
from iotask.errors import IotaskError, NotFound
from iotask.models import NAME_LENGTH, Connection, Task

IMPORT, EXPORT = "import", "export"
FILE_SUFFIX, LMS_SUFFIX = "-file", "-lms"


@dataclass(frozen=True)
class Column:
    """A column of a type's file: an import's ``required`` ones must be in it (as a header or
    an element); an export's ``required`` ones are always written."""

    name: str
    help: str
    required: bool = False


@dataclass(frozen=True)
class TaskType:
    name: str
    direction: str  # import (file to LMS) or export (LMS to file)
    summary: str
    file_type: str  # the file end's connector: csv, xml, ims-enterprise
    lms_type: str  # the LMS end's connector: forma-users, forma-lms, ...
    columns: tuple[Column, ...]
    sample: str  # a file name under examples/
    file_settings: dict[str, str] = field(default_factory=dict)
    lms_settings: dict[str, str] = field(default_factory=dict)
    map: dict[str, Any] | None = None  # the task's map (named form); None: by column name
    notes: str = ""
    order: str = ""  # its place in ORDER when not its LMS connector's

    @property
    def sequence(self) -> int:
        """The run order a typed task gets unless --sequence says otherwise."""
        return ORDER[EXPORT if self.direction == EXPORT else self.order or self.lms_type]

    @property
    def format(self) -> str:
        if self.file_type == "xml":
            return f"xml ({self.file_settings['format']})"
        return {"ims-enterprise": "IMS Enterprise 1.1 XML"}.get(self.file_type, self.file_type)

    @property
    def source(self) -> str:
        return self.file_type if self.direction == IMPORT else self.lms_type

    @property
    def destination(self) -> str:
        return self.lms_type if self.direction == IMPORT else self.file_type


# The run order of typed tasks: org units, then users, courses, enrollments, completions,
# merges, and the exports last, so that one run-due imports a unit before its users and a course
# before its enrollments.
ORDER = {"forma-orgchart": 10, "forma-users": 20, "forma-lms": 25, "forma-courses": 30,
         "forma-enrollments": 40, "completions": 50, "forma-merges": 60, EXPORT: 90}


def _c(name: str, help: str, required: bool = False) -> Column:
    return Column(name, help, required)


USER = (
    _c("userid", "the login (key), e.g. mrossi", required=True),
    _c("firstname", "given name"),
    _c("lastname", "family name"),
    _c("email", "e-mail address"),
    _c("language", "the user's language, e.g. english, italian"),
    _c("tree_code", "codes of the org units the user is placed in, separated by #"),
    _c("valid", "1 active, 0 suspended (empty: active)"),
    _c("field:<name>", "a custom field, by its name"),
)
UNIT = (
    _c("code", "the unit's code (key)", required=True),
    _c("name", "the unit's name (in the connection's language, default english); a new unit "
               "needs a name", required=True),
    _c("parent_code", "the parent unit's code; empty: a unit at the top"),
    _c("name:<language>", "the name in another language, e.g. name:italian"),
)
COURSE = (
    _c("code", "the course code (key)", required=True),
    _c("name", "the course name (a new course needs one)", required=True),
    _c("description", "long description"),
    _c("box_description", "short description shown in the catalogue"),
    _c("lang_code", "the course language, e.g. english"),
    _c("status", "preparation, available, confirmed, concluded or cancelled"),
    _c("course_type", "elearning, classroom, ..."),
    _c("date_begin", "first day, YYYY-MM-DD"),
    _c("date_end", "last day, YYYY-MM-DD"),
    _c("difficult", "veryeasy, easy, medium, difficult or verydifficult"),
    _c("max_num_subscribe", "most enrollments (0: no limit)"),
    _c("min_num_subscribe", "fewest enrollments"),
    _c("valid_time", "days an enrollment stays valid (0: always)"),
    _c("subscribe_method", "0 admin only, 1 with approval, 2 free"),
    _c("selling", "1 for sale, 0 not"),
    _c("prize", "price"),
    _c("credits", "credits the course gives"),
)
ENROLLMENT_KEY = (
    _c("userid", "the enrolled user's login", required=True),
    _c("code", "the course code", required=True),
)
LEVEL = _c("level", "student (default), tutor, mentor, teacher, admin ... or 1-7")
SUBSCRIBED = _c("date_subscription", "when the user was enrolled, YYYY-MM-DD [HH:MM:SS]")
STATUS = _c("status", "subscribed (default), in_progress, completed, suspended ... or its number")
COMPLETED = _c("date_complete", "when the course was completed, YYYY-MM-DD [HH:MM:SS] "
                                "(empty: when the run applies it)")
SCORE = _c("score", "the score given, a whole number")
ENROLLMENT = (*ENROLLMENT_KEY, LEVEL, SUBSCRIBED, STATUS, COMPLETED, SCORE)
ENROLLMENT_OUT = (  # what the exports write: every column, always
    _c("userid", "the enrolled user's login", required=True),
    _c("code", "the course code", required=True),
    _c("level", "student, tutor, mentor, teacher, admin, ...", required=True),
    _c("date_subscription", "when the user was enrolled, YYYY-MM-DD HH:MM:SS", required=True),
    _c("status", "subscribed, in_progress, completed, suspended, ...", required=True),
    _c("date_complete", "when the course was completed, YYYY-MM-DD HH:MM:SS (empty: not yet)",
       required=True),
    _c("score", "the score given (empty: none)", required=True),
)
USER_OUT = (
    *(_c(c.name, c.help, required=True) for c in USER[:-2]),
    _c("valid", "1 active, 0 suspended", required=True),
    _c("field:<name>", "one column per custom field the site has"),
)
MERGE = (
    _c("userid", "the duplicate user's login: suspended after the merge", required=True),
    _c("survivor", "the login of the user who keeps everything", required=True),
)
IMS = (
    _c("<person>", "a user: sourcedid/id is the userid; name/n/given and family (or name/fn), "
                   "email; recstatus 3 suspends"),
    _c("<group>", "a course: sourcedid/id is its code, description/long (or short) its name, "
                  "description/full its description, timeframe its dates"),
    _c("<membership>", "its sourcedid/id names the group; each member (sourcedid/id: the "
                       "person) is enrolled at the level of its role (01 Learner: student, 02 "
                       "Instructor: teacher, ...); recstatus 3 or role status 0 unenrolls"),
)


def _completions(*columns: Column) -> dict[str, Any]:
    """The completions imports' map: every row is a completion (status completed); the
    columns not required may be left out of the file."""
    named: dict[str, Any] = {c.name: c.name if c.required else {"optional": c.name}
                             for c in columns}
    return {"columns": {**named, "status": {"const": "completed"}}, "key": ["userid", "code"]}


EXTERNAL = (*ENROLLMENT_KEY, _c("date_complete", "when it was completed, YYYY-MM-DD "
                                "[HH:MM:SS]: the provider's date", required=True), SCORE)
HISTORY = (*ENROLLMENT_KEY, COMPLETED, SCORE, SUBSCRIBED, LEVEL)

TYPES: dict[str, TaskType] = {t.name: t for t in (
    TaskType("usersCsv", IMPORT, "users from a CSV file: created, updated (sync: suspended "
             "when they leave the file)", "csv", "forma-users", USER, "users.csv"),
    TaskType("getUsersCsv", EXPORT, "every user of the LMS to a CSV file", "csv", "forma-users",
             USER_OUT, "users.csv"),
    TaskType("organizationsCsv", IMPORT, "org units (the org chart) from a CSV file, parents "
             "before children in any order", "csv", "forma-orgchart", UNIT, "organizations.csv"),
    TaskType("courseCsv", IMPORT, "courses from a CSV file", "csv", "forma-courses", COURSE,
             "courses.csv"),
    TaskType("courses", IMPORT, "courses from an XML file", "xml", "forma-courses", COURSE,
             "courses.xml", file_settings={"format": "courses"}),
    TaskType("enrollmentsCsv", IMPORT, "enrollments (and their status, completions included) "
             "from a CSV file", "csv", "forma-enrollments", ENROLLMENT, "enrollments.csv"),
    TaskType("trainingHistoryCsv", IMPORT, "completions of the LMS's courses from a CSV file: "
             "each row marks the user's enrollment completed (enrolled first when needed)",
             "csv", "forma-enrollments", HISTORY, "training-history.csv",
             map=_completions(*HISTORY), order="completions"),
    TaskType("externalTrainingCsv", IMPORT, "training completed outside the LMS (a provider's "
             "or an event's list) against the course standing for it: completions that must "
             "carry their date", "csv", "forma-enrollments", EXTERNAL, "external-training.csv",
             map=_completions(*EXTERNAL), order="completions",
             notes="unlike trainingHistoryCsv, date_complete must be a column and only "
                   "userid, code, date_complete and score are read (other columns are left "
                   "out); the enrollment is created at level student"),
    TaskType("trainingHistory", EXPORT, "every enrollment with its status, completion date "
             "and score to a CSV file", "csv", "forma-enrollments", ENROLLMENT_OUT,
             "enrollments.csv"),
    TaskType("trainingHistoryXml", EXPORT, "every enrollment with its status, completion "
             "date and score to an XML file", "xml", "forma-enrollments", ENROLLMENT_OUT,
             "training-records.xml", file_settings={"format": "training-records"}),
    TaskType("completedTrainingRecordsXml", EXPORT, "completed enrollments only to an XML "
             "file", "xml", "forma-enrollments", ENROLLMENT_OUT, "training-records.xml",
             file_settings={"format": "training-records"},
             lms_settings={"only_status": "completed"}),
    TaskType("imsEnterprise", IMPORT, "users, courses and enrollments from an IMS Enterprise "
             "1.1 file (a student-information system's), in one transaction", "ims-enterprise",
             "forma-lms", IMS, "ims-enterprise.xml",
             notes="a person's userid is its sourcedid/id; `iotask connection edit NAME-file "
                   "--set userid=userid` takes it from <userid>, `--set groups=orgchart` "
                   "makes groups org units"),
    TaskType("userMergeXml", IMPORT, "duplicate users merged into their survivors: "
             "enrollments, completions and groups moved, the duplicate suspended", "xml",
             "forma-merges", MERGE, "user-merge.xml", file_settings={"format": "user-merge"}),
)}

# PeopleFluent's other task types: listed, refused
UNAVAILABLE = ("aiccPackage", "autoEnrollment", "certificationCsv", "ekpXml",
               "examSectionImports", "examSectionQuestionImports", "jobProfilesCsv",
               "mainExamImports", "modules", "programCsv", "ServiceNowExamDataFeed",
               "sfiaImport", "tncUsersCsv", "turboTrainingHistory", "users200510Xml")


def examples_folder() -> Path:
    """The sample files: ``iotask/examples`` in an installed package, else the repository's
    ``examples/`` (a checkout or an editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "examples"
    return installed if installed.is_dir() else package.parent / "examples"


def find(name: str) -> TaskType:
    """The type named ``name``; an unavailable or unknown name is one clear error."""
    if name in TYPES:
        return TYPES[name]
    available = ", ".join(TYPES)
    if name in UNAVAILABLE:
        raise IotaskError(f"task type {name!r} is not available in iotask; available: "
                          f"{available}")
    known = {n.lower(): n for n in (*TYPES, *UNAVAILABLE)}
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {known[close[0]]!r}?)" if close else ""
    raise IotaskError(f"unknown task type {name!r}{hint}; available: {available} (see "
                      "`iotask task types`)")


def describe(t: TaskType) -> dict[str, Any]:
    """A type as ``iotask task types --json`` shows it."""
    return {"name": t.name, "available": True, "direction": t.direction, "format": t.format,
            "source": t.source, "destination": t.destination, "summary": t.summary,
            "columns": [{"name": c.name, "required": c.required, "help": c.help}
                        for c in t.columns],
            "sample": str(examples_folder() / t.sample), "notes": t.notes or None,
            "sequence": t.sequence,
            "file_connection": {"type": t.file_type, **t.file_settings},
            "lms_connection": {"type": t.lms_type, **t.lms_settings}, "map": t.map}


def describe_all() -> list[dict[str, Any]]:
    return [describe(t) for t in TYPES.values()] + [
        {"name": name, "available": False} for name in UNAVAILABLE]


def connection_names(task: str) -> tuple[str, str]:
    """The file-end and LMS-end connections a typed task makes: NAME-file and NAME-lms."""
    return f"{task}{FILE_SUFFIX}", f"{task}{LMS_SUFFIX}"


def check_options(t: TaskType, url: str | None, changes: tasks.TaskChanges) -> str:
    """What --type needs and refuses, checked before the database is opened; the URL."""
    if changes.source is not None or changes.destination is not None:
        raise IotaskError(f"--type makes the task's connections: give --type {t.name} without "
                          "--source and --destination (or those without --type)")
    if not url:
        what = "the file to read (a path, a folder ending in /, or an ftp:, sftp:, https: URL)" \
            if t.direction == IMPORT else "where to write the file (a path or an ftp:, sftp:, " \
                                          "https: URL; the name may hold {date:%Y%m%d})"
        raise IotaskError(f"--type {t.name} needs --url: {what}")
    return url


def add(session: Session, name: str, type_name: str, url: str, lms_url: str | None,
        changes: tasks.TaskChanges, file_roots: Sequence[Path] | None = None,
        now: bool = False) -> Task:
    """The task NAME of type ``type_name`` with its two connections, in ``session``'s
    transaction: an error anywhere leaves none of them. ``lms_url`` None: the LMS is the
    iotask database (the LMS connection then follows it)."""
    t = find(type_name)
    check_options(t, url, changes)
    file_name, lms_name = connection_names(name)
    if len(lms_name) > NAME_LENGTH:
        raise IotaskError(f"task name {name!r} is too long for a typed task: its connections "
                          f"{file_name!r} and {lms_name!r} must fit in {NAME_LENGTH} "
                          f"characters; use at most {NAME_LENGTH - len(LMS_SUFFIX)}")
    taken = [n for n in (file_name, lms_name) if session.get(Connection, n) is not None]
    if taken:
        names = " and ".join(repr(n) for n in taken)
        commands = " and ".join(f"`iotask connection remove {quote(n)}`" for n in taken)
        said = f"connection {names} already exists" if len(taken) == 1 else \
            f"connections {names} already exist"
        raise IotaskError(f"{said}: a task of a type makes its own connections NAME-file and "
                          "NAME-lms; choose another task name or remove "
                          f"{'it' if len(taken) == 1 else 'them'} ({commands})")
    if session.get(Task, name) is not None:
        raise IotaskError(f"task {name!r} already exists: use `iotask task edit`")
    for connector in (t.file_type, t.lms_type):
        try:
            registry.get_row(session, connector)
        except NotFound:
            module = connector.replace("-", "_")
            raise IotaskError(f"task type {t.name} needs the connector {connector!r}, which this "
                              "database has not registered: run `iotask db upgrade` (or "
                              f"`iotask connector register iotask.connectors.{module}`)") from None
    lms_params = {**({"database": lms_url} if lms_url else {}), **t.lms_settings}
    connections.add(session, file_name, t.file_type, description=f"{t.name} file of task {name}",
                    params_json=json.dumps({"url": url, **t.file_settings}),
                    file_roots=file_roots)
    connections.add(session, lms_name, t.lms_type, description=f"{t.name} LMS of task {name}",
                    params_json=json.dumps(lms_params), file_roots=file_roots)
    session.flush()
    changes.source, changes.destination = (file_name, lms_name) if t.direction == IMPORT \
        else (lms_name, file_name)
    if changes.map is None and t.map is not None:
        changes.map = json.dumps(t.map)
    if changes.description is None:
        changes.description = f"{t.name}: {t.summary}"
    if changes.sequence is None:
        changes.sequence = t.sequence
    return tasks.add(session, name, changes, file_roots, now=now)
