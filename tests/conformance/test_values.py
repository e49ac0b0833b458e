"""JSON values read back exactly as written, or are refused (issue 11 item 6). Every backend."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

import accord
from accord.records import MAX_JSON_DEPTH, Put


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({1: 2}, "$[1]"),
        ({True: 1}, "$[True]"),
        ({None: 1}, "$[None]"),
        ({1.5: "x"}, "$[1.5]"),
        ({"a": [{"b": {2: 3}}]}, "$.a[0].b[2]"),
        ((1, 2), "$"),
        ({"a": (1, 2)}, "$.a"),
        ([1, [2, (3,)]], "$[1][1]"),
        (float("nan"), "$"),
        ({"score": float("inf")}, "$.score"),
        ([1, float("-inf")], "$[1]"),
        ({"x": {1, 2}}, "$.x"),
        ({"odd key": [object()]}, '$["odd key"][0]'),
        ({"s": "lone \ud800 surrogate"}, "$.s"),
        ({"s": "\ud83d\ude00"}, "$.s"),  # a surrogate pair as two code points
        (["ok", {"k\udc80": 1}], "$[1]"),
        (nested(MAX_JSON_DEPTH + 1), None),
        (nested(10_000), None),
    ],
)
def test_what_json_cannot_hold_exactly_is_refused(
    store: accord.Store, value: Any, path: str | None
) -> None:
    s = store.session("a")
    with pytest.raises(accord.InvalidValue) as info:
        s.write("k", value)
    if path is not None:
        assert info.value.path == path
        assert path in info.value.message or "surrogate" in info.value.message
    assert "nothing was written" in info.value.message
    assert list(store.history()) == []
    with pytest.raises(accord.NotFound):
        s.read("k")


def test_the_issue_repro_is_refused_not_changed(store: accord.Store) -> None:
    s = store.session("a")
    for value in ({1: 2}, {True: 1}, (1, 2)):
        with pytest.raises(accord.InvalidValue):
            s.write("k", value)
    doc = s.write("k", {"1": 2})
    assert s.read("k").value == {"1": 2} and doc.version == 1
    # An update whose function returns a tuple is refused too, and changes nothing.
    with pytest.raises(accord.InvalidValue):
        s.update("k", lambda old: (old, 1))
    assert s.read("k").version == 1


def test_depth_limit_is_exact(store: accord.Store) -> None:
    s = store.session("a")
    deepest = nested(MAX_JSON_DEPTH)
    s.write("k", deepest)
    assert s.read("k").value == deepest
    with pytest.raises(accord.InvalidValue) as info:
        s.write("k", nested(MAX_JSON_DEPTH + 1), expect=1)
    assert f"deeper than {MAX_JSON_DEPTH} levels" in info.value.message


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1, 2.5, None, True, "x"]},
        {"é": "😀 emoji and \\ud800 spelled out"},
        OrderedDict([("b", 1), ("a", 2)]),
        {"big": 2**100, "neg": -0.0, "tiny": 5e-324},
        [],
        {},
        0,
        None,
        False,
    ],
)
def test_what_json_holds_reads_back_equal(store: accord.Store, value: Any) -> None:
    s = store.session("a")
    s.write("k", value)
    assert s.read("k").value == value


def test_a_stored_value_too_deep_to_decode_is_an_error_not_a_crash(store: accord.Store) -> None:
    # Written around encode_value, as another program or an older accord could.
    data = ("[" * 100_000 + "]" * 100_000).encode()
    store.backend.txn([], [Put("k", "json", data, "other")])
    with pytest.raises(accord.InvalidValue) as info:
        store.session("a").read("k")
    assert "nests too deeply" in info.value.message


def test_text_with_a_lone_surrogate_is_refused(store: accord.Store) -> None:
    s = store.session("a")
    with pytest.raises(accord.InvalidValue) as info:
        s.write("k", "bad \ud800 text")
    assert "surrogate" in info.value.message and "nothing was written" in info.value.message
    assert list(store.history()) == []
