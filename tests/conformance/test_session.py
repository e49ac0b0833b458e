"""Sessions and optimistic writes, idempotency, history: every backend."""

from __future__ import annotations

import json
import threading

import pytest

import accord


def test_read_write_roundtrip_keeps_types(store: accord.Store) -> None:
    a = store.session("agent-a")
    a.write("t", "text")
    a.write("j", {"a": [1, 2], "b": None})
    a.write("b", b"\x00\xff")
    a.write("n", 42)
    assert a.read("t").value == "text" and a.read("t").kind == "text"
    assert a.read("j").value == {"a": [1, 2], "b": None}
    assert a.read("b").value == b"\x00\xff"
    assert a.read("n").value == 42 and a.read("n").kind == "json"


def test_doc_fields(store: accord.Store) -> None:
    a = store.session("agent-a")
    doc = a.write("docs/plan.md", "v1")
    assert (doc.key, doc.value, doc.version, doc.author) == ("docs/plan.md", "v1", 1, "agent-a")
    read = a.read("docs/plan.md")
    assert read.version == 1 and read.revision == doc.revision


def test_not_found(store: accord.Store) -> None:
    with pytest.raises(accord.NotFound, match="expect=0"):
        store.session("a").read("missing")


def test_expect_and_conflict_details(store: accord.Store) -> None:
    a, b, c = (store.session(n) for n in ("agent-a", "agent-b", "agent-c"))
    a.write("docs/plan.md", "one\ntwo\nthree\n")
    for _ in range(2):
        doc = a.read("docs/plan.md")
        a.write("docs/plan.md", doc.value, expect=doc.version)
    v3 = a.read("docs/plan.md")
    assert v3.version == 3
    d = b.read("docs/plan.md")
    b.write("docs/plan.md", "one\nTWO\nthree\n", expect=d.version)
    d = c.read("docs/plan.md")
    c.write("docs/plan.md", "one\nTWO\nthree\nfour\n", expect=d.version)
    with pytest.raises(accord.Conflict) as info:
        a.write("docs/plan.md", "mine", expect=3)
    exc = info.value
    assert exc.key == "docs/plan.md" and exc.expected == 3 and exc.current == 5
    assert exc.writers == [(4, "agent-b"), (5, "agent-c")]
    assert exc.value == "one\nTWO\nthree\nfour\n"
    assert "-two" in exc.diff and "+four" in exc.diff
    msg = str(exc)
    assert msg.startswith(
        "Conflict on docs/plan.md: you wrote based on version 3, but it is at version 5 "
        "(v4 by agent-b, v5 by agent-c). Re-read it, apply your change on top, and write "
        "with expect=5. Changed since version 3:\n--- v3\n+++ v5\n@@"
    )
    assert a.read("docs/plan.md").value == "one\nTWO\nthree\nfour\n"


def test_json_conflict_diff_uses_paths(store: accord.Store) -> None:
    a, b = store.session("a"), store.session("b")
    a.write("cfg", {"model": "x", "temp": 0.2})
    doc = a.read("cfg")
    b.write("cfg", {"model": "y", "temp": 0.2}, expect=1)
    with pytest.raises(accord.Conflict) as info:
        a.write("cfg", {"model": "x", "temp": 0.5}, expect=doc.version)
    assert '$.model: "x" -> "y"' in info.value.diff


def test_blind_write_requires_force(store: accord.Store) -> None:
    a = store.session("a")
    a.write("k", "1")
    with pytest.raises(accord.PreconditionRequired, match="force=True"):
        a.write("k", "2")
    assert a.read("k").value == "1"
    doc = a.write("k", "2", force=True)
    assert doc.version == 2


def test_create_only_never_overwrites(store: accord.Store) -> None:
    a, b = store.session("a"), store.session("b")
    a.write("new", "a's")
    with pytest.raises(accord.PreconditionRequired):
        b.write("new", "b's")
    with pytest.raises(accord.Conflict):
        b.write("new", "b's", expect=0)
    assert b.read("new").value == "a's"


def test_delete_and_recreate_never_reuse_versions(store: accord.Store) -> None:
    a = store.session("a")
    a.write("x", "1")
    with pytest.raises(accord.PreconditionRequired):
        a.delete("x")
    assert a.delete("x", expect=1) == 2
    with pytest.raises(accord.NotFound):
        a.read("x")
    with pytest.raises(accord.Conflict):
        a.write("x", "again", expect=1)
    doc = a.write("x", "again", expect=0)
    assert doc.version == 3
    with pytest.raises(accord.NotFound):
        a.delete("missing", force=True)


def test_update_retries_until_it_wins(store: accord.Store) -> None:
    a, b = store.session("a"), store.session("b")
    a.write("counter", 0)
    calls = []

    def bump(value: int) -> int:
        calls.append(value)
        if len(calls) == 1:
            b.update("counter", lambda v: v + 10)
        return value + 1

    doc = a.update("counter", bump)
    assert doc.value == 11 and calls == [0, 10]


def test_update_creates_absent_key(store: accord.Store) -> None:
    assert store.session("a").update("fresh", lambda v: (v or 0) + 1).value == 1


def test_update_gives_up_with_clear_error(store: accord.Store) -> None:
    a, b = store.session("a"), store.session("b")
    a.write("hot", 0)

    def always_lose(value: int) -> int:
        b.update("hot", lambda v: v + 1)
        return value + 1

    with pytest.raises(accord.RetriesExhausted, match="lost 3 attempts"):
        a.update("hot", always_lose, retries=2, backoff=0)


def test_idempotent_replay_changes_nothing(store: accord.Store) -> None:
    a = store.session("a")
    first = a.write("doc", "v1", idempotency_key="req-17")
    again = a.write("doc", "v1", idempotency_key="req-17")
    assert again.version == first.version == 1 and again.revision == first.revision
    assert [e.op for e in store.history(key="doc")] == ["write"]
    with pytest.raises(accord.IdempotencyMismatch, match="req-17"):
        a.write("doc", "v2", idempotency_key="req-17")


def test_idempotent_replay_after_conflict_free_retry_with_expect(store: accord.Store) -> None:
    a = store.session("a")
    a.write("doc", "v1")
    first = a.write("doc", "v2", expect=1, idempotency_key="r1")
    # A retry of the same call (say after a timeout) replays, though expect=1 is stale now.
    again = a.write("doc", "v2", expect=1, idempotency_key="r1")
    assert again.version == first.version == 2
    assert a.read("doc").version == 2


def test_idempotency_key_shared_across_agents_and_stores(open_store) -> None:  # type: ignore[no-untyped-def]
    s1, s2 = open_store(), open_store()
    d1 = s1.session("a").write("k", "x", idempotency_key="once")
    d2 = s2.session("a").write("k", "x", idempotency_key="once")
    assert d1.version == d2.version == 1


def test_idempotency_window_expires(open_store) -> None:  # type: ignore[no-untyped-def]
    s = open_store(idempotency_window=0.001)
    a = s.session("a")
    a.write("k", "x", idempotency_key="short")
    import time

    deadline = time.monotonic() + 5
    while s.backend.now() < deadline and time.monotonic() < deadline:
        time.sleep(0.01)
        break
    time.sleep(0.05)
    # The key is forgotten, so the same call is a new create: refused as the key exists.
    with pytest.raises(accord.PreconditionRequired):
        a.write("k", "x", idempotency_key="short")


def test_idempotent_delete(store: accord.Store) -> None:
    a = store.session("a")
    a.write("k", "x")
    v = a.delete("k", expect=1, idempotency_key="del-1")
    assert a.delete("k", expect=1, idempotency_key="del-1") == v


def test_history_events_have_the_documented_fields(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write("docs/plan.md", "1")
    doc = b.read("docs/plan.md")
    b.write("docs/plan.md", "2", expect=doc.version)
    a.write("docs/plan.md", "3", force=True)
    events = [e.to_dict() for e in store.history(key="docs/plan.md")]
    assert [e["version"] for e in events] == [1, 2, 3]
    assert [e["prev"] for e in events] == [0, 1, 2]
    assert [e["check"] for e in events] == ["version", "version", "none"]
    assert events[1]["based_on"] == 1
    # a's blind write was based on version 1, the last it saw: the lost update shows.
    assert events[2]["based_on"] == 1
    for e in events:
        assert set(accord.records.EVENT_FIELDS) <= set(e)
        assert e["time"].endswith("Z") and e["outcome"] == "ok"
    # B read A's write: A's write happened before B's.
    assert events[1]["clock"]["agent-a"] >= events[0]["clock"]["agent-a"]
    assert events[1]["lamport"] > events[0]["lamport"]
    # A never read B's write: A's blind write is concurrent with it.
    assert events[2]["clock"].get("agent-b", 0) < events[1]["clock"]["agent-b"]


def test_failed_writes_are_recorded(store: accord.Store) -> None:
    a = store.session("a")
    a.write("k", "1")
    a.write("k", "2", expect=1)
    with pytest.raises(accord.Conflict):
        a.write("k", "3", expect=1)
    last = list(store.history(key="k"))[-1]
    assert last.outcome == "conflict" and last.version is None


def test_reads_recorded_only_when_asked(open_store) -> None:  # type: ignore[no-untyped-def]
    quiet = open_store()
    quiet.session("a").write("k", "1")
    quiet.session("b").read("k")
    assert [e.op for e in quiet.history()] == ["write"]
    loud = open_store(record_reads=True)
    loud.session("b").read("k")
    ops = [e.op for e in loud.history()]
    assert ops == ["write", "read"]
    read = list(loud.history())[-1]
    assert read.version == 1 and read.hash and read.agent == "b"


def test_export_history_jsonl(store: accord.Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = store.session("a")
    a.write("k", "1")
    a.write("k", "2", expect=1)
    path = tmp_path / "h.jsonl"
    assert store.export_history(path) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(lines[0])[:4] == ["rev", "time", "agent", "op"]
    assert [line["version"] for line in lines] == [1, 2]


def test_threads_share_a_store(store: accord.Store) -> None:
    store.session("seed").write("c", 0)
    barrier = threading.Barrier(4, timeout=10)

    def work(name: str) -> None:
        s = store.session(name)
        barrier.wait()
        for _ in range(25):
            s.update("c", lambda v: v + 1, retries=100, backoff=0.001)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.session("seed").read("c").value == 100


def test_scan_hides_internal_records(store: accord.Store) -> None:
    a = store.session("a")
    a.write("docs/a", "1")
    a.write("docs/b", "2", idempotency_key="i")
    assert [d.key for d in a.scan("")] == ["docs/a", "docs/b"]


# --- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "/a", "a/", "a//b", "a/./b", "../x", "a\x00b", "a\nb", "x" * 513, ".accord/lease/x"],
)
def test_invalid_keys(store: accord.Store, key: str) -> None:
    with pytest.raises(accord.InvalidKey, match="Keys are path-like"):
        store.session("a").write(key, "v")


def test_key_must_be_a_string(store: accord.Store) -> None:
    with pytest.raises(accord.InvalidKey, match="must be a string"):
        store.session("a").read(42)  # type: ignore[arg-type]


def test_value_too_large(open_store) -> None:  # type: ignore[no-untyped-def]
    s = open_store(max_value_size=10)
    with pytest.raises(accord.ValueTooLarge, match="over this store's limit of 10 bytes"):
        s.session("a").write("big", "x" * 11)
    with pytest.raises(accord.NotFound):
        s.session("a").read("big")


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), {"a": {1}}])
def test_wrong_value_types(store: accord.Store, value: object) -> None:
    with pytest.raises(accord.InvalidValue):
        store.session("a").write("k", value)
    assert list(store.history()) == []


@pytest.mark.parametrize("agent", ["", " ", "a\nb", "x" * 129])
def test_bad_agent_names(store: accord.Store, agent: str) -> None:
    with pytest.raises(accord.UsageError, match="agent name"):
        store.session(agent)


def test_bad_expect(store: accord.Store) -> None:
    with pytest.raises(accord.UsageError):
        store.session("a").write("k", "v", expect=-1)


def test_bad_idempotency_key(store: accord.Store) -> None:
    with pytest.raises(accord.UsageError):
        store.session("a").write("k", "v", idempotency_key="")
