"""The backend contract: txn, get, scan, history, wait, now. Every backend."""

from __future__ import annotations

import threading

import pytest

import accord
from accord.records import NOW, Append, Compare, Delete, Put


def put(key: str, data: bytes = b"x", **kw: object) -> Put:
    return Put(key, "text", data, "tester", **kw)  # type: ignore[arg-type]


def test_put_sets_version_and_revision(store: accord.Store) -> None:
    b = store.backend
    r1 = b.txn([], [put("a")])
    r2 = b.txn([], [put("a")])
    rec = b.get("a")
    assert rec is not None and rec.version == 2
    assert r2.revision > r1.revision
    assert rec.revision == r2.revision


def test_compare_version_guards_the_write(store: accord.Store) -> None:
    b = store.backend
    b.txn([], [put("k", b"1")])
    ok = b.txn([Compare("k", "version", "==", 1)], [put("k", b"2")])
    stale = b.txn([Compare("k", "version", "==", 1)], [put("k", b"3")])
    assert ok.succeeded and not stale.succeeded
    rec = b.get("k")
    assert rec is not None and rec.data == b"2"


def test_failure_branch_runs_on_failed_compare(store: accord.Store) -> None:
    b = store.backend
    res = b.txn(
        [Compare("nope", "version", "==", 5)],
        [put("nope")],
        [Append({"agent": "t", "op": "write", "key": "nope", "outcome": "conflict"})],
    )
    assert not res.succeeded
    assert b.get("nope") is None
    events = list(b.history())
    assert events[-1]["outcome"] == "conflict" and events[-1]["rev"] == res.revision


def test_versions_continue_through_delete(store: accord.Store) -> None:
    b = store.backend
    b.txn([], [put("d")])
    b.txn([], [Delete("d")])
    rec = b.get("d")
    assert rec is not None and rec.deleted and rec.version == 2
    assert b.txn([Compare("d", "version", "==", 0)], [put("d")]).succeeded
    rec = b.get("d")
    assert rec is not None and rec.version == 3 and not rec.deleted


def test_purge_removes_the_row(store: accord.Store) -> None:
    b = store.backend
    b.txn([], [put(".accord/x/1")])
    b.txn([], [Delete(".accord/x/1", purge=True)])
    assert b.get(".accord/x/1") is None


def test_scan_returns_live_records_in_key_order(store: accord.Store) -> None:
    b = store.backend
    for key in ("p/b", "p/a", "q/a", "p/c"):
        b.txn([], [put(key)])
    b.txn([], [Delete("p/c")])
    assert [r.key for r in b.scan("p/")] == ["p/a", "p/b"]
    assert [r.key for r in b.scan("p/", limit=1)] == ["p/a"]


def test_expires_compare_uses_store_clock(store: accord.Store) -> None:
    b = store.backend
    b.txn([], [put("ttl", ttl=60)])
    b.txn([], [put("gone", ttl=-1)])
    assert b.txn([Compare("ttl", "expires", ">", NOW)], []).succeeded
    assert not b.txn([Compare("gone", "expires", ">", NOW)], []).succeeded
    assert b.txn([Compare("absent", "expires", "<", NOW)], []).succeeded
    rec = b.get("ttl")
    assert rec is not None and rec.expires is not None
    assert abs(rec.expires - (b.now() + 60)) < 5


def test_holder_compare(store: accord.Store) -> None:
    b = store.backend
    assert b.txn([Compare("role", "holder", "==", "me")], []).succeeded
    b.txn([], [Put("role", "text", b"", "other", ttl=60)])
    assert not b.txn([Compare("role", "holder", "==", "me")], []).succeeded
    assert b.txn([Compare("role", "holder", "==", "other")], []).succeeded
    b.txn([], [Put("role", "text", b"", "other", ttl=-1)])
    assert b.txn([Compare("role", "holder", "==", "me")], []).succeeded


def test_value_compare(store: accord.Store) -> None:
    b = store.backend
    b.txn([], [Put("j", "json", b'{"a":1}', "t")])
    assert b.txn([Compare("j", "value", "==", {"a": 1})], []).succeeded
    assert not b.txn([Compare("j", "value", "==", {"a": 2})], []).succeeded


def test_multi_key_txn_is_atomic(store: accord.Store) -> None:
    b = store.backend
    b.txn([], [put("m1"), put("m2")])
    res = b.txn(
        [Compare("m1", "version", "==", 1), Compare("m2", "version", "==", 9)],
        [put("m1"), put("m2")],
    )
    assert not res.succeeded
    r1, r2 = b.get("m1"), b.get("m2")
    assert r1 is not None and r2 is not None and r1.version == r2.version == 1


def test_history_since_and_key(store: accord.Store) -> None:
    b = store.backend
    for i in range(5):
        b.txn([], [put(f"h{i % 2}", event={"agent": "t", "op": "write", "key": f"h{i % 2}"})])
    events = list(b.history())
    assert [e["rev"] for e in events] == sorted(e["rev"] for e in events)
    assert len(events) == 5
    assert all(e["key"] == "h0" for e in b.history(key="h0"))
    assert len(list(b.history(since=events[2]["rev"]))) == 2
    assert events[0]["version"] == 1 and events[0]["prev"] == 0
    assert events[0]["hash"].startswith("sha256:")


def test_history_streams_past_one_page(store: accord.Store) -> None:
    b = store.backend
    n = 2500
    ops = [Append({"agent": "t", "op": "read", "key": "x"}) for _ in range(n)]
    b.txn([], ops)
    revs = [e["rev"] for e in b.history()]
    assert len(revs) == n and revs == sorted(set(revs))


def test_wait_wakes_on_a_change_of_the_key(open_store) -> None:  # type: ignore[no-untyped-def]
    writer = open_store().backend
    waiter = open_store().backend
    since = waiter.revision()
    started = threading.Event()
    result: dict[str, int] = {}

    def wait() -> None:
        started.set()
        result["rev"] = waiter.wait(["w/key"], [], since, timeout=20)

    t = threading.Thread(target=wait)
    t.start()
    assert started.wait(5)
    writer.txn([], [put("w/other")])
    writer.txn([], [put("w/key")])
    t.join(25)
    assert not t.is_alive()
    assert result["rev"] > since


def test_wait_on_prefix_and_timeout(open_store) -> None:  # type: ignore[no-untyped-def]
    b = open_store().backend
    since = b.revision()
    assert b.wait([], ["pre/"], since, timeout=0.05) == since
    b.txn([], [put("pre/x")])
    assert b.wait([], ["pre/"], since, timeout=5) > since


def test_now_is_wall_clock_seconds(store: accord.Store) -> None:
    import time

    assert abs(store.backend.now() - time.time()) < 60


def test_two_store_objects_share_state(open_store) -> None:  # type: ignore[no-untyped-def]
    s1, s2 = open_store(), open_store()
    s1.session("a").write("shared", "1")
    assert s2.session("b").read("shared").value == "1"


def test_concurrent_cas_has_one_winner(open_store) -> None:  # type: ignore[no-untyped-def]
    stores = [open_store() for _ in range(4)]
    stores[0].backend.txn([], [put("race")])
    barrier = threading.Barrier(4, timeout=10)
    wins: list[bool] = []

    def go(i: int) -> None:
        barrier.wait()
        wins.append(
            stores[i].backend.txn([Compare("race", "version", "==", 1)], [put("race")]).succeeded
        )

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(wins) == [False, False, False, True]


@pytest.mark.parametrize("target", ["version", "expires"])
def test_compare_on_absent_key(store: accord.Store, target: str) -> None:
    if target == "version":
        assert store.backend.txn([Compare("zz", "version", "==", 0)], []).succeeded
    else:
        assert not store.backend.txn([Compare("zz", "expires", ">", NOW)], []).succeeded


def test_wait_sees_a_row_purged_in_a_txn(open_store) -> None:  # type: ignore[no-untyped-def]
    b = open_store().backend
    b.txn([], [put(".accord/p/x"), put(".accord/q/y")])
    since = b.revision()
    b.txn([], [Delete(".accord/p/x", purge=True)])
    assert b.wait([".accord/p/x"], [], since, timeout=5) > since
    assert b.wait([], [".accord/p/"], since, timeout=5) > since


def test_wait_sees_an_expired_row_purged(open_store) -> None:  # type: ignore[no-untyped-def]
    b = open_store().backend
    b.txn([], [put(".accord/e/x", ttl=-1)])
    since = b.revision()
    assert b.purge_expired(".accord/e/", b.now()) == 1
    assert b.get(".accord/e/x") is None
    assert b.revision() > since
    assert b.wait([".accord/e/x"], [], since, timeout=5) > since
