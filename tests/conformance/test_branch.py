"""Isolated copies and their merge, on every backend.

A table of text and JSON cases goes through fork -> branch.write ->
store.merge -> commit on each backend: non-overlapping edits merge cleanly,
overlapping ones conflict, deletions against edits, N > 2 branches, and a key
that moved since the base merged as one more side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import accord
from accord.merge import DELETED

BASE_TEXT = "title\nalpha\nbeta\ngamma\ndelta\n"

# (name, base, [branch values], current value or None, expected value or None,
#  [(where, sorted side labels)] of the expected conflicts)
TEXT_CASES: list[tuple[str, str, list[str], str | None, str | None, list[Any]]] = [
    (
        "edits of different lines merge",
        BASE_TEXT,
        ["title\nALPHA\nbeta\ngamma\ndelta\n", "title\nalpha\nbeta\nGAMMA\ndelta\n"],
        None,
        "title\nALPHA\nbeta\nGAMMA\ndelta\n",
        [],
    ),
    (
        "edits of neighbouring lines merge",
        BASE_TEXT,
        ["title\nALPHA\nbeta\ngamma\ndelta\n", "title\nalpha\nBETA\ngamma\ndelta\n"],
        None,
        "title\nALPHA\nBETA\ngamma\ndelta\n",
        [],
    ),
    (
        "the same line edited differently conflicts",
        BASE_TEXT,
        ["title\nalpha one\nbeta\ngamma\ndelta\n", "title\nalpha two\nbeta\ngamma\ndelta\n"],
        None,
        None,
        [("line 2", ["b0", "b1"])],
    ),
    (
        "the same edit twice is no conflict",
        BASE_TEXT,
        ["title\nalpha!\nbeta\ngamma\ndelta\n", "title\nalpha!\nbeta\ngamma\ndelta\n"],
        None,
        "title\nalpha!\nbeta\ngamma\ndelta\n",
        [],
    ),
    (
        "a deletion against an edit of that line conflicts",
        BASE_TEXT,
        ["title\nbeta\ngamma\ndelta\n", "title\nalpha edited\nbeta\ngamma\ndelta\n"],
        None,
        None,
        [("line 2", ["b0", "b1"])],
    ),
    (
        "a deletion and an edit elsewhere merge",
        BASE_TEXT,
        ["title\nbeta\ngamma\ndelta\n", "title\nalpha\nbeta\ngamma\nDELTA\n"],
        None,
        "title\nbeta\ngamma\nDELTA\n",
        [],
    ),
    (
        "two insertions at the same place conflict",
        BASE_TEXT,
        ["title\nalpha\nnew A\nbeta\ngamma\ndelta\n", "title\nalpha\nnew B\nbeta\ngamma\ndelta\n"],
        None,
        None,
        [("insertion after line 2", ["b0", "b1"])],
    ),
    (
        "insertions at different places merge",
        BASE_TEXT,
        ["title\nnew A\nalpha\nbeta\ngamma\ndelta\n", "title\nalpha\nbeta\ngamma\ndelta\nend B\n"],
        None,
        "title\nnew A\nalpha\nbeta\ngamma\ndelta\nend B\n",
        [],
    ),
    (
        "four branches, four lines: clean",
        BASE_TEXT,
        [
            "TITLE\nalpha\nbeta\ngamma\ndelta\n",
            "title\nALPHA\nbeta\ngamma\ndelta\n",
            "title\nalpha\nBETA\ngamma\ndelta\n",
            "title\nalpha\nbeta\ngamma\nDELTA\n",
        ],
        None,
        "TITLE\nALPHA\nBETA\ngamma\nDELTA\n",
        [],
    ),
    (
        "three branches, two collide, one merges",
        BASE_TEXT,
        [
            "title\nalpha\nbeta X\ngamma\ndelta\n",
            "title\nalpha\nbeta Y\ngamma\ndelta\n",
            "title\nalpha\nbeta\ngamma\ndelta\nepilogue\n",
        ],
        None,
        None,
        [("line 3", ["b0", "b1"])],
    ),
    (
        "the key moved since the base: its change is kept",
        BASE_TEXT,
        ["title\nALPHA\nbeta\ngamma\ndelta\n"],
        "title\nalpha\nbeta\ngamma\ndelta (edited on the key)\n",
        "title\nALPHA\nbeta\ngamma\ndelta (edited on the key)\n",
        [],
    ),
    (
        "the key moved on the same line: a conflict naming current",
        BASE_TEXT,
        ["title\nalpha by branch\nbeta\ngamma\ndelta\n"],
        "title\nalpha by key\nbeta\ngamma\ndelta\n",
        None,
        [("line 2", ["b0", "current"])],
    ),
]

BASE_JSON: dict[str, Any] = {
    "title": "Plan",
    "owner": "ana",
    "meta": {"depth": 1, "tags": ["a", "b"]},
    "steps": ["read", "think", "write"],
}

JSON_CASES: list[tuple[str, Any, list[Any], Any, Any, list[Any]]] = [
    (
        "different keys merge",
        BASE_JSON,
        [{**BASE_JSON, "title": "Plan v2"}, {**BASE_JSON, "owner": "bo"}],
        None,
        {**BASE_JSON, "title": "Plan v2", "owner": "bo"},
        [],
    ),
    (
        "nested paths merge",
        BASE_JSON,
        [
            {**BASE_JSON, "meta": {"depth": 2, "tags": ["a", "b"]}},
            {**BASE_JSON, "meta": {"depth": 1, "tags": ["a", "b"], "new": True}},
        ],
        None,
        {**BASE_JSON, "meta": {"depth": 2, "tags": ["a", "b"], "new": True}},
        [],
    ),
    (
        "the same path set differently conflicts",
        BASE_JSON,
        [{**BASE_JSON, "title": "A's title"}, {**BASE_JSON, "title": "B's title"}],
        None,
        None,
        [("$.title", ["b0", "b1"])],
    ),
    (
        "a removal against an edit conflicts",
        BASE_JSON,
        [
            {k: v for k, v in BASE_JSON.items() if k != "owner"},
            {**BASE_JSON, "owner": "bo"},
        ],
        None,
        None,
        [("$.owner", ["b0", "b1"])],
    ),
    (
        "a removal and an edit elsewhere merge",
        BASE_JSON,
        [{k: v for k, v in BASE_JSON.items() if k != "owner"}, {**BASE_JSON, "title": "T"}],
        None,
        {"title": "T", "meta": BASE_JSON["meta"], "steps": BASE_JSON["steps"]},
        [],
    ),
    (
        "array elements edited at different indexes merge",
        BASE_JSON,
        [
            {**BASE_JSON, "steps": ["READ", "think", "write"]},
            {**BASE_JSON, "steps": ["read", "think", "WRITE"]},
        ],
        None,
        {**BASE_JSON, "steps": ["READ", "think", "WRITE"]},
        [],
    ),
    (
        "array insertions at different places merge",
        BASE_JSON,
        [
            {**BASE_JSON, "steps": ["plan", "read", "think", "write"]},
            {**BASE_JSON, "steps": ["read", "think", "write", "publish"]},
        ],
        None,
        {**BASE_JSON, "steps": ["plan", "read", "think", "write", "publish"]},
        [],
    ),
    (
        "two appends to one array conflict",
        BASE_JSON,
        [
            {**BASE_JSON, "steps": ["read", "think", "write", "review"]},
            {**BASE_JSON, "steps": ["read", "think", "write", "publish"]},
        ],
        None,
        None,
        [("$.steps[3:3]", ["b0", "b1"])],
    ),
    (
        "three branches on three keys, and the key moved on a fourth",
        BASE_JSON,
        [
            {**BASE_JSON, "title": "T"},
            {**BASE_JSON, "owner": "bo"},
            {**BASE_JSON, "meta": {"depth": 1, "tags": ["a", "b", "c"]}},
        ],
        {**BASE_JSON, "steps": ["read", "write"]},
        {
            "title": "T",
            "owner": "bo",
            "meta": {"depth": 1, "tags": ["a", "b", "c"]},
            "steps": ["read", "write"],
        },
        [],
    ),
    (
        "a type change against an edit conflicts",
        BASE_JSON,
        [{**BASE_JSON, "meta": "none"}, {**BASE_JSON, "meta": {"depth": 5, "tags": []}}],
        None,
        None,
        [("$.meta", ["b0", "b1"])],
    ),
]


def _run_case(
    store: accord.Store, base: Any, values: list[Any], current: Any
) -> tuple[accord.Merge, dict[str, str]]:
    owner = store.session("owner")
    owner.write("doc", base)
    labels: dict[str, str] = {}
    branches = []
    for i, value in enumerate(values):
        branch = store.session(f"agent-{i}").fork("doc")
        branch.write(value)
        labels[branch.id] = f"b{i}"
        branches.append(branch)
    if current is not None:
        owner.write("doc", current, expect=1)
    labels["current"] = "current"
    return store.merge("doc", branches), labels


@pytest.mark.parametrize(
    ("base", "values", "current", "expected", "conflicts"),
    [case[1:] for case in TEXT_CASES + JSON_CASES],
    ids=[case[0] for case in TEXT_CASES + JSON_CASES],
)
def test_merge_table(
    store: accord.Store,
    base: Any,
    values: list[Any],
    current: Any,
    expected: Any,
    conflicts: list[Any],
) -> None:
    merge, labels = _run_case(store, base, values, current)
    got = [(c.where, sorted(labels[s] for s in c.sides)) for c in merge.conflicts]
    assert got == conflicts
    assert merge.base_version == 1
    assert merge.current_version == (2 if current is not None else 1)
    if conflicts:
        assert not merge.clean
        for conflict in merge.conflicts:
            assert conflict.base is not None
        with pytest.raises(accord.PreconditionFailed, match="unresolved conflict"):
            merge.commit()
        assert store.session("owner").read("doc").version == merge.current_version
        return
    assert merge.clean and merge.value == expected
    doc = merge.commit()
    assert doc.value == expected and doc.version == merge.current_version + 1
    assert store.session("owner").read("doc").value == expected
    assert store.branches("doc") == []


def test_conflict_report_names_each_side_and_the_base(store: accord.Store) -> None:
    merge, _ = _run_case(
        store,
        BASE_TEXT,
        ["title\nalpha one\nbeta\ngamma\ndelta\n", "title\nalpha two\nbeta\ngamma\ndelta\n"],
        None,
    )
    [conflict] = merge.conflicts
    assert conflict.kind == "text" and (conflict.start, conflict.end) == (1, 2)
    assert conflict.base == "alpha\n"
    assert sorted(conflict.sides.values()) == ["alpha one\n", "alpha two\n"]
    assert "<<<<<<<" in merge.value and "||||||| base\nalpha\n" in merge.value
    report = merge.report()
    assert "line 2" in report and "alpha one" in report and "alpha two" in report


def test_json_removal_is_reported_as_deleted(store: accord.Store) -> None:
    merge, labels = _run_case(
        store,
        BASE_JSON,
        [{k: v for k, v in BASE_JSON.items() if k != "owner"}, {**BASE_JSON, "owner": "bo"}],
        None,
    )
    [conflict] = merge.conflicts
    by_label = {labels[k]: v for k, v in conflict.sides.items()}
    assert by_label == {"b0": DELETED, "b1": "bo"} and conflict.base == "ana"
    assert conflict.to_dict()["sides"][next(iter(conflict.sides))] == {"deleted": True}
    assert merge.value["owner"] == "ana"  # unresolved: the base stays


def test_resolve_settles_conflicts(store: accord.Store) -> None:
    store.session("owner").write("doc", BASE_TEXT)
    a, b = store.session("a").fork("doc"), store.session("b").fork("doc")
    a.write("title\nalpha A\nbeta\ngamma\ndelta\n")
    b.write("title\nalpha B\nbeta\ngamma\ndelta\n")
    seen = []

    def both(conflict: accord.MergeConflict) -> str:
        seen.append(conflict.where)
        return "".join(conflict.sides[x.id] for x in (a, b))

    merge = store.merge("doc", [a, b], resolve=both)
    assert merge.clean and seen == ["line 2"] and len(merge.resolved) == 1
    assert merge.commit().value == "title\nalpha A\nalpha B\nbeta\ngamma\ndelta\n"

    store.session("owner").write("cfg", {"x": 1, "y": 1})
    c, d = store.session("c").fork("cfg"), store.session("d").fork("cfg")
    c.write({"x": 2, "y": 1})
    d.write({"y": 1})
    merge = store.merge("cfg", [c, d], resolve=lambda conflict: conflict.take(c.id))
    assert merge.commit().value == {"x": 2, "y": 1}
    e, f = store.session("e").fork("cfg"), store.session("f").fork("cfg")
    e.write({"x": 3, "y": 1})
    f.write({"x": 4, "y": 1})
    merge = store.merge("cfg", [e, f], resolve=lambda conflict: accord.MergeConflict.DELETE)
    assert merge.value == {"y": 1}
    merge = store.merge("cfg", [e, f], resolve=lambda conflict: accord.MergeConflict.NULL)
    assert merge.value == {"x": None, "y": 1}
    merge = store.merge("cfg", [e, f], resolve=lambda conflict: None)
    assert not merge.clean and merge.value == {"x": 2, "y": 1}


def test_a_branch_survives_its_process_and_is_private(
    open_store: Callable[..., accord.Store],
) -> None:
    first, second = open_store(), open_store()
    first.session("owner").write("doc", "v1\n")
    branch = first.session("agent-a").fork("doc")
    branch.write("v1\nmine\n")
    first.close()
    [found] = second.branches("doc")
    assert (found.id, found.agent, found.base_version, found.kind) == (
        branch.id,
        "agent-a",
        1,
        "text",
    )
    assert found.read() == "v1\nmine\n"
    assert second.session("x").read("doc").value == "v1\n"  # the key is untouched
    assert found.status == "open"


def test_commit_carries_the_version_check(store: accord.Store) -> None:
    owner = store.session("owner")
    owner.write("doc", BASE_TEXT)
    a = store.session("a").fork("doc")
    a.write(BASE_TEXT + "a\n")
    merge = store.merge("doc", [a])
    owner.write("doc", "TITLE\n" + BASE_TEXT[len("title\n") :], expect=1)
    with pytest.raises(accord.Conflict) as info:
        merge.commit()
    assert info.value.expected == 1 and info.value.current == 2  # type: ignore[attr-defined]
    assert a.status == "open"
    again = store.merge("doc", [a])  # the moved key is now a side
    assert again.current_version == 2
    assert again.commit().value == "TITLE\nalpha\nbeta\ngamma\ndelta\na\n"
    assert a.status == "merged"


def test_closed_branches_are_refused(store: accord.Store) -> None:
    store.session("owner").write("doc", "x\n")
    a = store.session("a").fork("doc")
    a.write("x\ny\n")
    store.merge("doc", [a]).commit()
    with pytest.raises(accord.PreconditionFailed, match="was merged into doc version 2"):
        store.merge("doc", [a])
    with pytest.raises(accord.PreconditionFailed, match="Fork doc again"):
        a.write("x\ny\nz\n")
    b = store.session("b").fork("doc")
    b.discard()
    assert store.branches("doc") == []
    with pytest.raises(accord.PreconditionFailed, match="discarded"):
        store.merge("doc", [b])


def test_a_branch_written_after_the_merge_was_computed_blocks_the_commit(
    store: accord.Store,
) -> None:
    store.session("owner").write("doc", "x\n")
    a = store.session("a").fork("doc")
    merge = store.merge("doc", [a])
    a.write("x\nlate\n")
    with pytest.raises(accord.PreconditionFailed, match="written after this merge"):
        merge.commit()
    assert store.session("owner").read("doc").version == 1


def test_bad_input_changes_nothing(store: accord.Store) -> None:
    owner = store.session("owner")
    owner.write("doc", "x\n")
    owner.write("other", "y\n")
    a = store.session("a").fork("doc")
    o = store.session("a").fork("other")
    revision = store.revision()
    with pytest.raises(accord.UsageError, match="branch of other, not doc"):
        store.merge("doc", [a, o])
    with pytest.raises(accord.UsageError, match="Nothing to merge"):
        store.merge("doc", [])
    with pytest.raises(accord.UsageError, match="twice"):
        store.merge("doc", [a, a])
    with pytest.raises(accord.InvalidValue, match="holds text"):
        a.write({"not": "text"})
    with pytest.raises(accord.NotFound, match="Create it first"):
        owner.fork("missing")
    assert store.revision() == revision
    owner.write("doc", "x\nz\n", expect=1)
    late = store.session("b").fork("doc")
    revision = store.revision()
    with pytest.raises(accord.UsageError, match="different bases"):
        store.merge("doc", [a, late])
    assert store.revision() == revision
    owner.write("doc", {"now": "json"}, expect=2)
    revision = store.revision()
    with pytest.raises(accord.InvalidValue, match="not mergeable"):
        store.merge("doc", [a])
    assert store.revision() == revision
    assert a.read() == "x\n" and a.status == "open"


def test_bytes_merge_whole_value(store: accord.Store) -> None:
    store.session("owner").write("blob", b"\x00")
    a, b, c = (store.session(n).fork("blob") for n in "abc")
    a.write(b"\x01")
    merge = store.merge("blob", [a, b])
    assert merge.value == b"\x01" and merge.clean
    c.write(b"\x02")
    merge = store.merge("blob", [a, c])
    assert [x.where for x in merge.conflicts] == ["the whole value"]


def test_merge_commit_to_a_queue_key_needs_the_writer(store: accord.Store) -> None:
    author = store.session("author")
    author.write("doc", "x\n")
    list(author.requests("doc", timeout=0))
    a = store.session("critic").fork("doc")
    a.write("x\ny\n")
    with pytest.raises(accord.NotWriter):
        store.merge("doc", [a], agent="critic").commit()
    doc = store.merge("doc", [a]).commit(agent="author")
    assert doc.value == "x\ny\n"


def test_history_records_fork_and_merge(store: accord.Store) -> None:
    store.session("owner").write("doc", "x\n")
    a = store.session("a").fork("doc")
    b = store.session("b").fork("doc")
    a.write("x\na\n")
    store.merge("doc", [a, b], agent="synth").commit()
    events = [e for e in store.history(key="doc") if e.op in ("fork", "merge")]
    assert [(e.op, e.agent, e.request) for e in events] == [
        ("fork", "a", a.id),
        ("fork", "b", b.id),
        ("merge", "synth", f"{a.id},{b.id}"),
    ]
    assert events[0].version == 1 and events[2].version == 2 and events[2].check == "merge"
    assert events[2].based_on == 1


# --- a branch is its owner's (issue 11, item 14) -----------------------------------------


def test_only_the_owner_writes_or_discards_a_branch(store: accord.Store) -> None:
    store.session("owner").write("doc", "x\n")
    a, b = store.session("agent-a"), store.session("agent-b")
    mine = a.fork("doc")
    mine.write("x\nA\n")
    theirs = b.branch("doc", mine.id)
    assert theirs.read() == "x\nA\n"  # reading is fine
    refused = r"belongs to agent-a.*agent-b may not write"
    with pytest.raises(accord.NotOwner, match=refused) as info:
        theirs.write("x\nB was here\n")
    error = info.value
    assert (error.owner, error.agent, error.branch) == ("agent-a", "agent-b", mine.id)
    assert info.value.exit_code == 3 and "session.fork('doc')" in str(info.value)
    assert "accord fork doc" in info.value.render("cli")
    with pytest.raises(accord.NotOwner, match="may not discard"):
        b.branches("doc")[0].discard()
    assert a.branch("doc", mine.id).read() == "x\nA\n"
    assert [br.id for br in store.branches("doc")] == [mine.id]
    # The owner, through any of its handles, may.
    again = a.branch("doc", mine.id)
    again.write("x\nA2\n")
    a.branches("doc")[0].discard()
    assert store.branches("doc") == []


def test_a_handle_of_no_agent_reads_and_merges_but_does_not_write(store: accord.Store) -> None:
    store.session("owner").write("doc", "x\n")
    branch = store.session("agent-a").fork("doc")
    branch.write("x\nA\n")
    (anonymous,) = store.branches("doc")
    assert anonymous.read() == "x\nA\n"
    with pytest.raises(accord.UsageError, match=r"belongs to no agent.*session\.branch"):
        anonymous.write("x\nanyone\n")
    with pytest.raises(accord.UsageError, match="belongs to no agent"):
        anonymous.discard()
    merged = store.merge("doc", [anonymous], agent="synth").commit()
    assert merged.value == "x\nA\n"


# --- a merge into another lineage (issue 11, item 2) -------------------------------------


def test_a_merge_after_delete_and_re_create_is_refused(store: accord.Store) -> None:
    """The branch's edit used to be applied to the unrelated new document."""
    owner, a = store.session("owner"), store.session("agent-a")
    owner.write("doc", "old plan\nstep 1\n")
    branch = a.fork("doc")
    branch.write("old plan\nstep 1\nstep 2 (A)\n")
    owner.delete("doc", expect=1)
    owner.write("doc", "a new, unrelated document\n", expect=0)
    owner.write("doc", "a new, unrelated document\nmore\n", expect=3)
    with pytest.raises(accord.PreconditionFailed, match="deleted") as info:
        store.merge("doc", [branch], agent="synth")
    message = str(info.value)
    assert "version 2" in message and "forked from version 1" in message
    assert "created again" in message and "Nothing was changed" in message
    assert (info.value.deleted_at, info.value.current) == (2, 4)
    assert owner.read("doc").value == "a new, unrelated document\nmore\n"
    assert [b.id for b in store.branches("doc")] == [branch.id]  # still open: discard it
    branch.discard()


def test_a_merge_computed_before_a_delete_and_re_create_does_not_commit(
    store: accord.Store,
) -> None:
    owner, a = store.session("owner"), store.session("agent-a")
    owner.write("doc", "x\n")
    branch = a.fork("doc")
    branch.write("x\ny\n")
    owner.write("doc", "w\nx\n", expect=1)
    merge = store.merge("doc", [branch], agent="synth")
    assert merge.clean
    owner.delete("doc", expect=2)
    owner.write("doc", "other\n", expect=0)
    with pytest.raises(accord.Conflict):
        merge.commit()
    assert owner.read("doc").value == "other\n"


def test_branches_of_a_re_created_key_merge_normally(store: accord.Store) -> None:
    owner, a = store.session("owner"), store.session("agent-a")
    owner.write("doc", "first life\n")
    owner.delete("doc", expect=1)
    owner.write("doc", "x\n", expect=0)  # version 3: the lineage the branch forks from
    branch = a.fork("doc")
    branch.write("x\ny\n")
    owner.write("doc", "w\nx\n", expect=3)
    merged = store.merge("doc", [branch], agent="synth").commit()
    assert merged.value == "w\nx\ny\n"
