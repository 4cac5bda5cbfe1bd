"""The xml connector through the CLI: forma-users and forma-enrollments exported as XML that
validates against the XSDs shipped in the package (to a file and over SFTP), XML users and
courses imported into the forma tables, a round trip forma → xml → an empty LMS → xml giving the
same files, and hostile files (entities, malformed XML, a wrong root, an unknown element, control
characters) refused with the line and nothing applied."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error, run_cli, write_csv
from lxml import etree
from servers import PASSWORD, make_tls, start_https, start_sftp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DATA = Path(__file__).resolve().parent / "data" / "xml"
FORMATS = ("users", "training-records", "courses", "user-merge")
TWO = pytest.mark.parametrize("backend", ["sqlite", "mariadb"])


def shipped_schema(name: str) -> etree.XMLSchema:
    """The XSD as the installed package ships it (importlib.resources)."""
    data = resources.files("iotask.connectors").joinpath("schemas", f"{name}.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(data))


def assert_valid(path: Path, name: str) -> etree._ElementTree:
    schema = shipped_schema(name)
    tree = etree.parse(str(path))
    assert schema.validate(tree), f"{path}: {schema.error_log}"
    return tree


def records(path: Path) -> list[dict[str, str]]:
    """Each record of an export as {element (or field:name): text}."""
    out = []
    for record in etree.parse(str(path)).getroot():
        out.append({(f"field:{child.get('name')}" if child.tag == "field" else child.tag):
                    child.text or "" for child in record})
    return out


def cli(db: str, *args: str) -> None:
    result = run_cli("--db", db, *args)
    assert result.code == 0, f"iotask {' '.join(args)}: {result.err}"


def seed(iotask, lms: str, folder: Path) -> None:
    """An LMS fed from HR's CSV files: courses, users, enrollments with completions."""
    files = {
        "courses": write_csv(folder / "courses.csv", ["code", "name", "status", "date_begin"],
                             [["SAF-1", "Safety <first> & \"last\"", "available", "2026-01-10"],
                              ["GDPR", "Data protection", "preparation", ""]]),
        "users": write_csv(folder / "users.csv",
                           ["userid", "firstname", "lastname", "email", "valid"],
                           [["mrossi", "Mario", "Rossi", "mario@example.com", "1"],
                            ["lmüller", "Lena", "Müller & Söhne", "lena@example.com", "1"],
                            ["jdoe", "John", "O'Doe", "", "0"]]),
        "enrollments": write_csv(
            folder / "enrollments.csv",
            ["userid", "code", "level", "date_subscription", "status", "date_complete", "score"],
            [["mrossi", "SAF-1", "student", "2026-02-01", "completed", "2026-03-01 10:30:00",
              "88"],
             ["lmüller", "SAF-1", "tutor", "2026-02-02", "subscribed", "", ""],
             ["jdoe", "GDPR", "student", "2026-02-03", "in_progress", "", ""]]),
    }
    for kind, path in files.items():
        iotask("connection", "add", f"hr-{kind}", "--type", "csv", "--set", f"url={path}")
        iotask("connection", "add", f"lms-{kind}", "--type", f"forma-{kind}",
               "--set", f"database={lms}")
        iotask("task", "add", f"import {kind}", "--source", f"hr-{kind}",
               "--destination", f"lms-{kind}")
        iotask("run", f"import {kind}")


def export(iotask, name: str, source: str, url: str, fmt: str, *settings: str,
           task: tuple[str, ...] = ()) -> dict:
    iotask("connection", "add", name, "--type", "xml", "--set", f"url={url}",
           "--set", f"format={fmt}", *settings)
    iotask("task", "add", f"export {name}", "--source", source, "--destination", name, *task)
    return iotask("run", f"export {name}", "--json", ok=False).json()["tasks"][0]


# --- the formats ------------------------------------------------------------------------------

def test_the_xsds_ship_in_the_package_and_name_the_forma_columns():
    from iotask.connectors import forma_courses, forma_enrollments, forma_users, xml

    assert set(xml.FORMATS) == set(FORMATS)
    expected = {"users": list(forma_users.COLUMNS), "training-records": forma_enrollments.NAMES,
                "courses": forma_courses.NAMES, "user-merge": ["userid", "survivor"]}
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    for name in FORMATS:
        schema = etree.fromstring(resources.files("iotask.connectors").joinpath(
            "schemas", f"{name}.xsd").read_bytes())
        record = schema.find(f"xs:complexType[@name='{xml.FORMATS[name].record}']", ns)
        names = [element.get("name") for element in record.iterfind(".//xs:element", ns)]
        assert [n for n in names if n != "field"] == expected[name] == \
            list(xml.FORMATS[name].columns), name
        assert_valid(EXAMPLES / f"{name}.xml", name)  # the samples are valid too


@pytest.mark.slow
def test_the_built_wheel_ships_the_xsds(tmp_path):
    """The XSDs are package data: in the wheel, and read through importlib.resources from an
    install of it (not from this repository)."""
    repository = EXAMPLES.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path), str(repository)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = tmp_path.glob("iotask-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from importlib import resources; "
            "import iotask.connectors as c; assert c.__file__.startswith(sys.argv[1]); "
            "print(*(len(resources.files(c).joinpath('schemas', n + '.xsd').read_bytes()) "
            "for n in sys.argv[2:]))")
    shown = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(installed), *FORMATS],
                           check=True, capture_output=True, text=True, timeout=60).stdout
    sizes = [len((repository / "connectors" / "schemas" / f"{n}.xsd").read_bytes())
             for n in FORMATS]
    assert shown.split() == [str(size) for size in sizes]


def test_a_connection_needs_a_known_format(iotask, tmp_path):
    assert_user_error(iotask("connection", "add", "x", "--type", "xml", "--set",
                                 f"url={tmp_path / 'a.xml'}", ok=False), "format")
    assert_user_error(iotask("connection", "add", "x", "--type", "xml", "--set",
                                 f"url={tmp_path / 'a.xml'}", "--set", "format=people",
                                 ok=False), "people")


# --- exports ----------------------------------------------------------------------------------

@TWO
def test_users_and_training_records_export_valid_xml(iotask, forma_url, tmp_path):
    seed(iotask, forma_url, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = export(iotask, "users-xml", "lms-users", str(out / "users-{date:%Y}.xml"),
                    "users")
    assert result["status"] == "success", result
    (path,) = out.glob("users-*.xml")
    assert path.name[6:10].isdigit()
    assert_valid(path, "users")
    users = {r["userid"]: r for r in records(path)}
    assert {"mrossi", "lmüller", "jdoe"} <= set(users)
    assert users["lmüller"]["lastname"] == "Müller & Söhne"
    assert users["jdoe"]["lastname"] == "O'Doe" and users["jdoe"]["valid"] == "0"
    assert b"M\xc3\xbcller &amp; S\xc3\xb6hne" in path.read_bytes()  # escaped, UTF-8

    export(iotask, "records-xml", "lms-enrollments", str(out / "records.xml"),
           "training-records")
    assert_valid(out / "records.xml", "training-records")
    got = {(r["userid"], r["code"]): r for r in records(out / "records.xml")}
    assert set(got) == {("mrossi", "SAF-1"), ("lmüller", "SAF-1"), ("jdoe", "GDPR")}
    assert got[("mrossi", "SAF-1")]["status"] == "completed"
    assert got[("mrossi", "SAF-1")]["date_complete"].startswith("2026-03-01 10:30")
    assert got[("mrossi", "SAF-1")]["score"] == "88"

    # completions only: forma-enrollments with only_status=completed
    iotask("connection", "add", "lms-completed", "--type", "forma-enrollments",
               "--set", f"database={forma_url}", "--set", "only_status=completed")
    export(iotask, "completed-xml", "lms-completed", str(out / "completed.xml"),
           "training-records", "--set", "encoding=iso-8859-1")
    tree = assert_valid(out / "completed.xml", "training-records")
    assert tree.docinfo.encoding.lower() == "iso-8859-1"
    assert [(r["userid"], r["code"]) for r in records(out / "completed.xml")] == \
        [("mrossi", "SAF-1")]


def test_only_status_must_be_a_status(iotask, tmp_path):
    assert_user_error(iotask("connection", "add", "x", "--type", "forma-enrollments",
                                 "--set", "only_status=finished", ok=False), "only_status",
                      "finished")


def test_an_export_goes_over_sftp(iotask, forma_url, tmp_path):
    seed(iotask, forma_url, tmp_path)
    served = tmp_path / "served"
    (served / "out").mkdir(parents=True)
    with start_sftp(served, tmp_path / "keys") as sftp:
        result = export(iotask, "users-sftp", "lms-users", sftp.url("/out/users.xml"),
                        "users", "--set", f"password={PASSWORD}",
                        "--set", f"known_hosts={sftp.known_hosts}")
    assert result["status"] == "success", result
    assert PASSWORD not in str(result)
    path = served / "out" / "users.xml"
    assert_valid(path, "users")
    assert {"mrossi", "lmüller", "jdoe"} <= {r["userid"] for r in records(path)}
    assert [p.name for p in (served / "out").iterdir()] == ["users.xml"]  # no temporary left


def test_an_export_is_posted_over_https_as_xml(iotask, forma_url, tmp_path):
    seed(iotask, forma_url, tmp_path)
    tls = make_tls(tmp_path / "tls")
    with start_https(tls) as https:
        result = export(iotask, "records-https", "lms-enrollments",
                        https.url("/lms/records.xml"), "training-records",
                        "--set", f"ca_bundle={tls.ca_path}", "--set", "auth_header=Bearer t0k")
    assert result["status"] == "success", result
    (request,) = https.received
    assert request.method == "POST" and request.path == "/lms/records.xml"
    assert request.headers["Content-Type"] == "application/xml; charset=utf-8"
    posted = tmp_path / "posted.xml"
    posted.write_bytes(request.body)
    assert_valid(posted, "training-records")
    assert len(records(posted)) == 3


def test_control_characters_are_row_errors_and_the_export_stays_valid(
        iotask, forma_url, tmp_path):
    seed(iotask, forma_url, tmp_path)
    engine = sa.create_engine(forma_url, poolclass=sa.pool.NullPool)
    user = sa.Table("core_user", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(sa.update(user).where(user.c.userid == "/mrossi")
                     .values(firstname="Ma\x07rio", lastname="line\nbreak\ttab"))
        conn.execute(sa.update(user).where(user.c.userid == "/jdoe")
                     .values(lastname="Doe\r\nJr"))
    engine.dispose()
    path = tmp_path / "users.xml"
    result = export(iotask, "users-xml", "lms-users", str(path), "users")
    assert result["status"] == "failed" and not path.exists()  # max_errors: nothing written
    (error,) = result["row_errors"]
    assert error["column"] == "firstname" and "U+0007" in error["message"]
    assert error["key"] == "userid=mrossi"

    iotask("task", "edit", "export users-xml", "--max-errors", "50%")
    result = iotask("run", "export users-xml", "--json", ok=False).json()["tasks"][0]
    assert result["counts"]["inserted"] >= 2 and len(result["row_errors"]) == 1
    assert_valid(path, "users")
    users = {r["userid"]: r for r in records(path)}
    assert "mrossi" not in users
    assert users["jdoe"]["lastname"] == "Doe\r\nJr"  # CR kept: written as &#13;
    assert b"Doe&#13;\nJr" in path.read_bytes()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_value_the_xsd_refuses_is_a_row_error_naming_its_column(iotask, tmp_path):
    feed = write_csv(tmp_path / "records.csv", ["userid", "code", "status", "date_complete",
                                                "score"],
                     [["ann", "C-1", "completed", "2026-03-01 10:30", "90"],
                      ["bob", "C-1", "completed", "last tuesday", "80"],
                      ["eve", "C-1", "completed", "2026-03-02", "ninety"],
                      ["", "C-1", "completed", "2026-03-02", "70"]])
    iotask("connection", "add", "feed", "--type", "csv", "--set", f"url={feed}")
    path = tmp_path / "records.xml"
    result = export(iotask, "records", "feed", str(path), "training-records",
                    task=("--max-errors", "100%"))
    errors = {error["row"]: error for error in result["row_errors"]}
    assert set(errors) == {3, 4, 5}  # the CSV lines
    assert errors[3]["column"] == "date_complete" and "last tuesday" in errors[3]["message"]
    assert errors[4]["column"] == "score" and "ninety" in errors[4]["message"]
    assert errors[5]["column"] == "userid"
    assert "not valid in the training-records XML format" in errors[3]["message"]
    assert_valid(path, "training-records")
    assert [r["userid"] for r in records(path)] == ["ann"]


# --- imports ----------------------------------------------------------------------------------

@TWO
def test_xml_courses_and_users_import_into_the_forma_tables(iotask, forma_url, tmp_path):
    for kind, name in (("courses", "courses"), ("users", "users")):
        path = aged(Path(shutil.copy(EXAMPLES / f"{name}.xml", tmp_path / f"{name}.xml")))
        iotask("connection", "add", f"{kind}-xml", "--type", "xml", "--set",
                   f"url={path}", "--set", f"format={name}")
        iotask("connection", "add", f"lms-{kind}", "--type", f"forma-{kind}",
                   "--set", f"database={forma_url}")
        iotask("task", "add", f"import {kind}", "--source", f"{kind}-xml",
                   "--destination", f"lms-{kind}")
        result = iotask("run", f"import {kind}", "--json").json()["tasks"][0]
        assert result["status"] == "success", result
    engine = sa.create_engine(forma_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        courses = {row.code: row for row in conn.execute(sa.text(
            "SELECT code, name, status, course_type, date_begin, max_num_subscribe "
            "FROM learning_course"))}
        users = {row.userid: row for row in conn.execute(sa.text(
            "SELECT userid, firstname, lastname, email, valid FROM core_user"))}
    engine.dispose()
    assert set(courses) == {"SAF-101", "GDPR-2026", "FORK-CL"}
    assert courses["FORK-CL"].name == "Forklift operation <classroom>"
    assert courses["FORK-CL"].status == 0 and courses["FORK-CL"].max_num_subscribe == 12
    assert str(courses["GDPR-2026"].date_begin)[:10] == "2026-01-15"
    assert courses["SAF-101"].status == 1
    assert {"/jdoe", "/jdoe2", "/mrossi", "/mrossi.old", "/lmüller", "/aobrien"} <= set(users)
    assert users["/aobrien"].lastname == "O'Brien & Co." and users["/aobrien"].valid == 0
    assert users["/lmüller"].email == "lena.mueller@example.com"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_folder_of_xml_files_is_imported_file_by_file(iotask, tmp_path):
    iotask("lms", "init")
    folder = tmp_path / "drop"
    folder.mkdir()
    for number, userid in enumerate(("ann", "bob"), start=1):
        path = folder / f"users-{number}.xml"
        path.write_text(f"<users><user><userid>{userid}</userid></user></users>\n")
        aged(path, 120 - number)
    iotask("connection", "add", "drop", "--type", "xml", "--set", f"url={folder}/",
               "--set", "format=users")
    iotask("connection", "add", "lms", "--type", "forma-users")
    iotask("task", "add", "t", "--source", "drop", "--destination", "lms")
    result = iotask("run", "t", "--json").json()["tasks"][0]
    assert result["counts"]["inserted"] == 2
    assert sorted(p.name for p in folder.iterdir()) == ["users-1.xml.imported",
                                                        "users-2.xml.imported"]


def test_a_record_without_its_key_is_a_row_error_the_others_go_on(iotask, forma_url,
                                                                  tmp_path):
    path = tmp_path / "users.xml"
    path.write_text('<?xml version="1.0" encoding="iso-8859-1"?>\n<users>\n'
                    "  <!-- a comment -->\n"
                    "  <user><firstname>No key</firstname></user>\n"
                    "  <user><email>ann@example.com</email><userid>ann</userid>"
                    "<lastname>Lefèvre</lastname></user>\n"
                    "</users>\n", encoding="iso-8859-1")
    aged(path)
    iotask("connection", "add", "users-xml", "--type", "xml", "--set", f"url={path}",
               "--set", "format=users")
    iotask("connection", "add", "lms", "--type", "forma-users",
               "--set", f"database={forma_url}")
    iotask("task", "add", "t", "--source", "users-xml", "--destination", "lms",
               "--max-errors", "1")
    result = iotask("run", "t", "--json", ok=False).json()["tasks"][0]
    assert result["counts"]["inserted"] == 1
    (error,) = result["row_errors"]
    assert error["row"] == 4 and error["column"] == "userid"
    assert "has no <userid>" in error["message"]
    rejects = Path(result["reject_file"])  # the record as it was, after why: fix and import
    assert rejects.suffix == ".xml"
    tree = etree.parse(str(rejects))
    (record,) = tree.getroot().iterchildren(tag="user")
    assert record.findtext("firstname") == "No key"
    assert "has no <userid>" in record.getprevious().text
    engine = sa.create_engine(forma_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:  # read as the declaration says: ISO-8859-1
        assert conn.execute(sa.text("SELECT lastname FROM core_user WHERE userid = '/ann'")
                            ).scalar_one() == "Lefèvre"
    engine.dispose()


@TWO
def test_round_trip_forma_xml_empty_lms_xml_gives_identical_files(iotask, forma_url,
                                                                  migrated_url, tmp_path):
    seed(iotask, forma_url, tmp_path)
    kinds = {"courses": "courses", "users": "users", "enrollments": "training-records"}

    def export_all(db: str, lms: str, folder: Path, tag: str) -> dict[str, Path]:
        folder.mkdir()
        for kind, fmt in kinds.items():
            cli(db, "connection", "add", f"{tag}-{kind}-lms", "--type", f"forma-{kind}",
                "--set", f"database={lms}")
            cli(db, "connection", "add", f"{tag}-{kind}-xml", "--type", "xml",
                "--set", f"url={folder / f'{fmt}.xml'}", "--set", f"format={fmt}")
            cli(db, "task", "add", f"{tag} export {kind}", "--source", f"{tag}-{kind}-lms",
                "--destination", f"{tag}-{kind}-xml")
            cli(db, "run", f"{tag} export {kind}")
        return {kind: folder / f"{fmt}.xml" for kind, fmt in kinds.items()}

    first = export_all(migrated_url, forma_url, tmp_path / "first", "a")
    empty = f"sqlite:///{tmp_path / 'empty-lms.db'}"
    cli(empty, "lms", "init")
    for kind, fmt in kinds.items():  # courses and users before enrollments
        aged(first[kind])
        cli(migrated_url, "connection", "add", f"b-{kind}-in", "--type", "xml",
            "--set", f"url={first[kind]}", "--set", f"format={fmt}")
        cli(migrated_url, "connection", "add", f"b-{kind}-into", "--type", f"forma-{kind}",
            "--set", f"database={empty}")
        cli(migrated_url, "task", "add", f"b import {kind}", "--source", f"b-{kind}-in",
            "--destination", f"b-{kind}-into")
        cli(migrated_url, "run", f"b import {kind}")
    second = export_all(migrated_url, empty, tmp_path / "second", "b")
    for kind, fmt in kinds.items():
        assert_valid(second[kind], fmt)
        assert first[kind].read_bytes() == second[kind].read_bytes(), kind
    assert len(records(first["enrollments"])) == 3


# --- hostile files ----------------------------------------------------------------------------

def assert_run_failed(result, *fragments: str) -> None:
    """A run that failed on its input: exit 1, one line on stderr saying why, no traceback."""
    assert result.code == 1, result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def hostile(iotask, tmp_path: Path, text: str | bytes, fmt: str = "users") -> str:
    """Import ``text`` as an xml users file into forma-users; the one-line error."""
    path = tmp_path / "in.xml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    aged(path)
    iotask("connection", "add", "in", "--type", "xml", "--set", f"url={path}",
               "--set", f"format={fmt}")
    iotask("connection", "add", "lms", "--type", "forma-users")
    iotask("task", "add", "t", "--source", "in", "--destination", "lms")
    result = iotask("run", "t", ok=False)
    assert_run_failed(result)
    return result.err


@pytest.fixture
def empty_lms(iotask):
    iotask("lms", "init")
    return iotask


def count_users(migrated_url: str) -> int:
    engine = sa.create_engine(migrated_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM core_user")).scalar_one()
    engine.dispose()
    return int(count)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_billion_laughs_is_refused_and_nothing_expands(empty_lms, migrated_url, tmp_path):
    before = count_users(migrated_url)
    err = hostile(empty_lms, tmp_path, (DATA / "billion-laughs.xml").read_text())
    assert "in.xml: the file has a DOCTYPE declaration (before line 14)" in err
    assert count_users(migrated_url) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_external_entity_is_refused_and_reads_nothing(empty_lms, migrated_url, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    text = (DATA / "external-entity.xml").read_text().replace("SECRET_PATH", str(secret))
    before = count_users(migrated_url)
    err = hostile(empty_lms, tmp_path, text)
    assert "DOCTYPE" in err and "TOPSECRET" not in err
    assert count_users(migrated_url) == before


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("name", "expected"), [
    ("malformed.xml", "malformed.xml line 5 column 9: not well-formed XML"),
    ("wrong-root.xml", "line 2: the root element is <people>, expected <users>"),
    ("namespaced.xml", "namespace 'urn:example:hr'"),
    ("unknown-element.xml", "line 6: unknown element <salary> in <user>"),
    ("nested-value.xml", "line 4: <firstname> holds the element <b>"),
    ("twice.xml", "line 5: <user> has <userid> twice"),
    ("stray-text.xml", "line 3: <user> holds text outside its elements"),
    ("empty.xml", "empty.xml holds no XML element (is it empty?)"),
    ("laughs-in-attribute.xml",
     "laughs-in-attribute.xml: the file has a DOCTYPE declaration (before line 14)"),
])
def test_a_file_that_is_not_the_format_fails_with_its_line_and_applies_nothing(
        empty_lms, migrated_url, tmp_path, name, expected):
    before = count_users(migrated_url)
    source = DATA / name
    path = tmp_path / name
    shutil.copy(source, path)
    aged(path)
    empty_lms("connection", "add", "in", "--type", "xml", "--set", f"url={path}",
              "--set", "format=users")
    empty_lms("connection", "add", "lms", "--type", "forma-users")
    empty_lms("task", "add", "t", "--source", "in", "--destination", "lms")
    assert_run_failed(empty_lms("run", "t", ok=False),
                      *(expected if isinstance(expected, tuple) else (expected,)))
    assert count_users(migrated_url) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_record_of_endless_elements_stops_at_the_limit(iotask, tmp_path):
    iotask("lms", "init")
    err = hostile(iotask, tmp_path, "<users>\n<user><userid>a</userid>\n"
                  + "<firstname/>\n" * 20_000 + "</user>\n</users>\n")
    assert "in.xml line 10002: <user> has more than 10,000 elements" in err


def test_a_merge_file_read_as_users_names_the_format(iotask, tmp_path):
    path = aged(Path(shutil.copy(EXAMPLES / "user-merge.xml", tmp_path / "m.xml")))
    iotask("lms", "init")
    iotask("connection", "add", "in", "--type", "xml", "--set", f"url={path}",
               "--set", "format=users")
    iotask("connection", "add", "lms", "--type", "forma-users")
    iotask("task", "add", "t", "--source", "in", "--destination", "lms")
    assert_run_failed(iotask("run", "t", ok=False), "root element is <user-merges>",
                      "format")
