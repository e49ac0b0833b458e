"""Edges of ``expect`` that the MCP server's property test found, on every backend.

A version past 64 bits (or 2**63 - 1, which PostgreSQL cannot add 1 to)
reached the backend (OverflowError on SQLite, a misleading BackendUnavailable
on PostgreSQL), and ``delete(key, expect=0)`` of an absent key crashed with a
KeyError after appending a history event.
"""

from __future__ import annotations

import pytest

import accord


@pytest.mark.parametrize("expect", [2**62 + 1, 2**63, 2**70])
def test_a_version_past_2_62_is_a_usage_error(store: accord.Store, expect: int) -> None:
    a = store.session("agent-a")
    a.write("k", "v", expect=0)
    with pytest.raises(accord.UsageError, match="expect"):
        a.write("k", "w", expect=expect)
    with pytest.raises(accord.UsageError, match="expect"):
        a.delete("k", expect=expect)
    assert a.read("k").value == "v"


def test_the_largest_version_is_an_ordinary_conflict(store: accord.Store) -> None:
    a = store.session("agent-a")
    a.write("k", "v", expect=0)
    with pytest.raises(accord.Conflict):
        a.write("k", "w", expect=2**62)
    with pytest.raises(accord.Conflict):
        a.delete("k", expect=2**62)


@pytest.mark.parametrize("exists", [False, True])
def test_delete_with_expect_0_is_refused_and_records_nothing(
    store: accord.Store, exists: bool
) -> None:
    a = store.session("agent-a")
    if exists:
        a.write("k", "v", expect=0)
    before = store.revision()
    with pytest.raises(accord.UsageError, match="expect=0"):
        a.delete("k", expect=0)
    assert store.revision() == before
    assert [e.op for e in store.history(since=before)] == []
