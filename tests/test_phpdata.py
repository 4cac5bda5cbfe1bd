"""iotask.phpdata: PHP serialize() output read back exactly, and everything else refused."""

from __future__ import annotations

import math

import pytest
from phpwriter import serialize

from iotask import phpdata
from iotask.phpdata import PhpDataError, loads

VALUES = [
    None, True, False, 0, -7, 2**62, 1.5, -0.25, 1e25, "", "userid", "ignorefield",
    "quote \" and ; and } inside", "città ünïcödé 🙂", "line\nbreak",
    [], ["a", "b"], {"map": "userid", "pk": "1"},
    [{"map": "userid", "pk": "1"}, {"map": "ignorefield"}, {"map": "firstname"}],
    {"filepattern": "users*.csv", "field_def": ["userid", "firstname"], "readwrite": 1},
    {5: "five", "5x": "string key", -1: None}, [[[[["deep"]]]]],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_round_trip(value):
    assert loads(serialize(value)) == value


def test_bytes_and_str_give_the_same_value():
    text = serialize({"name": "Zoë"})
    assert loads(text) == loads(text.encode("utf-8")) == {"name": "Zoë"}


def test_string_lengths_are_bytes():
    assert loads('s:2:"é";') == "é"
    with pytest.raises(PhpDataError, match="expected '\";', found"):
        loads('s:1:"é";')  # one byte of two: the quote is not where the length says


def test_floats_as_php_writes_them():
    assert loads("d:1.0E+25;") == 1e25
    assert loads("d:-0;") == 0.0
    assert loads("d:INF;") == math.inf
    assert loads("d:-INF;") == -math.inf
    assert math.isnan(loads("d:NAN;"))


def test_sparse_and_reordered_arrays_stay_dicts():
    assert loads("a:2:{i:0;s:1:\"a\";i:2;s:1:\"b\";}") == {0: "a", 2: "b"}
    assert loads("a:2:{i:1;s:1:\"a\";i:0;s:1:\"b\";}") == {1: "a", 0: "b"}
    assert loads('a:1:{s:1:"0";s:1:"a";}') == {"0": "a"}


@pytest.mark.parametrize(("text", "message"), [
    ('O:8:"stdClass":1:{s:1:"a";i:1;}', "a PHP object is not plain data"),
    ('a:1:{i:0;O:8:"stdClass":0:{}}', "a PHP object is not plain data and is refused at byte 9"),
    ('C:3:"Foo":0:{}', "custom-serialized PHP object"),
    ("E:7:\"Foo:Bar\";", "PHP enum"),
    ('a:2:{i:0;s:1:"a";i:1;r:2;}', "PHP reference"),
    ('a:2:{i:0;s:1:"a";i:1;R:2;}', "PHP reference"),
    ('s:999999999:"x";', "declares 999,999,999 bytes but only 3 follow"),
    ('s:3:"abcdef";', "expected '\";', found 'd' at byte 8"),
    ("a:1:{" * 40 + "i:0;N;" + "}" * 40, "nested more than 32 deep"),
    (b's:2:"\xe9x";', "not valid utf-8 at byte 5"),
    ("i:1;i:2;", "unexpected data after the value at byte 4"),
    ("i:1; ", "unexpected data after the value"),
    ("", "expected a value, found the end of the data"),
    ("i:;", "a whole number after i:"),
    ("i:12", "expected ';', found the end"),
    ("b:2;", "0 or 1 after b:"),
    ("d:1e;", "expected ';'"),
    ("d:1E999;", "out of range"),
    ("x:1;", "unknown type 'x'"),
    ("a:1:{N;i:1;}", "an array key must be i: or s:"),
    ("a:1:{b:1;i:1;}", "an array key must be i: or s:"),
    ("a:2:{i:0;i:1;i:0;i:2;}", "array key 0 appears twice"),
    ("a:2:{i:0;i:1;}", "array declares 2 elements but holds 1"),
    ("a:1:{i:0;i:1;", "expected '}'"),
    ("a:-1:{}", "an element count"),
    ("a:99999999:{}", "more than 100,000 array elements"),
    ("N", "expected 'N;'"),
])
def test_refusals(text, message):
    with pytest.raises(PhpDataError) as caught:
        loads(text)
    assert message in str(caught.value)


def test_size_limit():
    big = serialize("x" * (phpdata.MAX_BYTES + 1))
    with pytest.raises(PhpDataError, match="at most"):
        loads(big)


def test_depth_limit_is_configurable():
    nested = serialize([[["x"]]])
    assert loads(nested, max_depth=3) == [[["x"]]]
    with pytest.raises(PhpDataError, match="nested more than 2 deep"):
        loads(nested, max_depth=2)
