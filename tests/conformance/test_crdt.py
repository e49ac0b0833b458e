"""Shared texts (a CRDT in a key): concurrent edits converge, none is lost."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import accord

pytest.importorskip("pycrdt")


def test_concurrent_edits_converge_without_conflict(store: accord.Store) -> None:
    a = accord.SharedText.open(store.session("agent-a"), "notes/shared.md")
    a.set("# Notes\nalpha\nbeta\n")
    a.sync()
    b = accord.SharedText.open(store.session("agent-b"), "notes/shared.md")
    assert b.text == "# Notes\nalpha\nbeta\n"
    # Both edit from the same state, without seeing each other.
    a.set("# Notes\nalpha (A)\nbeta\n")
    b.set("# Notes\nalpha\nbeta\ngamma (B)\n")
    a.sync()
    b.sync()  # loses the race to a's sync: merges and stores both
    a.sync()
    assert a.text == b.text == "# Notes\nalpha (A)\nbeta\ngamma (B)\n"
    assert accord.SharedText.read(store.session("reader"), "notes/shared.md") == a.text


def test_same_place_edits_interleave_silently(store: accord.Store) -> None:
    a = accord.SharedText.open(store.session("agent-a"), "k")
    a.set("x\n")
    a.sync()
    b = accord.SharedText.open(store.session("agent-b"), "k")
    a.set("A wrote this\n")
    b.set("B wrote this\n")
    a.sync()
    b.sync()
    a.sync()
    # No conflict report: both rewrites are kept, in an order both agree on.
    assert a.text == b.text
    assert "A wrote this\n" in a.text and "B wrote this\n" in a.text and "x\n" not in a.text


def test_character_edits_and_unicode(store: accord.Store) -> None:
    t = accord.SharedText.open(store.session("a"), "u")
    t.insert(0, "héllo wörld")
    t.delete(1, 1)
    t.insert(1, "e")
    assert t.text == "hello wörld"
    with pytest.raises(accord.UsageError):
        t.delete(5, 100)
    with pytest.raises(accord.UsageError):
        t.insert(99, "x")
    t.sync()
    assert accord.SharedText.read(store.session("b"), "u") == "hello wörld"


def test_not_a_shared_text(store: accord.Store) -> None:
    store.session("a").write("plain", "just text")
    with pytest.raises(accord.InvalidValue, match="does not hold a shared text"):
        accord.SharedText.open(store.session("a"), "plain")


def test_many_agents_in_threads_lose_nothing(open_store: Callable[..., accord.Store]) -> None:
    agents, edits = 4, 8
    barrier = threading.Barrier(agents)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            session = open_store().session(f"agent-{i}")
            barrier.wait(10)
            replica = accord.SharedText.open(session, "log")
            for n in range(edits):
                replica.set(replica.text + f"{i}:{n}\n")
                replica.sync()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    final = accord.SharedText.read(open_store().session("reader"), "log")
    lines = final.splitlines()
    assert sorted(lines) == sorted(f"{i}:{n}" for i in range(agents) for n in range(edits))
    for i in range(agents):  # each agent's own lines stay in its order
        assert [x for x in lines if x.startswith(f"{i}:")] == [f"{i}:{n}" for n in range(edits)]
