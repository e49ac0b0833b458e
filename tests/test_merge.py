"""The merge algorithms on their own: properties and edge cases."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accord
from accord.merge import DELETED, MergeConflict, merge_bytes, merge_json, merge_text, merge_values

LINES = st.lists(st.text(alphabet="abc xyz", min_size=0, max_size=6), min_size=0, max_size=12)


def text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


@given(LINES, LINES, st.integers(min_value=1, max_value=4))
def test_one_changed_side_wins_cleanly(base: list[str], other: list[str], n: int) -> None:
    sides = [("changed", text(other))] + [(f"same-{i}", text(base)) for i in range(n)]
    outcome = merge_text(text(base), sides)
    assert outcome.conflicts == [] and outcome.value == text(other)


@given(LINES, LINES, st.integers(min_value=2, max_value=4))
def test_identical_changes_merge_to_that_change(base: list[str], other: list[str], n: int) -> None:
    outcome = merge_text(text(base), [(f"s{i}", text(other)) for i in range(n)])
    assert outcome.conflicts == [] and outcome.value == text(other)


@settings(max_examples=200)
@given(st.data())
def test_edits_of_different_lines_always_merge(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=30))
    base = [f"line {i}" for i in range(size)]
    sides = data.draw(st.integers(min_value=1, max_value=5))
    owner = data.draw(
        st.lists(st.integers(min_value=-1, max_value=sides - 1), min_size=size, max_size=size)
    )
    expected = list(base)
    values = []
    for side in range(sides):
        mine = list(base)
        for i, who in enumerate(owner):
            if who == side:
                mine[i] = f"line {i} edited by {side}"
                expected[i] = mine[i]
        values.append((f"s{side}", text(mine)))
    outcome = merge_text(text(base), values)
    assert outcome.conflicts == [] and outcome.value == text(expected)


@settings(max_examples=200)
@given(st.data())
def test_json_edits_of_different_keys_always_merge(data: st.DataObject) -> None:
    keys = [f"k{i}" for i in range(data.draw(st.integers(min_value=1, max_value=12)))]
    base: dict[str, Any] = {k: {"n": i, "tags": [i]} for i, k in enumerate(keys)}
    sides = data.draw(st.integers(min_value=1, max_value=4))
    owner = data.draw(st.lists(st.integers(-1, sides - 1), min_size=len(keys), max_size=len(keys)))
    action = data.draw(
        st.lists(st.sampled_from(["edit", "drop", "nest"]), min_size=len(keys), max_size=len(keys))
    )
    expected = dict(base)
    values = []
    for side in range(sides):
        mine = dict(base)
        for key, who, what in zip(keys, owner, action, strict=True):
            if who != side:
                continue
            if what == "edit":
                mine[key] = f"set by {side}"
                expected[key] = mine[key]
            elif what == "drop":
                del mine[key]
                expected.pop(key)
            else:
                mine[key] = {**base[key], "extra": side}
                expected[key] = mine[key]
        values.append((f"s{side}", mine))
    outcome = merge_json(base, values)
    assert outcome.conflicts == [] and outcome.value == expected


def test_conflict_markers_carry_every_side_and_the_base() -> None:
    outcome = merge_text("a\nb\nc\n", [("x", "a\nX\nc\n"), ("y", "a\nY\nc\n"), ("z", "a\nZ\nc\n")])
    [conflict] = outcome.conflicts
    assert conflict.sides == {"x": "X\n", "y": "Y\n", "z": "Z\n"} and conflict.base == "b\n"
    assert outcome.value == (
        "a\n<<<<<<< x\nX\n||||||| base\nb\n======= y\nY\n======= z\nZ\n>>>>>>> end of conflict\nc\n"
    )
    assert "line 2" in conflict.describe()


def test_text_without_final_newline() -> None:
    outcome = merge_text("a\nb", [("x", "A\nb"), ("y", "a\nb!")])
    assert outcome.conflicts == [] and outcome.value == "A\nb!"


def test_insertion_next_to_an_edit_is_not_a_conflict() -> None:
    outcome = merge_text("a\nb\n", [("x", "a\nnew\nb\n"), ("y", "a\nB\n")])
    assert outcome.conflicts == [] and outcome.value == "a\nnew\nB\n"
    outcome = merge_text("a\nb\n", [("x", "new\na\nb\n"), ("y", "A\nb\n")])
    assert outcome.value == "new\nA\nb\n"


def test_a_change_inside_another_sides_replaced_range_conflicts() -> None:
    base = "a\nb\nc\nd\n"
    outcome = merge_text(base, [("x", "a\nBC\nd\n"), ("y", "a\nb\nnew\nc\nd\n")])
    assert [c.where for c in outcome.conflicts] == ["lines 2-3"]


def test_resolve_must_return_text_for_text() -> None:
    with pytest.raises(accord.InvalidValue, match="return the text"):
        merge_text("a\n", [("x", "b\n"), ("y", "c\n")], resolve=lambda c: 42)
    with pytest.raises(accord.InvalidValue, match="not text"):
        merge_text("a\n", [("x", {"a": 1})])  # type: ignore[list-item]


def test_json_paths_and_sentinels() -> None:
    base = {"a b": {"c": [1, 2]}, "x": 1}
    outcome = merge_json(
        base, [("p", {"a b": {"c": [1, 3]}, "x": 1}), ("q", {"a b": {"c": [1, 4]}})]
    )
    assert [c.where for c in outcome.conflicts] == ['$["a b"].c[1]']
    assert outcome.value == {"a b": {"c": [1, 2]}}  # x removed by q merges; the conflict keeps base
    outcome = merge_json(base, [("p", {"x": 2}), ("q", {"x": 3, "a b": {"c": [9]}})])
    where = {c.where: c for c in outcome.conflicts}
    assert set(where) == {'$["a b"]', "$.x"}
    assert where['$["a b"]'].sides == {"p": DELETED, "q": {"c": [9]}}
    assert where["$.x"].take("p") == 2
    with pytest.raises(accord.InvalidValue, match="No side"):
        where["$.x"].take("nobody")


def test_json_null_side_and_resolution() -> None:
    outcome = merge_json({"v": 1}, [("p", {"v": None}), ("q", {"v": 2})])
    [conflict] = outcome.conflicts
    assert conflict.take("p") is MergeConflict.NULL
    settled = merge_json(
        {"v": 1}, [("p", {"v": None}), ("q", {"v": 2})], resolve=lambda c: c.take("p")
    )
    assert settled.value == {"v": None} and len(settled.resolved) == 1


def test_json_array_conflict_resolution_must_be_a_list() -> None:
    sides = [("p", [1, 2, "p"]), ("q", [1, 2, "q", "q"])]
    outcome = merge_json([1, 2], sides, resolve=lambda c: [*c.sides["p"], *c.sides["q"]])
    assert outcome.value == [1, 2, "p", "q", "q"]
    with pytest.raises(accord.InvalidValue, match="list of elements"):
        merge_json([1, 2], sides, resolve=lambda c: "p")


def test_top_level_scalars_and_bytes() -> None:
    assert merge_json(1, [("p", 2), ("q", 1)]).value == 2
    assert [c.where for c in merge_json(1, [("p", 2), ("q", 3)]).conflicts] == ["$"]
    assert merge_json(True, [("p", 1)]).value == 1  # true and 1 are different JSON
    assert merge_bytes(b"a", [("p", b"b"), ("q", b"a")]).value == b"b"
    assert merge_bytes(b"a", [("p", b"b"), ("q", b"c")], resolve=lambda c: b"bc").value == b"bc"
    with pytest.raises(accord.InvalidValue, match="kind"):
        merge_values("xml", "", [])


def test_large_text_many_branches_is_clean_and_complete() -> None:
    base = [f"line {i}\n" for i in range(10_000)]
    sides = []
    for b in range(32):
        mine = list(base)
        for j in range(5):
            mine[b * 300 + j * 50] = f"edited by {b}\n"
        sides.append((f"b{b}", "".join(mine)))
    outcome = merge_text("".join(base), sides)
    assert outcome.conflicts == [] and outcome.value.count("edited by") == 160
