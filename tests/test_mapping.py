"""The column map: Docebo's positional form, the named form, identity; checked before writing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error
from iotask.connectors.context import Column

from iotask.mapping import Const, MapError, OptionalColumn, resolve

SOURCE = [Column("id"), Column("first"), Column("last"), Column("mail")]
DEST = [Column("userid", required=True, key=True), Column("firstname"), Column("lastname"),
        Column("email"), Column("source")]


def test_positional_form_with_ignore_and_pk():
    mapping = resolve('[{"map": "userid", "pk": "1"}, {"map": "firstname"}, '
                      '{"map": "ignorefield"}, {"map": "email"}]', SOURCE, DEST, "sync")
    assert mapping.key == ["userid"]
    assert mapping.apply({"id": "7", "first": "Ann", "last": "X", "mail": "a@x", "__line__": 3}) \
        == {"userid": "7", "firstname": "Ann", "email": "a@x", "__line__": 3}


def test_named_form_with_constant():
    mapping = resolve('{"columns": {"userid": "id", "lastname": "last", '
                      '"source": {"const": "HR"}}, "key": ["userid"]}', SOURCE, DEST, "insert")
    assert mapping.pairs == [("userid", "id"), ("lastname", "last"), ("source", Const("HR"))]
    assert mapping.apply({"id": "1", "last": "Doe"}) == {
        "userid": "1", "lastname": "Doe", "source": "HR"}


def test_named_form_with_optional_columns():
    """An optional column the source lacks leaves its destination column out; one it has is
    taken; with the source's columns unknown yet, a row without it gives None."""
    text = ('{"columns": {"userid": "id", "email": {"optional": "mail"}, '
            '"lastname": {"optional": "surname"}}}')
    mapping = resolve(text, SOURCE, DEST, "insert")
    assert mapping.pairs == [("userid", "id"), ("email", OptionalColumn("mail"))]
    assert mapping.apply({"id": "1", "mail": "a@x"}) == {"userid": "1", "email": "a@x"}
    later = resolve(text, None, DEST, "insert")
    assert later.pairs == [("userid", "id"), ("email", OptionalColumn("mail")),
                           ("lastname", OptionalColumn("surname"))]
    assert later.apply({"id": "1", "mail": "a@x"}) == {"userid": "1", "email": "a@x",
                                                       "lastname": None}


def test_identity_and_the_destination_key():
    same = [Column("userid"), Column("email")]
    mapping = resolve(None, same, DEST, "sync")
    assert mapping.pairs == [("userid", "userid"), ("email", "email")]
    assert mapping.key == []  # the destination's own key (userid) is used


@pytest.mark.parametrize("text, source, dest, import_type, fragment", [
    ('{"columns": {"nope": "id"}}', SOURCE, DEST, "insert", "destination has no column 'nope'"),
    ('{"columns": {"userid": "ident"}}', SOURCE, DEST, "insert",
     "takes source column 'ident', which the source does not have"),
    ('{"columns": {"email": "mail"}}', SOURCE, DEST, "insert",
     "destination column 'userid' needs a value"),
    ('{"columns": {"userid": "id"}}', SOURCE, [Column("userid", required=True)], "sync",
     "a sync task needs key columns"),
    ('[{"map": "userid"}, {"map": "firstname"}, {"map": "lastname"}, {"map": "email"}, '
     '{"map": "source"}]', SOURCE, DEST, "insert", "5 entries but the source has 4"),
    ('[{"col": "userid"}]', SOURCE, DEST, "insert", "map entry 1 must be"),
    ('{"columns": {"userid": 5}}', SOURCE, DEST, "insert", "map column 'userid'"),
    ('{"columns": {"userid": {"optional": 5}}}', SOURCE, DEST, "insert",
     '{"optional": "source column"}'),
    ('{"columns": {"userid": "id"}, "key": ["email"]}', SOURCE, DEST, "insert",
     "map key 'email' is not one of the mapped columns"),
    ('{"cols": {}}', SOURCE, DEST, "insert", "unknown entry 'cols'"),
    ('"x"', SOURCE, DEST, "insert", "map must be a JSON list"),
])
def test_mistakes_are_named(text, source, dest, import_type, fragment):
    with pytest.raises(MapError) as caught:
        resolve(text, source, dest, import_type)
    assert fragment in str(caught.value)


def test_unknown_columns_wait_for_the_run():
    """No file yet, or a target taking any column: only what can be checked is checked."""
    assert resolve('{"columns": {"userid": "whatever"}}', None, None, "sync").key == []
    with pytest.raises(MapError, match="destination has no column 'x'"):
        resolve('{"columns": {"x": "id"}}', None, DEST, "insert")


@pytest.fixture
def users_table(engine):
    metadata = sa.MetaData()
    table = sa.Table("lms_user", metadata,
                     sa.Column("userid", sa.String(50), primary_key=True),
                     sa.Column("firstname", sa.String(100)),
                     sa.Column("email", sa.String(200), nullable=False),
                     sa.Column("source", sa.String(20)))
    metadata.create_all(engine)
    return table


@pytest.fixture
def hr_file(tmp_path):
    path = tmp_path / "hr.csv"
    path.write_text("id;first;last;mail\n1;Ann;Lee;ann@x.org\n2;Bob;Ray;bob@x.org\n"
                    "3;Cy;Day;cy@x.org\n", encoding="utf-8")
    return aged(path)


@pytest.fixture
def conns(iotask, hr_file, users_table):
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={hr_file}",
           "--set", "delimiter=;")
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user")
    return iotask


def table_rows(engine, table):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.userid))]


def test_positional_map_end_to_end(conns, engine, users_table):
    conns("task", "add", "users", "--source", "hr", "--destination", "lms", "--map",
          '[{"map": "userid", "pk": "1"}, {"map": "firstname"}, {"map": "ignorefield"}, '
          '{"map": "email"}]')
    conns("run", "users")
    assert table_rows(engine, users_table) == [("1", "Ann", "ann@x.org", None),
                                               ("2", "Bob", "bob@x.org", None),
                                               ("3", "Cy", "cy@x.org", None)]


def test_named_map_with_constant_end_to_end(conns, engine, users_table):
    conns("task", "add", "users", "--source", "hr", "--destination", "lms", "--map",
          '{"columns": {"userid": "id", "email": "mail", "source": {"const": "HR"}}, '
          '"key": ["userid"]}')
    conns("run", "users")
    assert [(r[0], r[2], r[3]) for r in table_rows(engine, users_table)] == [
        ("1", "ann@x.org", "HR"), ("2", "bob@x.org", "HR"), ("3", "cy@x.org", "HR")]


def test_bad_maps_are_refused_when_saved(conns):
    assert_user_error(conns("task", "add", "t", "--source", "hr", "--destination", "lms",
                            "--map", '{"columns": {"userid": "id", "mail": "mail"}}', ok=False),
                      "destination has no column 'mail'")
    assert_user_error(conns("task", "add", "t", "--source", "hr", "--destination", "lms",
                            "--map", '{"columns": {"userid": "ident"}}', ok=False),
                      "source column 'ident'")
    assert_user_error(conns("task", "add", "t", "--source", "hr", "--destination", "lms",
                            "--map", '{"columns": {"userid": "id"}}', ok=False),
                      "'email' needs a value")
    conns("task", "add", "t", "--source", "hr", "--destination", "lms", "--map",
          '{"columns": {"userid": "id", "email": "mail"}}')
    assert_user_error(conns("task", "edit", "t", "--map", '{"columns": {"email": "mail"}}',
                            ok=False), "'userid' needs a value")
    assert conns("task", "show", "t", "--json").json()["map"] == {
        "columns": {"userid": "id", "email": "mail"}}  # the refused edit changed nothing


def test_a_map_broken_after_saving_fails_the_run_clearly(conns, engine, hr_file):
    conns("task", "add", "t", "--source", "hr", "--destination", "lms", "--map",
          '{"columns": {"userid": "id", "email": "mail"}}')
    hr_file.write_text("ident;mail\n1;a@x\n", encoding="utf-8")  # the HR system renamed it
    aged(hr_file)
    result = conns("run", "t", ok=False)
    assert result.code == 1 and "source column 'id', which the source does not have" in \
        result.err


def test_preview_maps_rows_and_touches_nothing(conns, engine, users_table, tmp_path):
    conns("task", "add", "users", "--source", "hr", "--destination", "lms", "--map",
          '{"columns": {"userid": "id", "email": "mail", "source": {"const": "HR"}}}')
    preview = conns("task", "preview", "users", "--rows", "2", "--json").json()
    assert preview["columns"] == ["userid", "email", "source"]
    assert preview["rows"] == [
        {"line": 2, "userid": "1", "email": "ann@x.org", "source": "HR"},
        {"line": 3, "userid": "2", "email": "bob@x.org", "source": "HR"}]
    table = conns("task", "preview", "users").out.splitlines()
    assert table[0].split() == ["LINE", "userid", "email", "source"] and len(table) == 4
    assert table_rows(engine, users_table) == []
    export = tmp_path / "never-created.csv"
    conns("connection", "add", "out", "--type", "csv", "--set", f"url={export}")
    conns("task", "add", "export", "--source", "hr", "--destination", "out")
    conns("task", "preview", "export")
    assert not export.exists()  # Docebo's map preview truncated the write target
    assert conns("history", "users", "--json").json() == []


def test_preview_without_a_file_yet(conns, hr_file):
    conns("task", "add", "users", "--source", "hr", "--destination", "lms", "--map",
          '{"columns": {"userid": "id", "email": "mail"}}')
    hr_file.unlink()
    assert conns("task", "preview", "users").out.startswith("nothing to preview: no file")
