import pytest

from rpc._superjson import UNDEFINED, SuperjsonError, parse_path, revive


def test_undefined_root_means_no_input():
    assert revive(None, {"values": ["undefined"], "v": 1}) is UNDEFINED


def test_undefined_field_is_removed_and_undefined_item_becomes_none():
    value = {"a": None, "b": 1, "list": [None, 2]}
    meta = {"values": {"a": ["undefined"], "list.0": ["undefined"]}, "v": 1}
    assert revive(value, meta) == {"b": 1, "list": [None, 2]}


def test_date_stays_iso_text_for_msgspec_to_parse():
    value = {"at": "2024-05-06T00:00:00.000Z"}
    assert revive(value, {"values": {"at": ["Date"]}}) == value


def test_bigint_number_set_and_map():
    value = {"big": "10", "nan": "-Infinity", "s": [1, 2], "m": [["k", 1], ["j", "x"]]}
    meta = {
        "values": {"big": ["bigint"], "nan": ["number"], "s": ["set"], "m": ["map"]},
        "v": 1,
    }
    assert revive(value, meta) == {
        "big": 10,
        "nan": float("-inf"),
        "s": [1, 2],
        "m": {"k": 1, "j": "x"},
    }


def test_nested_annotations_apply_inside_a_map():
    value = {"m": [["k", "10"]]}
    meta = {"values": {"m": ["map", {"0.1": ["bigint"]}]}, "v": 1}
    assert revive(value, meta) == {"m": {"k": 10}}


def test_escaped_paths_v1_and_legacy():
    assert parse_path(r"a\.b.c") == ["a.b", "c"]
    assert parse_path(r"a\\b.c") == ["a\\b", "c"]
    assert parse_path(r"a\\b.c", legacy=True) == [r"a\\b", "c"]
    assert revive({"a.b": "1"}, {"values": {r"a\.b": ["bigint"]}, "v": 1}) == {"a.b": 1}


@pytest.mark.parametrize(
    "meta",
    [
        {"values": {"missing": ["Date"]}},
        {"values": {"a.b": ["Date"]}},
        {"values": {"a": ["class", "Foo"]}},
        {"values": {"a": [["custom", "x"]]}},
        {"values": {"a": "Date"}},
        {"values": 5},
        {"values": {"a": ["bigint"]}},
    ],
)
def test_meta_that_does_not_fit_is_an_error(meta):
    with pytest.raises(SuperjsonError):
        revive({"a": "not-a-number"}, meta)


def test_referential_equalities_are_ignored():
    value = {"a": {"x": 1}, "b": {"x": 1}}
    assert revive(value, {"referentialEqualities": {"a": ["b"]}, "v": 1}) == value
