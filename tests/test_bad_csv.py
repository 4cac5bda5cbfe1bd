"""Bad CSV files end in a clear error per row or per file: never a traceback, never a partial apply.

Every file of tests/data/bad_csv, and three generated ones (a 1 MB field, a 1 MB key, a 100 KB
column name), is imported with `iotask run` into a table that holds two known rows, on SQLite,
MariaDB and PostgreSQL. The task is saved before the file arrives, as when cron picks up a new
export each night; CASES says how each file must end:

* file error: exit 1, status failed, one error naming the file (and the line where one can be
  named), and the table exactly as it was;
* row errors: status partial, the rejected rows' physical lines, the other rows applied;
* fine: status success, the rows applied;
* nothing: status nothing_to_process, the table as it was.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import BACKENDS, Result, _fresh_server_database, aged, run_cli

from iotask import db as iotask_db

DATA = Path(__file__).parent / "data" / "bad_csv"
MB = 1024 * 1024

FILE_ERROR = "file error"
ROW_ERRORS = "row errors"
FINE = "fine"
NOTHING = "nothing"

KNOWN = {
    "anna": ("Anna", "Rossi", "anna@example.com"),
    "bob": ("Bob", "Brown", "bob@example.com"),
}
CARL = {"carl": ("Carl", "Conti", "carl@example.com")}
DORA = {"dora": ("Dora", "De Luca", "dora@example.com")}
EMMA = {"emma": ("Emma", "Esposito", "emma@example.com")}
LMS_USER = """CREATE TABLE lms_user (
    userid VARCHAR(50) NOT NULL PRIMARY KEY,
    firstname VARCHAR(100),
    lastname VARCHAR(100),
    email VARCHAR(200))"""
CLASS_NAME_ONLY = re.compile(r"[A-Z]\w*(Error|Exception)\b")  # "KeyError: 'x'" says nothing


def big_field() -> bytes:
    """dora's lastname is a quoted 1 MB field with commas, doubled quotes and 1024 line breaks."""
    value = (b'a,b ""c"" ' + b"x" * 1013 + b"\n") * 1024
    assert len(value) == MB
    return (b"userid,firstname,lastname,email\n"
            b"carl,Carl,Conti,carl@example.com\n"  # line 2
            b'dora,Dora,"' + value + b'",dora@example.com\n'  # lines 3 to 1027
            b"emma,Emma,Esposito,emma@example.com\n"  # line 1028
            b"frank,Frank\n"  # line 1029
            b"gina,Gina,Greco,gina@example.com\n")  # line 1030


def big_header_name() -> bytes:
    """A 100 KB column name, twice: the header error names it, and the error is stored."""
    name = b"n" * (100 * 1024)
    return b"userid,firstname,lastname,email," + name + b"," + name + b"\ncarl,Carl,Conti,c,x,y\n"


def big_key() -> bytes:
    """A 1 MB key: rejected for its length, and the rejection is stored without failing."""
    return (b"userid,firstname,lastname,email\n"
            b"carl,Carl,Conti,carl@example.com\n"
            + b"k" * MB + b",Kay,Key,kay@example.com\n"
            b"emma,Emma,Esposito,emma@example.com\n")


@dataclass(frozen=True)
class Case:
    file: str
    outcome: str
    line: int | None = None  # file error: the line the error names
    says: tuple[str, ...] = ()  # file error: what the error must say besides file and line
    rejected: dict[int, str] = field(default_factory=dict)  # row errors: line -> why
    applied: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # new or changed
    encoding: str = "utf-8"
    make: Callable[[], bytes] | None = None  # generated in tmp_path, not kept in DATA
    bug: str | None = None  # the product gets this case wrong (on these backends)
    bug_on: tuple[str, ...] = BACKENDS

    @property
    def name(self) -> str:
        return Path(self.file).stem


def case(file: str, outcome: str, **details: Any) -> Any:
    """One row of CASES. A case with ``bug`` still asserts the right behaviour and is expected
    to fail (strictly) on the backends in ``bug_on`` until the product is fixed."""
    return pytest.param(Case(file, outcome, **details), id=Path(file).stem)


NOT_UTF8 = "are not valid utf-8"
CASES = [
    # --- rows with the wrong number of fields: those rows only ---------------------------------
    case("too_few_fields.csv", ROW_ERRORS, rejected={3: "expected 4 fields, found 3"},
         applied=CARL | EMMA),
    case("too_many_fields.csv", ROW_ERRORS,
         rejected={3: "expected 4 fields, found 5", 5: "expected 4 fields, found 5"},
         applied=CARL | EMMA),
    case("all_rows_bad.csv", ROW_ERRORS,
         rejected={2: "found 2", 3: "found 1", 4: "found 5"}),
    case("whitespace_lines_between_rows.csv", ROW_ERRORS,
         rejected={3: "expected 4 fields, found 1", 5: "expected 4 fields, found 1"},
         applied=CARL | DORA | EMMA),
    # --- encodings -----------------------------------------------------------------------------
    case("latin1_in_utf8.csv", FILE_ERROR, line=3, says=(r"b'\xe9'", NOT_UTF8)),
    case("cp1252_smart_quotes_in_utf8.csv", FILE_ERROR, line=4, says=(r"b'\x93'", NOT_UTF8)),
    case("cp1252_declared.csv", FINE, encoding="cp1252",
         applied={"dora": ("\u201cDora\u201d", "De Luca", "dora@example.com"),
                  "rene": ("Ren\u00e9", "Dupr\u00e9 \u20ac", "rene@example.com")}),
    case("bom_utf8.csv", FINE, applied=CARL | DORA),  # the BOM is not part of "userid"
    case("bom_but_latin1_declared.csv", FILE_ERROR, encoding="latin-1",
         says=("byte-order mark", "encoding=utf-8-sig")),
    case("utf16_with_bom.csv", FILE_ERROR, line=1, says=(r"b'\xff'", NOT_UTF8)),
    case("utf16le_without_bom.csv", FILE_ERROR, line=1, says=("NUL byte", "UTF-16")),
    case("nul_byte.csv", FILE_ERROR, line=3, says=("NUL byte",)),
    case("gzip_renamed.csv", FILE_ERROR, line=1, says=(NOT_UTF8,)),
    case("png_renamed.csv", FILE_ERROR, line=1, says=(NOT_UTF8,)),
    # --- quotes --------------------------------------------------------------------------------
    case("unterminated_quote_at_eof.csv", FILE_ERROR, line=4, says=("never closed",)),
    case("unterminated_quote_mid_file.csv", FILE_ERROR, line=3,
         says=("the record starting on line 3",)),
    case("text_after_closing_quote.csv", FILE_ERROR, line=3, says=("',' expected after '\"'",)),
    case("stray_quote_in_unquoted_field.csv", FINE,
         applied={"carl": ("Carl", 'O"Conti', "carl@example.com")} | DORA),
    case("quoted_newlines.csv", FINE,
         applied={"carl": ("Carl", "Conti\nDe Rossi", "carl@example.com"),
                  "dora": ("Dora\r\n\r\nMaria", "De Luca", "dora@example.com")} | EMMA),
    case("quoted_newlines_then_bad_rows.csv", ROW_ERRORS,
         rejected={8: "expected 4 fields, found 3", 9: "expected 4 fields, found 5"},
         applied={"carl": ("Carl", "Conti\nDe Rossi", "carl@example.com"),
                  "dora": ("Dora\r\n\r\nMaria", "De Luca", "dora@example.com"),
                  "hugo": ("Hugo", "Huber", "hugo@example.com")} | EMMA),
    # --- sizes ---------------------------------------------------------------------------------
    case("big_field_1mb.csv", ROW_ERRORS, make=big_field,
         rejected={3: "column 'lastname': the value is 1046528 characters long, the column "
                      "holds 100",
                   1029: "expected 4 fields, found 2"},
         applied=CARL | EMMA | {"gina": ("Gina", "Greco", "gina@example.com")}),
    case("big_key_1mb.csv", ROW_ERRORS, make=big_key,
         rejected={3: f"column 'userid': the value is {MB} characters long, the column holds 50"},
         applied=CARL | EMMA),
    case("big_header_name_100kb.csv", FILE_ERROR, make=big_header_name, line=1,
         says=("more than once",)),
    case("value_too_long.csv", ROW_ERRORS,
         rejected={3: "column 'userid': the value is 51 characters long, the column holds 50",
                   4: "column 'firstname': the value is 101 characters long"},
         applied=CARL | {"u" * 50: ("Fifty", "Chars", "fifty@example.com")}),
    # --- keys ----------------------------------------------------------------------------------
    case("duplicate_keys.csv", ROW_ERRORS,
         rejected={4: "duplicate key userid=carl: also on line 2",
                   6: "duplicate key userid=anna: also on line 5"},
         applied=CARL | DORA | {"anna": ("Anna", "Rossi", "anna.rossi@example.com")}),
    case("empty_key.csv", ROW_ERRORS,
         rejected={3: "key column 'userid' is empty", 4: "key column 'userid' is empty"},
         applied=CARL | EMMA),
    # --- empty files and headers ---------------------------------------------------------------
    case("empty.csv", FILE_ERROR, says=("is empty", "header")),
    case("header_only.csv", FINE),  # no rows: nothing applied, nothing removed
    case("whitespace_only.csv", FILE_ERROR, line=1, says=("header column 1 has no name",)),
    case("header_duplicate_column.csv", FILE_ERROR, line=1, says=("email more than once",)),
    case("header_empty_column_name.csv", FILE_ERROR, line=1, says=("column 3 has no name",)),
    case("trailing_delimiter.csv", FILE_ERROR, line=1, says=("column 5 has no name",)),
    case("header_with_spaces.csv", FINE, applied=CARL),
    case("unknown_column.csv", FILE_ERROR, line=1, says=("'org_unit'",)),
    case("semicolon_delimited.csv", FILE_ERROR, line=1,
         says=("'userid;firstname;lastname;email'", "delimiter ';'?")),
    # --- line endings and blank lines ----------------------------------------------------------
    case("blank_lines.csv", FINE, applied=CARL | DORA | EMMA),
    case("mixed_crlf_lf.csv", FINE,
         applied=CARL | DORA | EMMA | {"bob": ("Bob", "Brown", "bob.brown@example.com")}),
]


@dataclass
class Site:
    """One migrated iotask database per backend, shared by the cases, with table lms_user."""

    backend: str
    url: str
    engine: sa.Engine

    def cli(self, *args: str, ok: bool = True) -> Result:
        result = run_cli("--db", self.url, *args)
        if ok:
            assert result.code == 0, f"iotask {' '.join(args)} failed: {result.err}"
        return result

    def reset(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM lms_user"))
            conn.execute(sa.text("INSERT INTO lms_user (userid, firstname, lastname, email) "
                                 "VALUES (:u, :f, :l, :e)"),
                         [{"u": u, "f": f, "l": last, "e": e}
                          for u, (f, last, e) in KNOWN.items()])

    def table(self) -> dict[str, tuple[str, str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT userid, firstname, lastname, email "
                                        "FROM lms_user")).all()
        return {row[0]: tuple(row[1:]) for row in rows}


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('bad_csv_db') / 'iotask.db'}"
        else:
            url = stack.enter_context(
                contextlib.contextmanager(_fresh_server_database)(request.param))
        engine = iotask_db.make_engine(url)
        stack.callback(engine.dispose)
        iotask_db.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text(LMS_USER))
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.chdir(tmp_path_factory.mktemp("bad_csv_cwd"))
        patch.delenv("IOTASK_DATABASE_URL", raising=False)
        patch.delenv("IOTASK_CONFIG", raising=False)
        patch.setenv("IOTASK_TIMEZONE", "Europe/Rome")
        site = Site(request.param, url, engine)
        site.cli("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user",
                 "--set", "key=userid")
        yield site


def test_corpus_covers_every_committed_file():
    committed = {path.name for path in DATA.glob("*.csv")}
    listed = {param.values[0].file for param in CASES if param.values[0].make is None}
    assert committed == listed
    assert len(CASES) >= 22 and (DATA / ".gitattributes").read_text().splitlines()[-1] == "* -text"


@pytest.mark.parametrize("case", CASES)
def test_bad_csv(site: Site, case: Case, tmp_path: Path, request: pytest.FixtureRequest):
    if case.bug and site.backend in case.bug_on:
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.bug))
    site.reset()
    path = tmp_path / case.file  # absent while the task is saved: it arrives later, as from HR
    site.cli("connection", "add", f"src {case.name}", "--type", "csv", "--set", f"url={path}",
             "--set", f"encoding={case.encoding}")
    site.cli("task", "add", case.name, "--source", f"src {case.name}", "--destination", "lms",
             "--max-errors", "100%")  # the guard has tests of its own: here, every row error
    path.write_bytes(case.make() if case.make else (DATA / case.file).read_bytes())
    aged(path)

    result = site.cli("run", case.name, "--json", ok=False)
    assert "Traceback" not in result.out + result.err
    [task] = result.json()["tasks"]
    [run] = site.cli("history", case.name, "--json").json()
    assert (run["id"], run["status"], run["counts"]) == (task["run_id"], task["status"],
                                                         task["counts"])
    assert run["row_errors"] == task["row_errors"]
    lines = result.err.splitlines()
    assert len(lines) <= 1 and all(line.startswith("iotask: task ") for line in lines), result.err
    table = site.table()
    error = task["error"]

    if case.outcome == FILE_ERROR:
        assert (result.code, task["status"]) == (1, "failed"), task
        assert table == KNOWN, "a file error must apply nothing"
        assert error and "\n" not in error and not CLASS_NAME_ONLY.match(error), error
        assert run["error"] == error and lines == [
            f"iotask: task {case.name!r} failed (run {task['run_id']}): {error}"]
        assert str(path) in error, f"the error does not name the file: {error}"
        if case.line is not None:
            assert re.search(rf"\bline {case.line}\b", error), f"not line {case.line}: {error}"
        for words in case.says:
            assert words in error, f"{words!r} not in {error!r}"
        return

    assert result.code == 0 and error is None, (result.code, error)
    assert table == KNOWN | case.applied
    assert run["files"] == [str(path)]
    if case.outcome == ROW_ERRORS:
        assert task["status"] == "partial"
        rejected = {e["row"]: e["message"] for e in task["row_errors"]}
        assert sorted(rejected) == sorted(case.rejected), task["row_errors"]
        for line, words in case.rejected.items():
            assert words in rejected[line], (line, rejected[line])
        assert task["counts"]["failed"] == len(case.rejected)
        assert lines == [f"iotask: task {case.name!r}: {len(case.rejected)} rows rejected "
                         f"(run {task['run_id']}; see `iotask history {case.name}`, fix and "
                         f"resubmit {task['reject_file']})"]
        assert Path(task["reject_file"]).is_file()
    else:
        assert task["status"] == ("success" if case.outcome == FINE else "nothing_to_process")
        assert task["row_errors"] == [] and lines == []
