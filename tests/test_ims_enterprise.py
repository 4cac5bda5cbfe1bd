"""The ims-enterprise source into the forma-lms destination, through the CLI: an IMS Enterprise
1.1 file adds, updates and deletes persons, groups and memberships in one all-or-nothing
transaction; vendors' shapes (one line, namespaces, ISO-8859-1, padded ids, idtype as an
element, no recstatus) read the same; hostile files (billion laughs, external entities, a
malformed file) are refused with one line and nothing read or written."""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error, write_csv

EXAMPLE = Path(__file__).parent.parent / "examples" / "ims-enterprise.xml"
DATA = Path(__file__).parent / "data" / "ims"


class Site:
    """A forma site fed by an IMS file: source "sis" on feed.xml, destination "lms"."""

    def __init__(self, iotask, url: str, folder: Path, source: tuple[str, ...] = (),
                 destination: tuple[str, ...] = ()) -> None:
        self.iotask, self.url = iotask, url
        self.file = folder / "feed.xml"
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        iotask("connection", "add", "sis", "--type", "ims-enterprise", "--set",
               f"url={self.file}", *source)
        iotask("connection", "add", "lms", "--type", "forma-lms", "--set", f"database={url}",
               *destination)

    def write(self, text: str, encoding: str = "utf-8") -> None:
        self.file.write_bytes(text.encode(encoding))
        aged(self.file)

    def task(self, *options: str) -> None:
        self.iotask("task", "add", "ims", "--source", "sis", "--destination", "lms", *options)

    def run(self, *options: str, ok: bool = True):
        return self.iotask("run", "ims", "--json", *options, ok=ok)

    def table(self, name: str) -> sa.Table:
        return sa.Table(name, sa.MetaData(), autoload_with=self.engine)

    def users(self) -> dict[str, tuple]:
        user = self.table("core_user")
        with self.engine.connect() as conn:
            return {row.userid: (row.firstname, row.lastname, row.email, int(row.valid))
                    for row in conn.execute(sa.select(user)) if row.userid != "/Anonymous"
                    and row.userid != "/admin"}

    def courses(self) -> dict[str, tuple]:
        course = self.table("learning_course")
        with self.engine.connect() as conn:
            return {row.code: (row.name, int(row.status), _day(row.date_begin),
                               _day(row.date_end))
                    for row in conn.execute(sa.select(course))}

    def enrollments(self) -> dict[tuple[str, str], tuple[int, int]]:
        cu, user, course = (self.table(name) for name in
                            ("learning_courseuser", "core_user", "learning_course"))
        with self.engine.connect() as conn:
            return {(userid, code): (int(level), int(status))
                    for userid, code, level, status in conn.execute(
                        sa.select(user.c.userid, course.c.code, cu.c.level, cu.c.status)
                        .select_from(cu.join(user, user.c.idst == cu.c.idUser)
                                     .join(course, course.c.idCourse == cu.c.idCourse)))}

    def count(self, name: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(
                self.table(name))).scalar_one())


def _day(value) -> str | None:
    if value is None or str(value).startswith("0000"):
        return None
    return str(value)[:10]


@pytest.fixture
def site(iotask, forma_url, tmp_path) -> Site:
    return Site(iotask, forma_url, tmp_path)


def person(pid: str, given: str, family: str, email: str, recstatus: str | None = "1") -> str:
    status = f' recstatus="{recstatus}"' if recstatus else ""
    return (f"<person{status}><sourcedid><source>SIS</source><id>{pid}</id></sourcedid>"
            f"<name><fn>{given} {family}</fn><n><family>{family}</family><given>{given}</given>"
            f"</n></name><email>{email}</email></person>")


def group(code: str, name: str, begin: str = "", end: str = "",
          recstatus: str | None = "1") -> str:
    status = f' recstatus="{recstatus}"' if recstatus else ""
    frame = f"<timeframe><begin>{begin}</begin><end>{end}</end></timeframe>" if begin else ""
    return (f"<group{status}><sourcedid><source>SIS</source><id>{code}</id></sourcedid>"
            f"<description><short>{code}</short><long>{name}</long></description>{frame}"
            "</group>")


def membership(code: str, *members: tuple[str, str, str | None, str]) -> str:
    """``members``: (person id, role type, role recstatus, role status)."""
    parts = "".join(
        f"<member><sourcedid><source>SIS</source><id>{pid}</id></sourcedid><idtype>1</idtype>"
        f"<role roletype='{role}'{f' recstatus={rec!r}' if rec else ''}>"
        f"<status>{status}</status></role></member>"
        for pid, role, rec, status in members)
    return (f"<membership><sourcedid><source>SIS</source><id>{code}</id></sourcedid>{parts}"
            "</membership>")


def enterprise(*parts: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<enterprise>\n'
            + "\n".join(parts) + "\n</enterprise>\n")


FIRST = enterprise(
    person("P1", "Ana", "Rossi", "ana@example.edu"),
    person("P2", "Ben", "Okafor", "ben@example.edu"),
    person("P3", "Chloé", "Martin", "chloe@example.edu"),
    group("BIO-101", "Biology", "2026-09-07", "2026-12-18"),
    group("HIS-210", "History", "20260907", "20261218T170000Z"),
    membership("BIO-101", ("P1", "01", "1", "1"), ("P2", "01", "1", "1"),
               ("P3", "02", "1", "1")),
    membership("HIS-210", ("P1", "08", None, "1"), ("P3", "01", None, "1")),
)

SECOND = enterprise(
    person("P1", "Ana", "Rossi-Bianchi", "ana.rb@example.edu", "2"),
    person("P2", "Ben", "Okafor", "ben@example.edu", "3"),
    person("P4", "Dan", "Novak", "dan@example.edu", None),
    group("BIO-101", "Biology I", "2026-09-14", "2026-12-18", "2"),
    group("HIS-210", "History", recstatus="3"),
    membership("BIO-101", ("P1", "01", "3", "1"), ("P3", "02", "2", "0"),
               ("P4", "01", "1", "1")),
)


def test_a_file_adds_updates_and_deletes_persons_groups_and_memberships(site):
    site.write(FIRST)
    site.task("--every", "1 hour", "--now", "--max-remove", "50%")
    assert site.iotask("run-due").code == 0
    assert site.users() == {"/P1": ("Ana", "Rossi", "ana@example.edu", 1),
                            "/P2": ("Ben", "Okafor", "ben@example.edu", 1),
                            "/P3": ("Chloé", "Martin", "chloe@example.edu", 1)}
    assert site.courses() == {"BIO-101": ("Biology", 0, "2026-09-07", "2026-12-18"),
                              "HIS-210": ("History", 0, "2026-09-07", "2026-12-18")}
    assert site.enrollments() == {("/P1", "BIO-101"): (3, 0), ("/P2", "BIO-101"): (3, 0),
                                  ("/P3", "BIO-101"): (6, 0), ("/P1", "HIS-210"): (4, 0),
                                  ("/P3", "HIS-210"): (3, 0)}
    history = site.iotask("history", "ims", "--json").json()
    assert history[0]["counts"]["inserted"] == 10

    # an administrator opens History; then the next file updates and deletes
    course = site.table("learning_course")
    with site.engine.begin() as conn:
        conn.execute(sa.update(course).where(course.c.code == "HIS-210").values(status=1))
    site.write(SECOND)
    preview = site.run("--dry-run").json()[0]
    assert preview["changes"]["remove"] == 4  # P2, HIS-210, P1 and P3 in BIO-101
    assert "user userid=P2" in preview["samples"]["remove"]
    assert "enrollment userid=P1 code=BIO-101" in preview["samples"]["remove"]
    assert site.users()["/P2"][3] == 1  # the dry run changed nothing
    result = site.run().json()["tasks"][0]
    assert result["status"] == "success", result
    assert site.users() == {"/P1": ("Ana", "Rossi-Bianchi", "ana.rb@example.edu", 1),
                            "/P2": ("Ben", "Okafor", "ben@example.edu", 0),  # suspended
                            "/P3": ("Chloé", "Martin", "chloe@example.edu", 1),
                            "/P4": ("Dan", "Novak", "dan@example.edu", 1)}
    assert site.courses() == {"BIO-101": ("Biology I", 0, "2026-09-14", "2026-12-18"),
                              "HIS-210": ("History", 0, "2026-09-07", "2026-12-18")}
    assert site.enrollments() == {("/P1", "BIO-101"): (3, 3), ("/P2", "BIO-101"): (3, 0),
                                  ("/P3", "BIO-101"): (6, 3), ("/P4", "BIO-101"): (3, 0),
                                  ("/P1", "HIS-210"): (4, 0), ("/P3", "HIS-210"): (3, 0)}
    assert result["counts"]["removed"] == 4


def test_hard_removals_delete_the_records(iotask, forma_url, tmp_path):
    site = Site(iotask, forma_url, tmp_path, destination=(
        "--set", "users_remove=delete", "--set", "courses_remove=delete",
        "--set", "enrollments_remove=unsubscribe"))
    site.write(FIRST)
    site.task("--max-remove", "50%")
    site.run()
    site.write(enterprise(person("P2", "Ben", "Okafor", "ben@example.edu", "3"),
                          group("HIS-210", "History", recstatus="3"),
                          membership("BIO-101", ("P1", "01", "3", "1"))))
    assert site.run().json()["tasks"][0]["counts"]["removed"] == 3
    assert set(site.users()) == {"/P1", "/P3"}
    assert set(site.courses()) == {"BIO-101"}
    # a deleted user's enrollments are kept (forma-users' rule), the others as they were
    assert site.enrollments() == {("/P3", "BIO-101"): (6, 0)}
    assert site.count("learning_courseuser") == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_example_file_and_the_role_setting(iotask, forma_url, tmp_path):
    site = Site(iotask, forma_url, tmp_path, source=("--set", "roles=02=admin,08=mentor"))
    shutil.copy(EXAMPLE, site.file)
    aged(site.file)
    site.task()
    assert site.run().json()["tasks"][0]["counts"]["inserted"] == 11
    enrolled = site.enrollments()
    assert enrolled[("/F2001", "BIO-101-F26")] == (7, 0)  # 02 Instructor: admin here
    assert enrolled[("/S1001", "HIS-210-F26")] == (5, 0)  # 08 TA: mentor here
    assert site.users()["/S1003"] == ("Chloé", "Martin", "chloe.martin@example.edu", 1)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_logins_from_the_userid_element(iotask, forma_url, tmp_path):
    """userid=userid: persons are named by their <userid>, and so are the members of the
    memberships, which the file names by sourcedid."""
    site = Site(iotask, forma_url, tmp_path, source=("--set", "userid=userid"))
    shutil.copy(EXAMPLE, site.file)
    aged(site.file)
    site.task()
    site.run()
    assert set(site.users()) == {"/ana.rossi", "/ben.okafor", "/chloe.martin", "/dr.kowalski"}
    assert site.enrollments()[("/dr.kowalski", "BIO-101-F26")] == (6, 0)
    assert site.enrollments()[("/ana.rossi", "HIS-210-F26")] == (4, 0)


def test_a_bad_role_setting_is_refused_when_saved(iotask):
    result = iotask("connection", "add", "x", "--type", "ims-enterprise", "--set",
                        "url=feed.xml", "--set", "roles=01=pope", ok=False)
    assert_user_error(result, "roles", "'pope' is not a course level")


# --- what vendors send ----------------------------------------------------------------------

VENDOR_SHAPES = {
    "one-line.xml": "utf-8",
    "default-namespace.xml": "utf-8",
    "prefixed-namespace.xml": "utf-8",
    "iso-8859-1.xml": "iso-8859-1",
    "sloppy.xml": "utf-8",  # padded ids, idtype as attribute, no recstatus, comments
}


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
@pytest.mark.parametrize("name", sorted(VENDOR_SHAPES))
def test_vendor_shapes_read_the_same(iotask, forma_url, tmp_path, name):
    site = Site(iotask, forma_url, tmp_path)
    shutil.copy(DATA / name, site.file)
    aged(site.file)
    site.task()
    result = site.run().json()["tasks"][0]
    assert result["status"] == "success", result
    assert site.users() == {"/P1": ("Zoë", "Ångström", "zoe@example.edu", 1),
                            "/P2": ("Ben", "Okafor", "ben@example.edu", 1)}
    assert site.courses() == {"C-1": ("Chemistry", 0, "2026-09-07", "2026-12-18")}
    assert site.enrollments() == {("/P1", "C-1"): (3, 0), ("/P2", "C-1"): (6, 0)}


def test_every_vendor_file_holds_the_same_data():
    """The shapes differ in form only: a check of the test's own data."""
    for name, encoding in VENDOR_SHAPES.items():
        text = (DATA / name).read_bytes().decode(encoding)
        assert "Ångström" in text and "C-1" in text, name
    assert len((DATA / "one-line.xml").read_text().strip().splitlines()) == 1


def test_groups_as_org_units_and_memberships_as_placements(iotask, forma_url, tmp_path):
    site = Site(iotask, forma_url, tmp_path, source=("--set", "groups=orgchart"))
    relation = ('<relationship relation="1"><sourcedid><source>SIS</source><id>FAC</id>'
                "</sourcedid><label>Parent</label></relationship>")
    site.write(enterprise(
        person("P1", "Ana", "Rossi", "ana@example.edu"),
        "<group><sourcedid><id>FAC</id></sourcedid><description><short>Science</short>"
        "</description></group>",
        f"<group><sourcedid><id>DEP</id></sourcedid><description><short>Chemistry</short>"
        f"</description>{relation}</group>",
        membership("DEP", ("P1", "04", None, "1"))))
    site.task("--max-remove", "100%")
    assert site.run().json()["tasks"][0]["status"] == "success"
    tree, members, user = (site.table(name) for name in
                           ("core_org_chart_tree", "core_group_members", "core_user"))
    with site.engine.connect() as conn:
        units = {row.code: row for row in conn.execute(sa.select(tree))}
        assert units["DEP"].idParent == units["FAC"].idOrg
        idst = conn.execute(sa.select(user.c.idst).where(user.c.userid == "/P1")).scalar_one()
        groups = {g for (g,) in conn.execute(sa.select(members.c.idst)
                                             .where(members.c.idstMember == idst))}
    assert {units["DEP"].idst_oc, units["DEP"].idst_ocd} <= groups
    site.write(enterprise(membership("DEP", ("P1", "04", "3", "1"))))
    assert site.run().json()["tasks"][0]["counts"]["removed"] == 1
    with site.engine.connect() as conn:
        groups = {g for (g,) in conn.execute(sa.select(members.c.idst)
                                             .where(members.c.idstMember == idst))}
    assert not {units["DEP"].idst_oc, units["DEP"].idst_ocd} & groups


# --- hostile files --------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE enterprise [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<enterprise><person><sourcedid><id>P1</id></sourcedid><name><fn>&lol9;</fn></name></person>
</enterprise>
"""


def external(system: str) -> str:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE enterprise [ <!ENTITY xxe SYSTEM "{system}"> ]>'
            "\n<enterprise><person><sourcedid><id>P1</id></sourcedid><name><fn>&xxe;</fn>"
            "</name></person></enterprise>\n")


def assert_failed(result, *fragments: str) -> None:
    """A failed run: non-zero exit, one line on stderr naming the task, no traceback."""
    assert result.code != 0, result.out
    (line,) = result.err.strip().splitlines()
    assert line.startswith("iotask: task 'ims' failed"), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


def assert_refused(site: Site, fragment: str) -> None:
    users = site.count("core_user")
    assert_failed(site.iotask("run", "ims", ok=False), "feed.xml", fragment,
                  "nothing was applied")
    assert site.count("core_user") == users


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_billion_laughs_is_refused(site):
    site.write(BILLION_LAUGHS)
    site.task()
    assert_refused(site, "line 2: the DOCTYPE declares its own entities")


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"secret")

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def recorder():
    """A local HTTP server that records every request made to it."""
    _Recorder.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.requests
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_external_entity_over_http_is_refused_without_a_request(site, recorder):
    base, requests = recorder
    site.write(external(f"{base}/leak"))
    site.task()
    assert_refused(site, "the DOCTYPE declares its own entities")
    assert requests == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_external_entity_file_is_refused_and_never_opened(site, tmp_path):
    """The entity names a FIFO: a writer blocked on it learns whether anyone opened it to
    read. Nobody does; the test then opens it itself to let the writer go."""
    fifo = tmp_path / "passwd.fifo"
    os.mkfifo(fifo)
    opened = []
    ours = threading.Event()

    def writer() -> None:
        with open(fifo, "w") as out:  # blocks until a reader opens the FIFO
            opened.append("test" if ours.is_set() else "iotask")
            out.write("root:x:0:0\n")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    site.write(external(f"file://{fifo}"))
    site.task()
    assert_refused(site, "the DOCTYPE declares its own entities")
    ours.set()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, whoever came before
    thread.join(5)
    os.close(reader)
    assert opened == ["test"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_external_dtd_is_not_loaded(site, recorder):
    """A DOCTYPE naming an external DTD (as many SIS exports do) is read without fetching
    it."""
    base, requests = recorder
    site.write(FIRST.replace("<enterprise>",
                             f'<!DOCTYPE enterprise SYSTEM "{base}/ims.dtd">\n<enterprise>', 1))
    site.task()
    assert site.run().json()["tasks"][0]["status"] == "success"
    assert len(site.users()) == 3
    assert requests == []


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_a_malformed_file_names_its_line_and_column(site):
    lines = FIRST.splitlines()
    lines[4] = lines[4].replace("</person>", "</persn>")  # the third person, on line 5
    site.write("\n".join(lines))
    site.task()
    assert_refused(site, "line 5 column")
    assert site.count("learning_course") == 0


# --- all or nothing -------------------------------------------------------------------------

def test_a_membership_of_an_unknown_course_is_a_row_error_naming_its_line(site):
    site.write(enterprise(
        person("P1", "Ana", "Rossi", "ana@example.edu"),
        *(person(f"Q{n}", "Q", f"Person{n}", f"q{n}@example.edu") for n in range(30)),
        group("BIO-101", "Biology"),
        membership("BIO-101", ("P1", "01", None, "1")),
        membership("NOPE-999", ("P1", "01", None, "1"))))
    site.task()
    result = site.run().json()["tasks"][0]
    assert result["status"] == "partial", result
    (error,) = result["row_errors"]
    assert error["row"] == 36 and "NOPE-999" in error["message"] + (error["key"] or "")
    assert site.enrollments() == {("/P1", "BIO-101"): (3, 0)}
    assert len(site.users()) == 31


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_bad_elements_are_row_errors_naming_their_lines(site):
    site.write(enterprise(
        person("P1", "Ana", "Rossi", "ana@example.edu"),
        "<person><sourcedid><id>  </id></sourcedid></person>",
        person("P2", "Ben", "Okafor", "ben@example.edu", recstatus="9"),
        group("BIO-101", "Biology", "2026-13-45x", "2026-12-18"),
        group("HIS-210", "History"),
        membership("HIS-210", ("P1", "99", None, "1"), ("P1", "01", None, "1"))))
    site.task("--max-errors", "90%")
    result = site.run().json()["tasks"][0]
    errors = {(e["row"], e["column"]): e for e in result["row_errors"]}
    assert set(errors) == {(4, "userid"), (5, "action"), (6, "date_begin"), (8, "level")}
    assert "recstatus '9'" in errors[(5, "action")]["message"]
    assert errors[(6, "date_begin")]["key"] == "code=BIO-101"
    assert set(site.users()) == {"/P1"}
    assert set(site.courses()) == {"HIS-210"}
    assert site.enrollments() == {("/P1", "HIS-210"): (3, 0)}


def test_a_file_deleting_too_much_is_held(site):
    site.write(FIRST)
    site.task()
    site.run()
    before = site.users()
    site.write(enterprise(*(person(pid, "x", "y", "z@example.edu", "3")
                            for pid in ("P1", "P2", "P3"))))
    result = site.run(ok=False).json()["tasks"][0]
    assert result["status"] == "held", result
    assert site.users() == before


def test_rows_of_another_source_must_name_their_record(iotask, forma_url, tmp_path):
    write_csv(tmp_path / "mixed.csv", ["record", "userid", "firstname"],
              [["user", "jdoe", "John"], ["student", "ann", "Ann"]])
    iotask("connection", "add", "mixed", "--type", "csv", "--set",
               f"url={tmp_path / 'mixed.csv'}")
    iotask("connection", "add", "lms", "--type", "forma-lms", "--set",
               f"database={forma_url}")
    iotask("task", "add", "mix", "--source", "mixed", "--destination", "lms")
    result = iotask("run", "mix", ok=False)
    assert result.code != 0
    (line,) = result.err.strip().splitlines()
    assert "line 3: record 'student' is not one of user, orgunit, course" in line
    user = sa.Table("core_user", sa.MetaData(), autoload_with=sa.create_engine(forma_url))
    with sa.create_engine(forma_url, poolclass=sa.pool.NullPool).connect() as conn:
        assert conn.execute(sa.select(user).where(user.c.userid == "/jdoe")).first() is None


def test_a_failure_in_the_memberships_step_rolls_back_the_users(site):
    site.write(FIRST)
    site.task()
    with site.engine.begin() as conn:  # the enrollments step will fail writing its log
        site.table("learning_statuschangelog").drop(conn)
    users, groups = site.count("core_user"), site.count("core_group")
    assert_failed(site.iotask("run", "ims", ok=False), "learning_statuschangelog")
    assert site.count("core_user") == users
    assert site.count("core_group") == groups
    assert site.count("learning_course") == 0
