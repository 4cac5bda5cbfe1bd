"""The csv connector reads files as HR systems and Excel write them, and writes them atomically."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from iotask.connectors.context import Batch, MemoryContext
from iotask.connectors.csv import CsvConnector, CsvError
from iotask.connectors.errors import ConnectorError, LeaseLost, NothingToProcess, SettingsError

DATA = Path(__file__).parent / "data" / "csv"

ANYWHERE = [Path("/")]  # unit tests of reading and writing; confinement has tests of its own


def read(path: Path | str, **settings) -> tuple[list[dict], MemoryContext]:
    context = MemoryContext(file_roots=ANYWHERE)
    connector = CsvConnector({"url": str(path), **settings})
    rows = [row for batch in connector.read(context) for row in batch]
    return rows, context


def write_bytes(tmp_path: Path, content: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def read_error(path: Path, **settings) -> str:
    with pytest.raises(CsvError) as caught:
        read(path, **settings)
    return str(caught.value)


# --- reading ---------------------------------------------------------------------------------


def test_header_names_the_columns_and_rows_carry_their_line():
    rows, context = read(DATA / "users.csv")
    assert [row["userid"] for row in rows] == ["anna", "bob", "carla", "dan"]
    assert rows[0] == {"userid": "anna", "firstname": "Anna", "lastname": "Rossi",
                       "email": "anna@example.com", "org_unit": "Sales", "__line__": 2}
    assert rows[1]["lastname"] == 'O\'Brien "Bobby"' and rows[1]["org_unit"] == "Sales, North"
    assert rows[2]["lastname"] == "Bianchi\nDe Luca"
    assert [row["__line__"] for row in rows] == [2, 3, 4, 6]  # carla's record spans lines 4-5
    assert rows[3]["org_unit"] == ""
    assert context.files == [str(DATA / "users.csv")] and context.errors == []
    assert context.counts.read == 0  # the runner counts the rows it is given


def test_without_header_the_columns_setting_names_them(tmp_path):
    path = write_bytes(tmp_path, b"anna,Rossi\nbob,Brown\n")
    rows, _ = read(path, header=False, columns=["userid", "lastname"])
    assert rows == [{"userid": "anna", "lastname": "Rossi", "__line__": 1},
                    {"userid": "bob", "lastname": "Brown", "__line__": 2}]


def test_excel_semicolon_cp1252_crlf_sample():
    rows, _ = read(DATA / "hr_excel_cp1252.csv", delimiter=";", encoding="cp1252")
    assert rows == [
        {"userid": "rene", "firstname": "René", "lastname": "Dupré", "org_unit": "Café",
         "__line__": 2},
        {"userid": "euro", "firstname": "Budget", "lastname": "€ 1.000", "org_unit": "Finance",
         "__line__": 3},
    ]


def test_quoted_newlines_and_crlf_keep_line_numbers_right(tmp_path):
    path = write_bytes(tmp_path,
                       b'id,note\r\n1,"two\r\nlines"\r\n2,"three\r\n\r\nlines"\r\n3,x\r\n')
    rows, _ = read(path)
    assert [(row["id"], row["note"], row["__line__"]) for row in rows] == [
        ("1", "two\r\nlines", 2), ("2", "three\r\n\r\nlines", 4), ("3", "x", 7)]


def test_lone_cr_line_endings_count_as_lines(tmp_path):
    path = write_bytes(tmp_path, b"id,name\r1,a\r2,b\r")
    rows, _ = read(path)
    assert [(row["id"], row["__line__"]) for row in rows] == [("1", 2), ("2", 3)]


def test_blank_lines_are_skipped_and_still_counted(tmp_path):
    path = write_bytes(tmp_path, b"\nid,name\n\n1,a\n\n\n2,b\n\n")
    rows, context = read(path)
    assert [(row["id"], row["__line__"]) for row in rows] == [("1", 4), ("2", 7)]
    assert context.errors == []


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_a_utf8_bom_never_reaches_the_first_column_name(tmp_path, encoding):
    path = write_bytes(tmp_path, "\ufeffuserid,città\nanna,Firenze\n".encode())
    rows, _ = read(path, encoding=encoding)
    assert rows == [{"userid": "anna", "città": "Firenze", "__line__": 2}]


def test_a_utf8_bom_without_header_never_reaches_the_first_value(tmp_path):
    path = write_bytes(tmp_path, "\ufeffanna,Firenze\n".encode())
    rows, _ = read(path, header=False, columns=["userid", "city"])
    assert rows[0]["userid"] == "anna"


def test_a_utf8_bom_in_a_file_read_as_latin1_is_refused(tmp_path):
    path = write_bytes(tmp_path, "\ufeffuserid\nanna\n".encode())
    message = read_error(path, encoding="latin-1")
    assert "byte-order mark" in message and "encoding=utf-8-sig" in message


@pytest.mark.parametrize(("encoding", "text"), [("latin-1", "Renée"), ("cp1252", "€ café")])
def test_single_byte_encodings(tmp_path, encoding, text):
    path = write_bytes(tmp_path, f"id,name\n1,{text}\n".encode(encoding))
    rows, _ = read(path, encoding=encoding)
    assert rows[0]["name"] == text


def test_a_record_with_the_wrong_field_count_is_a_row_error_and_the_run_goes_on(tmp_path):
    path = write_bytes(tmp_path,
                       b'id,name,email\n1,a,a@x\n2,b\n3,c,c@x\n4,"d\nd",d@x,extra\n5,e,e@x\n')
    rows, context = read(path)
    assert [row["id"] for row in rows] == ["1", "3", "5"]
    assert [(e.row_index, e.message) for e in context.errors] == [
        (3, "expected 3 fields, found 2"), (5, "expected 3 fields, found 4")]
    assert context.counts.failed == 2


def test_a_nul_byte_names_its_line(tmp_path):
    path = write_bytes(tmp_path, b"id,name\n1,a\n2,b\x00c\n3,d\n")
    assert "line 3 contains a NUL byte" in read_error(path)


def test_utf16_is_refused_at_its_first_line(tmp_path):
    path = write_bytes(tmp_path, "id,name\n1,a\n".encode("utf-16"))
    assert f"{path} line 1:" in read_error(path)


def test_bad_encoding_names_the_line_even_far_into_the_file(tmp_path):
    lines = [b"id,name"] + [b"%d,name %d" % (n, n) for n in range(1, 2000)]
    lines[1234] = b"1234,Ren\xe9"  # latin-1 in a UTF-8 file, well past the first read buffer
    path = write_bytes(tmp_path, b"\n".join(lines) + b"\n")
    message = read_error(path)
    assert f"{path} line 1235:" in message and "utf-8" in message and "encoding" in message


def test_bad_encoding_after_a_lone_cr_names_the_right_line(tmp_path):
    path = write_bytes(tmp_path, b"id,name\r1,a\r2,\xff\r3,c\r")
    assert "line 3:" in read_error(path)


def test_a_multibyte_character_cut_at_the_end_names_the_last_line(tmp_path):
    path = write_bytes(tmp_path, b"id,name\n1,a\n2,caf\xc3")
    assert "line 3:" in read_error(path)


def test_an_unterminated_quote_names_the_line_where_the_record_starts(tmp_path):
    path = write_bytes(tmp_path, b'id,name\n1,a\n2,"never closed\nmore\nand more\n')
    message = read_error(path)
    assert "line 3:" in message and "never closed" in message


def test_text_after_a_closing_quote_is_refused_with_its_line(tmp_path):
    path = write_bytes(tmp_path, b'id,name\n1,a\n2,"b"c\n')
    assert "line 3:" in read_error(path)


@pytest.mark.parametrize(("header", "fragment"), [
    (b"id,,name", "column 2 has no name"),
    (b"id,name, id ", "header names id more than once"),
    (b"id,__line__", "reserved"),
])
def test_header_problems_are_named(tmp_path, header, fragment):
    path = write_bytes(tmp_path, header + b"\n1,2,3\n")
    assert fragment in read_error(path)


def test_an_empty_file_is_refused_when_a_header_is_expected(tmp_path):
    assert "expected a header line" in read_error(write_bytes(tmp_path, b""))


def test_a_header_only_file_has_no_rows(tmp_path):
    rows, context = read(write_bytes(tmp_path, b"id,name\n"))
    assert rows == [] and context.files == [str(tmp_path / "in.csv")]


def test_a_missing_file_means_nothing_to_process(tmp_path):
    context = MemoryContext(file_roots=ANYWHERE)
    connector = CsvConnector({"url": str(tmp_path / "not-yet.csv")})
    with pytest.raises(NothingToProcess, match="no file .*not-yet.csv"):
        list(connector.read(context))
    assert context.files == []


def test_a_file_url_is_a_local_path(tmp_path):
    path = write_bytes(tmp_path, b"id\n1\n", name="with space.csv")
    rows, context = read(path.as_uri())
    assert rows == [{"id": "1", "__line__": 2}] and context.files == [str(path)]


@pytest.mark.parametrize("url, words", [
    ("sftp://host/x.csv", "no username"), ("file://otherhost/x.csv", "cannot name another host"),
    ("gopher://host/x.csv", "gopher")])
def test_urls_that_cannot_work_are_refused_before_any_transfer(url, words):
    with pytest.raises(ConnectorError, match=words):
        read(url)


def test_a_one_megabyte_field(tmp_path):
    big = "x" * 1_000_000
    path = write_bytes(tmp_path, f'id,blob\n1,"{big}"\n2,small\n'.encode())
    rows, _ = read(path)
    assert rows[0]["blob"] == big and rows[1]["__line__"] == 3


def test_rows_come_in_batches_of_1000(tmp_path):
    path = write_bytes(tmp_path, b"id\n" + b"".join(b"%d\n" % n for n in range(2500)))
    batches = list(CsvConnector({"url": str(path)}).read(MemoryContext(file_roots=ANYWHERE)))
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    assert batches[2][-1] == {"id": "2499", "__line__": 2501}


def test_duplicate_columns_setting_is_refused():
    with pytest.raises(SettingsError, match="names a more than once"):
        CsvConnector({"url": "/x.csv", "header": False, "columns": ["a", "b", "a"]})


# --- writing ---------------------------------------------------------------------------------


def write(path: Path, batches: list[Batch], context: MemoryContext | None = None,
          **settings) -> MemoryContext:
    context = context or MemoryContext(file_roots=ANYWHERE)
    CsvConnector({"url": str(path), **settings}).write(iter(batches), context)
    return context


TRICKY = [
    {"userid": "anna", "note": "plain", "city": "Firenze"},
    {"userid": "bob", "note": 'says "hi", twice', "city": "Köln"},
    {"userid": "carla", "note": "two\nlines", "city": ""},
    {"userid": "dan", "note": "semi;colon and 'single'", "city": "€"},
]


@pytest.mark.parametrize("settings", [
    {},
    {"delimiter": ";", "quotechar": "'", "encoding": "cp1252"},
    {"encoding": "utf-8-sig"},
])
def test_round_trip(tmp_path, settings):
    path = tmp_path / "out.csv"
    context = write(path, [TRICKY[:2], TRICKY[2:]], **settings)
    assert context.counts.inserted == 4 and context.errors == []
    rows, _ = read(path, **settings)
    assert [{k: v for k, v in row.items() if k != "__line__"} for row in rows] == TRICKY


def test_line_numbers_are_not_written_and_rows_from_a_file_round_trip(tmp_path):
    rows, _ = read(DATA / "users.csv")
    out = tmp_path / "copy.csv"
    write(out, [rows])
    again, _ = read(out)
    assert again == rows


def test_quoting_of_delimiter_quote_and_newline(tmp_path):
    path = tmp_path / "out.csv"
    write(path, [[{"a": "x,y", "b": 'say "no"', "c": "1\n2", "d": "plain"}]])
    assert path.read_bytes() == b'a,b,c,d\r\n"x,y","say ""no""","1\n2",plain\r\n'


def test_spreadsheet_formulas_are_neutralised_in_text_only(tmp_path):
    path = tmp_path / "out.csv"
    write(path, [[{"a": "=HYPERLINK(\"http://x\")", "b": "+1", "c": "-2", "d": "@SUM(A1)",
                   "e": "\tx", "f": "\rx", "g": -5, "h": "a=b", "i": None}]])
    rows, _ = read(path)
    assert rows[0] == {"a": "'=HYPERLINK(\"http://x\")", "b": "'+1", "c": "'-2",
                       "d": "'@SUM(A1)", "e": "'\tx", "f": "'\rx", "g": "-5", "h": "a=b",
                       "i": "", "__line__": 2}


def test_formula_neutralising_can_be_turned_off_for_programs(tmp_path):
    path = tmp_path / "out.csv"
    write(path, [[{"phone": "+39 055 123", "formula": "=1+1", "none": None}]], formulas=False)
    rows, _ = read(path)
    assert rows[0] == {"phone": "+39 055 123", "formula": "=1+1", "none": "", "__line__": 2}


def test_missing_keys_are_empty_and_the_first_row_sets_the_order(tmp_path):
    path = tmp_path / "out.csv"
    write(path, [[{"b": "1", "a": "2"}, {"a": "3"}]])
    assert path.read_bytes() == b"b,a\r\n1,2\r\n,3\r\n"


def test_columns_setting_orders_the_columns_and_header_false_omits_the_header(tmp_path):
    path = tmp_path / "out.csv"
    write(path, [[{"b": "1", "a": "2", "__line__": 9}]], header=False, columns=["a", "b"])
    assert path.read_bytes() == b"2,1\r\n"


def test_a_row_with_an_unknown_column_stops_the_export(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(CsvError, match="row 2 has column 'c'"):
        write(path, [[{"a": "1"}, {"a": "2", "c": "3"}]])
    assert list(tmp_path.iterdir()) == []


def test_an_empty_export_still_has_its_header(tmp_path):
    path = tmp_path / "out.csv"
    context = write(path, [], columns=["userid", "email"])
    assert path.read_bytes() == b"userid,email\r\n" and context.counts.inserted == 0


def test_a_character_the_encoding_cannot_hold_is_a_row_error(tmp_path):
    path = tmp_path / "out.csv"
    context = write(path, [[{"id": "1", "name": "ok"}, {"id": "2", "name": "emoji 🙂"},
                            {"id": "3", "name": "é"}]], encoding="latin-1")
    assert [(e.row_index, e.column) for e in context.errors] == [(2, "name")]
    assert context.counts.inserted == 2
    assert path.read_bytes() == b"id,name\r\n1,ok\r\n3,\xe9\r\n"


def failing_batches() -> Iterator[Batch]:
    yield [{"id": "new"}]
    raise RuntimeError("source broke")


def test_a_failing_source_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"id\r\nold\r\n")
    with pytest.raises(RuntimeError, match="source broke"):
        CsvConnector({"url": str(path)}).write(failing_batches(),
                                               MemoryContext(file_roots=ANYWHERE))
    assert path.read_bytes() == b"id\r\nold\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@dataclass
class LostContext(MemoryContext):
    def check_lease(self, connection=None) -> None:
        raise LeaseLost("another runner took the task")


def test_a_lost_lease_leaves_the_target_untouched(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"id\r\nold\r\n")
    context = LostContext(file_roots=ANYWHERE)
    with pytest.raises(LeaseLost):
        write(path, [[{"id": "new"}]], context=context)
    assert path.read_bytes() == b"id\r\nold\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    assert context.counts.inserted == 0


def test_replacing_keeps_the_file_permissions(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"id\r\nold\r\n")
    path.chmod(0o640)
    write(path, [[{"id": "new"}]])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert path.read_bytes() == b"id\r\nnew\r\n"


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(CsvError, match="folder .*nowhere does not exist"):
        write(tmp_path / "nowhere" / "out.csv", [[{"id": "1"}]])


def test_an_export_sweeps_what_a_killed_export_left_behind(tmp_path):
    path = tmp_path / "out.csv"
    stale = tmp_path / ".out.csv.0123456789abcdef.tmp"
    fresh = tmp_path / ".out.csv.fedcba9876543210.tmp"
    other = tmp_path / ".other.csv.0123456789abcdef.tmp"
    for leftover in (stale, fresh, other):
        leftover.write_text("half a file")
    two_hours_ago = time.time() - 7200
    for leftover in (stale, other):
        os.utime(leftover, (two_hours_ago, two_hours_ago))
    write(path, [[{"a": "1"}]])
    assert not stale.exists()
    assert fresh.exists() and other.exists()  # maybe running now; another file's
