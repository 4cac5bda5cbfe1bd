"""Task types (`iotask task add NAME --type TYPE --url URL`, `iotask task types`): each type made
in one command from its sample file under examples/, run end to end through `run-due` on SQLite
and MariaDB (forma's own 3.x DDL; the CSV types on PostgreSQL too), checked in the forma tables
or in the exported file; the refusals (unknown and unavailable types, --type with --source,
names taken) leave nothing made."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SQLITE_MARIADB = pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
SQLITE = pytest.mark.parametrize("backend", ["sqlite"])

CSV_IMPORTS = {  # task name: (type, sample), in the order a site sets them up
    "orgs": ("organizationsCsv", "organizations.csv"),
    "users": ("usersCsv", "users.csv"),
    "courses": ("courseCsv", "courses.csv"),
    "enrolled": ("enrollmentsCsv", "enrollments.csv"),
    "history": ("trainingHistoryCsv", "training-history.csv"),
    "external": ("externalTrainingCsv", "external-training.csv"),
}


def sample(name: str, folder: Path) -> Path:
    """A copy of examples/NAME in ``folder``, finished a while ago (as a feed delivers it)."""
    folder.mkdir(exist_ok=True)
    return aged(Path(shutil.copy(EXAMPLES / name, folder / name)))


def import_users(iotask, folder: Path, *more: str) -> None:
    """The sample org units and users (and ``more`` task names of CSV_IMPORTS) imported."""
    for task in ("orgs", "users", *more):
        kind, name = CSV_IMPORTS[task]
        iotask("task", "add", task, "--type", kind, "--url", str(sample(name, folder)), "--now")
    iotask("run-due")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


class Site:
    """The forma tables of the LMS database, read back."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        md = sa.MetaData()
        self.t = {name: sa.Table(name, md, autoload_with=self.engine) for name in
                  ("core_user", "core_org_chart_tree", "core_org_chart", "learning_course",
                   "learning_courseuser")}

    def rows(self, query: sa.Select) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def units(self) -> dict[str, tuple[str | None, str]]:
        """code: (parent code, english name)."""
        tree, names = self.t["core_org_chart_tree"], self.t["core_org_chart"]
        parent = tree.alias("parent")
        query = (sa.select(tree.c.code, parent.c.code, names.c.translation)
                 .outerjoin(parent, parent.c.idOrg == tree.c.idParent)
                 .join(names, sa.and_(names.c.id_dir == tree.c.idOrg,
                                      names.c.lang_code == "english")))
        return {code: (up, name) for code, up, name in self.rows(query)}

    def users(self) -> dict[str, tuple[str, str, int]]:
        user = self.t["core_user"]
        return {userid.lstrip("/"): (first, email, int(valid)) for userid, first, email, valid
                in self.rows(sa.select(user.c.userid, user.c.firstname, user.c.email,
                                       user.c.valid).where(user.c.userid != "/Anonymous"))}

    def courses(self) -> dict[str, tuple[str, int]]:
        course = self.t["learning_course"]
        return {code: (name, int(status)) for code, name, status in
                self.rows(sa.select(course.c.code, course.c.name, course.c.status))}

    def enrollments(self) -> dict[tuple[str, str], tuple[int, int, str | None, int | None]]:
        """(userid, code): (level, status, date_complete as text, score)."""
        cu, user, course = (self.t[name] for name in
                            ("learning_courseuser", "core_user", "learning_course"))
        query = (sa.select(user.c.userid, course.c.code, cu.c.level, cu.c.status,
                           cu.c.date_complete, cu.c.score_given)
                 .join(user, user.c.idst == cu.c.idUser)
                 .join(course, course.c.idCourse == cu.c.idCourse))
        return {(userid.lstrip("/"), code): (int(level), int(status),
                                             str(done)[:16] if done else None, score)
                for userid, code, level, status, done, score in self.rows(query)}


def test_every_csv_type_runs_from_its_sample_through_run_due(iotask, forma_url, tmp_path):
    feeds = tmp_path / "feeds"
    for task, (kind, name) in CSV_IMPORTS.items():
        iotask("task", "add", task, "--type", kind, "--url", str(sample(name, feeds)),
               "--lms", forma_url, "--frequency", "daily", "--email", "hr@acme.example",
               "--now")
    out = tmp_path / "out"
    out.mkdir()
    iotask("task", "add", "users out", "--type", "getUsersCsv", "--url",
           str(out / "users-{date:%Y}.csv"), "--lms", forma_url, "--now")
    iotask("task", "add", "history out", "--type", "trainingHistory", "--url",
           str(out / "history.csv"), "--lms", forma_url, "--now")
    listed = {row["name"]: row for row in iotask("task", "list", "--json").json()}
    assert [listed[name]["sequence"] for name in CSV_IMPORTS] == [10, 20, 30, 40, 50, 50]
    assert listed["users out"]["source"] == "users out-lms"
    assert listed["users out"]["destination"] == "users out-file"

    result = iotask("run-due", "--json")
    assert {run["task"]: run["status"] for run in result.json()["tasks"]} == {
        **{task: "success" for task in CSV_IMPORTS}, "users out": "success",
        "history out": "success"}, result.out

    site = Site(forma_url)
    assert site.units() == {
        "acme": (None, "ACME Group"), "acme-it": ("acme", "ACME Italia"),
        "acme-it-sales": ("acme-it", "Sales Italy"), "acme-de": ("acme", "ACME Deutschland"),
        "acme-de-rd": ("acme-de", "Research & Development"), "acme-us": ("acme", "ACME, Inc.")}
    users = site.users()
    assert {k: v for k, v in users.items() if k != "admin"} == {
        "mrossi": ("Mario", "mario.rossi@acme.example", 1),
        "gbianchi": ("Giulia", "giulia.bianchi@acme.example", 1),
        "lmueller": ("Lena", "lena.mueller@acme.example", 1),
        "jdoe": ("John", "john.doe@acme.example", 1),
        "asmith": ("Anna", "anna.smith@acme.example", 1),
        "pdupont": ("Pierre", "pierre.dupont@acme.example", 0)}
    assert site.courses() == {"SAF-101": ("Workplace safety", 1),
                              "GDPR-200": ("Data protection (GDPR)", 1),
                              "LEAD-300": ("Leading a team", 1),
                              "SALES-IT": ("Tecniche di vendita", 0)}
    enrolled = site.enrollments()
    # enrollmentsCsv: as the file says
    assert enrolled[("mrossi", "SAF-101")] == (3, 2, "2026-01-20 16:42", 92)
    assert enrolled[("mrossi", "SALES-IT")] == (3, 0, None, None)
    assert enrolled[("lmueller", "SAF-101")] == (3, 2, "2026-01-14 09:05", 78)
    # trainingHistoryCsv: completes an enrollment, or enrolls and completes
    assert enrolled[("gbianchi", "GDPR-200")] == (3, 2, "2026-02-03 15:20", 85)
    assert enrolled[("jdoe", "SAF-101")] == (3, 2, "2026-01-28 10:02", 100)
    assert enrolled[("asmith", "SAF-101")] == (3, 2, "2026-01-29 17:45", None)
    # externalTrainingCsv: the provider's dates; jdoe stays a tutor
    assert enrolled[("jdoe", "LEAD-300")] == (4, 2, "2026-03-10 17:00", None)
    assert enrolled[("asmith", "LEAD-300")] == (3, 2, "2026-03-10 17:00", None)
    assert enrolled[("lmueller", "GDPR-200")] == (3, 2, "2025-11-18 00:00", 96)
    assert len(enrolled) == 9

    (exported,) = out.glob("users-*.csv")
    rows = {row["userid"]: row for row in read_csv(exported)}
    given = {row["userid"]: row for row in read_csv(EXAMPLES / "users.csv")}
    for userid, row in given.items():
        assert {k: v for k, v in rows[userid].items() if k not in ("tree_code", "valid")} == \
            {k: v for k, v in row.items() if k not in ("tree_code", "valid")}
        assert sorted(rows[userid]["tree_code"].split("#")) == sorted(row["tree_code"].split("#"))
    history = {(row["userid"], row["code"]): row for row in read_csv(out / "history.csv")}
    assert set(history) == set(enrolled)
    assert history[("mrossi", "SAF-101")]["status"] == "completed"
    assert history[("mrossi", "SAF-101")]["score"] == "92"
    assert history[("mrossi", "SALES-IT")]["status"] == "subscribed"

    shown = iotask("task", "show", "users", "--json").json()
    assert shown["notify_email"] == "hr@acme.example"
    assert (shown["schedule_type"], shown["schedule"]) == ("at", "02:00")
    assert shown["description"].startswith("usersCsv: ")


@SQLITE
def test_without_lms_the_lms_is_the_iotask_database(iotask, forma_url, migrated_url, tmp_path):
    """No --lms and no lms_database_url: the LMS connection has no database setting and
    follows the iotask database (where `iotask lms init` made the forma tables)."""
    import_users(iotask, tmp_path / "in")
    assert "database" not in iotask("connection", "show", "users-lms", "--json").json()["params"]
    assert "mrossi" in Site(migrated_url).users()


@SQLITE
def test_a_typed_import_syncs_like_any_task(iotask, forma_url, tmp_path):
    """--import-type sync with a type: a user the next file leaves out is suspended."""
    folder = tmp_path / "in"
    iotask("task", "add", "orgs", "--type", "organizationsCsv", "--url",
           str(sample("organizations.csv", folder)), "--now")
    users = sample("users.csv", folder)
    iotask("task", "add", "users", "--type", "usersCsv", "--url", str(users), "--import-type",
           "sync", "--max-remove", "50%", "--now")
    iotask("run-due")
    assert Site(forma_url).users()["jdoe"][2] == 1
    lines = users.read_text(encoding="utf-8").splitlines(keepends=True)
    users.write_text("".join(line for line in lines if not line.startswith("jdoe,")),
                     encoding="utf-8")
    aged(users)
    iotask("run", "users")
    assert Site(forma_url).users()["jdoe"][2] == 0


@SQLITE
def test_lms_database_url_comes_from_the_configuration(iotask, forma_url, tmp_path,
                                                        monkeypatch):
    lms = f"sqlite:///{tmp_path / 'lms.db'}"
    assert run_cli("--db", lms, "lms", "init").code == 0
    monkeypatch.setenv("IOTASK_LMS_DATABASE_URL", lms)
    import_users(iotask, tmp_path / "in")
    params = iotask("connection", "show", "users-lms", "--json").json()["params"]
    assert params["database"] == lms
    assert "mrossi" in Site(lms).users()
    assert "mrossi" not in Site(forma_url).users()

    monkeypatch.setenv("IOTASK_LMS_DATABASE_URL", "mysql+pymysql://lms:s3cret-pw@db.example/lms")
    shown = iotask("config", "--json")
    assert shown.json()["lms_database"] == "mysql+pymysql://lms:***@db.example/lms"
    assert "s3cret-pw" not in shown.out
    monkeypatch.delenv("IOTASK_LMS_DATABASE_URL")
    (tmp_path / "iotask.ini").write_text(f"[iotask]\nlms_database_url = {lms}\n")
    assert iotask("config", "--json").json()["lms_database"] == lms
    (tmp_path / "iotask.ini").unlink()
    assert iotask("config", "--json").json()["lms_database"] == "the iotask database"


@SQLITE
@pytest.mark.parametrize(("kind", "fragments"), [
    ("nosuchType", ["unknown task type 'nosuchType'", "available: usersCsv, getUsersCsv"]),
    ("userscsv", ["unknown task type 'userscsv' (did you mean 'usersCsv'?)"]),
    ("trainingHistoryCSV", ["did you mean 'trainingHistoryCsv'?"]),
    ("aiccPackage", ["task type 'aiccPackage' is not available in iotask; available: "
                     "usersCsv, getUsersCsv, organizationsCsv"]),
    ("turboTrainingHistory", ["'turboTrainingHistory' is not available"]),
])
def test_unknown_and_unavailable_types_are_one_line_and_make_nothing(iotask, tmp_path, kind,
                                                                     fragments):
    result = iotask("task", "add", "x", "--type", kind, "--url", str(tmp_path / "x.csv"),
                    ok=False)
    assert_user_error(result, *fragments)
    assert result.code == 2
    assert_user_error(iotask("task", "types", kind, ok=False), *fragments)
    assert iotask("connection", "list", "--json").json() == []
    assert iotask("task", "list", "--json").json() == []


@SQLITE
@pytest.mark.parametrize(("args", "fragments"), [
    (["--type", "usersCsv", "--url", "u.csv", "--source", "a"],
     ["--type makes the task's connections", "without --source and --destination"]),
    (["--type", "usersCsv", "--url", "u.csv", "--destination", "b"], ["--type makes"]),
    (["--type", "usersCsv"], ["--type usersCsv needs --url: the file to read"]),
    (["--type", "getUsersCsv"], ["--type getUsersCsv needs --url: where to write"]),
    (["--url", "u.csv", "--source", "a", "--destination", "b"], ["--url and --lms go with --type"]),
    (["--lms", "sqlite:///x.db"], ["--url and --lms go with --type"]),
    ([], ["a task needs --source CONNECTION and --destination CONNECTION, or --type TYPE"]),
    (["--type", "usersCsv", "--url", "u.csv", "--frequency", "hourly", "--at", "02:00"],
     ["--frequency hourly without --at"]),
    (["--type", "usersCsv", "--url", "u.csv", "--frequency", "daily", "--every", "1 day"],
     ["give one schedule"]),
    (["--type", "usersCsv", "--url", "u.csv", "--lms", "nonsense"], ["setting 'database'"]),
    (["--type", "usersCsv", "--url", "/etc/passwd"], ["outside the folders iotask may use"]),
])
def test_wrong_options_are_one_line_and_make_nothing(iotask, args, fragments):
    result = iotask("task", "add", "x", *args, ok=False)
    assert_user_error(result, *fragments)
    assert iotask("connection", "list", "--json").json() == []
    assert iotask("task", "list", "--json").json() == []


@SQLITE
@pytest.mark.parametrize("taken", ["hr-file", "hr-lms"])
def test_a_taken_connection_name_is_refused_and_nothing_is_made(iotask, tmp_path, taken):
    iotask("connection", "add", taken, "--type", "csv", "--set", f"url={tmp_path / 'a.csv'}")
    result = iotask("task", "add", "hr", "--type", "usersCsv", "--url",
                    str(tmp_path / "users.csv"), ok=False)
    assert_user_error(result, f"connection {taken!r} already exists", "NAME-file and NAME-lms")
    assert [c["name"] for c in iotask("connection", "list", "--json").json()] == [taken]
    assert iotask("task", "list", "--json").json() == []


@SQLITE
def test_both_taken_names_are_named(iotask, tmp_path):
    for taken in ("HR users-file", "HR users-lms"):
        iotask("connection", "add", taken, "--type", "csv", "--set", f"url={tmp_path / 'a.csv'}")
    result = iotask("task", "add", "HR users", "--type", "usersCsv", "--url",
                    str(tmp_path / "users.csv"), ok=False)
    assert_user_error(result, "connections 'HR users-file' and 'HR users-lms' already exist",
                      "remove them (`iotask connection remove 'HR users-file'` and `iotask "
                      "connection remove 'HR users-lms'`)")


@SQLITE
def test_a_taken_task_name_is_refused_and_no_connection_is_made(iotask, tmp_path):
    iotask("task", "add", "hr", "--type", "usersCsv", "--url", str(tmp_path / "users.csv"))
    iotask("connection", "remove", "hr-file", ok=False)  # used by the task: kept
    iotask("task", "remove", "hr")
    iotask("connection", "remove", "hr-file")
    iotask("connection", "remove", "hr-lms")
    iotask("connection", "add", "other", "--type", "csv", "--set", f"url={tmp_path / 'a.csv'}")
    iotask("task", "add", "hr", "--source", "other", "--destination", "other")
    result = iotask("task", "add", "hr", "--type", "usersCsv", "--url",
                    str(tmp_path / "users.csv"), ok=False)
    assert_user_error(result, "task 'hr' already exists")
    assert [c["name"] for c in iotask("connection", "list", "--json").json()] == ["other"]


@SQLITE
def test_a_name_too_long_for_its_connections_is_refused(iotask, tmp_path):
    result = iotask("task", "add", "n" * 47, "--type", "usersCsv", "--url",
                    str(tmp_path / "users.csv"), ok=False)
    assert_user_error(result, "too long for a typed task", "use at most 46")
    assert iotask("connection", "list", "--json").json() == []


@SQLITE
def test_frequencies_are_schedules(iotask, tmp_path):
    url = str(tmp_path / "users.csv")
    for name, options, expected in [
            ("h", ["--frequency", "hourly"], ("any", "1 hour")),
            ("d", ["--frequency", "daily"], ("at", "02:00")),
            ("d2", ["--frequency", "daily", "--at", "05:30"], ("at", "05:30")),
            ("w", ["--frequency", "weekly"], ("cron", "0 2 * * 1")),
            ("w2", ["--frequency", "weekly", "--at", "23:05"], ("cron", "5 23 * * 1")),
            ("none", [], ("any", "1 day"))]:
        iotask("task", "add", name, "--type", "usersCsv", "--url", url, *options)
        shown = iotask("task", "show", name, "--json").json()
        assert (shown["schedule_type"], shown["schedule"]) == expected, name
    iotask("task", "edit", "h", "--frequency", "weekly")
    assert iotask("task", "show", "h", "--json").json()["schedule"] == "0 2 * * 1"


@SQLITE
def test_a_typed_task_is_an_ordinary_task_afterwards(iotask, tmp_path):
    """Its connections and map can be edited like any others; --map and --sequence given to
    `task add --type` win over the type's."""
    iotask("task", "add", "th", "--type", "trainingHistoryCsv", "--url",
           str(tmp_path / "h.csv"), "--sequence", "7", "--description", "LMS completions")
    shown = iotask("task", "show", "th", "--json").json()
    assert shown["sequence"] == 7
    assert shown["description"] == "LMS completions"
    assert shown["map"]["columns"]["status"] == {"const": "completed"}
    assert shown["map"]["columns"]["score"] == {"optional": "score"}
    iotask("connection", "edit", "th-file", "--set", "delimiter=;")
    said = iotask("task", "add", "v", "--type", "usersCsv", "--url", str(tmp_path / "v.csv"),
                  "-v").out
    assert said.strip() == "added task v (usersCsv) with connections v-file and v-lms"
    iotask("task", "add", "u", "--type", "usersCsv", "--url", str(tmp_path / "u.csv"),
           "--map", '{"columns": {"userid": "login"}, "key": ["userid"]}')
    assert iotask("task", "show", "u", "--json").json()["map"]["columns"] == {"userid": "login"}


@SQLITE
def test_completions_leave_out_optional_columns_and_need_the_required_ones(
        iotask, forma_url, tmp_path):
    import_users(iotask, tmp_path / "in", "courses")
    short = tmp_path / "short.csv"  # no score, no date_complete: both optional here
    short.write_text("userid,code\nmrossi,GDPR-200\n", encoding="utf-8")
    aged(short)
    iotask("task", "add", "history", "--type", "trainingHistoryCsv", "--url", str(short),
           "--now")
    iotask("run-due")
    status, done = Site(forma_url).enrollments()[("mrossi", "GDPR-200")][1:3]
    assert status == 2 and done is not None  # completed, dated when the run applied it

    # externalTrainingCsv needs date_complete: checked when the task is added (nothing is
    # made), and again when a later file lacks it
    result = iotask("task", "add", "external", "--type", "externalTrainingCsv", "--url",
                    str(short), "--now", ok=False)
    assert_user_error(result, "map column 'date_complete' takes source column 'date_complete', "
                              "which the source does not have (userid, code)")
    names = [c["name"] for c in iotask("connection", "list", "--json").json()]
    assert "external-file" not in names and "external-lms" not in names
    later = sample("external-training.csv", tmp_path / "ext")
    iotask("task", "add", "external", "--type", "externalTrainingCsv", "--url", str(later),
           "--now")
    shutil.copy(short, later)
    aged(later)
    result = iotask("run-due", "--json", ok=False)
    assert result.code == 1
    (run,) = [run for run in result.json()["tasks"] if run["task"] == "external"]
    assert run["status"] == "failed"
    assert "'date_complete'" in run["error"]


def types(*args: str):
    """`iotask task types ...`, which needs no database."""
    result = run_cli("task", "types", *args)
    assert result.code == 0, result.err
    return result


def test_task_types_lists_every_type_with_its_sample():
    every = types("--json").json()
    available = [t for t in every if t["available"]]
    assert [t["name"] for t in available] == [
        "usersCsv", "getUsersCsv", "organizationsCsv", "courseCsv", "courses",
        "enrollmentsCsv", "trainingHistoryCsv", "externalTrainingCsv", "trainingHistory",
        "trainingHistoryXml", "completedTrainingRecordsXml", "imsEnterprise", "userMergeXml"]
    assert {t["name"] for t in every if not t["available"]} == {
        "aiccPackage", "autoEnrollment", "certificationCsv", "ekpXml", "examSectionImports",
        "examSectionQuestionImports", "jobProfilesCsv", "mainExamImports", "modules",
        "programCsv", "ServiceNowExamDataFeed", "sfiaImport", "tncUsersCsv",
        "turboTrainingHistory", "users200510Xml"}
    for kind in available:
        assert kind["direction"] in ("import", "export")
        assert kind["columns"] and all(c["help"] for c in kind["columns"])
        sample = Path(kind["sample"])  # the installed package's copy, or the checkout's
        assert sample.read_bytes() == (EXAMPLES / sample.name).read_bytes()
    table = types().out
    assert "usersCsv" in table and "not available: aiccPackage" in table
    detail = types("courseCsv").out.splitlines()
    assert detail[0].startswith("courseCsv: courses from a CSV file")
    assert any(line.split()[:2] == ["code", "required"] for line in detail)
    assert any(line.split()[:2] == ["credits", "optional"] for line in detail)


def test_every_sample_file_exists_and_csv_ones_fit_their_columns():
    for kind in types("--json").json():
        if not kind["available"]:
            continue
        path = Path(kind["sample"])
        assert path.is_file(), f"{kind['name']}: no sample {path}"
        if kind["format"] != "csv":
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle))
        names = {c["name"] for c in kind["columns"]}
        prefixes = tuple(n.split("<")[0] for n in names if "<" in n)
        assert {c["name"] for c in kind["columns"] if c["required"]} <= set(header), path
        assert all(h in names or h.startswith(prefixes) for h in header), (path, header)


# --- the XML and IMS Enterprise types -------------------------------------------------------

def xml_records(path: Path, schema: str) -> list[dict[str, str]]:
    """The records of an export, which must validate against the format's shipped XSD."""
    from importlib import resources

    from lxml import etree

    xsd = etree.XMLSchema(etree.fromstring(resources.files("iotask.connectors").joinpath(
        "schemas", f"{schema}.xsd").read_bytes()))
    tree = etree.parse(str(path))
    assert xsd.validate(tree), f"{path}: {xsd.error_log}"
    return [{child.tag: child.text or "" for child in record} for record in tree.getroot()]


@SQLITE_MARIADB
def test_xml_types_run_from_their_samples_through_run_due(iotask, forma_url, tmp_path):
    """courses (XML) into the LMS, then, with the sample users and training records loaded
    through plain xml connections, userMergeXml loses no enrollment and no completion, and
    trainingHistoryXml / completedTrainingRecordsXml export valid XML."""
    feeds = tmp_path / "feeds"
    for name, fmt, lms, sequence in (("hr-users", "users", "forma-users", "20"),
                                     ("records", "training-records", "forma-enrollments", "45")):
        iotask("connection", "add", f"{name}-xml", "--type", "xml", "--set",
               f"url={sample(f'{fmt}.xml', feeds)}", "--set", f"format={fmt}")
        iotask("connection", "add", f"{name}-lms", "--type", lms, "--set", f"database={forma_url}")
        iotask("task", "add", name, "--source", f"{name}-xml", "--destination", f"{name}-lms",
               "--sequence", sequence, "--now")
    iotask("task", "add", "catalogue", "--type", "courses", "--url",
           str(sample("courses.xml", feeds)), "--lms", forma_url, "--now")
    result = iotask("run-due", "--json")
    assert [(r["task"], r["status"]) for r in result.json()["tasks"]] == [
        ("hr-users", "success"), ("catalogue", "success"), ("records", "success")]
    site = Site(forma_url)
    assert site.courses() == {"SAF-101": ("Workplace safety", 1),
                              "GDPR-2026": ("Data protection (GDPR) 2026", 1),
                              "FORK-CL": ("Forklift operation <classroom>", 0)}
    before = site.enrollments()
    assert len(before) == 6

    merges = sample("user-merge.xml", feeds)
    iotask("task", "add", "merge", "--type", "userMergeXml", "--url", str(merges), "--lms",
           forma_url, "--now")
    out = tmp_path / "out"
    out.mkdir()
    iotask("task", "add", "all records", "--type", "trainingHistoryXml", "--url",
           str(out / "records.xml"), "--lms", forma_url, "--now")
    iotask("task", "add", "completed", "--type", "completedTrainingRecordsXml", "--url",
           str(out / "completed.xml"), "--lms", forma_url, "--now")
    result = iotask("run-due", "--json")
    assert {r["task"]: r["status"] for r in result.json()["tasks"] if r["executed"]} == {
        "merge": "success", "all records": "success", "completed": "success"}

    users = site.users()
    assert users["jdoe2"][2] == 0 and users["mrossi.old"][2] == 0  # the duplicates suspended
    assert users["jdoe"][2] == 1 and users["mrossi"][2] == 1
    after = site.enrollments()
    assert not [key for key in after if key[0] in ("jdoe2", "mrossi.old")]

    def held(enrolled: dict, *userids: str) -> tuple[set[str], set[str]]:
        """The courses these accounts are enrolled in, and those they completed."""
        mine = {code: value for (userid, code), value in enrolled.items() if userid in userids}
        return set(mine), {code for code, value in mine.items() if value[1] == 2}

    # none lost: each survivor holds every course of its pair, and every completion
    assert held(after, "jdoe") == held(before, "jdoe", "jdoe2") == ({"SAF-101", "GDPR-2026"},
                                                                    {"SAF-101"})
    assert held(after, "mrossi") == held(before, "mrossi", "mrossi.old") == ({"FORK-CL"},
                                                                              {"FORK-CL"})
    assert held(after, "lmüller") == held(before, "lmüller")
    assert len(after) == len(before) - 2  # the two courses both accounts of a pair had
    assert after[("mrossi", "FORK-CL")][1:] == (2, "2024-03-02 17:00", 88)  # the better one
    assert after[("jdoe", "SAF-101")] == before[("jdoe", "SAF-101")]  # the later completion

    records = xml_records(out / "records.xml", "training-records")
    assert {(r["userid"], r["code"]) for r in records} == set(after)
    completed = xml_records(out / "completed.xml", "training-records")
    assert {(r["userid"], r["code"]) for r in completed} == {
        key for key, value in after.items() if value[1] == 2}
    assert all(r["status"] == "completed" for r in completed)


@SQLITE_MARIADB
def test_ims_enterprise_type_runs_from_its_sample_through_run_due(iotask, forma_url,
                                                                  tmp_path):
    iotask("task", "add", "sis", "--type", "imsEnterprise", "--url",
           str(sample("ims-enterprise.xml", tmp_path / "feeds")), "--lms", forma_url,
           "--frequency", "hourly", "--now")
    result = iotask("run-due", "--json")
    assert [(r["task"], r["status"]) for r in result.json()["tasks"]] == [("sis", "success")]
    site = Site(forma_url)
    users = site.users()
    assert {k: v for k, v in users.items() if k != "admin"} == {
        "S1001": ("Ana", "ana.rossi@example.edu", 1),
        "S1002": ("Ben", "ben.okafor@example.edu", 1),
        "S1003": ("Chloé", "chloe.martin@example.edu", 1),
        "F2001": ("Ewa", "ewa.kowalski@example.edu", 1)}
    assert site.courses() == {"BIO-101-F26": ("Introduction to Biology", 0),
                              "HIS-210-F26": ("Modern European History", 0)}
    levels = {key: value[0] for key, value in site.enrollments().items()}
    assert levels == {("S1001", "BIO-101-F26"): 3, ("S1002", "BIO-101-F26"): 3,
                      ("F2001", "BIO-101-F26"): 6, ("S1003", "HIS-210-F26"): 3,
                      ("S1001", "HIS-210-F26"): 4}


@SQLITE
def test_a_type_whose_connector_is_not_registered_says_how_to_get_it(iotask, migrated_url,
                                                                    tmp_path):
    engine = sa.create_engine(migrated_url)
    with engine.begin() as conn:  # a database whose built-in row was removed by hand
        conn.execute(sa.text("DELETE FROM core_connector WHERE type = 'forma-merges'"))
    engine.dispose()
    result = iotask("task", "add", "m", "--type", "userMergeXml", "--url",
                    str(tmp_path / "m.xml"), ok=False)
    assert_user_error(result, "task type userMergeXml needs the connector 'forma-merges', which "
                              "this database has not registered: run `iotask db upgrade` (or "
                              "`iotask connector register iotask.connectors.forma_merges`)")
    assert iotask("connection", "list", "--json").json() == []
